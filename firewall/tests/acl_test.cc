#include "firewall/acl.h"

#include <rte_memory.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace tether::fw {
namespace {

constexpr uint8_t kIcmp = 1, kTcp = 6, kUdp = 17;

Ipv4 ip(const char* text) {
  auto a = parse_ipv4(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(0);
}

Ipv4Prefix pfx(const char* text) {
  auto p = parse_prefix(text);
  EXPECT_TRUE(p.has_value()) << text;
  return p.value_or(Ipv4Prefix{});
}

std::unique_ptr<Classifier> compile_ok(const std::vector<Rule>& rules) {
  std::string error;
  auto c = Classifier::compile(rules, SOCKET_ID_ANY, &error);
  EXPECT_NE(c, nullptr) << error;
  return c;
}

uint32_t classify_one(const Classifier& c, const AclKey& k) {
  const AclKey* p = &k;
  uint32_t result = 0xdeadbeef;  // never a valid answer: proves classify wrote it
  c.classify(&p, &result, 1);
  return result;
}

// classify() and the linear reference must agree; returns the answer.
uint32_t both(const Classifier& c, const std::vector<Rule>& rules, const AclKey& k) {
  uint32_t got = classify_one(c, k);
  EXPECT_EQ(got, match_linear(rules, k));
  return got;
}

Rule tcp_rule(std::vector<Ipv4Prefix> src, std::vector<Ipv4Prefix> dst,
              std::vector<PortRange> dport, Action a = Action::kAccept) {
  Rule r;
  r.proto = kTcp;
  r.src = std::move(src);
  r.dst = std::move(dst);
  r.dport = std::move(dport);
  r.action = a;
  return r;
}

TEST(Keys, NetworkOrder) {
  AclKey k = make_key(kTcp, 0x0a000001, 0xc0000207, 0x1234, 80);
  const auto* b = reinterpret_cast<const uint8_t*>(&k);
  EXPECT_EQ(b[0], kTcp);
  EXPECT_EQ(b[1] | b[2] | b[3], 0);
  const uint8_t want[] = {10, 0, 0, 1, 192, 0, 2, 7, 0x12, 0x34, 0, 80};
  for (size_t i = 0; i < sizeof want; ++i) EXPECT_EQ(b[4 + i], want[i]) << i;

  AclKey i = make_icmp_key(0x01020304, 0x05060708, 3, 4);
  const auto* ib = reinterpret_cast<const uint8_t*>(&i);
  EXPECT_EQ(ib[0], kIcmp);
  EXPECT_EQ(ib[12] | ib[13], 0);  // sport
  EXPECT_EQ(ib[14], 3);           // type, then code: dport = type << 8 | code
  EXPECT_EQ(ib[15], 4);
}

TEST(Classifier, EmptyMatchesNothing) {
  std::vector<Rule> none;
  auto c = compile_ok(none);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->rules(), 0u);
  EXPECT_EQ(c->acl_rules(), 0u);
  EXPECT_EQ(c->memory(), 0u);
  std::vector<AclKey> keys{make_key(kTcp, 1, 2, 3, 4), make_key(0, 0, 0, 0, 0),
                           make_icmp_key(5, 6, 8, 0)};
  std::vector<const AclKey*> ptrs;
  for (auto& k : keys) ptrs.push_back(&k);
  std::vector<uint32_t> results(keys.size(), 0xdeadbeef);
  c->classify(ptrs.data(), results.data(), static_cast<uint32_t>(keys.size()));
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(results[i], Classifier::kNoMatch) << i;
    EXPECT_EQ(match_linear(none, keys[i]), Classifier::kNoMatch);
  }
  c->classify(ptrs.data(), results.data(), 0);  // n = 0 is allowed
}

