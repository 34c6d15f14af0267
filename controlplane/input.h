// Parsing of what a user types (port names, addresses, prefixes, domains)
// into registry values, with refusals that say how to fix the input. Owned by
// controlplane/; used by the registry on every mutation and available to the
// management API. Pure functions, any thread.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/net.h"
#include "controlplane/result.h"

namespace tether::cp {

// A dataplane port name: 1-64 letters, digits, '-', '_' or '.'.
Status check_port(std::string_view port);

// An interface address with its length, host bits kept: "10.0.1.1/24". The
// network and broadcast addresses of a subnet (up to /30) are refused.
Result<Ipv4Prefix> parse_address(std::string_view text);

// A route destination without host bits: "10.2.0.0/24" (a bare address is /32).
Result<Ipv4Prefix> parse_route_prefix(std::string_view text);

// A routing domain: 0 (the uplink) to 65535.
Status check_domain(int64_t domain);

}  // namespace tether::cp
