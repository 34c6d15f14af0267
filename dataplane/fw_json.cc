#include "dataplane/fw_json.h"

#include <stdexcept>

#include "common/net.h"
#include "dataplane/json_fields.h"

namespace tether::dp {
namespace {

using nlohmann::json;

using jsonf::bad;
using jsonf::only_keys;

std::string str_of(const json& j, const char* key, const std::string& where, bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) bad(where + ": missing \"" + key + "\"");
    return {};
  }
  if (!it->is_string() || (required && it->get<std::string>().empty()))
    bad(where + ": \"" + key + "\" must be a non-empty string");
  return it->get<std::string>();
}

// A string or a list of strings.
std::vector<std::string> strings_of(const json& j, const char* key, const std::string& where) {
  return jsonf::strings_of(j, key, where, /*lone_ok=*/true);
}

std::vector<Ipv4Prefix> prefixes_of(const json& j, const char* key, const std::string& where) {
  std::vector<Ipv4Prefix> out;
  std::vector<std::string> all = strings_of(j, key, where);
  // An empty list would match everything, like no list: almost surely an
  // allow-list generated from nothing. "any" alone says so plainly.
  auto it = j.find(key);
  if (it != j.end() && it->is_array() && all.empty())
    bad(where + ": " + key + " is an empty list (leave it out, or say \"any\", to match any)");
  if (all.size() == 1 && all[0] == "any") return out;
  for (auto& s : all) {
    if (s == "any") bad(where + ": " + key + ": \"any\" among other prefixes; use it alone");
    // Host bits are judged by fw::validate, which says what was meant.
    auto p = parse_prefix(s, true);
    if (!p) bad(where + ": " + key + " \"" + s + "\" is not like 10.0.0.0/24 or 10.0.0.5");
    out.push_back(*p);
  }
  return out;
}

std::optional<fw::Action> action_of(const json& j, const char* key, const std::string& where) {
  std::string a = str_of(j, key, where, false);
  if (a.empty()) return std::nullopt;
  auto act = fw::parse_action(a);
  if (!act) bad(where + ": " + key + " \"" + a + "\" must be accept, drop or reject");
  return act;
}

}  // namespace

const char* fw_proto_name(uint8_t proto) {
  switch (proto) {
    case 0:
      return "any";
    case 1:
      return "icmp";
    case 6:
      return "tcp";
    case 17:
      return "udp";
  }
  return "";
}

