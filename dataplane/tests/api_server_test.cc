// The API server against a real Dataplane on net_null ports (no workers
// running): requests, refusals and whole-or-nothing changes.
#include "dataplane/api_server.h"

#include <rte_bus_vdev.h>

#include <gtest/gtest.h>

#include "dataplane/dataplane.h"

namespace tether::dp {
namespace {

using nlohmann::json;

class ApiServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(rte_vdev_init("net_null_api0", nullptr), 0);
    ASSERT_EQ(rte_vdev_init("net_null_api1", nullptr), 0);
    std::string err;
    auto cfg = parse_config(R"({
      "lcores": {"service": 0, "workers": [1]},
      "ports": [
        {"name": "uplink", "device": "net_null_api0", "addresses": ["10.0.1.1/24"],
         "mac": "02:00:00:00:01:01"},
        {"name": "lan", "device": "net_null_api1", "addresses": ["10.0.2.1/24"]}],
      "routes": [{"prefix": "0.0.0.0/0", "via": "10.0.1.254"}]})",
                            &err);
    ASSERT_TRUE(cfg) << err;
    cfg->service_lcore = 0;
    dp_ = new Dataplane(*cfg);
    ASSERT_TRUE(dp_->setup(&err)) << err;
    api_ = new ApiServer(*dp_, "/tmp/unused.sock");
  }
  static void TearDownTestSuite() {
    delete api_;
    if (dp_) {
      EXPECT_EQ(dp_->shutdown(), 0);  // every mbuf back in the pool
    }
    delete dp_;
  }
  json call(const std::string& method, json params = json::object()) {
    bool hello = true;
    return api_->handle({{"id", 1}, {"method", method}, {"params", params}}, hello);
  }
  static Dataplane* dp_;
  static ApiServer* api_;
};
Dataplane* ApiServerTest::dp_ = nullptr;
ApiServer* ApiServerTest::api_ = nullptr;

TEST_F(ApiServerTest, HelloComesFirst) {
  bool hello = false;
  json r = api_->handle({{"id", 5}, {"method", "routes.list"}}, hello);
  EXPECT_FALSE(r["ok"]);
  EXPECT_EQ(r["error"]["code"], "hello_required");
  r = api_->handle({{"id", 6}, {"method", "hello"}, {"params", {{"version", 1}}}}, hello);
  EXPECT_TRUE(r["ok"]);
  EXPECT_EQ(r["id"], 6);
  EXPECT_EQ(r["result"]["version"], 1);
  EXPECT_TRUE(hello);
  r = api_->handle({{"id", 7}, {"method", "hello"}, {"params", {{"version", 0}}}}, hello);
  EXPECT_EQ(r["error"]["code"], "unsupported_version");
  r = api_->handle({{"id", 8}, {"method", "nope"}}, hello);
  EXPECT_EQ(r["error"]["code"], "unknown_method");
}

TEST_F(ApiServerTest, ListsPortsRoutesAndCounters) {
  json ports = call("ports.list")["result"]["ports"];
  ASSERT_EQ(ports.size(), 2u);
  EXPECT_EQ(ports[0]["name"], "uplink");
  EXPECT_EQ(ports[0]["mac"], "02:00:00:00:01:01");
  EXPECT_EQ(ports[0]["addresses"][0]["address"], "10.0.1.1/24");
  EXPECT_EQ(ports[0]["addresses"][0]["origin"], "config");
  json routes = call("routes.list")["result"]["routes"];
  bool found_default = false;
  for (auto& r : routes)
    if (r["prefix"] == "0.0.0.0/0") {
      found_default = true;
      EXPECT_EQ(r["via"], "10.0.1.254");
      EXPECT_EQ(r["origin"], "config");
    }
  EXPECT_TRUE(found_default);
  json c = call("counters.get")["result"];
  EXPECT_EQ(c["drops"].size(), kNumDrops);
  EXPECT_EQ(c["drops"]["ipv4_bad_checksum"], 0);
  EXPECT_GT(c["mbufs"]["size"], 0);
}

TEST_F(ApiServerTest, ABatchIsAppliedWholeOrRefusedWhole) {
  uint64_t g0 = call("generation.get")["result"]["generation"];
  json bad = {
      {"changes",
       {{{"op", "add"}, {"kind", "route"}, {"prefix", "10.5.0.0/16"}, {"via", "10.0.2.5"}},
        {{"op", "add"}, {"kind", "route"}, {"prefix", "10.6.0.0/16"}, {"via", "10.0.9.9"}}}}};
  json r = call("config.apply", bad);
  EXPECT_FALSE(r["ok"]);
  EXPECT_EQ(r["error"]["code"], "invalid_argument");
  EXPECT_EQ(r["error"]["message"],
            "change 1: route 10.6.0.0/16 in domain 0 via 10.0.9.9: gateway 10.0.9.9 is not in a "
            "connected subnet");
  EXPECT_EQ(call("generation.get")["result"]["generation"], g0);  // nothing applied
  json listed = call("routes.list");
  for (auto& route : listed["result"]["routes"]) EXPECT_NE(route["prefix"], "10.5.0.0/16");

  json good = {{"expect_generation", g0},
               {"changes",
                {{{"op", "add"}, {"kind", "route"}, {"prefix", "10.5.0.0/16"}, {"via", "10.0.2.5"}},
                 {{"op", "add"},
                  {"kind", "neighbor"},
                  {"port", "lan"},
                  {"ip", "10.0.2.5"},
                  {"mac", "02:00:00:00:02:05"}}}}};
  r = call("config.apply", good);
  ASSERT_TRUE(r["ok"]) << r.dump();
  EXPECT_EQ(r["result"]["generation"], g0 + 1);
  // A stale writer is told so.
  r = call("config.apply", good);
  EXPECT_EQ(r["error"]["code"], "conflict");
  bool pinned = false;
  json neighbors = call("neighbors.list");
  for (auto& n : neighbors["result"]["neighbors"])
    if (n["ip"] == "10.0.2.5") {
      pinned = true;
      EXPECT_EQ(n["state"], "permanent");
      EXPECT_EQ(n["mac"], "02:00:00:00:02:05");
    }
  EXPECT_TRUE(pinned);
  // Config-owned entries are not the API's to delete.
  r = call("config.apply",
           {{"changes", {{{"op", "del"}, {"kind", "route"}, {"prefix", "0.0.0.0/0"}}}}});
  EXPECT_EQ(r["error"]["message"],
            "change 0: route 0.0.0.0/0 in domain 0: owned by origin config, not api");
  // Malformed requests get a precise message.
  r = call("config.apply",
           {{"changes", {{{"op", "add"}, {"kind", "route"}, {"prefix", "10.5.0.0/33"}}}}});
  EXPECT_EQ(r["error"]["message"], "change 0: prefix \"10.5.0.0/33\" is not like 10.2.0.0/16");
  r = call("config.apply", {{"changes", {{{"op", "move"}, {"kind", "route"}}}}});
  EXPECT_EQ(r["error"]["message"], "change 0: op must be add or del");
  r = call("config.apply", json::object());
  EXPECT_EQ(r["error"]["message"], "config.apply needs a \"changes\" array");
}

}  // namespace
}  // namespace tether::dp
