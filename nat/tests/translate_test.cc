#include "nat/translate.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

namespace tether::nat {
namespace {

using Bytes = std::vector<uint8_t>;

uint16_t get16(const Bytes& b, size_t off) { return uint16_t(b[off] << 8 | b[off + 1]); }
uint32_t get32(const Bytes& b, size_t off) {
  return uint32_t{get16(b, off)} << 16 | get16(b, off + 2);
}
void set16(Bytes& b, size_t off, uint16_t v) {
  b[off] = uint8_t(v >> 8);
  b[off + 1] = uint8_t(v);
}
void set32(Bytes& b, size_t off, uint32_t v) {
  set16(b, off, uint16_t(v >> 16));
  set16(b, off + 2, uint16_t(v));
}
Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// The fields of the IPv4 header a test varies.
struct Ip {
  uint32_t src = 0x0a000001;
  uint32_t dst = 0xc6336401;
  uint8_t proto = kUdp;
  uint16_t id = 0x1234;
  uint16_t frag = 0;  // flags and offset
  uint8_t ttl = 64;
  uint8_t option_words = 0;  // NOP options
};

// An IPv4 packet with checksum fields zero.
Bytes ipv4(const Ip& f, const Bytes& l4) {
  const size_t hlen = 20 + 4 * size_t{f.option_words};
  Bytes p(hlen, 1);  // options are NOPs
  p[0] = uint8_t(0x40 | hlen / 4);
  p[1] = 0;
  set16(p, 2, uint16_t(hlen + l4.size()));
  set16(p, 4, f.id);
  set16(p, 6, f.frag);
  p[8] = f.ttl;
  p[9] = f.proto;
  set16(p, 10, 0);
  set32(p, 12, f.src);
  set32(p, 16, f.dst);
  return cat(p, l4);
}

enum class Kind { kTcp, kUdp, kUdpNoSum, kEchoRequest, kEchoReply };

// A TCP, UDP or echo packet, its ports in FlowKey's convention: an echo
// request's identifier is `sport`, a reply's `dport`.
struct Spec {
  Kind kind = Kind::kUdp;
  Ip ip;
  uint16_t sport = 40000;
  uint16_t dport = 53;
  uint8_t tcp_flags = kAck;
  Bytes tcp_options;  // a multiple of 4 bytes
  uint32_t seq = 0x01020304;
  Bytes payload;
};

uint8_t proto_of(Kind k) {
  return k == Kind::kTcp ? kTcp : (k == Kind::kUdp || k == Kind::kUdpNoSum) ? kUdp : kIcmp;
}

// The packet with valid checksums.
Bytes build(const Spec& s) {
  Bytes l4;
  switch (s.kind) {
    case Kind::kTcp:
      l4.assign(20, 0);
      set16(l4, 0, s.sport);
      set16(l4, 2, s.dport);
      set32(l4, 4, s.seq);
      set32(l4, 8, ~s.seq);
      l4[12] = uint8_t((20 + s.tcp_options.size()) / 4 << 4);
      l4[13] = s.tcp_flags;
      set16(l4, 14, 65535);
      l4 = cat(l4, s.tcp_options);
      break;
    case Kind::kUdp:
    case Kind::kUdpNoSum:
      l4.assign(8, 0);
      set16(l4, 0, s.sport);
      set16(l4, 2, s.dport);
      set16(l4, 4, uint16_t(8 + s.payload.size()));
      set16(l4, 6, s.kind == Kind::kUdp ? 0xffff : 0);  // recompute keeps 0 as "none"
      break;
    case Kind::kEchoRequest:
    case Kind::kEchoReply:
      l4.assign(8, 0);
      l4[0] = s.kind == Kind::kEchoRequest ? 8 : 0;
      set16(l4, 4, s.kind == Kind::kEchoRequest ? s.sport : s.dport);
      set16(l4, 6, uint16_t(s.seq));
      break;
  }
  Ip ip = s.ip;
  ip.proto = proto_of(s.kind);
  Bytes p = ipv4(ip, cat(l4, s.payload));
  EXPECT_TRUE(recompute_checksums(p.data(), uint32_t(p.size())));
  return p;
}

FlowKey key_of(const Spec& s, uint16_t domain) {
  FlowKey k{s.ip.src, s.ip.dst, s.sport, s.dport, domain, proto_of(s.kind), FlowKey::kFlow};
  if (s.kind == Kind::kEchoRequest) k.dport = 0;
  if (s.kind == Kind::kEchoReply) k.sport = 0;
  return k;
}

// What a packet of `s` becomes under rw.
Spec rewritten(Spec s, const Rewrite& rw) {
  s.ip.src = rw.src;
  s.ip.dst = rw.dst;
  s.sport = rw.sport;
  s.dport = rw.dport;
  return s;
}

// An embedded packet goes the other way: it becomes rw's mirror image.
Spec rewritten_embedded(Spec s, const Rewrite& rw) {
  s.ip.src = rw.dst;
  s.ip.dst = rw.src;
  s.sport = rw.dport;
  s.dport = rw.sport;
  return s;
}

struct Error {
  Ip ip;  // outer
  uint8_t type = 3, code = 3;
  uint32_t rest = 0;  // the ICMP header's second word
  Spec embedded;
  size_t quote = 0;  // bytes of the embedded packet quoted; 0: all
};

Bytes build(const Error& e) {
  Bytes inner = build(e.embedded);
  if (e.quote != 0) inner.resize(e.quote);
  Bytes icmp(8, 0);
  icmp[0] = e.type;
  icmp[1] = e.code;
  set32(icmp, 4, e.rest);
  Ip ip = e.ip;
  ip.proto = kIcmp;
  Bytes p = ipv4(ip, cat(icmp, inner));
  EXPECT_TRUE(recompute_checksums(p.data(), uint32_t(p.size())));
  return p;
}

class Random {
 public:
  explicit Random(uint64_t seed) : rng_(seed) {}
  uint64_t next() { return rng_(); }
  uint32_t below(uint32_t n) { return uint32_t(rng_() % n); }
  uint16_t u16() { return uint16_t(rng_()); }
  uint32_t u32() { return uint32_t(rng_()); }
  Bytes bytes(size_t n) {
    Bytes b(n);
    for (auto& x : b) x = uint8_t(rng_());
    return b;
  }
  Ip ip() {
    Ip f;
    f.src = u32();
    f.dst = u32();
    f.id = u16();
    f.ttl = uint8_t(1 + below(255));
    f.option_words = below(4) == 0 ? uint8_t(1 + below(3)) : 0;  // robustness beyond IHL 5
    return f;
  }
  Spec spec(Kind kind, size_t max_payload) {
    Spec s;
    s.kind = kind;
    s.ip = ip();
    s.sport = u16();
    s.dport = u16();
    s.tcp_flags = uint8_t(rng_());
    s.tcp_options = bytes(4 * below(4));
    s.seq = u32();
    s.payload = bytes(below(uint32_t(max_payload) + 1));  // odd lengths included
    return s;
  }
  Rewrite rewrite() {
    Rewrite rw{u32(), u32(), u16(), u16(), u16()};
    if (below(8) == 0) rw.sport = 0;
    if (below(8) == 0) rw.dport = 0xffff;
    return rw;
  }

