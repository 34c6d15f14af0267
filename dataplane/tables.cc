#include "dataplane/tables.h"

#include <rte_errno.h>

#include <algorithm>
#include <atomic>
#include <set>

#include "dataplane/nat_runtime.h"
#include "dataplane/wireguard.h"
#include "tunnel/format.h"
#include "tunnel/noise.h"

namespace tether::dp {

const char* origin_name(Origin o) {
  switch (o) {
    case Origin::kConfig:
      return "config";
    case Origin::kApi:
      return "api";
    case Origin::kConnected:
      return "connected";
  }
  return "?";
}

std::optional<Origin> parse_origin(std::string_view s) {
  if (s == "config") return Origin::kConfig;
  if (s == "api") return Origin::kApi;
  return std::nullopt;
}

const PortInfo* ControlState::port_by_name(const std::string& name) const {
  for (auto& p : ports_)
    if (p.name == name) return &p;
  return nullptr;
}

const PortInfo* ControlState::port_by_id(uint16_t id) const {
  for (auto& p : ports_)
    if (p.port_id == id) return &p;
  return nullptr;
}

const AddressEntry* ControlState::connected_for(uint16_t domain, Ipv4 ip, int port) const {
  const AddressEntry* best = nullptr;
  for (auto& a : addresses_) {
    if (port >= 0 && a.port != port) continue;
    if (port_by_id(a.port)->domain != domain || !a.addr.contains(ip)) continue;
    if (!best || a.addr.len > best->addr.len) best = &a;
  }
  return best;
}

std::optional<std::string> ControlState::apply(const Change& c, Origin origin) {
  switch (c.kind) {
    case Change::Kind::kAddress:
      return apply_address(c, origin);
    case Change::Kind::kRoute:
      return apply_route(c, origin);
    case Change::Kind::kNeighbor:
      return apply_neighbor(c, origin);
    case Change::Kind::kWgInterface:
      return apply_wg_interface(c, origin);
    case Change::Kind::kWgPeer:
      return apply_wg_peer(c, origin);
    case Change::Kind::kNatMapping:
      return apply_nat_mapping(c, origin);
    case Change::Kind::kNatGateway:
      return apply_nat_gateway(c, origin);
    case Change::Kind::kNatSnat:
      return apply_nat_snat(c, origin);
    case Change::Kind::kNatRewrite:
      return apply_nat_rewrite(c, origin);
    case Change::Kind::kFwZone:
      return apply_fw_zone(c, origin);
    case Change::Kind::kFwPolicy:
      return apply_fw_policy(c, origin);
  }
  return "unknown change kind";
}

std::optional<std::string> ControlState::apply_address(const Change& c, Origin origin) {
  const PortInfo* port = port_by_name(c.port);
  std::string what = "address " + format_prefix(c.prefix) + " on port " + c.port;
  if (!port) return what + ": no such port";
  if (port->exception) return what + ": the exception port mirrors addresses, it has none";
  auto same = [&](const AddressEntry& a) { return a.port == port->port_id && a.addr == c.prefix; };
  auto it = std::find_if(addresses_.begin(), addresses_.end(), same);
  if (!c.add) {
    if (it == addresses_.end()) return what + ": not configured";
    if (it->origin != origin)
      return what + ": owned by origin " + origin_name(it->origin) + ", not " + origin_name(origin);
    for (auto& w : wg_interfaces_)
      if (w.address == it->addr.addr)
        return what + ": WireGuard interface " + w.name + " listens on it; delete it first";
    if (auto user = nat_address_user(port->domain, it->addr.addr))
      return what + ": " + *user + " publishes it; delete that first";
    for (auto& r : routes_)
      if (r.via && r.port == port->port_id && it->addr.contains(r.via)) {
        int others = 0;
        for (auto& a : addresses_)
          if (&a != &*it && a.port == port->port_id && a.addr.contains(r.via)) ++others;
        if (!others)
          return what + ": route " + format_prefix(r.prefix) + " via " + format_ipv4(r.via) +
                 " depends on it; delete the route first";
      }
    addresses_.erase(it);
    return std::nullopt;
  }
  if (c.prefix.len == 0 || c.prefix.len > 32) return what + ": prefix length must be 1-32";
  Ipv4 host = c.prefix.addr;
  Ipv4 net = c.prefix.network();
  if (c.prefix.len <= 30 && (host == net || host == (net | ~c.prefix.mask())))
    return what + ": is the network or broadcast address of its subnet";
  if ((host >> 24) == 0 || (host >> 24) == 127 || (host >> 28) >= 14)
    return what + ": not a unicast host address";
  if (it != addresses_.end()) return what + ": already configured";
  for (auto& a : addresses_) {
    if (port_by_id(a.port)->domain != port->domain) continue;
    if (a.addr.addr == host)
      return what + ": " + format_ipv4(host) + " is already an address of port " +
             port_by_id(a.port)->name;
    Ipv4Prefix mine{net, c.prefix.len};
    Ipv4Prefix theirs{a.addr.network(), a.addr.len};
    if (a.port != port->port_id && (mine.contains(theirs.network()) || theirs.contains(net)))
      return what + ": subnet overlaps " + format_prefix(a.addr) + " on port " +
             port_by_id(a.port)->name + " in the same routing domain";
  }
  for (auto& r : routes_)
    if (r.domain == port->domain && r.prefix == Ipv4Prefix{net, c.prefix.len})
      return what + ": its subnet is already a static route; delete the route first";
  addresses_.push_back({port->port_id, c.prefix, origin});
  return std::nullopt;
}

std::optional<std::string> ControlState::apply_route(const Change& c, Origin origin) {
  std::string what = "route " + format_prefix(c.prefix) + " in domain " + std::to_string(c.domain);
  if (c.via) what += " via " + format_ipv4(*c.via);
  if (c.prefix.addr != c.prefix.network()) return what + ": prefix has host bits set";
  auto it = std::find_if(routes_.begin(), routes_.end(), [&](const RouteEntry& r) {
    return r.domain == c.domain && r.prefix == c.prefix;
  });
  if (!c.add) {
    if (it == routes_.end()) return what + ": no such route";
    if (it->origin != origin)
      return what + ": owned by origin " + origin_name(it->origin) + ", not " + origin_name(origin);
    routes_.erase(it);
    return std::nullopt;
  }
  if (it != routes_.end()) return what + ": a route for this prefix exists already";
  const PortInfo* port = nullptr;
  if (!c.port.empty()) {
    port = port_by_name(c.port);
    if (!port) return what + ": no such port " + c.port;
    if (port->exception) return what + ": cannot route out of the exception port";
    if (port->domain != c.domain)
      return what + ": port " + c.port + " is in domain " + std::to_string(port->domain);
  }
  RouteEntry r{c.domain, c.prefix, c.via.value_or(0), 0, origin};
  if (c.via) {
    const AddressEntry* a = connected_for(c.domain, *c.via, port ? port->port_id : -1);
    if (!a)
      return what + ": gateway " + format_ipv4(*c.via) + " is not in a connected subnet" +
             (port ? " of port " + port->name : std::string{});
    if (a->addr.addr == *c.via) return what + ": gateway is an own address";
    r.port = a->port;
  } else {
    if (!port) return what + ": an on-link route needs a port";
    r.port = port->port_id;
  }
  for (auto& a : addresses_)
    if (port_by_id(a.port)->domain == c.domain &&
        (Ipv4Prefix{a.addr.network(), a.addr.len} == c.prefix ||
         (c.prefix.len == 32 && a.addr.addr == c.prefix.addr)))
      return what + ": conflicts with address " + format_prefix(a.addr) + " of port " +
             port_by_id(a.port)->name;
  for (auto& p : wg_peers_)
    if (p.domain == c.domain &&
        std::find(p.allowed.begin(), p.allowed.end(), c.prefix) != p.allowed.end())
      return what + ": is an allowed prefix of WireGuard peer " + wg::key_to_base64(p.public_key) +
             " on " + p.interface;
  routes_.push_back(r);
  return std::nullopt;
}

std::optional<std::string> ControlState::apply_neighbor(const Change& c, Origin origin) {
  const PortInfo* port = port_by_name(c.port);
  std::string what = "neighbor " + format_ipv4(c.ip) + " on port " + c.port;
  if (!port) return what + ": no such port";
  auto it = std::find_if(neighbors_.begin(), neighbors_.end(), [&](const StaticNeighbor& n) {
    return n.port == port->port_id && n.ip == c.ip;
  });
  if (!c.add) {
    if (it == neighbors_.end()) return what + ": no such static neighbor";
    if (it->origin != origin)
      return what + ": owned by origin " + origin_name(it->origin) + ", not " + origin_name(origin);
    neighbors_.erase(it);
    return std::nullopt;
  }
  if (it != neighbors_.end()) return what + ": already configured";
  if (c.mac.is_zero() || (c.mac.bytes[0] & 1)) return what + ": MAC must be a unicast address";
  neighbors_.push_back({port->port_id, c.ip, c.mac, origin});
  return std::nullopt;
}

const WgInterfaceEntry* ControlState::wg_interface(const std::string& name) const {
  for (auto& w : wg_interfaces_)
    if (w.name == name) return &w;
  return nullptr;
}

std::optional<std::string> ControlState::apply_wg_interface(const Change& c, Origin origin) {
  const WgInterfaceEntry& e = c.wg_interface;
  std::string what = "wg_interface " + e.name;
  auto it = std::find_if(wg_interfaces_.begin(), wg_interfaces_.end(),
                         [&](const WgInterfaceEntry& w) { return w.name == e.name; });
  if (!c.add || c.update) {
    if (it == wg_interfaces_.end()) return what + ": no such interface";
    if (it->origin != origin)
      return what + ": owned by origin " + origin_name(it->origin) + ", not " + origin_name(origin);
  }
  if (!c.add) {
    for (auto& p : wg_peers_)
      if (p.interface == e.name) return what + ": still has peers; delete them first";
    for (auto& z : fw_zones_)
      for (auto& w : z.e.wg_interfaces)
        if (w == e.name)
          return what + ": zone \"" + z.e.name + "\" names it; change the zone first";
    wg_interfaces_.erase(it);
    return std::nullopt;
  }
  if (!c.update && it != wg_interfaces_.end()) return what + ": already configured";
  if (e.name.empty() || e.name.size() > 32) return what + ": name must be 1-32 characters";
  wg::Identity id;
  if (!wg::Identity::from_private(e.private_key, &id)) return what + ": unusable private key";
  const AddressEntry* addr = nullptr;
  for (auto& a : addresses_)
    if (a.addr.addr == e.address && !port_by_id(a.port)->exception) addr = &a;
  if (!addr) return what + ": " + format_ipv4(e.address) + " is not an address of a data port";
  if (e.listen_port == 0) return what + ": listen_port must be 1-65535";
  for (auto& m : nat_mappings_)
    if (m.e.public_addr == e.address &&
        (m.e.proto == 0 ||
         (m.e.proto == nat::kUdp && m.e.port_lo <= e.listen_port && e.listen_port <= m.e.port_hi)))
      return what + ": " + format_ipv4(e.address) + ":" + std::to_string(e.listen_port) +
             " is published by nat_mapping \"" + m.e.name + "\"";
  const PortInfo* port = port_by_id(addr->port);
  for (auto& w : wg_interfaces_)
    if (w.name != e.name && w.address == e.address && w.listen_port == e.listen_port)
      return what + ": " + format_ipv4(e.address) + ":" + std::to_string(e.listen_port) +
             " is already used by " + w.name;
  // The outer packet is the inner one plus IPv4 (20), UDP (8) and WireGuard
  // (16 header + 16 tag); padding never passes the inner MTU.
  unsigned max_mtu = port->mtu > 60 ? port->mtu - 60u : 0u;
  if (e.mtu < 576 || e.mtu > max_mtu)
    return what + ": mtu must be 576-" + std::to_string(max_mtu) + " (port " + port->name +
           " has MTU " + std::to_string(port->mtu) + ")";
  WgInterfaceEntry stored = e;
  stored.origin = origin;
  if (c.update) {
    for (auto& p : wg_peers_)
      if (p.interface == e.name && p.public_key == id.public_key)
        return what + ": its new public key is that of one of its peers";
    *it = stored;
  } else {
    wg_interfaces_.push_back(stored);
  }
  return std::nullopt;
}

std::optional<std::string> ControlState::apply_wg_peer(const Change& c, Origin origin) {
  const WgPeerEntry& e = c.wg_peer;
  std::string what = "wg_peer " + wg::key_to_base64(e.public_key) + " on " + e.interface;
  auto it = std::find_if(wg_peers_.begin(), wg_peers_.end(), [&](const WgPeerEntry& p) {
    return p.interface == e.interface && p.public_key == e.public_key;
  });
  if (!c.add || c.update) {
    if (it == wg_peers_.end()) return what + ": no such peer";
    if (it->origin != origin)
      return what + ": owned by origin " + origin_name(it->origin) + ", not " + origin_name(origin);
  }
  if (!c.add) {
    wg_peers_.erase(it);
    return std::nullopt;
  }
  if (!c.update && it != wg_peers_.end()) return what + ": already configured";
  const WgInterfaceEntry* iface = wg_interface(e.interface);
  if (!iface) return what + ": no such WireGuard interface";
  wg::Identity id;
  wg::PeerKeys keys;
  if (!wg::Identity::from_private(iface->private_key, &id))
    return what + ": interface key unusable";
  if (e.public_key == id.public_key) return what + ": is the interface's own public key";
  if (!wg::PeerKeys::make(id, e.public_key, e.preshared_key, &keys))
    return what + ": public key is not a usable X25519 key";
  wg::secure_zero(id);
  wg::secure_zero(keys);
  if (e.endpoint &&
      (WgPeer::endpoint_port(e.endpoint) == 0 || WgPeer::endpoint_ip(e.endpoint) == 0))
    return what + ": endpoint needs an address and a port";
  std::set<std::pair<uint32_t, uint8_t>> seen;
  for (auto& pre : e.allowed) {
    std::string p = format_prefix(pre);
    if (pre.addr != pre.network()) return what + ": allowed prefix " + p + " has host bits set";
    if (!seen.insert({pre.addr, pre.len}).second)
      return what + ": allowed prefix " + p + " is listed twice";
    for (auto& other : wg_peers_)
      if (&other != (it == wg_peers_.end() ? nullptr : &*it) && other.domain == e.domain &&
          std::find(other.allowed.begin(), other.allowed.end(), pre) != other.allowed.end())
        return what + ": allowed prefix " + p + " already belongs to peer " +
               wg::key_to_base64(other.public_key) + " in domain " + std::to_string(e.domain);
    for (auto& r : routes_)
      if (r.domain == e.domain && r.prefix == pre)
        return what + ": allowed prefix " + p + " is a static route in domain " +
               std::to_string(e.domain);
    for (auto& a : addresses_)
      if (port_by_id(a.port)->domain == e.domain &&
          (Ipv4Prefix{a.addr.network(), a.addr.len} == pre ||
           (pre.len == 32 && a.addr.addr == pre.addr)))
        return what + ": allowed prefix " + p + " is the subnet of port " +
               port_by_id(a.port)->name;
  }
  WgPeerEntry stored = e;
  stored.origin = origin;
  if (c.update)
    *it = stored;
  else
    wg_peers_.push_back(stored);
  return std::nullopt;
}

std::optional<Ipv4> Generation::source_for(uint16_t port, Ipv4 dst) const {
  const auto& addrs = ports[port].addresses;
  for (auto& a : addrs)
    if (a.contains(dst)) return a.addr;
  if (!addrs.empty()) return addrs.front().addr;
  // A port without addresses answers with any address of its domain.
  for (auto& p : ports)
    if (p.active && p.domain == ports[port].domain && !p.addresses.empty())
      return p.addresses.front().addr;
  return std::nullopt;
}

std::optional<Ipv4> Generation::source_in_domain(uint16_t domain) const {
  for (auto& p : ports)
    if (p.active && !p.exception && p.domain == domain && !p.addresses.empty())
      return p.addresses.front().addr;
  return std::nullopt;
}

DomainTable::~DomainTable() {
  if (lpm) rte_lpm_free(lpm);
}

namespace {

std::vector<DomainEntry> domain_entries(const ControlState& s, uint16_t domain,
                                        const std::vector<uint32_t>& peer_ids) {
  std::vector<DomainEntry> out;
  for (size_t i = 0; i < s.wg_peers().size() && i < peer_ids.size(); ++i) {
    const WgPeerEntry& p = s.wg_peers()[i];
    if (p.domain != domain) continue;
    for (auto& pre : p.allowed) {
      NextHop nh;
      nh.kind = NextHopKind::kTunnel;
      nh.peer = peer_ids[i];
      out.push_back({pre, nh});
    }
  }
  for (auto& a : s.addresses()) {
    if (s.port_by_id(a.port)->domain != domain) continue;
    Ipv4Prefix net{a.addr.network(), a.addr.len};
    out.push_back({net, {a.port, NextHopKind::kForward, 0}});
    out.push_back({{a.addr.addr, 32}, {a.port, NextHopKind::kLocal, 0}});
    // RFC 2644: directed broadcasts are not forwarded.
    if (a.addr.len <= 30)
      out.push_back({{net.addr | ~net.mask(), 32}, {a.port, NextHopKind::kBroadcast, 0}});
  }
  for (auto& r : s.routes())
    if (r.domain == domain) out.push_back({r.prefix, {r.port, NextHopKind::kForward, r.via}});
  // The gateway's address inside a VDC (NAT): ours, like a port's address.
  if (const NatGateway* gw = s.nat_gateway(domain))
    out.push_back({{gw->e.address, 32}, {0, NextHopKind::kLocal, 0}});
  std::sort(out.begin(), out.end(), [](const DomainEntry& a, const DomainEntry& b) {
    return std::tie(a.prefix.addr, a.prefix.len, a.nh.port, a.nh.gateway, a.nh.peer) <
           std::tie(b.prefix.addr, b.prefix.len, b.nh.port, b.nh.gateway, b.nh.peer);
  });
  // A /32 own address inside a /32 network (len 32 address) duplicates; keep the local one.
  std::vector<DomainEntry> uniq;
  for (auto& e : out) {
    if (!uniq.empty() && uniq.back().prefix == e.prefix) {
      if (e.nh.kind == NextHopKind::kLocal) uniq.back() = e;
      continue;
    }
    uniq.push_back(e);
  }
  return uniq;
}

std::shared_ptr<DomainTable> build_domain(uint16_t domain, std::vector<DomainEntry> entries,
                                          NeighborTable& neighbors, std::string* error) {
  static std::atomic<uint64_t> seq{0};
  auto t = std::make_shared<DomainTable>();
  uint32_t long_prefixes = 0;
  for (auto& e : entries)
    if (e.prefix.len > 24) ++long_prefixes;
  std::string name = "lpm" + std::to_string(seq++);
  rte_lpm_config cfg{};
  cfg.max_rules = static_cast<uint32_t>(entries.size()) + 64;
  cfg.number_tbl8s = std::max<uint32_t>(256, long_prefixes + 64);
  t->lpm = rte_lpm_create(name.c_str(), SOCKET_ID_ANY, &cfg);
  if (!t->lpm) {
    *error = "domain " + std::to_string(domain) + ": cannot create route table (" +
             rte_strerror(rte_errno) + ")";
    return nullptr;
  }
  std::lock_guard lock(neighbors.mutex());
  for (auto& e : entries) {
    NextHop nh = e.nh;
    if (nh.kind == NextHopKind::kForward && nh.gateway != 0)
      nh.slot = neighbors.ensure_locked(nh.port, nh.gateway);
    auto it = std::find(t->nexthops.begin(), t->nexthops.end(), nh);
    uint32_t idx = static_cast<uint32_t>(it - t->nexthops.begin());
    if (it == t->nexthops.end()) t->nexthops.push_back(nh);
    if (e.prefix.len == 0) {
      t->default_nh = idx;
      continue;
    }
    if (rte_lpm_add(t->lpm, e.prefix.network(), e.prefix.len, idx) != 0) {
      *error = "domain " + std::to_string(domain) + ": cannot add " + format_prefix(e.prefix);
      return nullptr;
    }
  }
  t->entries = std::move(entries);
  return t;
}

}  // namespace

std::unique_ptr<Generation> build_generation(const ControlState& state, const Generation* prev,
                                             uint64_t id, NeighborTable& neighbors,
                                             std::string* error, WgRuntime* wg, NatRuntime* nat,
                                             FwRuntime* fw) {
  auto g = std::make_unique<Generation>();
  g->id = id;
  g->state = state;

  // WireGuard runtime objects first: routes name peers by id.
  std::vector<uint32_t> peer_ids;
  if (wg) {
    std::map<std::string, WgInterface*> ifaces;
    for (auto& e : state.wg_interfaces()) {
      const AddressEntry* addr = nullptr;
      for (auto& a : state.addresses())
        if (a.addr.addr == e.address) addr = &a;
      if (!addr) {
        *error = "wg_interface " + e.name + ": its address is gone";
        return nullptr;
      }
      uint16_t domain = state.port_by_id(addr->port)->domain;
      WgInterface* w = wg->interface_for(e, addr->port, domain, error);
      if (!w) return nullptr;
      ifaces[e.name] = w;
      g->wg_listen.push_back({e.address, e.listen_port, domain, w});
      if (g->wg_interfaces.size() <= w->id) g->wg_interfaces.resize(w->id + 1u, nullptr);
      g->wg_interfaces[w->id] = w;
    }
    for (auto& e : state.wg_peers()) {
      WgPeer* p = wg->peer_for(e, ifaces.at(e.interface), error);
      if (!p) return nullptr;
      peer_ids.push_back(p->id);
      if (g->wg_peers.size() <= p->id) g->wg_peers.resize(p->id + 1u, nullptr);
      g->wg_peers[p->id] = p;
    }
  }

  std::set<uint16_t> domains;
  for (auto& p : state.ports())
    if (!p.exception) domains.insert(p.domain);
  for (auto& p : state.wg_peers()) domains.insert(p.domain);
  for (auto& gw : state.nat_gateways()) domains.insert(gw.e.domain);
  for (uint16_t d : domains) {
    auto entries = domain_entries(state, d, peer_ids);
    if (prev) {
      auto it = prev->domains.find(d);
      if (it != prev->domains.end() && it->second->entries == entries) {
        g->domains[d] = it->second;
        continue;
      }
    }
    auto t = build_domain(d, std::move(entries), neighbors, error);
    if (!t) return nullptr;
    g->domains[d] = std::move(t);
  }
  if (!g->domains.empty()) {
    g->domain_tables.assign(g->domains.rbegin()->first + 1u, nullptr);
    for (auto& [d, t] : g->domains) g->domain_tables[d] = t.get();
  }
  for (auto& p : state.ports()) {
    PortView& v = g->ports[p.port_id];
    v.active = true;
    v.exception = p.exception;
    v.domain = p.domain;
    v.mtu = p.mtu;
    std::copy(p.mac.bytes.begin(), p.mac.bytes.end(), v.mac.addr_bytes);
    if (!p.exception) v.table = g->domains[p.domain].get();
  }
  for (auto& a : state.addresses()) g->ports[a.port].addresses.push_back(a.addr);
  if (nat && !build_nat_view(state, *nat, &g->nat, error)) return nullptr;
  if (fw && !build_fw_view(state, prev ? &prev->fw : nullptr, *fw, g->wg_interfaces, &g->fw, error))
    return nullptr;
  return g;
}

bool build_nat_view(const ControlState& state, NatRuntime& rt, nat::NatView* v,
                    std::string* error) {
  auto pools_of = [&](uint16_t domain, uint32_t addr, uint32_t* pools) {
    const uint8_t protos[3] = {nat::kTcp, nat::kUdp, nat::kIcmp};
    for (int i = 0; i < 3; ++i) {
      pools[i] = rt.pools().get_or_make(domain, addr, protos[i]);
      if (pools[i] == nat::PortPools::kNone) {
        *error = "NAT: more than " + std::to_string(nat::PortPools::kMaxPools) +
                 " port pools (addresses x protocols)";
        return false;
      }
    }
    return true;
  };
  for (auto& m : state.nat_mappings()) {
    NatRuntime::Id id = rt.id_for(m.e.name);
    if (id.id == UINT32_MAX) {
      *error = "NAT: more than " + std::to_string(rt.config().max_mappings) +
               " mappings (nat.max_mappings)";
      return false;
    }
    nat::MappingView mv;
    mv.live = true;
    mv.tag = id.tag;
    mv.proto = m.e.proto;
    mv.port_lo = m.e.port_lo;
    mv.port_hi = m.e.port_hi;
    mv.domain = m.e.domain;
    mv.inner_addr = m.e.inner_addr;
    mv.inner_port = m.e.inner_port;
    mv.gateway = state.nat_gateway(m.e.domain)->e.address;
    if (!pools_of(m.e.domain, mv.gateway, mv.pools)) return false;
    v->add_mapping(id.id, m.e, mv);
  }
  for (auto& s : state.nat_snats()) {
    nat::SnatView sv;
    sv.public_domain = s.e.public_domain;
    sv.public_addr = s.e.public_addr;
    if (!pools_of(s.e.public_domain, s.e.public_addr, sv.pools)) return false;
    // Ports that already mean something on this address are never handed
    // to dynamic sessions: a WireGuard listen port, published ports. (A
    // port a live session holds stays its own until it ends.)
    for (auto& w : state.wg_interfaces())
      if (w.address == s.e.public_addr) rt.pools().at(sv.pools[1]).claim(w.listen_port);
    for (auto& m : state.nat_mappings())
      if (m.e.public_domain == s.e.public_domain && m.e.public_addr == s.e.public_addr &&
          m.e.proto != 0)
        for (uint32_t p = m.e.port_lo; p <= m.e.port_hi; ++p)
          rt.pools().at(sv.pools[nat::proto_index(m.e.proto)]).claim(static_cast<uint16_t>(p));
    v->add_snat(s.e.domain, sv);
  }
  // MSS clamping (RFC 4459 §3.2): a SYN into a domain reached through a
  // tunnel announces at most the tunnel's inner MTU minus 40.
  for (auto& p : state.wg_peers()) {
    const WgInterfaceEntry* w = state.wg_interface(p.interface);
    if (!w) continue;
    uint16_t mss = static_cast<uint16_t>(w->mtu - 40);
    uint16_t have = v->mss(p.domain);
    if (!have || mss < have) v->set_mss(p.domain, mss);
  }
  v->set_max_tag(rt.max_tag());
  v->set_enabled(!state.nat_mappings().empty() || !state.nat_snats().empty());
  return true;
}

}  // namespace tether::dp
