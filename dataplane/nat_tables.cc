// ControlState's NAT changes: published mappings, the gateway's inner
// address per domain, source-NAT rules and domain rewrites. Each is checked
// against the whole state so that a batch the workers could not serve is
// refused with a message (docs/dataplane-api.md, "NAT").
#include <algorithm>
#include <map>

#include "dataplane/tables.h"
#include "nat/flow.h"

namespace tether::dp {
namespace {

bool unicast(Ipv4 a) {
  uint32_t top = a >> 24;
  return top != 0 && top != 127 && top < 224;
}

const char* proto_name(uint8_t p) {
  return p == nat::kTcp ? "tcp" : p == nat::kUdp ? "udp" : "any";
}

std::string public_of(const nat::MappingEntry& m) {
  std::string s = format_ipv4(m.public_addr);
  if (m.proto == 0) return s + " (whole address)";
  s += std::string(" ") + proto_name(m.proto) + " " + std::to_string(m.port_lo);
  if (m.port_hi != m.port_lo) s += "-" + std::to_string(m.port_hi);
  return s;
}

}  // namespace

const NatMapping* ControlState::nat_mapping(const std::string& name) const {
  for (auto& m : nat_mappings_)
    if (m.e.name == name) return &m;
  return nullptr;
}

const NatGateway* ControlState::nat_gateway(uint16_t domain) const {
  for (auto& g : nat_gateways_)
    if (g.e.domain == domain) return &g;
  return nullptr;
}

bool ControlState::is_own_address(uint16_t domain, Ipv4 a) const {
  for (auto& e : addresses_)
    if (e.addr.addr == a && port_by_id(e.port)->domain == domain) return true;
  return false;
}

std::optional<std::string> ControlState::apply_nat_mapping(const Change& c, Origin origin) {
  const nat::MappingEntry& e = c.nat_mapping;
  std::string what = "nat_mapping \"" + e.name + "\"";
  auto it = std::find_if(nat_mappings_.begin(), nat_mappings_.end(),
                         [&](const NatMapping& m) { return m.e.name == e.name; });
  if (!c.add || c.update) {
    if (it == nat_mappings_.end()) return what + ": no such mapping";
    if (it->origin != origin)
      return what + ": owned by origin " + origin_name(it->origin) + ", not " + origin_name(origin);
  }
  if (!c.add) {
    nat_mappings_.erase(it);
    return std::nullopt;
  }
  if (!c.update && it != nat_mappings_.end()) return what + ": already configured";
  if (e.name.empty() || e.name.size() > 64) return what + ": name must have 1-64 characters";
  if (e.proto != 0 && e.proto != nat::kTcp && e.proto != nat::kUdp)
    return what + ": protocol must be tcp, udp or any";
  if (e.proto == 0) {
    if (e.port_lo || e.port_hi || e.inner_port)
      return what + ": a whole-address mapping (protocol any) keeps ports; give none";
  } else {
    if (e.port_lo == 0 || e.port_hi < e.port_lo)
      return what + ": public ports must be a range lo-hi with 1 <= lo <= hi";
    if (e.inner_port == 0 || uint32_t{e.inner_port} + (e.port_hi - e.port_lo) > 65535)
      return what + ": inner port range must lie within 1-65535";
  }
  if (!is_own_address(e.public_domain, e.public_addr))
    return what + ": public address " + format_ipv4(e.public_addr) +
           " is not an address of a port in domain " + std::to_string(e.public_domain);
  const NatGateway* gw = nat_gateway(e.domain);
  if (!gw)
    return what + ": domain " + std::to_string(e.domain) +
           " has no nat_gateway (the gateway's address inside the VDC)";
  if (!unicast(e.inner_addr))
    return what + ": inner address " + format_ipv4(e.inner_addr) + " is not a unicast address";
  if (e.inner_addr == gw->e.address || is_own_address(e.domain, e.inner_addr))
    return what + ": inner address " + format_ipv4(e.inner_addr) + " is the gateway's own";
  const NatMapping* self = it == nat_mappings_.end() ? nullptr : &*it;
  for (auto& o : nat_mappings_) {
    if (&o == self || o.e.public_domain != e.public_domain || o.e.public_addr != e.public_addr)
      continue;
    bool clash = o.e.proto == 0 || e.proto == 0 ||
                 (o.e.proto == e.proto && o.e.port_lo <= e.port_hi && e.port_lo <= o.e.port_hi);
    if (clash) return what + ": " + public_of(e) + " overlaps mapping \"" + o.e.name + "\"";
  }
  for (auto& w : wg_interfaces_)
    if (w.address == e.public_addr &&
        (e.proto == 0 ||
         (e.proto == nat::kUdp && e.port_lo <= w.listen_port && w.listen_port <= e.port_hi)))
      return what + ": " + public_of(e) + " covers WireGuard interface " + w.name +
             "'s listen port " + std::to_string(w.listen_port);
  if (self)
    it->e = e;
  else
    nat_mappings_.push_back({e, origin});
  return std::nullopt;
}

std::optional<std::string> ControlState::apply_nat_gateway(const Change& c, Origin origin) {
  const nat::GatewayEntry& e = c.nat_gateway;
  std::string what = "nat_gateway of domain " + std::to_string(e.domain);
  auto it = std::find_if(nat_gateways_.begin(), nat_gateways_.end(),
                         [&](const NatGateway& g) { return g.e.domain == e.domain; });
  if (!c.add) {
    if (it == nat_gateways_.end()) return what + ": not configured";
    if (it->origin != origin)
      return what + ": owned by origin " + origin_name(it->origin) + ", not " + origin_name(origin);
    for (auto& m : nat_mappings_)
      if (m.e.domain == e.domain)
        return what + ": mapping \"" + m.e.name + "\" uses it; delete the mapping first";
    nat_gateways_.erase(it);
    return std::nullopt;
  }
  if (it != nat_gateways_.end())
    return what + ": already configured (" + format_ipv4(it->e.address) + ")";
  if (!unicast(e.address)) return what + ": " + format_ipv4(e.address) + " is not unicast";
  nat_gateways_.push_back({e, origin});
  return std::nullopt;
}

std::optional<std::string> ControlState::apply_nat_snat(const Change& c, Origin origin) {
  const nat::SnatEntry& e = c.nat_snat;
  std::string what = "nat_snat of domain " + std::to_string(e.domain);
  auto it = std::find_if(nat_snats_.begin(), nat_snats_.end(),
                         [&](const NatSnat& s) { return s.e.domain == e.domain; });
  if (!c.add) {
    if (it == nat_snats_.end()) return what + ": not configured";
    if (it->origin != origin)
      return what + ": owned by origin " + origin_name(it->origin) + ", not " + origin_name(origin);
    nat_snats_.erase(it);
    return std::nullopt;
  }
  if (it != nat_snats_.end()) return what + ": already configured";
  if (e.domain == e.public_domain) return what + ": public domain must be another domain";
  if (!is_own_address(e.public_domain, e.public_addr))
    return what + ": public address " + format_ipv4(e.public_addr) +
           " is not an address of a port in domain " + std::to_string(e.public_domain);
  nat_snats_.push_back({e, origin});
  return std::nullopt;
}

std::optional<std::string> ControlState::apply_nat_rewrite(const Change& c, Origin) {
  size_t bad = 0;
  return apply_nat_rewrites(&c, 1, &bad);
}

std::optional<std::string> ControlState::apply_nat_rewrites(const Change* c, size_t n,
                                                            size_t* bad) {
  std::map<std::pair<uint16_t, Ipv4>, std::pair<Ipv4, size_t>> to;  // (domain, from) -> (to, i)
  for (size_t i = 0; i < n; ++i) {
    const auto& r = c[i].nat_rewrite;
    *bad = i;
    std::string what = "nat_rewrite in domain " + std::to_string(r.domain) + " " +
                       format_ipv4(r.from) + " -> " + format_ipv4(r.to);
    if (r.from == r.to) return what + ": addresses are the same";
    if (!unicast(r.to)) return what + ": not a unicast address";
    const NatGateway* gw = nat_gateway(r.domain);
    if ((gw && gw->e.address == r.to) || is_own_address(r.domain, r.to))
      return what + ": is the gateway's own address";
    if (!to.emplace(std::make_pair(r.domain, r.from), std::make_pair(r.to, i)).second)
      return what + ": " + format_ipv4(r.from) + " is rewritten twice in this batch";
  }
  std::vector<bool> used(n, false);
  for (auto& m : nat_mappings_) {
    auto it = to.find({m.e.domain, m.e.inner_addr});
    if (it == to.end()) continue;
    m.e.inner_addr = it->second.first;
    used[it->second.second] = true;
  }
  for (size_t i = 0; i < n; ++i)
    if (!used[i]) {
      *bad = i;
      return "nat_rewrite in domain " + std::to_string(c[i].nat_rewrite.domain) +
             ": no mapping of the domain has inner address " + format_ipv4(c[i].nat_rewrite.from);
    }
  return std::nullopt;
}

std::optional<std::string> ControlState::nat_address_user(uint16_t domain, Ipv4 a) const {
  for (auto& m : nat_mappings_)
    if (m.e.public_domain == domain && m.e.public_addr == a)
      return "nat_mapping \"" + m.e.name + "\"";
  for (auto& s : nat_snats_)
    if (s.e.public_domain == domain && s.e.public_addr == a)
      return "nat_snat of domain " + std::to_string(s.e.domain);
  return std::nullopt;
}

}  // namespace tether::dp