 private:
  std::mt19937_64 rng_;
};

constexpr Kind kKinds[] = {Kind::kTcp, Kind::kUdp, Kind::kUdpNoSum, Kind::kEchoRequest,
                           Kind::kEchoReply};

Classified classify(const Bytes& p, uint16_t domain = 7) {
  return nat::classify(p.data(), uint32_t(p.size()), domain);
}

// ---- rewrite(): every checksum equals a full recomputation ----

TEST(Rewrite, RandomPacketsMatchFullRecomputation) {
  Random r(1);
  for (int i = 0; i < 20000; ++i) {
    SCOPED_TRACE(i);
    const Spec s = r.spec(kKinds[i % 5], 300);
    Bytes p = build(s);
    const Classified c = classify(p);
    ASSERT_EQ(c.what, Class::kFlow);
    ASSERT_EQ(c.key, key_of(s, 7));
    ASSERT_FALSE(c.first_fragment);

    const Rewrite rw = r.rewrite();
    rewrite(p.data(), uint32_t(p.size()), rw);
    const Spec want = rewritten(s, rw);
    ASSERT_EQ(p, build(want));
    if (s.kind == Kind::kUdpNoSum) {
      ASSERT_EQ(get16(p, 20 + 4 * s.ip.option_words + 6), 0);
    }
    EXPECT_EQ(classify(p).key, key_of(want, 7));
  }
}

TEST(Rewrite, EchoIdentifierFollowsTheKeyConvention) {
  Spec req;
  req.kind = Kind::kEchoRequest;
  req.sport = 0x1111;
  Bytes p = build(req);
  rewrite(p.data(), uint32_t(p.size()), Rewrite{1, 2, 0x2222, 0x3333, 0});
  EXPECT_EQ(get16(p, 24), 0x2222);

  Spec rep;
  rep.kind = Kind::kEchoReply;
  rep.dport = 0x1111;
  p = build(rep);
  rewrite(p.data(), uint32_t(p.size()), Rewrite{1, 2, 0x2222, 0x3333, 0});
  EXPECT_EQ(get16(p, 24), 0x3333);
}

TEST(Rewrite, UdpChecksumThatBecomesZeroIsSentAsAllOnes) {
  // Search for a rewrite whose full checksum is 0: RFC 768 transmits 0xffff.
  Random r(2);
  int found = 0;
  for (int i = 0; i < 2000000 && found < 3; ++i) {
    Spec s;
    s.payload = {1, 2, 3};
    Bytes p = build(s);
    const Rewrite rw{0x0a000001, 0xc6336401, r.u16(), r.u16(), 0};
    Spec want = rewritten(s, rw);
    Bytes q = build(want);
    if (get16(q, 26) != 0xffff) continue;
    ++found;
    rewrite(p.data(), uint32_t(p.size()), rw);
    EXPECT_EQ(get16(p, 26), 0xffff);
    EXPECT_EQ(p, q);
  }
  EXPECT_EQ(found, 3);
}

TEST(Rewrite, FirstFragmentKeepsTheDatagramChecksumRight) {
  Random r(3);
  for (int round = 0; round < 50; ++round) {
    SCOPED_TRACE(round);
    Spec s = r.spec(round % 2 ? Kind::kUdp : Kind::kTcp, 0);
    s.ip.option_words = 0;
    s.payload = r.bytes(2000 + r.below(3000));
    const Bytes whole = build(s);
    const Bytes l4(whole.begin() + 20, whole.end());

    // Fragments of 1480 bytes (a multiple of 8), the last one shorter.
    std::vector<Bytes> frags;
    for (size_t off = 0; off < l4.size(); off += 1480) {
      const size_t n = std::min<size_t>(1480, l4.size() - off);
      Ip ip = s.ip;
      ip.proto = proto_of(s.kind);
      ip.frag = uint16_t(off / 8 | (off + n < l4.size() ? 0x2000 : 0));
      Bytes f = ipv4(ip, Bytes(l4.begin() + off, l4.begin() + off + n));
      set16(f, 10, checksum(f.data(), 20));
      frags.push_back(f);
    }
    ASSERT_GE(frags.size(), 2u);

    const Classified first = classify(frags[0]);
    ASSERT_EQ(first.what, Class::kFlow);
    EXPECT_TRUE(first.first_fragment);
    EXPECT_EQ(first.ip_id, s.ip.id);
    EXPECT_EQ(first.key, key_of(s, 7));
    const FlowKey fkey = fragment_key(frags[0].data(), 7);
    for (size_t i = 1; i < frags.size(); ++i) {
      const Classified later = classify(frags[i]);
      ASSERT_EQ(later.what, Class::kLaterFragment);
      EXPECT_EQ(later.key, fkey);
    }

    const Rewrite rw = r.rewrite();
    rewrite(frags[0].data(), uint32_t(frags[0].size()), rw);
    for (size_t i = 1; i < frags.size(); ++i) rewrite_addresses(frags[i].data(), rw);
    for (const Bytes& f : frags) EXPECT_EQ(checksum(f.data(), 20), 0);  // header verifies

    Bytes joined(frags[0].begin(), frags[0].begin() + 20);
    for (const Bytes& f : frags) joined.insert(joined.end(), f.begin() + 20, f.end());
    set16(joined, 2, uint16_t(joined.size()));
    set16(joined, 6, 0);
    set16(joined, 10, 0);
    set16(joined, 10, checksum(joined.data(), 20));
    EXPECT_EQ(joined, build(rewritten(s, rw)));
  }
}

TEST(Rewrite, LaterFragmentAddresses) {
  Ip ip;
  ip.frag = 185;
  Bytes p = ipv4(ip, Bytes(64, 0xab));
  set16(p, 10, checksum(p.data(), 20));
  rewrite_addresses(p.data(), Rewrite{0x01020304, 0x05060708, 1, 2, 3});
  EXPECT_EQ(get32(p, 12), 0x01020304u);
  EXPECT_EQ(get32(p, 16), 0x05060708u);
  EXPECT_EQ(checksum(p.data(), 20), 0);
  EXPECT_EQ(Bytes(p.begin() + 20, p.end()), Bytes(64, 0xab));
}

// ---- rewrite_icmp_error() ----

// Builds the error rewrite_icmp_error() must produce: the embedded packet
// rebuilt whole with its new fields (so its checksums are those of the
// original full packet), then quoted.
Bytes expected_error(const Error& e, const Rewrite& rw, const Bytes& before) {
  Error want = e;
  want.ip.src = rw.src;
  want.ip.dst = rw.dst;
  want.embedded = rewritten_embedded(e.embedded, rw);
  Bytes p = build(want);
  // A quote that ends inside the TCP checksum leaves its one byte alone: the
  // other byte is needed to update it.
  const size_t ehlen = 20 + 4 * size_t{e.embedded.ip.option_words};
  const size_t at = 20 + 4 * size_t{e.ip.option_words} + 8 + ehlen + 16;
  if (e.embedded.kind == Kind::kTcp && e.quote == ehlen + 17) {
    p[at] = before[at];
    EXPECT_TRUE(recompute_checksums(p.data(), uint32_t(p.size())));
  }
  return p;
}

TEST(RewriteIcmpError, RandomErrorsMatchFullRecomputation) {
  Random r(4);
  constexpr uint8_t kTypes[] = {3, 11, 12};
  for (int i = 0; i < 20000; ++i) {
    SCOPED_TRACE(i);
    Error e;
    e.ip = r.ip();
    e.type = kTypes[r.below(3)];
    e.code = uint8_t(r.below(16));
    e.rest = r.below(2) ? 0 : r.u32();
    e.embedded = r.spec(kKinds[i % 5], 100);
    e.embedded.ip.option_words = uint8_t(r.below(2));
    const size_t ehlen = 20 + 4 * size_t{e.embedded.ip.option_words};
    const size_t full = build(e.embedded).size();
    switch (r.below(3)) {
      case 0:
        e.quote = ehlen + 8;  // RFC 792's minimum
        break;
      case 1:
        e.quote = full;  // RFC 1812 §4.3.2.3: as much as fits
        break;
      default:
        e.quote = ehlen + 8 + r.below(uint32_t(full - ehlen - 8) + 1);
    }
    Bytes p = build(e);
    const Classified c = classify(p);
    ASSERT_EQ(c.what, Class::kIcmpError);
    ASSERT_EQ(c.key, key_of(e.embedded, 7).mirrored());

    const Bytes before = p;
    const Rewrite rw = r.rewrite();
    rewrite_icmp_error(p.data(), uint32_t(p.size()), rw);
    ASSERT_EQ(p, expected_error(e, rw, before))
        << "kind " << int(e.embedded.kind) << " quote " << e.quote << " of " << full;
  }
}

TEST(RewriteIcmpError, QuotedEchoIdentifierIsTheMirror) {
  // An error about our translated echo request N -> S (id 0x2222) goes back
  // to the client C whose request had id 0x1111: the session's orig side is
  // {C, S, 0x1111, 0}, so rw = toward(orig) = {S, C, 0, 0x1111}.
  const FlowKey orig{0x0a000005, 0x08080808, 0x1111, 0, 1, kIcmp, FlowKey::kFlow};
  const Rewrite rw = Rewrite::toward(orig);
  Error e;
  e.ip.src = 0xc0000201;  // a router
  e.ip.dst = 0xcb007101;  // N
  e.type = 11;
  e.embedded.kind = Kind::kEchoRequest;
  e.embedded.ip.src = 0xcb007101;
  e.embedded.ip.dst = 0x08080808;
  e.embedded.sport = 0x2222;
  Bytes p = build(e);
  EXPECT_EQ(classify(p).key,
            (FlowKey{0x08080808, 0xcb007101, 0, 0x2222, 7, kIcmp, FlowKey::kFlow}));
  rewrite_icmp_error(p.data(), uint32_t(p.size()), rw);
  EXPECT_EQ(get32(p, 16), 0x0a000005u);       // outer dst: the client
  EXPECT_EQ(get32(p, 28 + 12), 0x0a000005u);  // embedded src: the client
  EXPECT_EQ(get32(p, 28 + 16), 0x08080808u);  // embedded dst: unchanged
  EXPECT_EQ(get16(p, 28 + 20 + 4), 0x1111);   // the client's identifier

  // The other way: S pinged N (id 0x4444), which went to C as id 0x3333;
  // C's reply left as N -> S with id 0x4444 and an error about it matches
  // the orig side {S, N, 0x4444, 0}. The other side is the reply side
  // {C, S, 0, 0x3333}: the quoted reply must get back C's id 0x3333.
  const FlowKey reply{0x0a000005, 0x08080808, 0, 0x3333, 1, kIcmp, FlowKey::kFlow};
  Error e2 = e;
  e2.embedded.kind = Kind::kEchoReply;
  e2.embedded.sport = 0;
  e2.embedded.dport = 0x4444;
  p = build(e2);
  EXPECT_EQ(classify(p).key,
            (FlowKey{0x08080808, 0xcb007101, 0x4444, 0, 7, kIcmp, FlowKey::kFlow}));
  rewrite_icmp_error(p.data(), uint32_t(p.size()), Rewrite::toward(reply));
  EXPECT_EQ(get32(p, 28 + 12), 0x0a000005u);
  EXPECT_EQ(get16(p, 28 + 20 + 4), 0x3333);
}

TEST(RewriteIcmpError, EmbeddedUdpWithoutChecksumStaysWithout) {
  Error e;
  e.embedded.kind = Kind::kUdpNoSum;
  e.embedded.payload = {1, 2, 3, 4};
  Bytes p = build(e);
  rewrite_icmp_error(p.data(), uint32_t(p.size()), Rewrite{1, 2, 3, 4, 5});
  EXPECT_EQ(get16(p, 28 + 20 + 6), 0);
  EXPECT_EQ(get16(p, 28 + 20), 4);
  EXPECT_EQ(get16(p, 28 + 20 + 2), 3);
  Bytes q = p;
  ASSERT_TRUE(recompute_checksums(q.data(), uint32_t(q.size())));
  EXPECT_EQ(p, q);
}

// ---- classify() ----

TEST(Classify, Flows) {
  Spec s;
  s.kind = Kind::kTcp;
  s.tcp_flags = kSyn | kAck;
  Classified c = classify(build(s), 9);
  EXPECT_EQ(c.what, Class::kFlow);
  EXPECT_EQ(c.key, (FlowKey{0x0a000001, 0xc6336401, 40000, 53, 9, kTcp, FlowKey::kFlow}));
  EXPECT_EQ(c.tcp_flags, kSyn | kAck);
  EXPECT_EQ(c.ip_id, 0x1234);

  s.kind = Kind::kUdp;
  c = classify(build(s), 9);
  EXPECT_EQ(c.what, Class::kFlow);
  EXPECT_EQ(c.key, (FlowKey{0x0a000001, 0xc6336401, 40000, 53, 9, kUdp, FlowKey::kFlow}));

  s.kind = Kind::kEchoRequest;
  c = classify(build(s), 9);
  EXPECT_EQ(c.what, Class::kFlow);
  EXPECT_EQ(c.key, (FlowKey{0x0a000001, 0xc6336401, 40000, 0, 9, kIcmp, FlowKey::kFlow}));

  s.kind = Kind::kEchoReply;
  c = classify(build(s), 9);
  EXPECT_EQ(c.what, Class::kFlow);
  EXPECT_EQ(c.key, (FlowKey{0x0a000001, 0xc6336401, 0, 53, 9, kIcmp, FlowKey::kFlow}));
}

TEST(Classify, RequestAndReplyAreMirrors) {
  Spec req;
  req.kind = Kind::kEchoRequest;
  req.sport = 77;
  Spec rep = req;
  rep.kind = Kind::kEchoReply;
  std::swap(rep.ip.src, rep.ip.dst);
  rep.dport = 77;
  EXPECT_EQ(classify(build(req)).key.mirrored(), classify(build(rep)).key);
}

TEST(Classify, IcmpErrors) {
  for (uint8_t type : {3, 11, 12}) {
    for (Kind kind : kKinds) {
      Error e;
      e.type = type;
      e.embedded.kind = kind;
      e.embedded.ip.src = 0xcb007101;
      e.embedded.ip.dst = 0x08080808;
      const Classified c = classify(build(e), 3);
      EXPECT_EQ(c.what, Class::kIcmpError);
      EXPECT_EQ(c.key, key_of(e.embedded, 3).mirrored());
      EXPECT_EQ(c.key.src, 0x08080808u);
      EXPECT_FALSE(c.first_fragment);
    }
  }
}

TEST(Classify, Unsupported) {
  Spec s;
  s.kind = Kind::kEchoRequest;
  for (uint8_t type : {5, 13, 14, 9, 10, 4, 42}) {
    Bytes p = build(s);
    p[20] = type;
    ASSERT_TRUE(recompute_checksums(p.data(), uint32_t(p.size())));
    EXPECT_EQ(classify(p).what, Class::kUnsupported) << int(type);
  }
  for (uint8_t proto : {47, 50, 132, 58}) {
    Ip ip;
    ip.proto = proto;
    EXPECT_EQ(classify(ipv4(ip, Bytes(40, 0))).what, Class::kUnsupported) << int(proto);
    ip.frag = 100;  // a later fragment of a protocol we cannot translate
    EXPECT_EQ(classify(ipv4(ip, Bytes(40, 0))).what, Class::kUnsupported) << int(proto);
  }

  // An error about an error (RFC 1122 §3.2.2), or about another protocol.
  Error inner;
  inner.embedded.kind = Kind::kUdp;
  Bytes err = build(inner);
  Ip outer;
  outer.proto = kIcmp;
  Bytes icmp = {11, 0, 0, 0, 0, 0, 0, 0};
  Bytes p = ipv4(outer, cat(icmp, err));
  EXPECT_EQ(classify(p).what, Class::kUnsupported);

  Ip gre;
  gre.proto = 47;
  p = ipv4(outer, cat(icmp, ipv4(gre, Bytes(8, 0))));
  EXPECT_EQ(classify(p).what, Class::kUnsupported);

  // About a later fragment: no ports quoted.
  Ip frag;
  frag.proto = kUdp;
  frag.frag = 10;
  p = ipv4(outer, cat(icmp, ipv4(frag, Bytes(8, 0))));
  EXPECT_EQ(classify(p).what, Class::kUnsupported);
}

TEST(Classify, Fragments) {
  Ip udp;
  udp.frag = 0x2000;  // MF, offset 0
  Bytes first = ipv4(udp, Bytes(72, 0));
  set16(first, 20, 1000);
  set16(first, 22, 2000);
  Classified c = classify(first, 4);
  EXPECT_EQ(c.what, Class::kFlow);
  EXPECT_TRUE(c.first_fragment);
  EXPECT_EQ(c.ip_id, 0x1234);
  EXPECT_EQ(c.key, (FlowKey{0x0a000001, 0xc6336401, 1000, 2000, 4, kUdp, FlowKey::kFlow}));

  for (uint16_t frag : {0x2001, 0x0001, 0x1fff, 0x3fff}) {
    Ip ip = udp;
    ip.proto = kUdp;
    ip.frag = frag;
    c = classify(ipv4(ip, Bytes(16, 0)), 4);
    EXPECT_EQ(c.what, Class::kLaterFragment);
    EXPECT_EQ(c.key, (FlowKey{0x0a000001, 0xc6336401, 0x1234, 0, 4, kUdp, FlowKey::kFragment}));
    EXPECT_EQ(c.key, fragment_key(first.data(), 4));
  }
  // A later fragment needs no more than its IP header.
  Ip ip = udp;
  ip.proto = kTcp;
  ip.frag = 3;
  EXPECT_EQ(classify(ipv4(ip, {})).what, Class::kLaterFragment);

  // A fragmented ICMP error: the first is an error, the rest wait for it.
  Error e;
  e.embedded.kind = Kind::kTcp;
  Bytes err = build(e);
  set16(err, 6, 0x2000);
  c = classify(err);
  EXPECT_EQ(c.what, Class::kIcmpError);
  EXPECT_TRUE(c.first_fragment);
  Ip later = e.ip;
  later.proto = kIcmp;
  later.frag = 5;
  EXPECT_EQ(classify(ipv4(later, Bytes(30, 0))).what, Class::kLaterFragment);
}

TEST(Classify, Malformed) {
  Spec s;
  s.kind = Kind::kTcp;
  const Bytes good = build(s);
  for (uint8_t doff : {0, 1, 4, 6, 15}) {  // < 5, or past the segment
    Bytes p = good;
    p[32] = uint8_t(doff << 4);
    EXPECT_EQ(classify(p).what, Class::kMalformed) << int(doff);
  }
  Bytes p = good;
  p[0] = 0x44;  // IHL 4
  EXPECT_EQ(classify(p).what, Class::kMalformed);
  p = good;
  p[0] = 0x65;  // version 6
  EXPECT_EQ(classify(p).what, Class::kMalformed);
  p = good;
  set16(p, 2, 19);  // total length shorter than the header
  EXPECT_EQ(classify(p).what, Class::kMalformed);
  p = good;
  set16(p, 2, 30);  // total length cuts the TCP header
  EXPECT_EQ(classify(p).what, Class::kMalformed);
  p = good;
  p[0] = 0x4f;  // IHL past the buffer
  EXPECT_EQ(classify(p).what, Class::kMalformed);

  // Embedded header with IHL < 5, or with IHL pushing the ports out.
  Error e;
  e.embedded.kind = Kind::kUdp;
  Bytes err = build(e);
  err[28] = 0x43;
  EXPECT_EQ(classify(err).what, Class::kMalformed);
  err[28] = 0x47;
  EXPECT_EQ(classify(err).what, Class::kMalformed);
}

// Every prefix of a valid packet: shorter than its headers is malformed,
// otherwise the same answer; the copies are exactly sized so a sanitizer
// sees any read past them.
void check_prefixes(const Bytes& p, uint32_t needed) {
  const Classified full = classify(p);
  ASSERT_NE(full.what, Class::kMalformed);
  for (uint32_t len = 0; len <= p.size(); ++len) {
    SCOPED_TRACE(len);
    auto buf = std::make_unique<uint8_t[]>(len);
    std::copy(p.begin(), p.begin() + len, buf.get());
    const Classified c = nat::classify(buf.get(), len, 7);
    if (len < needed) {
      EXPECT_EQ(c.what, Class::kMalformed);
    } else {
      EXPECT_EQ(c.what, full.what);
      EXPECT_EQ(c.key, full.key);
    }
    // The rewriters must not read or write past the buffer either.
    rewrite(buf.get(), len, Rewrite{1, 2, 3, 4, 5});
    rewrite_icmp_error(buf.get(), len, Rewrite{1, 2, 3, 4, 5});
    clamp_mss(buf.get(), len, 500);
    recompute_checksums(buf.get(), len);
  }
}

TEST(Classify, EveryPrefixLength) {
  Spec s;
  s.payload = Bytes(13, 9);
  s.kind = Kind::kTcp;
  s.tcp_options = {2, 4, 5, 0xb4, 1, 1, 4, 2};
  check_prefixes(build(s), 20 + 28);
  s.kind = Kind::kUdp;
  check_prefixes(build(s), 28);
  s.kind = Kind::kEchoRequest;
  check_prefixes(build(s), 28);
  s.ip.option_words = 2;
  check_prefixes(build(s), 36);

  Error e;
  e.embedded.kind = Kind::kTcp;
  e.embedded.payload = Bytes(10, 1);
  check_prefixes(build(e), 20 + 8 + 20 + 8);
  e.embedded.ip.option_words = 1;
  e.ip.option_words = 1;
  check_prefixes(build(e), 24 + 8 + 24 + 8);

  Ip later;
  later.proto = kUdp;
  later.frag = 7;
  check_prefixes(ipv4(later, Bytes(20, 3)), 20);
}

// ---- clamp_mss() ----

Spec syn(Bytes options) {
  Spec s;
  s.kind = Kind::kTcp;
  s.tcp_flags = kSyn;
  s.tcp_options = std::move(options);
  s.payload = {};
  return s;
}

TEST(ClampMss, LowersALargerMss) {
  Bytes p = build(syn({2, 4, 0x05, 0xb4, 1, 1, 4, 2}));  // 1460
  EXPECT_TRUE(clamp_mss(p.data(), uint32_t(p.size()), 1400));
  EXPECT_EQ(p, build(syn({2, 4, 0x05, 0x78, 1, 1, 4, 2})));
}

TEST(ClampMss, MssAtAnOddOffset) {
  Bytes p = build(syn({1, 2, 4, 0x05, 0xb4, 1, 1, 1}));
  EXPECT_TRUE(clamp_mss(p.data(), uint32_t(p.size()), 1360));
  EXPECT_EQ(p, build(syn({1, 2, 4, 0x05, 0x50, 1, 1, 1})));

  p = build(syn({1, 1, 1, 2, 4, 0xff, 0xff, 0}));  // ends at the header's last byte
  EXPECT_TRUE(clamp_mss(p.data(), uint32_t(p.size()), 0x0102));
  EXPECT_EQ(p, build(syn({1, 1, 1, 2, 4, 0x01, 0x02, 0})));
}

TEST(ClampMss, SynAckToo) {
  Spec s = syn({2, 4, 0x23, 0x28});
  s.tcp_flags = kSyn | kAck;
  Bytes p = build(s);
  EXPECT_TRUE(clamp_mss(p.data(), uint32_t(p.size()), 1400));
  s.tcp_options = {2, 4, 0x05, 0x78};
  EXPECT_EQ(p, build(s));
}

TEST(ClampMss, LeavesOthersAlone) {
  auto unchanged = [](const Spec& s, uint16_t mss) {
    Bytes p = build(s);
    const Bytes before = p;
    EXPECT_FALSE(clamp_mss(p.data(), uint32_t(p.size()), mss));
    EXPECT_EQ(p, before);
  };
  unchanged(syn({2, 4, 0x04, 0xb0}), 1400);              // smaller (1200)
  unchanged(syn({2, 4, 0x05, 0x78}), 1400);              // equal
  unchanged(syn({}), 1400);                              // no options
  unchanged(syn({1, 1, 4, 2}), 1400);                    // no MSS option
  unchanged(syn({0, 0, 0, 0, 2, 4, 0x05, 0xb4}), 1400);  // after the end of options
  unchanged(syn({3, 0, 2, 4, 0x05, 0xb4, 0, 0}), 1400);  // length 0: stop
  unchanged(syn({3, 1, 2, 4, 0x05, 0xb4, 0, 0}), 1400);  // length 1: stop
  unchanged(syn({3, 9, 2, 4, 0x05, 0xb4, 0, 0}), 1400);  // length past the header
  unchanged(syn({2, 3, 0x05, 0xb4}), 1400);              // MSS of the wrong length
  unchanged(syn({1, 1, 1, 2}), 1400);                    // kind with no length byte
  Spec ack = syn({2, 4, 0x05, 0xb4});
  ack.tcp_flags = kAck;
  unchanged(ack, 1400);
  Spec udp;
  unchanged(udp, 1400);
}

TEST(ClampMss, RandomOptionsKeepTheChecksumValid) {
  Random r(5);
  for (int i = 0; i < 20000; ++i) {
    SCOPED_TRACE(i);
    Spec s = syn(r.bytes(4 * r.below(11)));
    // Often plant an MSS option somewhere.
    if (!s.tcp_options.empty() && r.below(2)) {
      const size_t at = r.below(uint32_t(s.tcp_options.size()));
      for (size_t j = 0; j < at; ++j) s.tcp_options[j] = 1;
      const uint8_t mss[] = {2, 4, uint8_t(r.next()), uint8_t(r.next())};
      for (size_t j = 0; j < 4 && at + j < s.tcp_options.size(); ++j)
        s.tcp_options[at + j] = mss[j];
    }
    s.payload = r.bytes(r.below(40));
    Bytes p = build(s);
    clamp_mss(p.data(), uint32_t(p.size()), uint16_t(r.below(3000)));
    Bytes q = p;
    ASSERT_TRUE(recompute_checksums(q.data(), uint32_t(q.size())));
    ASSERT_EQ(p, q);
  }
}

// ---- checksum() ----

TEST(Checksum, Rfc1071Example) {
  // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
  const uint8_t data[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  EXPECT_EQ(checksum(data, 8), uint16_t(~0xddf2));
  EXPECT_EQ(checksum(data, 3), uint16_t(~(0x0001 + 0xf200)));
  EXPECT_EQ(checksum(data, 0), 0xffff);
  EXPECT_EQ(checksum(data, 0, 0x1234), uint16_t(~0x1234));
}

TEST(Checksum, RecomputeRefusesFragmentsAndOthers) {
  Ip ip;
  ip.proto = kUdp;
  ip.frag = 0x2000;
  Bytes p = ipv4(ip, Bytes(8, 0));
  EXPECT_FALSE(recompute_checksums(p.data(), uint32_t(p.size())));
  ip.proto = 47;
  ip.frag = 0;
  p = ipv4(ip, Bytes(8, 0));
  EXPECT_FALSE(recompute_checksums(p.data(), uint32_t(p.size())));
}

}  // namespace
}  // namespace tether::nat
