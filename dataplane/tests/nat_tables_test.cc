// NAT entries in ControlState (validation) and the generation's NatView
// (which mapping a first packet hits).
#include <gtest/gtest.h>

#include "dataplane/nat_json.h"
#include "dataplane/tables.h"

namespace tether::dp {
namespace {

std::vector<PortInfo> ports() {
  return {{"uplink", "net_null0", 0, 0, 1500, {}, false},
          {"vdc7", "net_null1", 1, 7, 1500, {}, false},
          {"vdc8", "net_null2", 2, 8, 1500, {}, false}};
}

Change address(const std::string& port, const std::string& a, bool add = true) {
  Change c;
  c.kind = Change::Kind::kAddress;
  c.add = add;
  c.port = port;
  c.prefix = *parse_prefix(a, true);
  return c;
}

Change gateway(uint16_t domain, const std::string& a, bool add = true) {
  Change c;
  c.kind = Change::Kind::kNatGateway;
  c.add = add;
  c.nat_gateway = {domain, a.empty() ? 0 : *parse_ipv4(a)};
  return c;
}

Change mapping(const nlohmann::json& j, const char* op = "add") {
  Change c;
  c.kind = Change::Kind::kNatMapping;
  c.add = std::string(op) != "del";
  c.update = std::string(op) == "update";
  c.nat_mapping = parse_nat_mapping(j, "m", !c.add);
  return c;
}

Change rewrite(uint16_t domain, const std::string& from, const std::string& to) {
  Change c;
  c.kind = Change::Kind::kNatRewrite;
  c.nat_rewrite = {domain, *parse_ipv4(from), *parse_ipv4(to)};
  return c;
}

nlohmann::json rdp(const std::string& name = "rdp", const std::string& ports = "3389") {
  return {{"name", name}, {"public", "198.51.100.7"}, {"protocol", "tcp"}, {"ports", ports},
          {"domain", 7},  {"inner", "10.0.0.5"}};
}

class NatStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ok(address("uplink", "198.51.100.1/24"));
    ok(address("uplink", "198.51.100.7/24"));
    ok(address("vdc7", "10.0.0.1/24"));
    ok(gateway(7, "10.0.0.254"));
  }
  ControlState s{ports()};
  void ok(const Change& c) {
    auto err = s.apply(c, Origin::kApi);
    ASSERT_FALSE(err) << *err;
  }
  std::string refused(const Change& c) {
    auto err = s.apply(c, Origin::kApi);
    EXPECT_TRUE(err);
    return err.value_or("");
  }
};

TEST_F(NatStateTest, MappingNeedsOwnPublicAddressAndAGateway) {
  ok(mapping(rdp()));
  auto j = rdp("other");
  j["public"] = "198.51.100.99";
  EXPECT_NE(refused(mapping(j)).find("not an address of a port"), std::string::npos);
  j = rdp("vdc9");
  j["domain"] = 9;
  j["ports"] = "3390";
  EXPECT_NE(refused(mapping(j)).find("has no nat_gateway"), std::string::npos);
  j = rdp("self");
  j["ports"] = "3391";
  j["inner"] = "10.0.0.254";
  EXPECT_NE(refused(mapping(j)).find("gateway's own"), std::string::npos);
}

TEST_F(NatStateTest, PublicPortsMustNotOverlap) {
  ok(mapping(rdp("a", "5000-5099")));
  EXPECT_NE(refused(mapping(rdp("b", "5099-5100"))).find("overlaps mapping \"a\""),
            std::string::npos);
  ok(mapping(rdp("c", "5100")));
  auto udp = rdp("d", "5000");
  udp["protocol"] = "udp";
  ok(mapping(udp));  // another protocol
  nlohmann::json whole = {{"name", "w"},
                          {"public", "198.51.100.7"},
                          {"protocol", "any"},
                          {"domain", 7},
                          {"inner", "10.0.0.9"}};
  EXPECT_NE(refused(mapping(whole)).find("overlaps"), std::string::npos);
  EXPECT_NE(refused(mapping(rdp("a"))).find("already configured"), std::string::npos);
}

TEST_F(NatStateTest, WireGuardListenPortsAndPublishedPortsExcludeEachOther) {
  auto udp = rdp("dns", "51000-52000");
  udp["protocol"] = "udp";
  ok(mapping(udp));
  Change wg;
  wg.kind = Change::Kind::kWgInterface;
  wg.wg_interface.name = "wg0";
  wg.wg_interface.private_key.fill(7);
  wg.wg_interface.address = *parse_ipv4("198.51.100.7");
  wg.wg_interface.listen_port = 51820;
  EXPECT_NE(refused(wg).find("published by nat_mapping \"dns\""), std::string::npos);
  wg.wg_interface.listen_port = 53000;
  ok(wg);
  auto cover = rdp("cover", "52999-53001");
  cover["protocol"] = "udp";
  EXPECT_NE(refused(mapping(cover)).find("listen port"), std::string::npos);
}

TEST_F(NatStateTest, InnerPortRangeMustFit) {
  auto j = rdp("x", "100-200");
  j["inner_port"] = 65500;
  EXPECT_NE(refused(mapping(j)).find("inner port range"), std::string::npos);
}

TEST_F(NatStateTest, UsedAddressesAndGatewaysCannotBeDeleted) {
  ok(mapping(rdp()));
  EXPECT_NE(refused(address("uplink", "198.51.100.7/24", false)).find("publishes it"),
            std::string::npos);
  EXPECT_NE(refused(gateway(7, "", false)).find("uses it"), std::string::npos);
  ok(mapping(rdp(), "del"));
  ok(gateway(7, "", false));
  ok(address("uplink", "198.51.100.7/24", false));
}

