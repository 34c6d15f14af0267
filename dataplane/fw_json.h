// Firewall zones and policies in JSON, for the boot configuration
// (docs/config.md, "firewall") and the API (docs/dataplane-api.md,
// "Firewall") alike. Parsers throw std::invalid_argument with a message that
// names `where` and the field.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "firewall/rules.h"

namespace tether::dp {

// {"name": "acme", "kind": "vdc"|"users"|"uplink", "domains": [7],
//  "wg_interfaces": ["wg-acme"], "ports": ["lan"]}; `name_only` for del.
fw::Zone parse_fw_zone(const nlohmann::json& j, const std::string& where, bool name_only = false);
// {"from": "uplink", "to": "vdc-7", "default": "drop", "rules": [rule...]};
// `pair_only` for del.
fw::Policy parse_fw_policy(const nlohmann::json& j, const std::string& where,
                           bool pair_only = false);
// {"name": "web", "src": ["203.0.113.0/24"] | "203.0.113.0/24", "dst": ...,
//  "protocol": "tcp"|"udp"|"icmp"|"any"|number, "sport": "1024-65535",
//  "dport": "80,443", "icmp": ["8", "3/4"], "action": "accept"|"drop"|"reject",
//  "log": true}
fw::Rule parse_fw_rule(const nlohmann::json& j, const std::string& where);

nlohmann::json fw_zone_json(const fw::Zone& z);
nlohmann::json fw_rule_json(const fw::Rule& r);
nlohmann::json fw_policy_json(const fw::Policy& p);  // without rules' counters
const char* fw_proto_name(uint8_t proto);            // "tcp", "udp", "icmp", "any", or ""

}  // namespace tether::dp