TEST(Classifier, RuleMatchingEverything) {
  std::vector<Rule> rules{Rule{}};
  auto c = compile_ok(rules);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->rules(), 1u);
  EXPECT_EQ(c->acl_rules(), 1u);
  EXPECT_GT(c->memory(), 0u);
  for (const AclKey& k :
       {make_key(0, 0, 0, 0, 0), make_key(255, 0xffffffff, 0xffffffff, 65535, 65535),
        make_key(kTcp, ip("10.1.2.3"), ip("8.8.8.8"), 40000, 443), make_icmp_key(1, 2, 255, 255),
        make_key(kUdp, ip("203.0.113.9"), ip("10.0.0.1"), 0, 53)})
    EXPECT_EQ(both(*c, rules, k), 1u);
}

TEST(Classifier, FirstMatchWinsOverMoreSpecificLaterRule) {
  // Rule 1 is broad, rule 2 is a strict subset: rule 2 never wins.
  std::vector<Rule> rules{
      tcp_rule({pfx("10.0.0.0/8")}, {}, {{1, 1024}}, Action::kDrop),
      tcp_rule({pfx("10.1.2.3/32")}, {pfx("192.0.2.1/32")}, {{80, 80}}, Action::kAccept),
      tcp_rule({pfx("10.1.2.3/32")}, {}, {}, Action::kAccept),
  };
  auto c = compile_ok(rules);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(both(*c, rules, make_key(kTcp, ip("10.1.2.3"), ip("192.0.2.1"), 5000, 80)), 1u);
  // Outside rule 1's ports the more specific rules get their turn.
  EXPECT_EQ(both(*c, rules, make_key(kTcp, ip("10.1.2.3"), ip("192.0.2.1"), 5000, 1025)), 3u);
  EXPECT_EQ(both(*c, rules, make_key(kTcp, ip("10.1.2.4"), ip("192.0.2.1"), 5000, 1025)), 0u);

  // Swapped: now the specific rule comes first and wins where it matches.
  std::vector<Rule> swapped{rules[1], rules[0], rules[2]};
  auto s = compile_ok(swapped);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(both(*s, swapped, make_key(kTcp, ip("10.1.2.3"), ip("192.0.2.1"), 5000, 80)), 1u);
  EXPECT_EQ(both(*s, swapped, make_key(kTcp, ip("10.1.2.3"), ip("192.0.2.2"), 5000, 80)), 2u);
}

TEST(Classifier, OverlappingPrefixesOrderDecides) {
  std::vector<Rule> rules{
      tcp_rule({pfx("10.0.0.0/25")}, {}, {}),
      tcp_rule({pfx("10.0.0.0/24")}, {}, {}),
      tcp_rule({pfx("10.0.0.128/25")}, {}, {}),  // shadowed by rule 2 entirely
      tcp_rule({pfx("10.0.0.0/16")}, {}, {}),
  };
  auto c = compile_ok(rules);
  ASSERT_NE(c, nullptr);
  auto key = [](const char* src) { return make_key(kTcp, ip(src), ip("1.1.1.1"), 1, 2); };
  EXPECT_EQ(both(*c, rules, key("10.0.0.0")), 1u);
  EXPECT_EQ(both(*c, rules, key("10.0.0.127")), 1u);
  EXPECT_EQ(both(*c, rules, key("10.0.0.128")), 2u);
  EXPECT_EQ(both(*c, rules, key("10.0.0.255")), 2u);
  EXPECT_EQ(both(*c, rules, key("10.0.1.0")), 4u);
  EXPECT_EQ(both(*c, rules, key("10.0.255.255")), 4u);
  EXPECT_EQ(both(*c, rules, key("10.1.0.0")), 0u);
  EXPECT_EQ(both(*c, rules, key("9.255.255.255")), 0u);
}

