#include "dataplane/host_fw_json.h"

#include <stdexcept>

#include "common/net.h"
#include "dataplane/json_fields.h"

namespace tether::dp {
namespace {

using nlohmann::json;

using jsonf::bad;
using jsonf::strings_of;
using jsonf::uint_of;

fw::HostPolicy::Service service_of(const std::string& s, const std::string& where) {
  auto fail = [&]() {
    bad(where + ": service \"" + s + "\" is not like \"tcp/22\" or \"udp/161\"");
  };
  size_t slash = s.find('/');
  if (slash == std::string::npos) fail();
  std::string proto = s.substr(0, slash), port = s.substr(slash + 1);
  fw::HostPolicy::Service sv;
  if (proto == "tcp")
    sv.proto = 6;
  else if (proto == "udp")
    sv.proto = 17;
  else
    fail();
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    fail();
  unsigned long n = std::stoul(port);
  if (n < 1 || n > 65535) bad(where + ": service \"" + s + "\": the port must be 1-65535");
  sv.port = static_cast<uint16_t>(n);
  return sv;
}

}  // namespace

fw::HostPolicy parse_host_policy(const json& j, const std::string& where) {
  if (!j.is_object()) bad(where + ": must be an object");
  for (auto& [k, _] : j.items())
    if (k != "interfaces" && k != "admin" && k != "services" && k != "new_per_second" &&
        k != "burst" && k != "allow_ping" && k != "extra" && k != "$comment")
      bad(where + ": unknown key \"" + k + "\"");
  fw::HostPolicy p;
  p.interfaces = strings_of(j, "interfaces", where);
  for (auto& s : strings_of(j, "admin", where)) {
    auto pre = parse_prefix(s, true);
    if (!pre) bad(where + ": admin \"" + s + "\" is not like 10.9.0.0/24 or 192.0.2.7");
    if (pre->addr != pre->network())
      bad(where + ": admin \"" + s + "\" has host bits set (the network is " +
          format_prefix({pre->network(), pre->len}) + ")");
    p.admin.push_back(*pre);
  }
  for (auto& s : strings_of(j, "services", where)) p.services.push_back(service_of(s, where));
  // Bounds beyond what nftables takes: a million new connections a second
  // is no limit for a management port anyway.
  p.new_per_second = uint_of(j, "new_per_second", where, p.new_per_second, 1, 1000000);
  p.burst = uint_of(j, "burst", where, p.burst, 1, 1000000);
  if (auto it = j.find("allow_ping"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) bad(where + ": allow_ping must be true or false");
    p.allow_ping = it->get<bool>();
  }
  p.extra = strings_of(j, "extra", where);
  // What libnftables should never see is refused here already, so that a
  // boot configuration fails at load and not at apply.
  if (auto why = fw::validate(p)) bad(where + ": " + *why);
  return p;
}

json host_policy_json(const fw::HostPolicy& p) {
  json admin = json::array(), services = json::array();
  for (auto& a : p.admin) admin.push_back(format_prefix(a));
  for (auto& s : p.services)
    services.push_back(std::string(s.proto == 17 ? "udp/" : "tcp/") + std::to_string(s.port));
  return {{"interfaces", p.interfaces},
          {"admin", admin},
          {"services", services},
          {"new_per_second", p.new_per_second},
          {"burst", p.burst},
          {"allow_ping", p.allow_ping},
          {"extra", p.extra}};
}

}  // namespace tether::dp
