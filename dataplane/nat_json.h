// NAT entries in JSON, for the boot configuration (docs/config.md, "nat")
// and the API (docs/dataplane-api.md, "NAT") alike. Parsers throw
// std::invalid_argument with a message that names `where` and the field.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "nat/mapping.h"
#include "nat/session.h"

namespace tether::dp {

// {"name", "public": "198.51.100.7", "public_domain": 0, "protocol": "tcp"|"udp"|"any",
//  "ports": "3389" | "5000-5099" (absent for "any"), "domain": 7, "inner": "10.0.0.5",
//  "inner_port": 3389 (default: the first public port)}. del/update by name:
//  `name_only` parses just the name.
nat::MappingEntry parse_nat_mapping(const nlohmann::json& j, const std::string& where,
                                    bool name_only = false);
// {"domain": 7, "address": "10.0.0.254"}
nat::GatewayEntry parse_nat_gateway(const nlohmann::json& j, const std::string& where,
                                    bool domain_only = false);
// {"domain": 7, "public": "198.51.100.10", "public_domain": 0}
nat::SnatEntry parse_nat_snat(const nlohmann::json& j, const std::string& where,
                              bool domain_only = false);
// {"domain": 7, "from": "10.0.0.5", "to": "10.0.0.50"}
void parse_nat_rewrite(const nlohmann::json& j, const std::string& where, uint16_t* domain,
                       uint32_t* from, uint32_t* to);
// {"tcp_established_s", "tcp_transitory_s", "tcp_closed_s", "udp_s", "icmp_s"}
nat::Timeouts parse_nat_timeouts(const nlohmann::json& j, const std::string& where);

nlohmann::json nat_mapping_json(const nat::MappingEntry& e);
nlohmann::json flow_key_json(const nat::FlowKey& k);
const char* nat_proto_name(uint8_t proto);

}  // namespace tether::dp