TEST(Classifier, OverlappingPortRangesOrderDecides) {
  Rule a = tcp_rule({}, {}, {{1000, 2000}});
  a.sport = {{0, 1023}};
  std::vector<Rule> rules{a, tcp_rule({}, {}, {{1500, 3000}, {80, 80}}),
                          tcp_rule({}, {}, {{0, 65535}})};
  auto c = compile_ok(rules);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->acl_rules(), 4u);
  auto key = [](uint16_t sport, uint16_t dport) { return make_key(kTcp, 1, 2, sport, dport); };
  EXPECT_EQ(both(*c, rules, key(1023, 1000)), 1u);
  EXPECT_EQ(both(*c, rules, key(0, 2000)), 1u);
  EXPECT_EQ(both(*c, rules, key(1024, 1000)), 3u);  // sport outside rule 1
  EXPECT_EQ(both(*c, rules, key(1024, 1500)), 2u);
  EXPECT_EQ(both(*c, rules, key(5, 2001)), 2u);
  EXPECT_EQ(both(*c, rules, key(5, 3000)), 2u);
  EXPECT_EQ(both(*c, rules, key(5, 3001)), 3u);
  EXPECT_EQ(both(*c, rules, key(5, 80)), 2u);
  EXPECT_EQ(both(*c, rules, key(5, 79)), 3u);
  EXPECT_EQ(both(*c, rules, key(65535, 65535)), 3u);
  // Another protocol matches none of them.
  EXPECT_EQ(both(*c, rules, make_key(kUdp, 1, 2, 5, 80)), 0u);
}

TEST(Classifier, ProtoAnyVersusSpecific) {
  Rule udp;
  udp.proto = kUdp;
  udp.dport = {{53, 53}};
  Rule any_to_host;
  any_to_host.dst = {pfx("192.0.2.1/32")};
  Rule gre;
  gre.proto = 47;
  std::vector<Rule> rules{udp, any_to_host, gre};
  auto c = compile_ok(rules);
  ASSERT_NE(c, nullptr);
  const Ipv4 host = ip("192.0.2.1"), other = ip("192.0.2.2");
  EXPECT_EQ(both(*c, rules, make_key(kUdp, 1, host, 9, 53)), 1u);
  EXPECT_EQ(both(*c, rules, make_key(kTcp, 1, host, 9, 53)), 2u);
  EXPECT_EQ(both(*c, rules, make_icmp_key(1, host, 8, 0)), 2u);
  EXPECT_EQ(both(*c, rules, make_key(47, 1, host, 0, 0)), 2u);
  EXPECT_EQ(both(*c, rules, make_key(47, 1, other, 0, 0)), 3u);
  EXPECT_EQ(both(*c, rules, make_key(kUdp, 1, other, 9, 53)), 1u);
  EXPECT_EQ(both(*c, rules, make_key(kUdp, 1, other, 9, 54)), 0u);
  EXPECT_EQ(both(*c, rules, make_key(46, 1, other, 0, 0)), 0u);
  EXPECT_EQ(both(*c, rules, make_key(48, 1, other, 0, 0)), 0u);
}

TEST(Classifier, IcmpTypeAndCode) {
  Rule unreachable_frag;  // type 3 code 4 only
  unreachable_frag.proto = kIcmp;
  unreachable_frag.icmp = {{3, 4}};
  Rule echo;  // echo request, echo reply, any code
  echo.proto = kIcmp;
  echo.icmp = {{8, -1}, {0, -1}};
  Rule all_icmp;
  all_icmp.proto = kIcmp;
  all_icmp.action = Action::kDrop;
  std::vector<Rule> rules{unreachable_frag, echo, all_icmp};
  auto c = compile_ok(rules);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->acl_rules(), 4u);
  EXPECT_EQ(both(*c, rules, make_icmp_key(1, 2, 3, 4)), 1u);
  EXPECT_EQ(both(*c, rules, make_icmp_key(1, 2, 3, 3)), 3u);
  EXPECT_EQ(both(*c, rules, make_icmp_key(1, 2, 3, 5)), 3u);
  EXPECT_EQ(both(*c, rules, make_icmp_key(1, 2, 8, 0)), 2u);
  EXPECT_EQ(both(*c, rules, make_icmp_key(1, 2, 8, 255)), 2u);
  EXPECT_EQ(both(*c, rules, make_icmp_key(1, 2, 0, 0)), 2u);
  EXPECT_EQ(both(*c, rules, make_icmp_key(1, 2, 0, 255)), 2u);
  EXPECT_EQ(both(*c, rules, make_icmp_key(1, 2, 7, 255)), 3u);
  EXPECT_EQ(both(*c, rules, make_icmp_key(1, 2, 9, 0)), 3u);
  EXPECT_EQ(both(*c, rules, make_icmp_key(1, 2, 255, 255)), 3u);
  // A TCP packet whose dport happens to read as type 8 is not ICMP.
  EXPECT_EQ(both(*c, rules, make_key(kTcp, 1, 2, 0, 8 << 8)), 0u);
}

