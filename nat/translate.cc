#include "nat/translate.h"

#include <algorithm>

namespace tether::nat {
namespace {

constexpr uint8_t kEchoReply = 0, kEchoRequest = 8;
constexpr uint8_t kUnreachable = 3, kTimeExceeded = 11, kParameterProblem = 12;
constexpr uint16_t kMoreFragments = 0x2000, kOffsetMask = 0x1fff;

// Packet fields are big-endian; these read and write them on any alignment.
uint16_t load16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t load32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
void store16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
void store32(uint8_t* p, uint32_t v) {
  store16(p, uint16_t(v >> 16));
  store16(p + 2, uint16_t(v));
}

uint16_t fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(sum);
}

// RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), summed over every word a rewrite
// changes and applied to a checksum once.
class Delta {
 public:
  void add16(uint16_t from, uint16_t to) { sum_ += uint16_t(~from) + uint32_t{to}; }
  void add32(uint32_t from, uint32_t to) {
    add16(uint16_t(from >> 16), uint16_t(to >> 16));
    add16(uint16_t(from), uint16_t(to));
  }
  uint16_t apply(uint16_t csum) const { return uint16_t(~fold(uint16_t(~csum) + sum_)); }

 private:
  uint64_t sum_ = 0;
};

// Writes a field and records the change in every checksum that covers it.
// The field must sit at an even offset from the start of each checksummed
// region (all header fields do; see put16_odd for the exception).
template <typename... D>
void put16(uint8_t* p, uint16_t v, D&... sums) {
  const uint16_t old = load16(p);
  store16(p, v);
  (sums.add16(old, v), ...);
}
template <typename... D>
void put32(uint8_t* p, uint32_t v, D&... sums) {
  const uint32_t old = load32(p);
  store32(p, v);
  (sums.add32(old, v), ...);
}

// A TCP option's 16-bit value may sit at an odd offset: the checksum sees the
// two aligned words that straddle it. `base` starts the checksummed region
// and base[off + 2] must lie within it.
void put16_odd(uint8_t* base, uint32_t off, uint16_t v, Delta& sum) {
  uint8_t* w = base + off - 1;
  const uint16_t old0 = load16(w), old1 = load16(w + 2);
  store16(base + off, v);
  sum.add16(old0, load16(w));
  sum.add16(old1, load16(w + 2));
}

// The part of an IPv4 packet classify() and the rewriters rely on. `end` is
// where the bytes we may read stop: the total length, or the buffer's end
// when only part of the datagram is contiguous.
struct Ipv4 {
  uint32_t hlen = 0;
  uint32_t end = 0;
  uint8_t proto = 0;
  uint16_t frag = 0;

  uint32_t l4_len() const { return end - hlen; }
  bool later_fragment() const { return (frag & kOffsetMask) != 0; }
};

bool parse_ipv4(const uint8_t* ip, uint32_t len, Ipv4* h) {
  if (len < 20 || ip[0] >> 4 != 4) return false;
  h->hlen = (ip[0] & 0x0f) * 4u;
  const uint32_t total = load16(ip + 2);
  if (h->hlen < 20 || h->hlen > len || total < h->hlen) return false;
  h->end = std::min(len, total);
  h->proto = ip[9];
  h->frag = load16(ip + 6);
  return true;
}

bool is_echo(uint8_t type) { return type == kEchoRequest || type == kEchoReply; }
bool is_error(uint8_t type) {
  return type == kUnreachable || type == kTimeExceeded || type == kParameterProblem;
}

// Ports of a TCP/UDP header or an echo's identifier in FlowKey's convention.
FlowKey l4_key(const uint8_t* ip, const uint8_t* l4, uint8_t proto, uint16_t domain) {
  FlowKey k{load32(ip + 12), load32(ip + 16), 0, 0, domain, proto, FlowKey::kFlow};
  if (proto != kIcmp) {
    k.sport = load16(l4);
    k.dport = load16(l4 + 2);
  } else if (l4[0] == kEchoRequest) {
    k.sport = load16(l4 + 4);
  } else {
    k.dport = load16(l4 + 4);
  }
  return k;
}

// RFC 792: an error quotes the offending packet's IP header and at least the
// first 8 bytes of its payload; that packet went the other way, hence the
// mirror.
Class classify_error(const uint8_t* e, uint32_t elen, uint16_t domain, FlowKey* key) {
  if (elen < 20 || e[0] >> 4 != 4) return Class::kMalformed;
  const uint32_t ehlen = (e[0] & 0x0f) * 4u;
  if (ehlen < 20 || ehlen + 8 > elen) return Class::kMalformed;
  if ((load16(e + 6) & kOffsetMask) != 0) return Class::kUnsupported;  // no ports quoted
  const uint8_t proto = e[9];
  const uint8_t* el4 = e + ehlen;
  if (proto != kTcp && proto != kUdp && !(proto == kIcmp && is_echo(el4[0])))
    return Class::kUnsupported;  // includes RFC 1122 §3.2.2: no error about an error
  *key = l4_key(e, el4, proto, domain).mirrored();
  return Class::kIcmpError;
}

}  // namespace

