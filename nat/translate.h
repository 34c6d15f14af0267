// Reading a packet's flow key and rewriting it: addresses, ports, ICMP echo
// identifiers and ICMP errors' embedded headers, with every checksum updated
// incrementally (RFC 1624), and TCP MSS clamping. Works on the bytes of an
// IPv4 packet in one contiguous buffer (an mbuf's first segment), no DPDK,
// no allocation; any thread.
#pragma once

#include <cstdint>

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
Classified classify(const uint8_t* ip, uint32_t len, uint16_t domain);
FlowKey fragment_key(const uint8_t* ip, uint16_t domain);

// Rewrites a kFlow packet (also a first fragment: its L4 checksum covers the
// whole datagram, and an incremental update needs only the changed words).
// UDP checksum 0 (none) stays 0. ICMP echo: the identifier is rw.sport for
// a request and rw.dport for a reply.
void rewrite(uint8_t* ip, uint32_t len, const Rewrite& rw);

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

}  // namespace tether::nat