TEST(Classifier, ExpandsEveryCombination) {
  Rule r = tcp_rule({pfx("10.0.0.0/24"), pfx("10.0.2.0/24")},
                    {pfx("192.0.2.0/28"), pfx("198.51.100.0/24"), pfx("203.0.113.7/32")},
                    {{22, 22}, {8000, 8100}});
  r.sport = {{1024, 65535}};
  std::vector<Rule> rules{r};
  auto c = compile_ok(rules);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->acl_rules(), r.expansion());
  EXPECT_EQ(c->acl_rules(), 12u);
  for (const char* s : {"10.0.0.9", "10.0.2.255"})
    for (const char* d : {"192.0.2.15", "198.51.100.0", "203.0.113.7"})
      for (uint16_t p : {22, 8000, 8100}) {
        EXPECT_EQ(both(*c, rules, make_key(kTcp, ip(s), ip(d), 1024, p)), 1u) << s << d << p;
        EXPECT_EQ(both(*c, rules, make_key(kTcp, ip(s), ip(d), 1023, p)), 0u) << s << d << p;
      }
  EXPECT_EQ(both(*c, rules, make_key(kTcp, ip("10.0.1.1"), ip("192.0.2.1"), 2000, 22)), 0u);
  EXPECT_EQ(both(*c, rules, make_key(kTcp, ip("10.0.0.1"), ip("192.0.2.16"), 2000, 22)), 0u);
  EXPECT_EQ(both(*c, rules, make_key(kTcp, ip("10.0.0.1"), ip("203.0.113.8"), 2000, 22)), 0u);
  EXPECT_EQ(both(*c, rules, make_key(kTcp, ip("10.0.0.1"), ip("192.0.2.1"), 2000, 7999)), 0u);
}

TEST(Classifier, RejectsInvalidRules) {
  Rule bad;
  bad.src = {Ipv4Prefix{ip("10.0.0.1"), 24}};
  std::string error;
  EXPECT_EQ(Classifier::compile({Rule{}, bad}, SOCKET_ID_ANY, &error), nullptr);
  EXPECT_EQ(error, "rule 2: src 10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24?");
}

Rule widest_rule() {
  Rule wide;
  wide.proto = kTcp;
  for (uint32_t i = 0; i < 64; ++i) wide.src.push_back({(10u << 24) | (i << 8), 24});
  for (uint16_t i = 0; i < 64; ++i) wide.dport.push_back({i, i});
  EXPECT_EQ(wide.expansion(), kMaxExpansion);
  return wide;
}

TEST(Classifier, ReportsRteAclErrors) {
  // 3000 rules of 4096 each need ~1.2 GB for rte_acl's copy of the rules,
  // beyond this EAL's 1 GB: rte_acl_create cannot allocate its context.
  std::string error;
  EXPECT_EQ(Classifier::compile(std::vector<Rule>(3000, widest_rule()), SOCKET_ID_ANY, &error),
            nullptr);
  EXPECT_EQ(error.rfind("rte_acl_create for 12288000 classifier rules: ", 0), 0u) << error;
}