FlowKey fragment_key(const uint8_t* ip, uint16_t domain) {
  return {load32(ip + 12), load32(ip + 16), load16(ip + 4), 0, domain, ip[9], FlowKey::kFragment};
}

Classified detail::classify_any(const uint8_t* ip, uint32_t len, uint16_t domain) {
  Classified c;
  Ipv4 h;
  if (!parse_ipv4(ip, len, &h)) return c;
  const bool known = h.proto == kTcp || h.proto == kUdp || h.proto == kIcmp;
  c.ip_id = load16(ip + 4);
  if (h.later_fragment()) {
    // Only fragments of datagrams we could translate wait for their first.
    c.what = known ? Class::kLaterFragment : Class::kUnsupported;
    if (known) c.key = fragment_key(ip, domain);
    return c;
  }
  if (!known) {
    c.what = Class::kUnsupported;
    return c;
  }

  const uint8_t* l4 = ip + h.hlen;
  const uint32_t l4len = h.l4_len();
  switch (h.proto) {
    case kTcp: {
      if (l4len < 20) return c;
      const uint32_t doff = (l4[12] >> 4) * 4u;
      if (doff < 20 || doff > l4len) return c;
      c.tcp_flags = l4[13];
      break;
    }
    case kUdp:
      if (l4len < 8) return c;
      break;
    case kIcmp:
      if (l4len < 8) return c;
      if (is_error(l4[0])) {
        c.what = classify_error(l4 + 8, l4len - 8, domain, &c.key);
        c.first_fragment = c.what == Class::kIcmpError && (h.frag & kMoreFragments);
        return c;
      }
      if (!is_echo(l4[0])) {
        c.what = Class::kUnsupported;
        return c;
      }
      break;
  }
  c.what = Class::kFlow;
  c.key = l4_key(ip, l4, h.proto, domain);
  c.first_fragment = h.frag & kMoreFragments;
  return c;
}

