// Firewall zones and policies in the control state: what a change may do,
// checked against the state as it stands (docs/dataplane-api.md, "Firewall").
#include <algorithm>

#include "dataplane/tables.h"

namespace tether::dp {

const FwZoneEntry* ControlState::fw_zone(const std::string& name) const {
  for (auto& z : fw_zones_)
    if (z.e.name == name) return &z;
  return nullptr;
}

bool ControlState::fw_zone_exists(const std::string& name) const {
  if (name == "management" || fw_zone(name)) return true;
  auto d = implicit_zone_domain(name);
  if (!d) return false;
  for (auto& z : fw_zones_)
    if (std::find(z.e.domains.begin(), z.e.domains.end(), *d) != z.e.domains.end()) return false;
  return true;
}

std::optional<std::string> ControlState::apply_fw_zone(const Change& c, Origin origin) {
  const fw::Zone& z = c.fw_zone;
  std::string what = "fw_zone " + z.name;
  auto it = std::find_if(fw_zones_.begin(), fw_zones_.end(),
                         [&](const FwZoneEntry& e) { return e.e.name == z.name; });
  if (!c.add || c.update) {
    if (it == fw_zones_.end()) return what + ": no such zone";
    if (it->origin != origin)
      return what + ": owned by origin " + origin_name(it->origin) + ", not " + origin_name(origin);
  }
  auto used_by = [&](const std::string& zone) -> std::optional<std::string> {
    for (auto& p : fw_policies_)
      if (p.e.from == zone || p.e.to == zone) return p.e.from + "->" + p.e.to;
    return std::nullopt;
  };
  if (!c.add) {
    if (auto p = used_by(z.name))
      return what + ": policy " + *p + " names it; delete or change the policy first";
    fw_zones_.erase(it);
    return std::nullopt;
  }
  if (c.add && !c.update && it != fw_zones_.end()) return what + ": already configured";
  if (z.name == "management" || implicit_zone_domain(z.name))
    return what + ": the name is reserved for a built-in zone (management, uplink, vdc-<domain>)";
  for (auto& other : fw_zones_) {
    if (other.e.name == z.name) continue;
    for (auto d : z.domains)
      if (std::find(other.e.domains.begin(), other.e.domains.end(), d) != other.e.domains.end())
        return what + ": domain " + std::to_string(d) + " is already in zone " + other.e.name;
    for (auto& w : z.wg_interfaces)
      if (std::find(other.e.wg_interfaces.begin(), other.e.wg_interfaces.end(), w) !=
          other.e.wg_interfaces.end())
        return what + ": wg_interface " + w + " is already in zone " + other.e.name;
    for (auto& p : z.ports)
      if (std::find(other.e.ports.begin(), other.e.ports.end(), p) != other.e.ports.end())
        return what + ": port " + p + " is already in zone " + other.e.name;
  }
  for (auto& w : z.wg_interfaces)
    if (!wg_interface(w)) return what + ": no wg_interface " + w;
  for (auto& p : z.ports) {
    const PortInfo* pi = port_by_name(p);
    if (!pi) return what + ": no port " + p;
    if (pi->exception) return what + ": port " + p + " is the exception path (zone management)";
  }
  // A domain the zone takes over must not leave a policy naming its
  // implicit zone behind.
  for (auto d : z.domains)
    if (auto p = used_by(implicit_zone_name(d)))
      return what + ": policy " + *p + " names " + implicit_zone_name(d) +
             ", which this zone would take over; change the policy first";
  if (it != fw_zones_.end()) {
    it->e = z;
  } else {
    fw_zones_.push_back({z, origin});
  }
  return std::nullopt;
}

std::optional<std::string> ControlState::apply_fw_policy(const Change& c, Origin origin) {
  const fw::Policy& p = c.fw_policy;
  std::string what = "fw_policy " + p.from + "->" + p.to;
  auto it = std::find_if(fw_policies_.begin(), fw_policies_.end(), [&](const FwPolicyEntry& e) {
    return e.e.from == p.from && e.e.to == p.to;
  });
  if (!c.add || c.update) {
    if (it == fw_policies_.end()) return what + ": no such policy";
    if (it->origin != origin)
      return what + ": owned by origin " + origin_name(it->origin) + ", not " + origin_name(origin);
  }
  if (!c.add) {
    fw_policies_.erase(it);
    return std::nullopt;
  }
  if (!c.update && it != fw_policies_.end()) return what + ": already configured; use update";
  if (p.from == "management")
    return what +
           ": traffic the appliance itself sends is not filtered by the dataplane (the "
           "host firewall guards the appliance)";
  for (const std::string* z : {&p.from, &p.to})
    if (!fw_zone_exists(*z)) {
      auto d = implicit_zone_domain(*z);
      if (d)
        for (auto& e : fw_zones_)
          if (std::find(e.e.domains.begin(), e.e.domains.end(), *d) != e.e.domains.end())
            return what + ": domain " + std::to_string(*d) + " is in zone " + e.e.name +
                   "; name that zone";
      return what + ": no zone " + *z +
             " (zones: management, uplink, vdc-<domain>, or one made with fw_zone)";
    }
  if (auto err = fw::validate(p)) return what + ": " + *err;
  if (it != fw_policies_.end()) {
    it->e = p;
  } else {
    fw_policies_.push_back({p, origin});
  }
  return std::nullopt;
}

}  // namespace tether::dp