TEST(Classifier, RefusesRuleCountsRteAclWouldMiscompute) {
  // 20000 x 4096 rules of 96 bytes: rte_acl_create's 32-bit size would wrap.
  std::string error;
  EXPECT_EQ(Classifier::compile(std::vector<Rule>(20000, widest_rule()), SOCKET_ID_ANY, &error),
            nullptr);
  EXPECT_EQ(error, "rules expand to 81920000 classifier rules; rte_acl takes at most 22369621");
}

TEST(Classifier, IndependentContexts) {
  // Compiles share nothing: names never collide, freeing one leaves the other.
  std::vector<Rule> a{tcp_rule({}, {}, {{80, 80}})};
  std::vector<Rule> b{tcp_rule({}, {}, {{443, 443}}), tcp_rule({}, {}, {{80, 80}})};
  auto ca = compile_ok(a);
  auto cb = compile_ok(b);
  auto ca2 = compile_ok(a);
  ASSERT_TRUE(ca && cb && ca2);
  const AclKey k80 = make_key(kTcp, 1, 2, 3, 80), k443 = make_key(kTcp, 1, 2, 3, 443);
  EXPECT_EQ(both(*ca, a, k80), 1u);
  EXPECT_EQ(both(*ca, a, k443), 0u);
  EXPECT_EQ(both(*cb, b, k80), 2u);
  EXPECT_EQ(both(*cb, b, k443), 1u);
  EXPECT_EQ(ca2->acl_rules(), 1u);
  ca.reset();
  EXPECT_EQ(both(*ca2, a, k80), 1u);
  EXPECT_EQ(both(*cb, b, k80), 2u);
  EXPECT_EQ(both(*cb, b, k443), 1u);
}

// Random rules over a small address pool so that prefixes nest and overlap,
// and keys aimed at the edges of those rules.
class RandomRules {
 public:
  explicit RandomRules(uint64_t seed) : rng_(seed) {}

  Rule rule() {
    Rule r;
    // Few catch-alls: one early rule matching everything would hide the rest.
    r.proto = coin(25) ? 0 : pick<uint8_t>({kTcp, kTcp, kTcp, kUdp, kUdp, kIcmp, 47});
    r.action = pick<Action>({Action::kAccept, Action::kDrop, Action::kReject});
    r.log = coin(4);
    r.src = prefixes();
    r.dst = prefixes();
    if (r.proto == kTcp || r.proto == kUdp) {
      if (coin(3)) r.sport = ranges();
      if (!coin(4)) r.dport = ranges();
    } else if (r.proto == kIcmp && !coin(3)) {
      size_t n = 1 + below(3);
      for (size_t i = 0; i < n; ++i)
        r.icmp.push_back({pick<uint8_t>({0, 3, 8, 11, 255}),
                          static_cast<int16_t>(coin(2) ? -1 : pick<int>({0, 1, 4, 255}))});
    }
    return r;
  }

  AclKey key_near(const Rule& r) {
    uint8_t proto = r.proto != 0 && !coin(8) ? r.proto : pick<uint8_t>({kTcp, kUdp, kIcmp, 47, 0});
    Ipv4 src = addr_near(r.src), dst = addr_near(r.dst);
    if (proto == kIcmp) {
      if (!r.icmp.empty() && !coin(4)) {
        const IcmpType& t = r.icmp[below(r.icmp.size())];
        int code = t.code < 0 ? pick<int>({0, 255, static_cast<int>(below(256))}) : t.code;
        code = std::clamp(code + pick<int>({0, 0, -1, 1}), 0, 255);
        int type = std::clamp(t.type + pick<int>({0, 0, 0, -1, 1}), 0, 255);
        return make_icmp_key(src, dst, static_cast<uint8_t>(type), static_cast<uint8_t>(code));
      }
      return make_icmp_key(src, dst, static_cast<uint8_t>(below(256)),
                           static_cast<uint8_t>(below(256)));
    }
    return make_key(proto, src, dst, port_near(r.sport), port_near(r.dport));
  }

