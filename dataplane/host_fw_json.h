// The host firewall's policy in JSON, for the boot configuration
// ("host_firewall") and the API (host_firewall.set / host_firewall.get)
// alike. The parser throws std::invalid_argument with a message that names
// `where` and the field.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "firewall/host_firewall.h"

namespace tether::dp {

// {"interfaces": ["tether0", "mgmt0"], "admin": ["10.9.0.0/24", "192.0.2.7"],
//  "services": ["tcp/22", "tcp/8443", "udp/161"], "new_per_second": 20, "burst": 40,
//  "allow_ping": true, "extra": ["udp dport 51820 accept"]}. Every key is
// optional (absent: fw::HostPolicy's default; no interfaces: the policy is
// off); unknown keys are refused, and so is what fw::validate refuses. The
// extra rules are libnftables' to judge, at apply time.
fw::HostPolicy parse_host_policy(const nlohmann::json& j, const std::string& where);

// The same form, every key present; parse_host_policy() reads it back equal.
nlohmann::json host_policy_json(const fw::HostPolicy& p);

}  // namespace tether::dp
