// The reconciler's pure diff: desired state vs. what the dataplane reports.
#include <gtest/gtest.h>

#include "controlplane/diff.h"

namespace tether::cp {
namespace {

using nlohmann::json;

PortAddress addr(const std::string& port, const std::string& a) {
  return {port, *parse_prefix(a, true)};
}

Route route(uint16_t domain, const std::string& prefix, const std::string& via,
            const std::string& port = "") {
  Route r;
  r.domain = domain;
  r.prefix = *parse_prefix(prefix);
  if (!via.empty()) r.via = parse_ipv4(via);
  r.port = port;
  return r;
}

ReportedAddress rep_addr(const std::string& port, const std::string& a, const std::string& origin) {
  return {port, *parse_prefix(a, true), origin};
}

ReportedRoute rep_route(uint16_t domain, const std::string& prefix, const std::string& via,
                        const std::string& port, const std::string& origin) {
  ReportedRoute r;
  r.domain = domain;
  r.prefix = *parse_prefix(prefix);
  if (!via.empty()) r.via = parse_ipv4(via);
  r.port = port;
  r.origin = origin;
  return r;
}

// The dataplane's boot configuration, as in docs/config.md.
DataplaneState boot_config() {
  DataplaneState s;
  s.ports = {"uplink", "lan"};
  s.addresses = {rep_addr("uplink", "10.0.1.1/24", "config"),
                 rep_addr("lan", "10.0.2.1/24", "config")};
  s.routes = {rep_route(0, "10.0.1.0/24", "", "uplink", "connected"),
              rep_route(0, "10.0.2.0/24", "", "lan", "connected"),
              rep_route(0, "0.0.0.0/0", "10.0.1.254", "uplink", "config")};
  return s;
}

// Changes as short strings, to compare order at a glance.
std::vector<std::string> ops(const Plan& p) {
  std::vector<std::string> out;
  for (const auto& c : p.changes) out.push_back(describe_change(c));
  return out;
}

TEST(Diff, NothingDesiredLeavesBootConfigAlone) {
  Plan p = plan_changes({}, boot_config());
  EXPECT_TRUE(p.empty());
  EXPECT_TRUE(p.held_back.empty());
}

TEST(Diff, InSyncStateNeedsNoChanges) {
  DataplaneState s = boot_config();
  s.addresses.push_back(rep_addr("uplink", "10.0.9.1/24", "api"));
  s.routes.push_back(rep_route(0, "10.2.0.0/24", "10.0.9.254", "uplink", "api"));
  DesiredState d;
  d.addresses = {addr("uplink", "10.0.9.1/24")};
  d.routes = {route(0, "10.2.0.0/24", "10.0.9.254")};  // no port: any port satisfies it
  EXPECT_TRUE(plan_changes(d, s).empty());
}

TEST(Diff, AddsAddressesBeforeTheRoutesThatNeedThem) {
  DesiredState d;
  d.routes = {route(0, "10.2.0.0/24", "10.0.9.254", "uplink"),
              route(0, "10.1.0.0/16", "10.0.9.253")};
  d.addresses = {addr("uplink", "10.0.9.1/24")};
  Plan p = plan_changes(d, boot_config());
  EXPECT_EQ(ops(p), (std::vector<std::string>{
                        "address add 10.0.9.1/24 on uplink",
                        "route add 10.1.0.0/16 domain 0 via 10.0.9.253",
                        "route add 10.2.0.0/24 domain 0 via 10.0.9.254 on uplink",
                    }));
  EXPECT_EQ(
      p.changes[0],
      json({{"kind", "address"}, {"op", "add"}, {"port", "uplink"}, {"address", "10.0.9.1/24"}}));
  EXPECT_EQ(p.changes[1], json({{"kind", "route"},
                                {"op", "add"},
                                {"domain", 0},
                                {"prefix", "10.1.0.0/16"},
                                {"via", "10.0.9.253"}}));
}

TEST(Diff, DeletesRoutesBeforeTheAddressesTheyDependOn) {
  DataplaneState s = boot_config();
  s.addresses.push_back(rep_addr("uplink", "10.0.9.1/24", "api"));
  s.routes.push_back(rep_route(0, "10.2.0.0/24", "10.0.9.254", "uplink", "api"));
  Plan p = plan_changes({}, s);
  EXPECT_EQ(ops(p), (std::vector<std::string>{"route del 10.2.0.0/24 domain 0",
                                              "address del 10.0.9.1/24 on uplink"}));
  EXPECT_EQ(p.changes[0],
            json({{"kind", "route"}, {"op", "del"}, {"domain", 0}, {"prefix", "10.2.0.0/24"}}));
}

TEST(Diff, FullOrderRouteDelsAddressDelsAddressAddsRouteAdds) {
  DataplaneState s = boot_config();
  s.addresses.push_back(rep_addr("lan", "10.0.8.1/24", "api"));
  s.routes.push_back(rep_route(0, "10.5.0.0/16", "10.0.8.254", "lan", "api"));
  DesiredState d;
  d.addresses = {addr("uplink", "10.0.9.1/24")};
  d.routes = {route(0, "10.6.0.0/16", "10.0.9.254")};
  EXPECT_EQ(ops(plan_changes(d, s)), (std::vector<std::string>{
                                         "route del 10.5.0.0/16 domain 0",
                                         "address del 10.0.8.1/24 on lan",
                                         "address add 10.0.9.1/24 on uplink",
                                         "route add 10.6.0.0/16 domain 0 via 10.0.9.254",
                                     }));
}

TEST(Diff, ChangedRouteIsDeletedThenAdded) {
  DataplaneState s = boot_config();
  s.routes.push_back(rep_route(0, "10.2.0.0/24", "10.0.1.253", "uplink", "api"));
  DesiredState d;
  d.routes = {route(0, "10.2.0.0/24", "10.0.1.252")};
  EXPECT_EQ(ops(plan_changes(d, s)),
            (std::vector<std::string>{"route del 10.2.0.0/24 domain 0",
                                      "route add 10.2.0.0/24 domain 0 via 10.0.1.252"}));
}

TEST(Diff, SameRouteInAnotherDomainIsAnotherRoute) {
  DataplaneState s = boot_config();
  s.routes.push_back(rep_route(0, "10.2.0.0/24", "10.0.1.253", "uplink", "api"));
  DesiredState d;
  d.routes = {route(0, "10.2.0.0/24", "10.0.1.253"), route(4, "10.2.0.0/24", "", "lan")};
  EXPECT_EQ(ops(plan_changes(d, s)),
            (std::vector<std::string>{"route add 10.2.0.0/24 domain 4 on lan"}));
}

TEST(Diff, ReaddressingRehomesTheRoutesThatDependOnIt) {
  // 10.0.9.1/24 becomes 10.0.9.2/24; the route via 10.0.9.254 stays. The
  // dataplane refuses to delete an address a route depends on, so the route
  // goes first and comes back last, all in one generation.
  DataplaneState s = boot_config();
  s.addresses.push_back(rep_addr("uplink", "10.0.9.1/24", "api"));
  s.routes.push_back(rep_route(0, "10.2.0.0/24", "10.0.9.254", "uplink", "api"));
  DesiredState d;
  d.addresses = {addr("uplink", "10.0.9.2/24")};
  d.routes = {route(0, "10.2.0.0/24", "10.0.9.254")};
  EXPECT_EQ(ops(plan_changes(d, s)), (std::vector<std::string>{
                                         "route del 10.2.0.0/24 domain 0",
                                         "address del 10.0.9.1/24 on uplink",
                                         "address add 10.0.9.2/24 on uplink",
                                         "route add 10.2.0.0/24 domain 0 via 10.0.9.254",
                                     }));
}

TEST(Diff, AddressLengthChangeIsDeleteThenAdd) {
  DataplaneState s = boot_config();
  s.addresses.push_back(rep_addr("uplink", "10.0.9.1/24", "api"));
  DesiredState d;
  d.addresses = {addr("uplink", "10.0.9.1/23")};
  EXPECT_EQ(ops(plan_changes(d, s)), (std::vector<std::string>{
                                         "address del 10.0.9.1/24 on uplink",
                                         "address add 10.0.9.1/23 on uplink",
                                     }));
}

TEST(Diff, ConfigOriginEntriesAreNeverTouched) {
  DataplaneState s = boot_config();
  DesiredState d;
  // Same as the boot configuration: already there, nothing to send.
  d.addresses = {addr("uplink", "10.0.1.1/24")};
  // Same key as a config route but different: held back, never replaced.
  d.routes = {route(0, "0.0.0.0/0", "10.0.1.253"),
              // Same key as a connected subnet.
              route(0, "10.0.2.0/24", "10.0.1.254")};
  Plan p = plan_changes(d, s);
  EXPECT_TRUE(p.empty()) << ::testing::PrintToString(ops(p));
  ASSERT_EQ(p.held_back.size(), 2u);
  EXPECT_NE(p.held_back[0].find("config route 0.0.0.0/0 via 10.0.1.254 on uplink holds that"),
            std::string::npos)
      << p.held_back[0];
  EXPECT_NE(p.held_back[1].find("connected route 10.0.2.0/24"), std::string::npos)
      << p.held_back[1];
  // And nothing of origin config or connected is ever deleted.
  for (const auto& c : plan_changes({}, s).changes) ADD_FAILURE() << c.dump();
}

TEST(Diff, DesiredRouteEqualToConfigRouteIsSatisfied) {
  DesiredState d;
  d.routes = {route(0, "0.0.0.0/0", "10.0.1.254")};
  Plan p = plan_changes(d, boot_config());
  EXPECT_TRUE(p.empty());
  EXPECT_TRUE(p.held_back.empty());
}

TEST(Diff, UnknownPortIsHeldBackNotSent) {
  DesiredState d;
  d.addresses = {addr("vdc7", "10.7.0.1/24"), addr("lan", "10.0.3.1/24")};
  d.routes = {route(0, "10.8.0.0/16", "", "vdc7")};
  Plan p = plan_changes(d, boot_config());
  EXPECT_EQ(ops(p), (std::vector<std::string>{"address add 10.0.3.1/24 on lan"}));
  ASSERT_EQ(p.held_back.size(), 2u);
  EXPECT_NE(p.held_back[0].find("the dataplane has no port vdc7"), std::string::npos);
}

TEST(Diff, ParsesTheDataplaneReplies) {
  json ports = json::parse(R"({"ports": [
    {"name": "uplink", "index": 0, "kind": "data", "addresses": [
      {"address": "10.0.1.1/24", "origin": "config"}, {"address": "10.0.9.1/24", "origin": "api"}]},
    {"name": "tap", "kind": "exception", "addresses": [{"address": "10.0.7.1/24"}]}]})");
  json routes = json::parse(R"({"generation": 4, "routes": [
    {"domain": 0, "prefix": "10.0.1.0/24", "via": null, "port": "uplink", "kind": "connected",
     "origin": "connected"},
    {"domain": 2, "prefix": "10.2.0.0/24", "via": "10.0.9.254", "port": "uplink",
     "kind": "static", "origin": "api"},
    {"domain": 0, "prefix": "192.168.50.0/24", "via": null, "port": null, "peer": "x",
     "interface": "wg0", "kind": "tunnel", "origin": "api"}]})");
  // A WireGuard peer's allowed prefix is not a route the control plane owns.
  auto s = parse_dataplane_state(ports, routes);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->ports, (std::vector<std::string>{"uplink", "tap"}));
  ASSERT_EQ(s->addresses.size(), 3u);
  EXPECT_EQ(s->addresses[1].origin, "api");
  EXPECT_EQ(s->addresses[2].origin, "config");  // no origin: treated as not ours
  ASSERT_EQ(s->routes.size(), 2u);
  EXPECT_FALSE(s->routes[0].via);
  EXPECT_EQ(s->routes[1].domain, 2);
  EXPECT_EQ(format_ipv4(*s->routes[1].via), "10.0.9.254");

  EXPECT_FALSE(parse_dataplane_state(json::object(), routes));
  EXPECT_FALSE(
      parse_dataplane_state(ports, json::parse(R"({"routes": [{"prefix": "10.2.0.1/24"}]})")));
}

}  // namespace
}  // namespace tether::cp
