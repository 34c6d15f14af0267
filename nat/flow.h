// The flow key every session is found by, and the translation a session
// applies. Header-only, no DPDK: shared by the session table, the packet
// rewriter, the dataplane and the tests.
//
// A session has two keys (design idea 7, docs/decisions/006-nat.md): the
// packet of the original direction as it arrives (`orig`) and the packet of
// the reply direction as it arrives (`reply`). A packet matching one side
// leaves as the mirror image of the other side: src = other.dst,
// dst = other.src, sport = other.dport, dport = other.sport, in routing
// domain other.domain. Conntrack calls these the two tuples.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>

namespace tether::nat {

inline constexpr uint8_t kIcmp = 1;
inline constexpr uint8_t kTcp = 6;
inline constexpr uint8_t kUdp = 17;

// 16 bytes, host byte order, no padding holes (hashed as raw bytes).
// ICMP echo: an echo request's identifier is `sport` (dport 0); an echo
// reply's identifier is `dport` (sport 0), so a request and its reply are
// mirror images like TCP and UDP packets are.
// `kind` tells apart keys that are not five-tuples of a packet: kFlow for
// packets, kFragment for a fragmented datagram's later fragments
// (sport = IP identification, dport = 0), kBinding for a source-NAT binding
// (src = inside address, sport = inside port, dst = public address) and
// kBindingMirror for its record's second key.
struct alignas(8) FlowKey {  // 8-aligned: rte_hash_crc reads it 8 bytes at a time
  enum : uint8_t { kFlow = 0, kFragment = 1, kBinding = 2, kBindingMirror = 3 };
  uint32_t src = 0;
  uint32_t dst = 0;
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint16_t domain = 0;
  uint8_t proto = 0;
  uint8_t kind = kFlow;

  bool operator==(const FlowKey& o) const { return std::memcmp(this, &o, sizeof(*this)) == 0; }
  // The key of a packet going the other way between the same endpoints.
  FlowKey mirrored() const { return {dst, src, dport, sport, domain, proto, kind}; }
};
static_assert(sizeof(FlowKey) == 16);

// What a packet becomes: new addresses and ports (host order) and the
// routing domain it is routed in afterwards. For ICMP echo, sport/dport
// follow FlowKey's convention (request: sport is the identifier).
struct Rewrite {
  uint32_t src = 0;
  uint32_t dst = 0;
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint16_t domain = 0;

  // The rewrite for a packet that matched `matched`'s side of a session
  // whose other side is `other`.
  static Rewrite toward(const FlowKey& other) {
    return {other.dst, other.src, other.dport, other.sport, other.domain};
  }
};

}  // namespace tether::nat
