#include "nat/mapping.h"

#include <algorithm>

namespace tether::nat {

uint32_t NatView::find(uint16_t domain, uint32_t addr, uint8_t proto, uint16_t port) const {
  auto it = by_addr_.find(addr_key(domain, addr));
  if (it == by_addr_.end()) return UINT32_MAX;
  const AddrMappings& a = it->second;
  int pi = proto_index(proto);
  if (pi == 0 || pi == 1) {
    const auto& rs = a.ranges[pi];
    // The last range starting at or below `port`.
    auto r = std::upper_bound(rs.begin(), rs.end(), port,
                              [](uint16_t p, const Range& x) { return p < x.lo; });
    if (r != rs.begin() && port <= (r - 1)->hi) return (r - 1)->id;
  }
  return a.whole;
}

void NatView::add_mapping(uint32_t id, const MappingEntry& e, const MappingView& v) {
  if (mappings_.size() <= id) mappings_.resize(id + 1u);
  mappings_[id] = v;
  AddrMappings& a = by_addr_[addr_key(e.public_domain, e.public_addr)];
  if (e.proto == 0) {
    a.whole = id;
    return;
  }
  auto& rs = a.ranges[proto_index(e.proto)];
  Range r{e.port_lo, e.port_hi, id};
  rs.insert(std::upper_bound(rs.begin(), rs.end(), r,
                             [](const Range& x, const Range& y) { return x.lo < y.lo; }),
            r);
}

}  // namespace tether::nat