  AclKey any_key() {
    return make_key(pick<uint8_t>({kTcp, kUdp, kIcmp, 47}), pool_addr(), pool_addr(),
                    static_cast<uint16_t>(below(65536)), static_cast<uint16_t>(below(65536)));
  }

  size_t below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
  bool coin(size_t one_in) { return below(one_in) == 0; }

 private:
  template <typename T>
  T pick(std::initializer_list<T> list) {
    return *(list.begin() + below(list.size()));
  }

  // 10.0.0.0/20, mostly: prefixes of any length land on a few thousand
  // addresses, so rules keep overlapping each other.
  Ipv4 pool_addr() {
    if (coin(50)) return static_cast<Ipv4>(rng_());
    return (10u << 24) | static_cast<Ipv4>(below(4096));
  }

  std::vector<Ipv4Prefix> prefixes() {
    std::vector<Ipv4Prefix> out;
    if (coin(20)) return out;
    size_t n = 1 + (coin(4) ? below(3) : 0);
    for (size_t i = 0; i < n; ++i) {
      // Mostly narrow (/26-/32 inside the pool), some covering much of it, a
      // few wider still.
      uint8_t len = static_cast<uint8_t>(coin(50)  ? below(20)
                                         : coin(8) ? 20 + below(6)
                                                   : 26 + below(7));
      Ipv4Prefix p{pool_addr(), len};
      p.addr = p.network();
      out.push_back(p);
    }
    return out;
  }

  std::vector<PortRange> ranges() {
    std::vector<PortRange> out;
    size_t n = 1 + (coin(3) ? below(3) : 0);
    for (size_t i = 0; i < n; ++i) {
      // Ports cluster near a few values so ranges overlap and share edges.
      auto port = [&] {
        if (coin(5)) return static_cast<uint16_t>(below(65536));
        int base = pick<int>({0, 80, 443, 1024, 8000, 65535});
        return static_cast<uint16_t>(std::clamp(base + static_cast<int>(below(41)) - 20, 0, 65535));
      };
      uint16_t a = port(), b = coin(3) ? a : port();
      out.push_back({std::min(a, b), std::max(a, b)});
    }
    return out;
  }

  Ipv4 addr_near(const std::vector<Ipv4Prefix>& list) {
    if (list.empty() || coin(6)) return pool_addr();
    const Ipv4Prefix& p = list[below(list.size())];
    Ipv4 first = p.network(), last = p.network() | ~p.mask();
    switch (below(5)) {
      case 0:
        return first;
      case 1:
        return last;
      case 2:
        return first - 1;  // just outside
      case 3:
        return last + 1;
      default:
        return first + static_cast<Ipv4>(below(uint64_t{last - first} + 1));
    }
  }

  uint16_t port_near(const std::vector<PortRange>& list) {
    if (list.empty() || coin(6)) return static_cast<uint16_t>(below(65536));
    const PortRange& r = list[below(list.size())];
    switch (below(5)) {
      case 0:
        return r.lo;
      case 1:
        return r.hi;
      case 2:
        return static_cast<uint16_t>(r.lo - 1);  // wraps at 0: still a valid probe
      case 3:
        return static_cast<uint16_t>(r.hi + 1);
      default:
        return static_cast<uint16_t>(r.lo + below(uint32_t{r.hi} - r.lo + 1));
    }
  }

  std::mt19937_64 rng_;
};

