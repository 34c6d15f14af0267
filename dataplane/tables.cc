#include "dataplane/tables.h"

#include <rte_errno.h>

#include <algorithm>
#include <atomic>

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

DomainTable::~DomainTable() {
  if (lpm) rte_lpm_free(lpm);
}

namespace {

std::vector<DomainEntry> domain_entries(const ControlState& s, uint16_t domain) {
  std::vector<DomainEntry> out;
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
  std::sort(out.begin(), out.end(), [](const DomainEntry& a, const DomainEntry& b) {
    return std::tie(a.prefix.addr, a.prefix.len, a.nh.port, a.nh.gateway) <
           std::tie(b.prefix.addr, b.prefix.len, b.nh.port, b.nh.gateway);
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
                                             std::string* error) {
  auto g = std::make_unique<Generation>();
  g->id = id;
  g->state = state;
  for (auto& p : state.ports()) {
    if (p.exception) continue;
    if (g->domains.count(p.domain)) continue;
    auto entries = domain_entries(state, p.domain);
    if (prev) {
      auto it = prev->domains.find(p.domain);
      if (it != prev->domains.end() && it->second->entries == entries) {
        g->domains[p.domain] = it->second;
        continue;
      }
    }
    auto t = build_domain(p.domain, std::move(entries), neighbors, error);
    if (!t) return nullptr;
    g->domains[p.domain] = std::move(t);
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
  return g;
}

}  // namespace tether::dp
