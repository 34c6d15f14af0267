// Per-packet metadata carried in an mbuf dynamic field between the workers
// and the service thread, and the checksum arithmetic every stage uses.
// Header-only; any lcore.
#pragma once

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include <cstdint>
#include <cstring>

#include "dataplane/counters.h"

namespace tether::dp {

// Why a worker handed a packet to the service thread.
enum class Punt : uint8_t {
  kArp,          // ARP frame
  kLocal,        // IPv4 to an own address
  kResolve,      // next hop has no MAC yet; routed and TTL already decremented
  kTtlExceeded,  // ICMP time exceeded wanted
  kNoRoute,      // ICMP net unreachable wanted
  kFragNeeded,   // ICMP fragmentation needed (DF set)
  kFragment,     // fragment to fit the egress MTU, then send
  kWgHandshake,  // WireGuard initiation, response or cookie reply (handshake ring)
  kWgStage,      // inner packet for WireGuard peer `nexthop` that has no usable session
  kWgFragment,   // inner packet for WireGuard peer `nexthop` to fragment to `mtu` first
  kReject,       // a firewall rule rejects it: answer with a TCP reset or ICMP unreachable
};

struct PacketMeta {
  uint32_t nexthop;  // host order: the neighbor to resolve (kResolve, kFragment); kWgStage: peer id
  uint32_t slot;  // neighbor slot of nexthop, or NeighborTable::kNoSlot; kWgHandshake: interface id
  uint16_t in_port;
  uint16_t out_port;
  uint16_t mtu;     // egress MTU (kFragNeeded, kFragment)
  uint16_t domain;  // routing domain the packet was routed in (a tunnel's inner domain after decap)
  Punt punt;
  uint8_t pad;
};

// Offset of the metadata field; registered once by Dataplane before any mbuf moves.
extern int g_meta_offset;
bool register_meta_field();

inline PacketMeta* meta(rte_mbuf* m) { return RTE_MBUF_DYNFIELD(m, g_meta_offset, PacketMeta*); }

// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), all 16-bit one's complement, in
// whatever byte order the words were read (the sum is order-independent).
inline uint16_t csum_replace16(uint16_t hc, uint16_t old_word, uint16_t new_word) {
  uint32_t s = static_cast<uint16_t>(~hc) +
               static_cast<uint32_t>(static_cast<uint16_t>(~old_word)) + new_word;
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s);
}

// Decrements TTL and patches the header checksum incrementally. The new
// TTL/protocol word is computed in a register and stored once: reading back
// a word that was just partly stored stalls on store forwarding.
inline void ipv4_decrement_ttl(rte_ipv4_hdr* ip) {
  uint16_t old_word;
  std::memcpy(&old_word, &ip->time_to_live, 2);
  uint16_t new_word = rte_cpu_to_be_16(static_cast<uint16_t>(rte_be_to_cpu_16(old_word) - 0x100));
  std::memcpy(&ip->time_to_live, &new_word, 2);
  ip->hdr_checksum = csum_replace16(ip->hdr_checksum, old_word, new_word);
}

// True when the header (including options) sums to 0xffff.
inline bool ipv4_checksum_ok(const rte_ipv4_hdr* ip, unsigned hdr_len) {
  return rte_raw_cksum(ip, hdr_len) == 0xffff;
}

// The same for a 20-byte header: two 64-bit and one 32-bit load summed with
// end-around carries, then folded to 16 bits (the fast path's case).
inline bool ipv4_checksum20_ok(const rte_ipv4_hdr* ip) {
  const auto* p = reinterpret_cast<const uint8_t*>(ip);
  uint64_t a, b;
  uint32_t c;
  std::memcpy(&a, p, 8);
  std::memcpy(&b, p + 8, 8);
  std::memcpy(&c, p + 16, 4);
  uint64_t s = a + b;
  s += s < a;  // end-around carry
  uint64_t t = s + c;
  t += t < s;
  t = (t & 0xffffffff) + (t >> 32);
  t = (t & 0xffff) + (t >> 16);
  t = (t & 0xffff) + (t >> 16);
  t = (t & 0xffff) + (t >> 16);
  return t == 0xffff;
}

inline bool ipv4_martian(uint32_t a) {
  uint32_t top = a >> 24;
  return top == 0 || top == 127 || a >= 0xe0000000u;  // this-net, loopback, multicast, E, bcast
}

// Validates an IPv4 header up to what routing needs (docs/decisions/004):
// `seg_len` bytes of it are in the first segment, `l3_len` in the packet;
// `ck` is the mbuf's RX IP checksum flags (0: check in software). On success
// returns Drop::kCount with the addresses in host order. Used for frames
// from ports and for packets out of a tunnel alike.
__attribute__((always_inline)) inline Drop check_ipv4(const rte_ipv4_hdr* ip, uint32_t seg_len,
                                                      uint32_t l3_len, uint64_t ck,
                                                      LcoreCounters& c, uint32_t* dst,
                                                      uint32_t* src) {
  if (seg_len < sizeof(rte_ipv4_hdr)) return Drop::ipv4_truncated;
  uint8_t vihl = ip->version_ihl;
  if ((vihl >> 4) != 4) return Drop::ipv4_bad_version;
  unsigned hdr_len = (vihl & 0xf) * 4u;
  if (hdr_len < sizeof(rte_ipv4_hdr)) return Drop::ipv4_bad_ihl;
  if (hdr_len > seg_len) return Drop::ipv4_truncated;
  uint16_t total = rte_be_to_cpu_16(ip->total_length);
  if (total < hdr_len) return Drop::ipv4_bad_length;
  if (total > l3_len) return Drop::ipv4_truncated;
  if (ck == RTE_MBUF_F_RX_IP_CKSUM_BAD ||
      (ck != RTE_MBUF_F_RX_IP_CKSUM_GOOD &&
       !(hdr_len == sizeof(rte_ipv4_hdr) ? ipv4_checksum20_ok(ip) : ipv4_checksum_ok(ip, hdr_len))))
    return Drop::ipv4_bad_checksum;
  if (hdr_len != sizeof(rte_ipv4_hdr)) return Drop::ipv4_options;

  *src = rte_be_to_cpu_32(ip->src_addr);
  *dst = rte_be_to_cpu_32(ip->dst_addr);
  if (ipv4_martian(*src)) return Drop::ipv4_martian_source;
  if (ipv4_martian(*dst)) return Drop::ipv4_bad_destination;

  uint16_t frag = rte_be_to_cpu_16(ip->fragment_offset);
  if (frag & (RTE_IPV4_HDR_OFFSET_MASK | RTE_IPV4_HDR_MF_FLAG)) {
    uint32_t offset = (frag & RTE_IPV4_HDR_OFFSET_MASK) * 8u;
    uint32_t payload = total - hdr_len;
    // The reassembled datagram (header + offset + payload) must fit 65535.
    if (hdr_len + offset + payload > 65535 || ((frag & RTE_IPV4_HDR_MF_FLAG) && payload % 8 != 0))
      return Drop::ipv4_bad_fragment;
    c.event(Event::ipv4_fragments);
  }
  return Drop::kCount;
}

}  // namespace tether::dp
