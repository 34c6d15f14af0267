#include "firewall/rules.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tether::fw {
namespace {

Ipv4Prefix pfx(const char* text) {
  auto p = parse_prefix(text, /*allow_host_bits=*/true);
  EXPECT_TRUE(p.has_value()) << text;
  return p.value_or(Ipv4Prefix{});
}

std::string ports_error(const char* text) {
  std::string error;
  auto r = parse_ports(text, &error);
  EXPECT_FALSE(r.has_value()) << text << " parsed as "
                              << format_ports(r.value_or(std::vector<PortRange>{}));
  return error;
}

std::vector<PortRange> ports(const char* text) {
  std::string error;
  auto r = parse_ports(text, &error);
  EXPECT_TRUE(r.has_value()) << text << ": " << error;
  return r.value_or(std::vector<PortRange>{});
}

Rule web_rule() {
  Rule r;
  r.src = {pfx("10.0.0.0/24")};
  r.proto = 6;
  r.dport = {{80, 80}, {443, 443}};
  return r;
}

TEST(Names, ActionsRoundTrip) {
  for (Action a : {Action::kAccept, Action::kDrop, Action::kReject})
    EXPECT_EQ(parse_action(action_name(a)), a);
  EXPECT_STREQ(action_name(Action::kAccept), "accept");
  EXPECT_STREQ(action_name(Action::kDrop), "drop");
  EXPECT_STREQ(action_name(Action::kReject), "reject");
  EXPECT_EQ(parse_action("Accept"), std::nullopt);
  EXPECT_EQ(parse_action(""), std::nullopt);
  EXPECT_EQ(parse_action("deny"), std::nullopt);
}

TEST(Names, ZoneKindsRoundTrip) {
  for (ZoneKind k : {ZoneKind::kUplink, ZoneKind::kUsers, ZoneKind::kVdc, ZoneKind::kManagement})
    EXPECT_EQ(parse_zone_kind(zone_kind_name(k)), k);
  EXPECT_STREQ(zone_kind_name(ZoneKind::kUplink), "uplink");
  EXPECT_STREQ(zone_kind_name(ZoneKind::kUsers), "users");
  EXPECT_STREQ(zone_kind_name(ZoneKind::kVdc), "vdc");
  EXPECT_STREQ(zone_kind_name(ZoneKind::kManagement), "management");
  EXPECT_EQ(parse_zone_kind("VDC"), std::nullopt);
  EXPECT_EQ(parse_zone_kind("wan"), std::nullopt);
}

TEST(ParsePorts, SingleRangeAndList) {
  EXPECT_EQ(ports("80"), (std::vector<PortRange>{{80, 80}}));
  EXPECT_EQ(ports("0"), (std::vector<PortRange>{{0, 0}}));
  EXPECT_EQ(ports("65535"), (std::vector<PortRange>{{65535, 65535}}));
  EXPECT_EQ(ports("1024-65535"), (std::vector<PortRange>{{1024, 65535}}));
  EXPECT_EQ(ports("0-65535"), (std::vector<PortRange>{{0, 65535}}));
  EXPECT_EQ(ports("5-5"), (std::vector<PortRange>{{5, 5}}));
  EXPECT_EQ(ports("80,443,8000-8100"),
            (std::vector<PortRange>{{80, 80}, {443, 443}, {8000, 8100}}));
  // Any order, overlaps allowed: the list is kept as written.
  EXPECT_EQ(ports("8000-8100,443,80"),
            (std::vector<PortRange>{{8000, 8100}, {443, 443}, {80, 80}}));
}

TEST(ParsePorts, WhitespaceAroundSeparators) {
  EXPECT_EQ(ports(" 80 , 443 ,\t8000-8100 "),
            (std::vector<PortRange>{{80, 80}, {443, 443}, {8000, 8100}}));
  EXPECT_EQ(ports("1024 - 2048"), (std::vector<PortRange>{{1024, 2048}}));
}

TEST(ParsePorts, ErrorsNameTheBadToken) {
  EXPECT_EQ(ports_error("70000"), "port \"70000\" is not 0-65535");
  EXPECT_EQ(ports_error("80,70000"), "port \"70000\" is not 0-65535");
  EXPECT_EQ(ports_error("80-70000"), "port \"70000\" is not 0-65535");
  EXPECT_EQ(ports_error("99999999999999999999"), "port \"99999999999999999999\" is not 0-65535");
  EXPECT_EQ(ports_error("http"), "port \"http\" is not 0-65535");
  EXPECT_EQ(ports_error("-5"), "range \"-5\" is missing a port");
  EXPECT_EQ(ports_error("80, 1024- "), "range \"1024-\" is missing a port");
  EXPECT_EQ(ports_error("+80"), "port \"+80\" is not 0-65535");
  EXPECT_EQ(ports_error("8 0"), "port \"8 0\" is not 0-65535");
  EXPECT_EQ(ports_error("80-90-100"), "port \"90-100\" is not 0-65535");
  EXPECT_EQ(ports_error("90-80"), "range 90-80 has lo > hi");
  EXPECT_EQ(ports_error("22,90-80"), "range 90-80 has lo > hi");
  EXPECT_EQ(ports_error(""), "empty port list");
  EXPECT_EQ(ports_error("  "), "empty port list");
  EXPECT_EQ(ports_error("80,,443"), "empty entry in port list \"80,,443\"");
  EXPECT_EQ(ports_error("80,"), "empty entry in port list \"80,\"");
}

TEST(ParsePorts, NullErrorIsAllowed) {
  EXPECT_FALSE(parse_ports("x", nullptr).has_value());
  EXPECT_TRUE(parse_ports("1", nullptr).has_value());
}

TEST(FormatPorts, Formats) {
  EXPECT_EQ(format_ports({{80, 80}, {443, 443}, {8000, 8100}}), "80,443,8000-8100");
  EXPECT_EQ(format_ports({{0, 65535}}), "0-65535");
  EXPECT_EQ(format_ports({}), "");
}

TEST(FormatPorts, RoundTrips) {
  for (const char* text : {"80", "0", "65535", "1-2", "80,443,8000-8100", "9,8,7-7000", "0-65535"})
    EXPECT_EQ(format_ports(ports(text)), text);
  // From values: formatting and parsing back gives the same list.
  std::vector<PortRange> v{{1, 1}, {65535, 65535}, {0, 0}, {100, 200}, {7, 8}};
  EXPECT_EQ(ports(format_ports(v).c_str()), v);
}

TEST(Identity, NameWhenNamed) {
  Rule r = web_rule();
  r.name = "web";
  EXPECT_EQ(r.identity(), "web");
}

TEST(Identity, CanonicalTextOtherwise) {
  EXPECT_EQ(web_rule().identity(), "tcp src=10.0.0.0/24 dst=any sport=any dport=80,443 accept");

  Rule any;
  EXPECT_EQ(any.identity(), "any src=any dst=any accept");

  Rule icmp;
  icmp.proto = 1;
  icmp.icmp = {{8, -1}, {3, 4}};
  icmp.dst = {pfx("192.0.2.1/32"), pfx("10.0.0.0/8")};
  icmp.action = Action::kDrop;
  icmp.log = true;
  EXPECT_EQ(icmp.identity(), "icmp src=any dst=10.0.0.0/8,192.0.2.1/32 icmp=3/4,8 drop log");

  Rule udp;
  udp.proto = 17;
  udp.sport = {{53, 53}};
  udp.action = Action::kReject;
  EXPECT_EQ(udp.identity(), "udp src=any dst=any sport=53 dport=any reject");

  Rule gre;
  gre.proto = 47;
  EXPECT_EQ(gre.identity(), "47 src=any dst=any accept");
}

TEST(Identity, StableAcrossListOrderAndDuplicates) {
  Rule a = web_rule();
  a.src = {pfx("10.0.0.0/24"), pfx("10.1.0.0/16")};
  Rule b = a;
  b.src = {pfx("10.1.0.0/16"), pfx("10.0.0.0/24"), pfx("10.1.0.0/16")};
  b.dport = {{443, 443}, {80, 80}, {443, 443}};
  EXPECT_EQ(a.identity(), b.identity());
  // Computing it again gives the same text.
  EXPECT_EQ(a.identity(), a.identity());
}

TEST(Identity, DiffersWhenTheMatchOrVerdictDiffers) {
  const std::string base = web_rule().identity();
  std::vector<Rule> variants(8, web_rule());
  variants[0].action = Action::kDrop;
  variants[1].log = true;
  variants[2].proto = 17;
  variants[3].src = {pfx("10.0.0.0/25")};
  variants[4].dst = {pfx("10.0.0.0/24")};
  variants[5].sport = {{80, 80}};
  variants[6].dport = {{80, 80}};
  variants[7].dport = {{80, 81}, {443, 443}};
  for (size_t i = 0; i < variants.size(); ++i) {
    EXPECT_NE(variants[i].identity(), base) << i;
    for (size_t j = 0; j < i; ++j)
      EXPECT_NE(variants[i].identity(), variants[j].identity()) << i << " vs " << j;
  }
}

TEST(Expansion, ProductOfListsEmptyCountsOne) {
  Rule r;
  EXPECT_EQ(r.expansion(), 1u);
  r.src = {pfx("10.0.0.0/8"), pfx("11.0.0.0/8")};
  EXPECT_EQ(r.expansion(), 2u);
  r.dst = {pfx("1.0.0.0/8"), pfx("2.0.0.0/8"), pfx("3.0.0.0/8")};
  EXPECT_EQ(r.expansion(), 6u);
  r.proto = 6;
  r.sport = {{1, 2}, {3, 4}};
  EXPECT_EQ(r.expansion(), 12u);
  r.dport = {{1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}};
  EXPECT_EQ(r.expansion(), 60u);

  Rule icmp;
  icmp.proto = 1;
  icmp.dst = {pfx("1.0.0.0/8"), pfx("2.0.0.0/8")};
  icmp.icmp = {{8, -1}, {0, -1}, {3, 1}};
  EXPECT_EQ(icmp.expansion(), 6u);
}

TEST(Validate, AcceptsValidRules) {
  EXPECT_EQ(validate(Rule{}), std::nullopt);
  EXPECT_EQ(validate(web_rule()), std::nullopt);
  Rule udp;
  udp.proto = 17;
  udp.sport = {{0, 65535}};
  EXPECT_EQ(validate(udp), std::nullopt);
  Rule icmp;
  icmp.proto = 1;
  icmp.icmp = {{8, 0}, {3, 255}, {11, -1}};
  EXPECT_EQ(validate(icmp), std::nullopt);
  Rule hosts;
  hosts.src = {pfx("0.0.0.0/0"), pfx("192.0.2.7/32")};
  EXPECT_EQ(validate(hosts), std::nullopt);
}

TEST(Validate, PortsOnlyWithTcpOrUdp) {
  Rule r;
  r.dport = {{80, 80}};
  EXPECT_EQ(validate(r), "ports need protocol tcp or udp, not any");
  r.proto = 1;
  EXPECT_EQ(validate(r), "ports need protocol tcp or udp, not icmp");
  r.dport.clear();
  r.proto = 47;
  r.sport = {{80, 80}};
  EXPECT_EQ(validate(r), "ports need protocol tcp or udp, not 47");
}

TEST(Validate, IcmpTypesOnlyWithIcmp) {
  Rule r;
  r.icmp = {{8, -1}};
  EXPECT_EQ(validate(r), "icmp types need protocol icmp, not any");
  r.proto = 6;
  EXPECT_EQ(validate(r), "icmp types need protocol icmp, not tcp");
  r.proto = 1;
  r.icmp = {{3, 256}};
  EXPECT_EQ(validate(r), "icmp type 3 code 256 is not 0-255");
}

TEST(Validate, PrefixesWithHostBits) {
  Rule r;
  r.src = {pfx("10.0.0.1/24")};
  EXPECT_EQ(validate(r), "src 10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24?");
  r.src.clear();
  r.dst = {pfx("10.0.0.0/8"), pfx("172.16.5.4/12")};
  EXPECT_EQ(validate(r), "dst 172.16.5.4/12 has host bits set; did you mean 172.16.0.0/12?");
  r.dst = {Ipv4Prefix{0, 33}};
  EXPECT_EQ(validate(r), "dst 0.0.0.0/33 has a length over 32");
}

TEST(Validate, InvertedRanges) {
  Rule r;
  r.proto = 6;
  r.dport = {{90, 80}};
  EXPECT_EQ(validate(r), "dport range 90-80 has lo > hi");
  r.dport.clear();
  r.sport = {{1, 1}, {5, 4}};
  EXPECT_EQ(validate(r), "sport range 5-4 has lo > hi");
}

TEST(Validate, ExpansionLimit) {
  Rule r;
  r.proto = 6;
  for (uint32_t i = 0; i < 64; ++i) r.src.push_back({(10u << 24) | (i << 8), 24});
  for (uint16_t i = 0; i < 64; ++i) r.dport.push_back({i, i});
  ASSERT_EQ(r.expansion(), kMaxExpansion);
  EXPECT_EQ(validate(r), std::nullopt);
  r.dport.push_back({1000, 1000});
  EXPECT_EQ(validate(r), "expands to 4160 classifier rules (src x dst x ports); at most 4096");
}

TEST(ValidatePolicy, FromAndTo) {
  Policy p;
  EXPECT_EQ(validate(p), "policy has no from zone");
  p.from = "office";
  EXPECT_EQ(validate(p), "policy from \"office\" has no to zone");
  p.to = "vdc-a";
  EXPECT_EQ(validate(p), std::nullopt);
}

TEST(ValidatePolicy, RuleErrorsNameThePosition) {
  Policy p{"office", "vdc-a", {}, Action::kDrop};
  p.rules.push_back(web_rule());
  p.rules.push_back(Rule{});
  Rule bad = web_rule();
  bad.name = "web";
  bad.src = {pfx("10.0.0.1/24")};
  p.rules.push_back(bad);
  EXPECT_EQ(validate(p),
            "rule 3 (\"web\"): src 10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24?");
  p.rules[2].name.clear();
  EXPECT_EQ(validate(p), "rule 3: src 10.0.0.1/24 has host bits set; did you mean 10.0.0.0/24?");
  p.rules[2].src = {pfx("10.0.0.0/24")};
  EXPECT_EQ(validate(p), std::nullopt);
}

TEST(ValidatePolicy, NamesUnique) {
  Policy p{"office", "vdc-a", {}, Action::kDrop};
  for (const char* n : {"a", "", "b", "", "a"}) {
    Rule r;
    r.name = n;
    p.rules.push_back(r);
  }
  EXPECT_EQ(validate(p), "rule 5 (\"a\"): name already used by rule 1");
  p.rules[4].name = "c";
  // Unnamed rules never clash with each other.
  EXPECT_EQ(validate(p), std::nullopt);
}

TEST(BuiltinDefault, IsolatesDifferentVdcsOnly) {
  using enum ZoneKind;
  EXPECT_EQ(builtin_default(kVdc, 1, kVdc, 2), Action::kDrop);
  EXPECT_EQ(builtin_default(kVdc, 2, kVdc, 1), Action::kDrop);
  EXPECT_EQ(builtin_default(kVdc, 3, kVdc, 3), Action::kAccept);
  const ZoneKind kinds[] = {kUplink, kUsers, kVdc, kManagement};
  for (ZoneKind a : kinds)
    for (ZoneKind b : kinds) {
      if (a == kVdc && b == kVdc) continue;
      EXPECT_EQ(builtin_default(a, 1, b, 2), Action::kAccept)
          << zone_kind_name(a) << " -> " << zone_kind_name(b);
      EXPECT_EQ(builtin_default(a, 1, b, 1), Action::kAccept);
    }
}

}  // namespace
}  // namespace tether::fw