// Classifies `keys` in bursts of `bulk` (the last one shorter) and compares
// each answer with `want`; returns how many disagree (and reports the first).
size_t mismatches(const Classifier& c, const std::vector<Rule>& rules,
                  const std::vector<AclKey>& keys, const std::vector<uint32_t>& want,
                  uint32_t bulk) {
  std::vector<const AclKey*> ptrs(bulk);
  std::vector<uint32_t> got(bulk);
  size_t bad = 0;
  for (size_t start = 0; start < keys.size(); start += bulk) {
    uint32_t n = static_cast<uint32_t>(std::min<size_t>(bulk, keys.size() - start));
    for (uint32_t i = 0; i < n; ++i) ptrs[i] = &keys[start + i];
    std::fill(got.begin(), got.end(), 0xdeadbeef);
    c.classify(ptrs.data(), got.data(), n);
    for (uint32_t i = 0; i < n; ++i) {
      if (got[i] == want[start + i]) continue;
      if (bad++ == 0) {
        const AclKey& k = keys[start + i];
        ADD_FAILURE() << "bulk " << bulk << " key " << start + i << " proto " << int(k.proto)
                      << " src " << format_ipv4(__builtin_bswap32(k.src)) << " dst "
                      << format_ipv4(__builtin_bswap32(k.dst)) << " sport "
                      << __builtin_bswap16(k.sport) << " dport " << __builtin_bswap16(k.dport)
                      << ": classify " << got[i] << ", linear " << want[start + i]
                      << (want[start + i] ? " (" + rules[want[start + i] - 1].identity() + ")"
                                          : std::string());
      }
    }
  }
  return bad;
}

TEST(ClassifierProperty, AgreesWithLinearScan) {
  RandomRules gen(20240611);
  std::vector<Rule> rules;
  for (int i = 0; i < 2000; ++i) rules.push_back(gen.rule());
  for (const auto& r : rules) ASSERT_EQ(validate(r), std::nullopt) << r.identity();

  auto t0 = std::chrono::steady_clock::now();
  auto c = compile_ok(rules);
  ASSERT_NE(c, nullptr);
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  size_t expanded = 0;
  for (const auto& r : rules) expanded += r.expansion();
  EXPECT_EQ(c->acl_rules(), expanded);
  std::printf("[   INFO   ] 2000 random rules -> %zu acl rules, compiled in %.1f ms, ~%zu bytes\n",
              c->acl_rules(), ms, c->memory());

  std::vector<AclKey> keys;
  keys.reserve(200000);
  while (keys.size() < 200000)
    keys.push_back(gen.coin(10) ? gen.any_key() : gen.key_near(rules[gen.below(rules.size())]));
  std::vector<uint32_t> want(keys.size());
  size_t matched = 0;
  std::vector<bool> seen(rules.size() + 1);
  for (size_t i = 0; i < keys.size(); ++i) {
    want[i] = match_linear(rules, keys[i]);
    matched += want[i] != Classifier::kNoMatch;
    seen[want[i]] = true;
  }
  // The keys must exercise the rules, not just miss them all or hit rule 1.
  EXPECT_GT(matched, keys.size() / 4);
  EXPECT_LT(matched, keys.size());
  size_t distinct = std::count(seen.begin() + 1, seen.end(), true);
  EXPECT_GT(distinct, rules.size() / 4);
  std::printf("[   INFO   ] 200000 keys: %zu match, %zu distinct rules win\n", matched, distinct);

  for (uint32_t bulk : {1u, 7u, 32u, 64u})
    EXPECT_EQ(mismatches(*c, rules, keys, want, bulk), 0u) << "bulk " << bulk;
}

TEST(ClassifierProperty, SmallRuleSetsManySeeds) {
  // Few rules make the trie small and every key lands near an edge; many
  // seeds cover shapes one large set averages away.
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    RandomRules gen(seed);
    std::vector<Rule> rules;
    size_t n = 1 + gen.below(20);
    for (size_t i = 0; i < n; ++i) rules.push_back(gen.rule());
    auto c = compile_ok(rules);
    ASSERT_NE(c, nullptr);
    std::vector<AclKey> keys;
    for (int i = 0; i < 5000; ++i)
      keys.push_back(gen.coin(10) ? gen.any_key() : gen.key_near(rules[gen.below(rules.size())]));
    std::vector<uint32_t> want;
    for (const auto& k : keys) want.push_back(match_linear(rules, k));
    EXPECT_EQ(mismatches(*c, rules, keys, want, 32), 0u) << "seed " << seed;
  }
}

