// Firewall zones and policies in ControlState (validation), their JSON
// forms, and the generation's FwView (zones of domains, ports and
// interfaces; classifiers shared while a policy is unchanged; the tag that
// makes sessions re-check themselves).
#include <gtest/gtest.h>

#include "dataplane/fw_json.h"
#include "dataplane/fw_runtime.h"
#include "dataplane/tables.h"
#include "dataplane/wireguard.h"

namespace tether::dp {
namespace {

using nlohmann::json;

std::vector<PortInfo> ports() {
  return {{"uplink", "net_null0", 0, 0, 1500, {}, false},
          {"vdc7", "net_null1", 1, 7, 1500, {}, false},
          {"vdc8", "net_null2", 2, 8, 1500, {}, false},
          {"lan7", "net_null3", 3, 7, 1500, {}, false},
          {"tap", "net_tap0", 4, 0, 1500, {}, true}};
}

Change zone(const json& j, const char* op = "add") {
  Change c;
  c.kind = Change::Kind::kFwZone;
  c.add = std::string(op) != "del";
  c.update = std::string(op) == "update";
  c.fw_zone = parse_fw_zone(j, "z", !c.add);
  return c;
}

Change policy(const json& j, const char* op = "add") {
  Change c;
  c.kind = Change::Kind::kFwPolicy;
  c.add = std::string(op) != "del";
  c.update = std::string(op) == "update";
  c.fw_policy = parse_fw_policy(j, "p", !c.add);
  return c;
}

json ssh_policy(const std::string& from = "uplink", const std::string& to = "vdc-7") {
  return {
      {"from", from},
      {"to", to},
      {"default", "drop"},
      {"rules", {{{"name", "ssh"}, {"protocol", "tcp"}, {"dport", "22"}, {"action", "accept"}}}}};
}

class FwStateTest : public ::testing::Test {
 protected:
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

TEST_F(FwStateTest, PoliciesNameZonesThatExist) {
  ok(policy(ssh_policy()));
  ok(policy(ssh_policy("vdc-7", "vdc-8")));
  ok(policy(ssh_policy("uplink", "management")));
  EXPECT_NE(refused(policy(ssh_policy())).find("already configured"), std::string::npos);
  EXPECT_NE(refused(policy(ssh_policy("nowhere", "vdc-7"))).find("no zone nowhere"),
            std::string::npos);
  EXPECT_NE(refused(policy(ssh_policy("vdc-07", "vdc-7"))).find("no zone vdc-07"),
            std::string::npos);
  EXPECT_NE(refused(policy(ssh_policy("management", "vdc-7"))).find("not filtered"),
            std::string::npos);
  EXPECT_NE(refused(policy(ssh_policy("uplink", "vdc-9"), "update")).find("no such policy"),
            std::string::npos);
  ok(policy(ssh_policy(), "update"));
  ok(policy({{"from", "uplink"}, {"to", "vdc-7"}}, "del"));
  EXPECT_NE(refused(policy({{"from", "uplink"}, {"to", "vdc-7"}}, "del")).find("no such policy"),
            std::string::npos);
}

TEST_F(FwStateTest, APolicyMayNotExpandBeyondWhatCompilesInSeconds) {
  // 100 rules of 64 sources x 64 destinations: 409600 rte_acl rules.
  json p = {{"from", "uplink"}, {"to", "vdc-7"}, {"rules", json::array()}};
  for (int i = 0; i < 100; ++i) {
    json src = json::array(), dst = json::array();
    for (int k = 0; k < 64; ++k) {
      src.push_back("10." + std::to_string(i) + "." + std::to_string(k) + ".0/24");
      dst.push_back("172.16." + std::to_string(k) + ".0/24");
    }
    p["rules"].push_back({{"src", src}, {"dst", dst}, {"action", "accept"}});
  }
  try {
    parse_fw_policy(p, "p");
    ADD_FAILURE() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("more than 262144"), std::string::npos) << e.what();
  }
}

TEST_F(FwStateTest, ZonesTakeDomainsPortsAndInterfacesOnce) {
  ok(zone({{"name", "acme"}, {"domains", json::array({7})}}));
  EXPECT_NE(refused(zone({{"name", "other"}, {"domains", json::array({8, 7})}}))
                .find("already in zone acme"),
            std::string::npos);
  EXPECT_NE(refused(zone({{"name", "uplink"}, {"domains", json::array({9})}})).find("reserved"),
            std::string::npos);
  EXPECT_NE(refused(zone({{"name", "lan"}, {"ports", json::array({"nope"})}})).find("no port nope"),
            std::string::npos);
  EXPECT_NE(refused(zone({{"name", "lan"}, {"ports", json::array({"tap"})}})).find("exception"),
            std::string::npos);
  EXPECT_NE(
      refused(zone({{"name", "users"}, {"kind", "users"}, {"wg_interfaces", json::array({"wg0"})}}))
          .find("no wg_interface wg0"),
      std::string::npos);
  // A domain in a zone is no longer its built-in zone.
  EXPECT_FALSE(s.fw_zone_exists("vdc-7"));
  EXPECT_TRUE(s.fw_zone_exists("vdc-8"));
  EXPECT_NE(refused(policy(ssh_policy("uplink", "vdc-7"))).find("domain 7 is in zone acme"),
            std::string::npos);
  ok(policy(ssh_policy("uplink", "acme")));
  EXPECT_NE(refused(zone({{"name", "acme"}}, "del")).find("policy uplink->acme names it"),
            std::string::npos);
  // A zone may not take a domain whose built-in zone a policy names.
  ok(policy(ssh_policy("uplink", "vdc-8")));
  EXPECT_NE(refused(zone({{"name", "acme"}, {"domains", json::array({7, 8})}}, "update"))
                .find("take over"),
            std::string::npos);
}

TEST(FwJson, RulesParseAndRefusePrecisely) {
  auto bad = [](const json& j) {
    try {
      parse_fw_rule(j, "r");
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(bad({{"action", "allow"}}).find("must be accept, drop or reject"), std::string::npos);
  EXPECT_NE(bad({{"protocol", "udp"}}).find("missing \"action\""), std::string::npos);
  EXPECT_NE(bad({{"protocol", "icmp"}, {"dport", "80"}, {"action", "drop"}}).find("port"),
            std::string::npos);
  EXPECT_NE(bad({{"src", "10.0.0.1/24"}, {"action", "drop"}}).find("host bits"), std::string::npos);
  EXPECT_NE(bad({{"protocol", "tcp"}, {"dport", "80-70"}, {"action", "drop"}}).find("lo > hi"),
            std::string::npos);
  EXPECT_NE(bad({{"icmp", {"8/x"}}, {"protocol", "icmp"}, {"action", "drop"}}).find("type/code"),
            std::string::npos);
  EXPECT_NE(bad({{"action", "drop"}, {"colour", "red"}}).find("unknown key \"colour\""),
            std::string::npos);
  // An empty list would match everything: refused, as is "any" in a list
  // (which would silently match less than written), and reserved names.
  EXPECT_NE(bad({{"src", json::array()}, {"action", "accept"}}).find("empty list"),
            std::string::npos);
  EXPECT_NE(
      bad({{"protocol", "icmp"}, {"icmp", json::array()}, {"action", "accept"}}).find("empty list"),
      std::string::npos);
  EXPECT_NE(
      bad({{"dst", json::array({"10.0.0.0/8", "any"})}, {"action", "accept"}}).find("use it alone"),
      std::string::npos);
  EXPECT_NE(bad({{"name", "#default"}, {"action", "accept"}}).find("reserved"), std::string::npos);
  EXPECT_EQ(bad({{"src", "any"}, {"action", "accept"}}), "accepted");
  fw::Rule r = parse_fw_rule({{"name", "web"},
                              {"src", {"203.0.113.0/24", "198.51.100.7"}},
                              {"protocol", "tcp"},
                              {"dport", "80,443"},
                              {"action", "reject"},
                              {"log", true}},
                             "r");
  EXPECT_EQ(r.src.size(), 2u);
  EXPECT_EQ(r.action, fw::Action::kReject);
  EXPECT_TRUE(r.log);
  // Round trip through the JSON the API lists.
  EXPECT_EQ(parse_fw_rule(fw_rule_json(r), "again"), r);
}

// The view of a generation: zones, shared classifiers, tags.
class FwViewTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string err;
    ASSERT_TRUE(rt.setup({1024, 100}, 1, &err)) << err;
  }
  FwView build(const FwView* prev) {
    FwView v;
    std::string err;
    EXPECT_TRUE(build_fw_view(s, prev, rt, ifaces, &v, &err)) << err;
    return v;
  }
  void ok(const Change& c) {
    auto err = s.apply(c, Origin::kApi);
    ASSERT_FALSE(err) << *err;
  }
  ControlState s{ports()};
  FwRuntime rt;
  std::vector<WgInterface*> ifaces;
};

TEST_F(FwViewTest, BuiltInZonesAndIsolation) {
  FwView v = build(nullptr);
  EXPECT_FALSE(v.configured());
  EXPECT_EQ(v.zone_of_port(0), implicit_zone(0));
  EXPECT_EQ(v.zone_of_port(1), implicit_zone(7));
  EXPECT_EQ(v.zone_of_port(4), kZoneManagement);  // the exception path
  EXPECT_EQ(v.zone_name(implicit_zone(7)), "vdc-7");
  EXPECT_EQ(v.zone_name(implicit_zone(0)), "uplink");
  EXPECT_EQ(v.builtin(implicit_zone(7), implicit_zone(8)).id, kRuleBuiltinIsolation);
  EXPECT_EQ(v.builtin(implicit_zone(7), implicit_zone(7)).action, fw::Action::kAccept);
  EXPECT_EQ(v.builtin(implicit_zone(0), implicit_zone(8)).action, fw::Action::kAccept);
  EXPECT_EQ(v.builtin(implicit_zone(8), kZoneManagement).action, fw::Action::kAccept);
}

TEST_F(FwViewTest, ExplicitZonesOverrideDomainsAndPorts) {
  ok(zone({{"name", "acme"}, {"domains", json::array({7, 8})}}));
  ok(zone({{"name", "lab"}, {"kind", "users"}, {"ports", json::array({"lan7"})}}));
  FwView v = build(nullptr);
  EXPECT_TRUE(v.configured());
  uint16_t acme = v.zone_of_port(1);
  EXPECT_GE(acme, kFirstExplicitZone);
  EXPECT_EQ(v.zone_of_port(2), acme);  // domain 8 too
  EXPECT_NE(v.zone_of_port(3), acme);  // a port of domain 7 in a zone of its own
  EXPECT_EQ(v.zone_kind(v.zone_of_port(3)), fw::ZoneKind::kUsers);
  EXPECT_FALSE(v.zone_live(implicit_zone(7)));
  EXPECT_TRUE(v.zone_live(implicit_zone(9)));
  // Two domains in one vdc zone are not isolated from each other.
  EXPECT_EQ(v.builtin(acme, acme).action, fw::Action::kAccept);
}

TEST_F(FwViewTest, UnchangedPoliciesKeepTheirClassifierAndTag) {
  ok(policy(ssh_policy()));
  ok(policy(ssh_policy("vdc-7", "vdc-8")));
  FwView v1 = build(nullptr);
  const FwPolicyView* a1 = v1.policy(implicit_zone(0), implicit_zone(7));
  ASSERT_TRUE(a1);
  EXPECT_EQ(a1->rules.size(), 1u);
  EXPECT_EQ(a1->changed_tag, v1.tag());

  // Nothing changed: same tag, same classifiers.
  FwView v2 = build(&v1);
  EXPECT_EQ(v2.tag(), v1.tag());
  EXPECT_EQ(v2.policy(implicit_zone(0), implicit_zone(7))->acl, a1->acl);

  // One policy changed: a new tag; only that one recompiles; rule ids of
  // rules that stayed are kept (their counters survive).
  json p = ssh_policy("vdc-7", "vdc-8");
  p["rules"].push_back(
      {{"name", "web"}, {"protocol", "tcp"}, {"dport", "80"}, {"action", "accept"}});
  ok(policy(p, "update"));
  FwView v3 = build(&v2);
  EXPECT_GT(v3.tag(), v2.tag());
  const FwPolicyView* a3 = v3.policy(implicit_zone(0), implicit_zone(7));
  EXPECT_EQ(a3->acl, a1->acl);
  EXPECT_EQ(a3->changed_tag, v1.tag());
  const FwPolicyView* b2 = v2.policy(implicit_zone(7), implicit_zone(8));
  const FwPolicyView* b3 = v3.policy(implicit_zone(7), implicit_zone(8));
  EXPECT_NE(b3->acl, b2->acl);
  EXPECT_EQ(b3->changed_tag, v3.tag());
  EXPECT_EQ(b3->rules[0].id, b2->rules[0].id);
  EXPECT_NE(b3->rules[1].id, b3->rules[0].id);
  EXPECT_EQ(b3->fallback.id, b2->fallback.id);

  // The classifier decides by position; no match is the default.
  fw::AclKey k22 = fw::make_key(6, 0x0a000001, 0x0a000005, 40000, 22);
  fw::AclKey k80 = fw::make_key(6, 0x0a000001, 0x0a000005, 40000, 80);
  fw::AclKey k25 = fw::make_key(6, 0x0a000001, 0x0a000005, 40000, 25);
  const fw::AclKey* keys[3] = {&k22, &k80, &k25};
  uint32_t r[3];
  b3->acl->classify(keys, r, 3);
  EXPECT_EQ(b3->verdict(r[0]).id, b3->rules[0].id);
  EXPECT_EQ(b3->verdict(r[1]).id, b3->rules[1].id);
  EXPECT_EQ(b3->verdict(r[2]).id, b3->fallback.id);
  EXPECT_EQ(b3->verdict(r[2]).action, fw::Action::kDrop);

  // A deleted policy is a change too; its rule ids go back after publish.
  ok(policy({{"from", "vdc-7"}, {"to", "vdc-8"}}, "del"));
  FwView v4 = build(&v3);
  EXPECT_GT(v4.tag(), v3.tag());
  EXPECT_FALSE(v4.policy(implicit_zone(7), implicit_zone(8)));
  rt.forget_except(v4);
  EXPECT_FALSE(rt.rule_name(b3->rules[1].id));
  EXPECT_TRUE(rt.rule_name(a3->rules[0].id));
}

TEST_F(FwViewTest, SessionKeysMatchAsTheDestinationZoneSeesThem) {
  // A published flow: 203.0.113.5:40000 -> 198.51.100.7:443 becomes
  // 10.0.0.254:1024 -> 10.0.0.5:8443 in domain 7. Rules see the source
  // before SNAT and the destination after DNAT.
  nat::FlowKey orig{0xcb007105, 0xc6336407, 40000, 443, 0, 6, nat::FlowKey::kFlow};
  nat::FlowKey reply{0x0a000005, 0x0a0000fe, 8443, 1024, 7, 6, nat::FlowKey::kFlow};
  fw::AclKey k = fw_key_of(orig, reply);
  fw::AclKey want = fw::make_key(6, 0xcb007105, 0x0a000005, 40000, 8443);
  EXPECT_EQ(std::memcmp(&k, &want, sizeof(k)), 0);
  nat::FlowKey echo{0x0a000001, 0x0a000002, 77, 0, 7, 1, nat::FlowKey::kFlow};
  fw::AclKey e = fw_key_of(echo, echo.mirrored());
  fw::AclKey ewant = fw::make_icmp_key(0x0a000001, 0x0a000002, 8, 0);
  EXPECT_EQ(std::memcmp(&e, &ewant, sizeof(e)), 0);
}

}  // namespace
}  // namespace tether::dp