void detail::rewrite_any(uint8_t* ip, uint32_t len, const Rewrite& rw) {
  Ipv4 h;
  if (!parse_ipv4(ip, len, &h) || h.later_fragment()) return;
  uint8_t* l4 = ip + h.hlen;
  const uint32_t need = h.proto == kTcp ? 20 : 8;
  if (h.l4_len() < need) return;

  Delta ip_sum, l4_sum;  // the TCP/UDP pseudo header covers the addresses
  put32(ip + 12, rw.src, ip_sum, l4_sum);
  put32(ip + 16, rw.dst, ip_sum, l4_sum);
  store16(ip + 10, ip_sum.apply(load16(ip + 10)));

  switch (h.proto) {
    case kTcp:
      put16(l4, rw.sport, l4_sum);
      put16(l4 + 2, rw.dport, l4_sum);
      store16(l4 + 16, l4_sum.apply(load16(l4 + 16)));
      break;
    case kUdp: {
      put16(l4, rw.sport, l4_sum);
      put16(l4 + 2, rw.dport, l4_sum);
      const uint16_t sum = load16(l4 + 6);
      if (sum == 0) break;  // RFC 768: no checksum, and it stays so
      const uint16_t next = l4_sum.apply(sum);
      store16(l4 + 6, next == 0 ? 0xffff : next);  // RFC 768: 0 is sent as all ones
      break;
    }
    case kIcmp: {
      // No pseudo header (RFC 792): only the identifier counts.
      Delta icmp_sum;
      if (l4[0] == kEchoRequest)
        put16(l4 + 4, rw.sport, icmp_sum);
      else if (l4[0] == kEchoReply)
        put16(l4 + 4, rw.dport, icmp_sum);
      store16(l4 + 2, icmp_sum.apply(load16(l4 + 2)));
      break;
    }
  }
}

void rewrite_addresses(uint8_t* ip, const Rewrite& rw) {
  Delta ip_sum;
  put32(ip + 12, rw.src, ip_sum);
  put32(ip + 16, rw.dst, ip_sum);
  store16(ip + 10, ip_sum.apply(load16(ip + 10)));
}

void rewrite_icmp_error(uint8_t* ip, uint32_t len, const Rewrite& rw) {
  Ipv4 h;
  if (!parse_ipv4(ip, len, &h) || h.later_fragment() || h.proto != kIcmp) return;
  if (h.l4_len() < 8 + 20) return;
  uint8_t* icmp = ip + h.hlen;
  uint8_t* e = icmp + 8;
  const uint32_t ehlen = (e[0] & 0x0f) * 4u;
  if (ehlen < 20 || h.l4_len() < 8 + ehlen + 8) return;
  uint8_t* el4 = e + ehlen;
  const uint32_t quoted = h.l4_len() - 8 - ehlen;  // bytes of the embedded L4 header
  const uint8_t eproto = e[9];

  Delta outer_sum;
  put32(ip + 12, rw.src, outer_sum);
  put32(ip + 16, rw.dst, outer_sum);
  store16(ip + 10, outer_sum.apply(load16(ip + 10)));

  // The ICMP checksum covers the quoted bytes, so every change to them is
  // folded into it too. Their words sit at even offsets from the ICMP header
  // because the embedded IP header length is a multiple of 4.
  Delta icmp_sum, eip_sum, el4_sum;
  put32(e + 12, rw.dst, icmp_sum, eip_sum, el4_sum);
  put32(e + 16, rw.src, icmp_sum, eip_sum, el4_sum);
  put16(e + 10, eip_sum.apply(load16(e + 10)), icmp_sum);

  switch (eproto) {
    case kTcp:
      put16(el4, rw.dport, icmp_sum, el4_sum);
      put16(el4 + 2, rw.sport, icmp_sum, el4_sum);
      if (quoted >= 18) put16(el4 + 16, el4_sum.apply(load16(el4 + 16)), icmp_sum);
      break;
    case kUdp: {
      put16(el4, rw.dport, icmp_sum, el4_sum);
      put16(el4 + 2, rw.sport, icmp_sum, el4_sum);
      const uint16_t sum = load16(el4 + 6);
      if (sum == 0) break;
      const uint16_t next = el4_sum.apply(sum);
      put16(el4 + 6, next == 0 ? 0xffff : next, icmp_sum);
      break;
    }
    case kIcmp: {
      // The quoted echo went the other way: a request's identifier is its
      // sport (:= rw.dport), a reply's its dport (:= rw.sport).
      Delta echo_sum;
      if (el4[0] == kEchoRequest)
        put16(el4 + 4, rw.dport, icmp_sum, echo_sum);
      else if (el4[0] == kEchoReply)
        put16(el4 + 4, rw.sport, icmp_sum, echo_sum);
      put16(el4 + 2, echo_sum.apply(load16(el4 + 2)), icmp_sum);
      break;
    }
  }
  store16(icmp + 2, icmp_sum.apply(load16(icmp + 2)));
}

