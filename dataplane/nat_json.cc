#include "dataplane/nat_json.h"

#include <stdexcept>

#include "common/net.h"
#include "dataplane/json_fields.h"

namespace tether::dp {
namespace {

using jsonf::bad;
using jsonf::only_keys;
using jsonf::uint_of;
using nlohmann::json;

uint32_t addr_field(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) bad(where + ": \"" + key + "\" must be an address string");
  auto ip = parse_ipv4(it->get<std::string>());
  if (!ip) bad(where + ": " + key + " \"" + it->get<std::string>() + "\" is not like 10.0.0.5");
  return *ip;
}

std::string name_of(const json& j, const std::string& where) {
  auto it = j.find("name");
  if (it == j.end() || !it->is_string() || it->get<std::string>().empty())
    bad(where + ": \"name\" must be a non-empty string");
  return it->get<std::string>();
}

}  // namespace

const char* nat_proto_name(uint8_t proto) {
  switch (proto) {
    case nat::kTcp:
      return "tcp";
    case nat::kUdp:
      return "udp";
    case nat::kIcmp:
      return "icmp";
    case 0:
      return "any";
  }
  return "other";
}

nat::MappingEntry parse_nat_mapping(const json& j, const std::string& where, bool name_only) {
  only_keys(
      j, where,
      {"name", "public", "public_domain", "protocol", "ports", "domain", "inner", "inner_port"});
  nat::MappingEntry e;
  e.name = name_of(j, where);
  if (name_only) return e;
  e.public_addr = addr_field(j, "public", where);
  e.public_domain = static_cast<uint16_t>(uint_of(j, "public_domain", where, 0, 0, 4095));
  auto pr = j.find("protocol");
  if (pr == j.end() || !pr->is_string()) bad(where + ": \"protocol\" must be tcp, udp or any");
  std::string p = pr->get<std::string>();
  if (p == "tcp")
    e.proto = nat::kTcp;
  else if (p == "udp")
    e.proto = nat::kUdp;
  else if (p == "any")
    e.proto = 0;
  else
    bad(where + ": protocol \"" + p + "\" is not tcp, udp or any");
  auto ports = j.find("ports");
  if (e.proto != 0) {
    if (ports == j.end()) bad(where + ": missing \"ports\" (like \"3389\" or \"5000-5099\")");
    std::string s = ports->is_number_integer() ? std::to_string(ports->get<int64_t>())
                    : ports->is_string()       ? ports->get<std::string>()
                                               : "";
    unsigned long lo = 0, hi = 0;
    try {
      size_t used = 0;
      lo = std::stoul(s, &used);
      hi = lo;
      if (used < s.size()) {
        if (s[used] != '-') throw std::invalid_argument("");
        std::string rest = s.substr(used + 1);
        size_t used2 = 0;
        hi = std::stoul(rest, &used2);
        if (used2 != rest.size()) throw std::invalid_argument("");
      }
    } catch (const std::exception&) {
      bad(where + ": ports " + ports->dump() + " is not like \"3389\" or \"5000-5099\"");
    }
    if (lo < 1 || hi > 65535 || hi < lo)
      bad(where + ": ports " + ports->dump() + " must be lo-hi within 1-65535");
    e.port_lo = static_cast<uint16_t>(lo);
    e.port_hi = static_cast<uint16_t>(hi);
    e.inner_port = static_cast<uint16_t>(uint_of(j, "inner_port", where, lo, 1, 65535));
  } else if (ports != j.end() || j.contains("inner_port")) {
    bad(where + ": a whole-address mapping (protocol any) keeps ports; give no ports");
  }
  e.domain = static_cast<uint16_t>(uint_of(j, "domain", where, 0, 0, 4095, true));
  e.inner_addr = addr_field(j, "inner", where);
  return e;
}

nat::GatewayEntry parse_nat_gateway(const json& j, const std::string& where, bool domain_only) {
  only_keys(j, where, {"domain", "address"});
  nat::GatewayEntry e;
  e.domain = static_cast<uint16_t>(uint_of(j, "domain", where, 0, 0, 4095, true));
  if (!domain_only) e.address = addr_field(j, "address", where);
  return e;
}

nat::SnatEntry parse_nat_snat(const json& j, const std::string& where, bool domain_only) {
  only_keys(j, where, {"domain", "public", "public_domain"});
  nat::SnatEntry e;
  e.domain = static_cast<uint16_t>(uint_of(j, "domain", where, 0, 0, 4095, true));
  if (domain_only) return e;
  e.public_addr = addr_field(j, "public", where);
  e.public_domain = static_cast<uint16_t>(uint_of(j, "public_domain", where, 0, 0, 4095));
  return e;
}

void parse_nat_rewrite(const json& j, const std::string& where, uint16_t* domain, uint32_t* from,
                       uint32_t* to) {
  only_keys(j, where, {"domain", "from", "to"});
  *domain = static_cast<uint16_t>(uint_of(j, "domain", where, 0, 0, 4095, true));
  *from = addr_field(j, "from", where);
  *to = addr_field(j, "to", where);
}

nat::Timeouts parse_nat_timeouts(const json& j, const std::string& where) {
  only_keys(j, where, {"tcp_established_s", "tcp_transitory_s", "tcp_closed_s", "udp_s", "icmp_s"});
  nat::Timeouts t;
  // Lower bounds are the RFCs' minimums (RFC 5382 REQ-5, RFC 4787 REQ-5, RFC 5508 REQ-1),
  // except that tests may shorten the closed state.
  t.tcp_established_s = static_cast<uint32_t>(
      uint_of(j, "tcp_established_s", where, t.tcp_established_s, 7440, 7 * 86400));
  t.tcp_transitory_s =
      static_cast<uint32_t>(uint_of(j, "tcp_transitory_s", where, t.tcp_transitory_s, 240, 86400));
  t.tcp_closed_s =
      static_cast<uint32_t>(uint_of(j, "tcp_closed_s", where, t.tcp_closed_s, 1, 86400));
  t.udp_s = static_cast<uint32_t>(uint_of(j, "udp_s", where, t.udp_s, 120, 86400));
  t.icmp_s = static_cast<uint32_t>(uint_of(j, "icmp_s", where, t.icmp_s, 60, 86400));
  return t;
}

json nat_mapping_json(const nat::MappingEntry& e) {
  json j = {{"name", e.name},
            {"public", format_ipv4(e.public_addr)},
            {"public_domain", e.public_domain},
            {"protocol", nat_proto_name(e.proto)},
            {"domain", e.domain},
            {"inner", format_ipv4(e.inner_addr)}};
  if (e.proto != 0) {
    j["ports"] = e.port_lo == e.port_hi
                     ? std::to_string(e.port_lo)
                     : std::to_string(e.port_lo) + "-" + std::to_string(e.port_hi);
    j["inner_port"] = e.inner_port;
  }
  return j;
}

json flow_key_json(const nat::FlowKey& k) {
  return {{"domain", k.domain},        {"protocol", nat_proto_name(k.proto)},
          {"src", format_ipv4(k.src)}, {"dst", format_ipv4(k.dst)},
          {"sport", k.sport},          {"dport", k.dport}};
}

}  // namespace tether::dp