TEST(ClassifierProperty, ConcurrentClassify) {
  RandomRules gen(7);
  std::vector<Rule> rules;
  for (int i = 0; i < 300; ++i) rules.push_back(gen.rule());
  auto c = compile_ok(rules);
  ASSERT_NE(c, nullptr);
  std::vector<AclKey> keys;
  for (int i = 0; i < 20000; ++i) keys.push_back(gen.key_near(rules[gen.below(rules.size())]));
  std::vector<uint32_t> want;
  for (const auto& k : keys) want.push_back(match_linear(rules, k));
  std::vector<size_t> bad(4, 0);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < bad.size(); ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 5; ++round) {
        std::vector<const AclKey*> ptrs(64);
        std::vector<uint32_t> got(64);
        for (size_t s = 0; s < keys.size(); s += 64) {
          uint32_t n = static_cast<uint32_t>(std::min<size_t>(64, keys.size() - s));
          for (uint32_t i = 0; i < n; ++i) ptrs[i] = &keys[s + i];
          c->classify(ptrs.data(), got.data(), n);
          for (uint32_t i = 0; i < n; ++i) bad[t] += got[i] != want[s + i];
        }
      }
    });
  for (auto& th : threads) th.join();
  for (size_t t = 0; t < bad.size(); ++t) EXPECT_EQ(bad[t], 0u) << "thread " << t;
}

TEST(ClassifierScale, TenThousandRules) {
  // A policy shaped like a big real one: host or subnet sources, a service
  // subnet, one or two destination ports each; mostly TCP.
  std::mt19937_64 rng(10000);
  auto below = [&](uint32_t n) { return static_cast<uint32_t>(rng() % n); };
  std::vector<Rule> rules;
  for (int i = 0; i < 10000; ++i) {
    Rule r;
    r.proto = below(5) == 0 ? kUdp : kTcp;
    r.src = {below(3) == 0 ? Ipv4Prefix{(172u << 24) | (16u << 16) | (below(256) << 8), 24}
                           : Ipv4Prefix{(10u << 24) | below(1u << 20), 32}};
    r.dst = {Ipv4Prefix{(192u << 24) | (168u << 16) | (below(64) << 8), 24}};
    uint16_t p = static_cast<uint16_t>(1 + below(10000));
    r.dport = {{p, p}};
    if (below(4) == 0) r.dport.push_back({8000, 8100});
    r.action = below(2) ? Action::kAccept : Action::kDrop;
    rules.push_back(r);
  }
  auto t0 = std::chrono::steady_clock::now();
  auto c = compile_ok(rules);
  ASSERT_NE(c, nullptr);
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[   INFO   ] 10000 rules -> %zu acl rules, compiled in %.1f ms, ~%zu bytes\n",
              c->acl_rules(), ms, c->memory());
  RecordProperty("compile_ms", std::to_string(ms));
  RecordProperty("acl_rules", std::to_string(c->acl_rules()));
  EXPECT_EQ(c->rules(), 10000u);
  EXPECT_GT(c->acl_rules(), 10000u);
  EXPECT_GT(c->memory(), 0u);

  // Spot checks against the reference: each rule's own packet, and misses.
  std::vector<AclKey> keys;
  for (size_t i = 0; i < rules.size(); i += 7) {
    const Rule& r = rules[i];
    keys.push_back(make_key(r.proto, r.src[0].addr | (~r.src[0].mask() & below(256)),
                            r.dst[0].addr | below(256), static_cast<uint16_t>(below(65536)),
                            r.dport[0].lo));
    keys.push_back(make_key(r.proto, r.src[0].addr, r.dst[0].addr, 1, 0));
  }
  std::vector<uint32_t> want;
  for (const auto& k : keys) want.push_back(match_linear(rules, k));
  EXPECT_EQ(mismatches(*c, rules, keys, want, 64), 0u);
}

}  // namespace
}  // namespace tether::fw