fw::Rule parse_fw_rule(const json& j, const std::string& where) {
  only_keys(j, where,
            {"name", "src", "dst", "protocol", "sport", "dport", "icmp", "action", "log"});
  fw::Rule r;
  r.name = str_of(j, "name", where, false);
  if (!r.name.empty() && r.name[0] == '#')
    bad(where + ": rule names starting with '#' are reserved (\"" + r.name + "\")");
  r.src = prefixes_of(j, "src", where);
  r.dst = prefixes_of(j, "dst", where);
  auto pr = j.find("protocol");
  if (pr != j.end() && !pr->is_null()) {
    if (pr->is_number_integer() && pr->get<int64_t>() >= 0 && pr->get<int64_t>() <= 255) {
      r.proto = pr->get<uint8_t>();
    } else if (pr->is_string()) {
      std::string p = pr->get<std::string>();
      if (p == "tcp")
        r.proto = 6;
      else if (p == "udp")
        r.proto = 17;
      else if (p == "icmp")
        r.proto = 1;
      else if (p != "any")
        bad(where + ": protocol \"" + p + "\" must be tcp, udp, icmp, any or a number 0-255");
    } else {
      bad(where + ": protocol must be tcp, udp, icmp, any or a number 0-255");
    }
  }
  for (const char* key : {"sport", "dport"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    std::string text = it->is_number_integer() ? std::to_string(it->get<int64_t>())
                       : it->is_string()       ? it->get<std::string>()
                                               : std::string("?");
    if (text == "?") bad(where + ": " + key + " must be like \"80,443,8000-8100\"");
    std::string err;
    auto ranges = fw::parse_ports(text, &err);
    if (!ranges) bad(where + ": " + key + ": " + err);
    (std::string(key) == "sport" ? r.sport : r.dport) = *ranges;
  }
  auto icmp = j.find("icmp");
  if (icmp != j.end() && icmp->is_array() && icmp->empty())
    bad(where + ": icmp is an empty list (leave it out to match any type)");
  for (auto& t : strings_of(j, "icmp", where)) {
    fw::IcmpType it;
    size_t slash = t.find('/');
    auto num = [&](const std::string& s) -> int {
      if (s.empty() || s.size() > 3 || s.find_first_not_of("0123456789") != std::string::npos)
        return -1;
      int v = std::stoi(s);
      return v <= 255 ? v : -1;
    };
    int type = num(t.substr(0, slash));
    int code = slash == std::string::npos ? 0 : num(t.substr(slash + 1));
    if (type < 0 || code < 0)
      bad(where + ": icmp \"" + t + "\" must be a type or type/code, e.g. \"8\" or \"3/4\"");
    it.type = static_cast<uint8_t>(type);
    it.code = slash == std::string::npos ? -1 : static_cast<int16_t>(code);
    r.icmp.push_back(it);
  }
  auto act = action_of(j, "action", where);
  if (!act) bad(where + ": missing \"action\" (accept, drop or reject)");
  r.action = *act;
  auto lg = j.find("log");
  if (lg != j.end() && !lg->is_null()) {
    if (!lg->is_boolean()) bad(where + ": log must be true or false");
    r.log = lg->get<bool>();
  }
  if (auto err = fw::validate(r)) bad(where + ": " + *err);
  return r;
}

fw::Policy parse_fw_policy(const json& j, const std::string& where, bool pair_only) {
  only_keys(j, where, {"from", "to", "default", "rules"});
  fw::Policy p;
  p.from = str_of(j, "from", where, true);
  p.to = str_of(j, "to", where, true);
  if (pair_only) return p;
  if (auto a = action_of(j, "default", where)) p.default_action = *a;
  auto rules = j.find("rules");
  if (rules != j.end() && !rules->is_null()) {
    if (!rules->is_array()) bad(where + ": rules must be a list");
    p.rules.reserve(rules->size());
    for (size_t i = 0; i < rules->size(); ++i)
      p.rules.push_back(parse_fw_rule((*rules)[i], where + ".rules[" + std::to_string(i) + "]"));
  }
  if (auto err = fw::validate(p)) bad(where + ": " + *err);
  return p;
}

fw::Zone parse_fw_zone(const json& j, const std::string& where, bool name_only) {
  only_keys(j, where, {"name", "kind", "domains", "wg_interfaces", "ports"});
  fw::Zone z;
  z.name = str_of(j, "name", where, true);
  if (name_only) return z;
  std::string k = str_of(j, "kind", where, false);
  if (!k.empty()) {
    auto kind = fw::parse_zone_kind(k);
    if (!kind || *kind == fw::ZoneKind::kManagement)
      bad(where + ": kind \"" + k + "\" must be uplink, users or vdc");
    z.kind = *kind;
  }
  auto d = j.find("domains");
  if (d != j.end() && !d->is_null()) {
    if (!d->is_array()) bad(where + ": domains must be a list of domain numbers");
    for (auto& x : *d) {
      if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > 4095)
        bad(where + ": domains must be numbers 0-4095");
      z.domains.push_back(x.get<uint16_t>());
    }
  }
  z.wg_interfaces = strings_of(j, "wg_interfaces", where);
  z.ports = strings_of(j, "ports", where);
  if (z.domains.empty() && z.wg_interfaces.empty() && z.ports.empty())
    bad(where + ": zone \"" + z.name + "\" needs domains, wg_interfaces or ports");
  return z;
}

json fw_zone_json(const fw::Zone& z) {
  return {{"name", z.name},
          {"kind", fw::zone_kind_name(z.kind)},
          {"domains", z.domains},
          {"wg_interfaces", z.wg_interfaces},
          {"ports", z.ports}};
}

json fw_rule_json(const fw::Rule& r) {
  json j = {{"action", fw::action_name(r.action)}};
  if (!r.name.empty()) j["name"] = r.name;
  auto prefixes = [](const std::vector<Ipv4Prefix>& v) {
    json a = json::array();
    for (auto& p : v) a.push_back(format_prefix(p));
    return a;
  };
  if (!r.src.empty()) j["src"] = prefixes(r.src);
  if (!r.dst.empty()) j["dst"] = prefixes(r.dst);
  const char* pn = fw_proto_name(r.proto);
  j["protocol"] = *pn ? json(pn) : json(r.proto);
  if (!r.sport.empty()) j["sport"] = fw::format_ports(r.sport);
  if (!r.dport.empty()) j["dport"] = fw::format_ports(r.dport);
  if (!r.icmp.empty()) {
    json a = json::array();
    for (auto& t : r.icmp) {
      std::string s = std::to_string(t.type);
      if (t.code >= 0) (s += '/') += std::to_string(t.code);
      a.push_back(s);
    }
    j["icmp"] = a;
  }
  if (r.log) j["log"] = true;
  return j;
}

json fw_policy_json(const fw::Policy& p) {
  json rules = json::array();
  for (auto& r : p.rules) rules.push_back(fw_rule_json(r));
  return {{"from", p.from},
          {"to", p.to},
          {"default", fw::action_name(p.default_action)},
          {"rules", rules}};
}

}  // namespace tether::dp