TEST_F(NatStateTest, UpdateReplacesAndRewriteMovesEveryMappingOfTheAddress) {
  ok(mapping(rdp("a", "3389")));
  ok(mapping(rdp("b", "22")));
  auto j = rdp("a", "3389");
  j["inner_port"] = 3390;
  ok(mapping(j, "update"));
  EXPECT_EQ(s.nat_mapping("a")->e.inner_port, 3390);
  ok(rewrite(7, "10.0.0.5", "10.0.0.50"));
  EXPECT_EQ(s.nat_mapping("a")->e.inner_addr, *parse_ipv4("10.0.0.50"));
  EXPECT_EQ(s.nat_mapping("b")->e.inner_addr, *parse_ipv4("10.0.0.50"));
  EXPECT_NE(refused(rewrite(7, "10.0.0.5", "10.0.0.51")).find("no mapping"), std::string::npos);
  EXPECT_NE(refused(rewrite(7, "10.0.0.50", "10.0.0.254")).find("gateway's own"),
            std::string::npos);
  EXPECT_NE(refused(rewrite(7, "10.0.0.50", "10.0.0.1")).find("gateway's own"),
            std::string::npos);  // the VDC port's address
}

TEST_F(NatStateTest, ABatchOfRewritesAppliesTogether) {
  ok(mapping(rdp("a", "3389")));
  auto b = rdp("b", "22");
  b["inner"] = "10.0.0.6";
  ok(mapping(b));
  Change swap[2] = {rewrite(7, "10.0.0.5", "10.0.0.6"), rewrite(7, "10.0.0.6", "10.0.0.5")};
  size_t bad = 99;
  auto err = s.apply_nat_rewrites(swap, 2, &bad);
  ASSERT_FALSE(err) << *err;
  EXPECT_EQ(s.nat_mapping("a")->e.inner_addr, *parse_ipv4("10.0.0.6"));
  EXPECT_EQ(s.nat_mapping("b")->e.inner_addr, *parse_ipv4("10.0.0.5"));
  Change miss[2] = {rewrite(7, "10.0.0.5", "10.0.0.7"), rewrite(7, "10.0.0.99", "10.0.0.8")};
  err = s.apply_nat_rewrites(miss, 2, &bad);
  ASSERT_TRUE(err);
  EXPECT_EQ(bad, 1u);
  EXPECT_NE(err->find("no mapping"), std::string::npos);
}

TEST(NatJson, ParsesAndRefusesWithTheField) {
  auto m = parse_nat_mapping(rdp("r", "5000-5009"), "m");
  EXPECT_EQ(m.port_lo, 5000);
  EXPECT_EQ(m.port_hi, 5009);
  EXPECT_EQ(m.inner_port, 5000);
  auto bad = rdp();
  bad["ports"] = "80-70";
  EXPECT_THROW(parse_nat_mapping(bad, "m"), std::invalid_argument);
  bad = rdp();
  bad["protocol"] = "sctp";
  EXPECT_THROW(parse_nat_mapping(bad, "m"), std::invalid_argument);
  bad = rdp();
  bad["color"] = "red";
  EXPECT_THROW(parse_nat_mapping(bad, "m"), std::invalid_argument);
  EXPECT_EQ(nat_mapping_json(m)["ports"], "5000-5009");
  EXPECT_THROW(parse_nat_timeouts({{"udp_s", 60}}, "t"), std::invalid_argument);
  EXPECT_EQ(parse_nat_timeouts({{"udp_s", 120}}, "t").udp_s, 120u);
}

TEST(NatView, FindsExactRangesThenWholeAddress) {
  nat::NatView v;
  auto add = [&](uint32_t id, uint8_t proto, uint16_t lo, uint16_t hi) {
    nat::MappingEntry e;
    e.public_addr = 0xc6336407;
    e.proto = proto;
    e.port_lo = lo;
    e.port_hi = hi;
    nat::MappingView mv;
    mv.live = true;
    v.add_mapping(id, e, mv);
  };
  add(0, nat::kTcp, 5000, 5099);
  add(1, nat::kTcp, 80, 80);
  add(2, nat::kUdp, 80, 80);
  EXPECT_EQ(v.find(0, 0xc6336407, nat::kTcp, 80), 1u);
  EXPECT_EQ(v.find(0, 0xc6336407, nat::kUdp, 80), 2u);
  EXPECT_EQ(v.find(0, 0xc6336407, nat::kTcp, 5000), 0u);
  EXPECT_EQ(v.find(0, 0xc6336407, nat::kTcp, 5099), 0u);
  EXPECT_EQ(v.find(0, 0xc6336407, nat::kTcp, 5100), UINT32_MAX);
  EXPECT_EQ(v.find(0, 0xc6336407, nat::kTcp, 79), UINT32_MAX);
  EXPECT_EQ(v.find(1, 0xc6336407, nat::kTcp, 80), UINT32_MAX);  // another domain
  EXPECT_EQ(v.find(0, 0xc6336407, nat::kIcmp, 0), UINT32_MAX);
  // Sessions are stale only for tags this view knows of.
  v.set_max_tag(5);
  EXPECT_TRUE(v.mapping_stale(7, 4));            // no mapping 7 in this view
  EXPECT_FALSE(v.mapping_stale(7, 6));           // made under a newer generation
  EXPECT_FALSE(v.mapping_stale(UINT32_MAX, 1));  // no mapping at all
  add(3, 0, 0, 0);
  EXPECT_EQ(v.find(0, 0xc6336407, nat::kIcmp, 0), 3u);
  EXPECT_EQ(v.find(0, 0xc6336407, nat::kTcp, 81), 3u);
  EXPECT_EQ(v.find(0, 0xc6336407, nat::kTcp, 80), 1u);
}

}  // namespace
}  // namespace tether::dp
