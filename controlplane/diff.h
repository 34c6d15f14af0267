// The reconciler's pure core: what the dataplane reports (ports.list,
// routes.list), and the config.apply changes that take it to the registry's
// desired state. Owned by controlplane/; no I/O, callable from any thread.
//
// Only entries with origin "api" belong to the control plane; anything else
// (the boot configuration's "config", "connected" subnets) is never changed.
// Changes come in the order the dataplane checks them one by one: route
// deletes, address deletes, address adds, route adds — so a route goes
// before the address its gateway depends on, and an address comes before the
// routes that need it. A kept route whose gateway loses its address in the
// same plan is deleted and re-added around it (one generation, so forwarding
// never sees the gap).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/net.h"
#include "controlplane/registry.h"
#include "controlplane/result.h"

namespace tether::cp {

inline constexpr const char* kOriginApi = "api";

struct ReportedAddress {
  std::string port;
  Ipv4Prefix address;  // host bits kept
  std::string origin;  // "config" | "api"
};

struct ReportedRoute {
  uint16_t domain = 0;
  Ipv4Prefix prefix;
  std::optional<Ipv4> via;
  std::string port;
  std::string origin;  // "config" | "api" | "connected"
};

struct DataplaneState {
  std::vector<std::string> ports;
  std::vector<ReportedAddress> addresses;
  std::vector<ReportedRoute> routes;
};

// From the results of ports.list and routes.list. An entry without an origin
// counts as "config", so it is left alone.
Result<DataplaneState> parse_dataplane_state(const nlohmann::json& ports_result,
                                             const nlohmann::json& routes_result);

struct Plan {
  std::vector<nlohmann::json> changes;  // config.apply `changes`, in order
  std::vector<std::string> held_back;   // desired entries not sent, and why
  bool empty() const { return changes.empty(); }
};

Plan plan_changes(const DesiredState& desired, const DataplaneState& reported);

// "route add 10.2.0.0/24 domain 0 via 10.0.1.254", for logs and messages.
std::string describe_change(const nlohmann::json& change);

}  // namespace tether::cp
