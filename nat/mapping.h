// Published resources (static DNAT mappings), the gateway's inner address in
// each VDC, and source-NAT rules: the control entries the API edits, and the
// read-only view of them a generation carries for the workers. No DPDK.
//
// Indirection (design idea 2): a mapping names a routing domain and an inner
// address; the route to that address in the domain names the tunnel peer,
// and the peer holds its endpoint. Sessions hold the mapping's id, never a
// copy of the peer or its endpoint, so moving a VDC to another site changes
// one peer and every session follows; re-addressing a workload rewrites the
// mappings of its domain (and the reply keys of their sessions).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "nat/flow.h"

namespace tether::nat {

// (public_domain, public_addr, proto, public ports lo..hi) → (domain,
// inner_addr, inner_port + offset). proto 0 is a whole-address mapping:
// every TCP/UDP port and ICMP echo, ports kept.
struct MappingEntry {
  std::string name;  // unique; the API's handle
  uint16_t public_domain = 0;
  uint32_t public_addr = 0;
  uint8_t proto = 0;  // kTcp, kUdp, or 0 (whole address)
  uint16_t port_lo = 0, port_hi = 0;
  uint16_t domain = 0;  // the VDC's routing domain
  uint32_t inner_addr = 0;
  uint16_t inner_port = 0;  // inner port of port_lo (whole address: unused)
  bool operator==(const MappingEntry&) const = default;
};

// The address the gateway has inside a VDC: the source workloads see for
// published traffic (SNAT on the way in), so replies come back to us.
struct GatewayEntry {
  uint16_t domain = 0;
  uint32_t address = 0;
  bool operator==(const GatewayEntry&) const = default;
};

// Dynamic source NAT: packets from `domain` with no route there leave by
// `public_domain` from `public_addr` with an allocated port.
struct SnatEntry {
  uint16_t domain = 0;
  uint16_t public_domain = 0;
  uint32_t public_addr = 0;
  bool operator==(const SnatEntry&) const = default;
};

inline int proto_index(uint8_t proto) {  // 0 TCP, 1 UDP, 2 ICMP, -1 other
  return proto == kTcp ? 0 : proto == kUdp ? 1 : proto == kIcmp ? 2 : -1;
}

// One mapping as workers see it. `tag` changes when a mapping of that id is
// removed, so sessions of a removed mapping are recognised as stale.
struct MappingView {
  bool live = false;
  uint32_t tag = 0;
  uint8_t proto = 0;
  uint16_t port_lo = 0, port_hi = 0;
  uint16_t domain = 0;
  uint32_t inner_addr = 0;
  uint16_t inner_port = 0;
  uint32_t gateway = 0;                                      // the domain's gateway address
  uint32_t pools[3] = {UINT32_MAX, UINT32_MAX, UINT32_MAX};  // by proto_index: (domain, gateway)
};

struct SnatView {
  uint16_t public_domain = 0;
  uint32_t public_addr = 0;
  uint32_t pools[3] = {UINT32_MAX, UINT32_MAX, UINT32_MAX};  // (public_domain, public_addr)
};

// Everything NAT a generation needs; immutable once published.
class NatView {
 public:
  bool enabled() const { return enabled_; }
  // The mapping for a first packet to (domain, addr, proto, port), or
  // UINT32_MAX. Exact port ranges first, then a whole-address mapping.
  uint32_t find(uint16_t domain, uint32_t addr, uint8_t proto, uint16_t port) const;
  const MappingView& mapping(uint32_t id) const { return mappings_[id]; }
  bool mapping_live(uint32_t id, uint32_t tag) const {
    return id < mappings_.size() && mappings_[id].live && mappings_[id].tag == tag;
  }
  // A session of mapping `id` made with `tag` belongs to a mapping this view
  // no longer has. Tags only grow, so a tag newer than any this view knows
  // is from a newer generation (a worker ahead of this reader): not stale.
  bool mapping_stale(uint32_t id, uint32_t tag) const {
    return id != UINT32_MAX && tag <= max_tag_ && !mapping_live(id, tag);
  }
  const SnatView* snat(uint16_t domain) const {
    auto it = snat_.find(domain);
    return it == snat_.end() ? nullptr : &it->second;
  }
  // TCP MSS to clamp SYNs to in a domain reached through tunnels (0: none).
  uint16_t mss(uint16_t domain) const {
    auto it = mss_.find(domain);
    return it == mss_.end() ? 0 : it->second;
  }
  size_t mapping_slots() const { return mappings_.size(); }

  // Building (API thread).
  void set_enabled(bool e) { enabled_ = e; }
  void set_max_tag(uint32_t t) { max_tag_ = t; }
  void add_mapping(uint32_t id, const MappingEntry& e, const MappingView& v);
  void add_snat(uint16_t domain, const SnatView& v) { snat_[domain] = v; }
  void set_mss(uint16_t domain, uint16_t mss) { mss_[domain] = mss; }

 private:
  struct Range {
    uint16_t lo, hi;
    uint32_t id;
  };
  struct AddrMappings {
    uint32_t whole = UINT32_MAX;
    std::vector<Range> ranges[2];  // TCP, UDP; sorted by lo, disjoint
  };
  static uint64_t addr_key(uint16_t domain, uint32_t addr) { return uint64_t{domain} << 32 | addr; }
  bool enabled_ = false;
  uint32_t max_tag_ = 0;               // the newest tag issued when the view was built
  std::vector<MappingView> mappings_;  // by id
  std::unordered_map<uint64_t, AddrMappings> by_addr_;
  std::map<uint16_t, SnatView> snat_;
  std::map<uint16_t, uint16_t> mss_;
};

}  // namespace tether::nat
