// Reading a packet's flow key and rewriting it: addresses, ports, ICMP echo
// identifiers and ICMP errors' embedded headers, with every checksum updated
// incrementally (RFC 1624), and TCP MSS clamping. Works on the bytes of an
// IPv4 packet in one contiguous buffer (an mbuf's first segment), no DPDK,
// no allocation; any thread.
#pragma once

#include <cstdint>
#include <cstring>

#include "nat/flow.h"

namespace tether::nat {

enum class Class : uint8_t {
  kFlow,           // TCP, UDP or ICMP echo request/reply: `key` is its five-tuple
  kIcmpError,      // ICMP error (RFC 5508 §4: types 3, 11, 12): `key` is the MIRROR of the
                   // embedded packet's key, i.e. the key of the session side it belongs to
  kLaterFragment,  // fragment with offset > 0: `key` is a FlowKey::kFragment key
  kUnsupported,    // another protocol, another ICMP type, an error about an error
  kMalformed,      // too short for the headers the class needs, or impossible values
};

// TCP flags (RFC 9293 §3.1), as in the header's 14th byte.
inline constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;

struct Classified {
  Class what = Class::kMalformed;
  FlowKey key;
  uint8_t tcp_flags = 0;        // kFlow, TCP
  bool first_fragment = false;  // kFlow with MF set at offset 0
  uint16_t ip_id = 0;           // host order
};

// Classifies an IPv4 packet of `len` bytes (the header was already validated:
// version, IHL 5, total length <= len, checksum). `domain` goes into the key.
// A later fragment's key is {src, dst, sport = IP id, dport = 0, domain,
// proto, kFragment}; the first fragment of that datagram gives the same key
// through fragment_key().
inline Classified classify(const uint8_t* ip, uint32_t len, uint16_t domain);
FlowKey fragment_key(const uint8_t* ip, uint16_t domain);

// Rewrites a kFlow packet (also a first fragment: its L4 checksum covers the
// whole datagram, and an incremental update needs only the changed words).
// UDP checksum 0 (none) stays 0. ICMP echo: the identifier is rw.sport for
// a request and rw.dport for a reply.
inline void rewrite(uint8_t* ip, uint32_t len, const Rewrite& rw);

// Rewrites a later fragment: addresses and the IP header checksum only.
void rewrite_addresses(uint8_t* ip, const Rewrite& rw);

// Rewrites a kIcmpError packet: outer addresses to rw, the embedded header to
// rw's mirror image (the embedded packet goes the other way), the embedded IP
// checksum, the embedded L4 checksum when the quoted bytes include it, and the
// ICMP checksum. All incremental.
void rewrite_icmp_error(uint8_t* ip, uint32_t len, const Rewrite& rw);

// A TCP SYN's MSS option is lowered to `mss` when larger (RFC 4459 §3.2,
// RFC 6691). Returns true when the packet changed (checksum updated).
bool clamp_mss(uint8_t* ip, uint32_t len, uint16_t mss);

// RFC 1071 checksum over bytes (for building packets and for tests).
uint16_t checksum(const void* data, uint32_t len, uint32_t initial = 0);
// Full recomputation of a packet's IPv4 and L4 checksums (tests' reference;
// the fast path never does this). Returns false for what it cannot handle.
bool recompute_checksums(uint8_t* ip, uint32_t len);

// --- inline: the fast path's common case ---

namespace detail {

// Any packet (translate.cc): what classify() and rewrite() fall back to.
Classified classify_any(const uint8_t* ip, uint32_t len, uint16_t domain);
void rewrite_any(uint8_t* ip, uint32_t len, const Rewrite& rw);

inline uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
// A host-order value as the 4 bytes it is stored as, read as a machine word.
inline uint32_t wire32(uint32_t v) {
  uint8_t b[4] = {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
                  static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
  uint32_t w;
  std::memcpy(&w, b, 4);
  return w;
}
inline uint32_t word32(const uint8_t* p) {
  uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
}
// RFC 1624 eqn. 3 over the 16-bit halves of replaced words, as stored (the
// one's complement sum does not care about byte order).
inline uint32_t csum_delta32(uint32_t sum, uint32_t old_word, uint32_t new_word) {
  return sum + (~old_word & 0xffff) + (~old_word >> 16) + (new_word & 0xffff) + (new_word >> 16);
}
inline void csum_apply(uint8_t* field, uint32_t delta) {
  uint16_t check;
  std::memcpy(&check, field, 2);
  uint32_t s = static_cast<uint16_t>(~check) + delta;
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  check = static_cast<uint16_t>(~s);
  std::memcpy(field, &check, 2);
}

// Unfragmented TCP or UDP with a 20-byte IPv4 header and its whole L4
// header within `len` and the total length: most packets.
inline bool simple_l4(const uint8_t* ip, uint32_t len) {
  uint8_t proto = ip[9];
  if (len < 28 || ip[0] != 0x45 || (proto != kTcp && proto != kUdp) || (be16(ip + 6) & 0x3fff) != 0)
    return false;
  uint32_t avail = be16(ip + 2) < len ? be16(ip + 2) : len;
  if (proto == kUdp) return avail >= 28;
  if (avail < 40) return false;
  uint32_t doff = (ip[32] >> 4) * 4u;  // TCP data offset
  return doff >= 20 && doff <= avail - 20;
}

}  // namespace detail

inline Classified classify(const uint8_t* ip, uint32_t len, uint16_t domain) {
  if (!detail::simple_l4(ip, len)) return detail::classify_any(ip, len, domain);
  Classified c;
  c.what = Class::kFlow;
  c.key = {detail::be32(ip + 12),
           detail::be32(ip + 16),
           detail::be16(ip + 20),
           detail::be16(ip + 22),
           domain,
           ip[9],
           FlowKey::kFlow};
  c.tcp_flags = ip[9] == kTcp ? ip[33] : 0;
  c.ip_id = detail::be16(ip + 4);
  return c;
}

inline void rewrite(uint8_t* ip, uint32_t len, const Rewrite& rw) {
  if (!detail::simple_l4(ip, len)) return detail::rewrite_any(ip, len, rw);
  using namespace detail;
  uint32_t nsrc = wire32(rw.src), ndst = wire32(rw.dst);
  uint32_t addr = csum_delta32(csum_delta32(0, word32(ip + 12), nsrc), word32(ip + 16), ndst);
  csum_apply(ip + 10, addr);
  std::memcpy(ip + 12, &nsrc, 4);
  std::memcpy(ip + 16, &ndst, 4);
  uint32_t nports = wire32(uint32_t{rw.sport} << 16 | rw.dport);
  uint32_t delta = csum_delta32(addr, word32(ip + 20), nports);
  std::memcpy(ip + 20, &nports, 4);
  if (ip[9] == kTcp) {
    csum_apply(ip + 36, delta);
  } else if (ip[26] | ip[27]) {  // UDP checksum 0: none, and it stays so (RFC 768)
    csum_apply(ip + 26, delta);
    if (!(ip[26] | ip[27])) ip[26] = ip[27] = 0xff;  // a computed 0 is sent as all ones
  }
}

}  // namespace tether::nat