bool clamp_mss(uint8_t* ip, uint32_t len, uint16_t mss) {
  Ipv4 h;
  if (!parse_ipv4(ip, len, &h) || h.proto != kTcp || h.later_fragment()) return false;
  uint8_t* tcp = ip + h.hlen;
  if (h.l4_len() < 20 || !(tcp[13] & kSyn)) return false;
  const uint32_t doff = (tcp[12] >> 4) * 4u;
  if (doff < 20 || doff > h.l4_len()) return false;

  // RFC 9293 §3.2: kinds 0 and 1 are one byte, every other kind has a length.
  for (uint32_t i = 20; i < doff;) {
    const uint8_t kind = tcp[i];
    if (kind == 0) break;
    if (kind == 1) {
      ++i;
      continue;
    }
    if (i + 1 >= doff) break;
    const uint8_t olen = tcp[i + 1];
    if (olen < 2 || i + olen > doff) break;
    if (kind == 2 && olen == 4) {
      if (load16(tcp + i + 2) <= mss) return false;
      Delta sum;
      if ((i + 2) % 2 == 0)
        put16(tcp + i + 2, mss, sum);
      else
        put16_odd(tcp, i + 2, mss, sum);  // i + 4 <= doff, doff even: i + 5 <= doff
      store16(tcp + 16, sum.apply(load16(tcp + 16)));
      return true;
    }
    i += olen;
  }
  return false;
}

// The value is the checksum field as a host-order number (store it
// big-endian); `initial` is a partial sum such as a pseudo header's.
uint16_t checksum(const void* data, uint32_t len, uint32_t initial) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t sum = initial;
  uint32_t i = 0;
  for (; i + 1 < len; i += 2) sum += load16(p + i);
  if (i < len) sum += uint32_t{p[i]} << 8;  // RFC 1071: pad the odd byte with zero
  return uint16_t(~fold(sum));
}

bool recompute_checksums(uint8_t* ip, uint32_t len) {
  Ipv4 h;
  if (!parse_ipv4(ip, len, &h) || (h.frag & (kMoreFragments | kOffsetMask))) return false;
  if (load16(ip + 2) > len) return false;  // the whole datagram is needed
  uint8_t* l4 = ip + h.hlen;
  const uint32_t l4len = h.l4_len();
  // RFC 9293 §3.1 / RFC 768: source, destination, zero, protocol, length.
  auto pseudo = [&](uint32_t length) {
    return uint32_t{load16(ip + 12)} + load16(ip + 14) + load16(ip + 16) + load16(ip + 18) +
           h.proto + length;
  };
  switch (h.proto) {
    case kTcp:
      if (l4len < 20) return false;
      store16(l4 + 16, 0);
      store16(l4 + 16, checksum(l4, l4len, pseudo(l4len)));
      break;
    case kUdp: {
      if (l4len < 8) return false;
      const uint16_t ulen = load16(l4 + 4);
      if (ulen < 8 || ulen > l4len) return false;
      if (load16(l4 + 6) == 0) break;  // no checksum stays no checksum
      store16(l4 + 6, 0);
      const uint16_t sum = checksum(l4, ulen, pseudo(ulen));
      store16(l4 + 6, sum == 0 ? 0xffff : sum);
      break;
    }
    case kIcmp:
      if (l4len < 8) return false;
      store16(l4 + 2, 0);
      store16(l4 + 2, checksum(l4, l4len));
      break;
    default:
      return false;
  }
  store16(ip + 10, 0);
  store16(ip + 10, checksum(ip, h.hlen));
  return true;
}

}  // namespace tether::nat
