#include "dataplane/config.h"

#include <gtest/gtest.h>

namespace tether::dp {
namespace {

std::string parse_error(const std::string& text) {
  std::string err;
  EXPECT_FALSE(parse_config(text, &err)) << text;
  return err;
}

TEST(Config, ParsesAFullConfig) {
  std::string err;
  auto c = parse_config(R"({
    "api_socket": "/tmp/x.sock",
    "lcores": {"service": 0, "workers": [1]},
    "ports": [
      {"name": "uplink", "device": "net_af_packet0,iface=a", "addresses": ["10.0.1.1/24"],
       "mac": "02:00:00:00:00:01", "mtu": 1400},
      {"name": "lan", "device": "0000:00:08.0", "domain": 3}],
    "exception": {"device": "net_tap0,iface=t0"},
    "routes": [{"prefix": "0.0.0.0/0", "via": "10.0.1.254"}],
    "neighbors": [{"port": "lan", "ip": "10.0.2.2", "mac": "02:00:00:00:02:02"}],
    "icmp": {"rate_per_sec": 10, "burst": 5},
    "arp": {"retries": 5}
  })",
                        &err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->api_socket, "/tmp/x.sock");
  ASSERT_EQ(c->ports.size(), 2u);
  EXPECT_TRUE(c->ports[0].is_vdev());
  EXPECT_EQ(c->ports[0].device_name(), "net_af_packet0");
  EXPECT_FALSE(c->ports[1].is_vdev());
  EXPECT_EQ(c->ports[1].domain, 3);
  EXPECT_EQ(c->ports[0].mtu, 1400);
  EXPECT_EQ(format_prefix(c->ports[0].addresses[0]), "10.0.1.1/24");
  EXPECT_EQ(c->routes[0].via, parse_ipv4("10.0.1.254"));
  EXPECT_EQ(c->icmp.burst, 5u);
  EXPECT_EQ(c->arp.retries, 5u);
  EXPECT_EQ(c->arp.retry_ms, 1000u);  // default kept
}

TEST(Config, NamesTheOffendingField) {
  EXPECT_EQ(parse_error("{"), "the configuration is not valid JSON");
  EXPECT_EQ(parse_error(R"({"ports": []})"), "ports must be a non-empty array");
  EXPECT_EQ(parse_error(R"({"ports": [{"name": "a"}]})"), "ports[0].device must be a string");
  EXPECT_EQ(parse_error(R"({"ports": [{"name": "a", "device": "net_null0"},
                                      {"name": "a", "device": "net_null1"}]})"),
            "ports[1]: duplicate port name \"a\"");
  EXPECT_EQ(parse_error(R"({"ports": [{"name": "a", "device": "net_null0",
                                       "addresses": ["10.0.0.1"]}]})")
                .find("ports[0].addresses[0]"),
            0u);
  EXPECT_EQ(parse_error(R"({"ports": [{"name": "a", "device": "net_null0", "mtu": 99999}]})"),
            "ports[0].mtu must be between 576 and 9000");
  EXPECT_EQ(parse_error(R"({"ports": [{"name": "a", "device": "net_null0"}],
                            "routes": [{"prefix": "10.0.0.1/8", "via": "1.2.3.4"}]})"),
            "routes[0].prefix is not a network prefix (host bits must be zero)");
  EXPECT_EQ(parse_error(R"({"ports": [{"name": "a", "device": "net_null0"}], "bogus": 1})"),
            "unknown top-level key \"bogus\"");
  EXPECT_EQ(parse_error(R"({"ports": [{"name": "a", "device": "net_null0"}],
                            "exception": {"device": "net_null1"}})"),
            "exception.device must be a net_tap device");
}

TEST(Config, WireguardTimersAndTesting) {
  std::string err;
  auto c = parse_config(R"({
    "ports": [{"name": "uplink", "device": "net_null0"}],
    "wireguard": {"under_load_per_sec": 20,
                  "timers": {"rekey_after_time_ms": 3000, "reject_after_time_ms": 9000}},
    "testing": {"clock_control": true}
  })",
                        &err);
  ASSERT_TRUE(c) << err;
  EXPECT_EQ(c->wireguard.under_load_per_sec, 20u);
  EXPECT_EQ(c->wireguard.timers.rekey_after_time_ms, 3000u);
  EXPECT_EQ(c->wireguard.timers.reject_after_time_ms, 9000u);
  EXPECT_EQ(c->wireguard.timers.rekey_timeout_ms, 5000u);  // the protocol's default
  EXPECT_TRUE(c->testing.clock_control);
  auto d = parse_config(R"({"ports": [{"name": "u", "device": "net_null0"}]})", &err);
  ASSERT_TRUE(d) << err;
  EXPECT_EQ(d->wireguard.timers.reject_after_time_ms, 180000u);
  EXPECT_FALSE(d->testing.clock_control);
  EXPECT_NE(parse_error(R"({"ports": [{"name": "u", "device": "net_null0"}],
    "wireguard": {"timers": {"rekey_after_time_ms": 9000, "reject_after_time_ms": 3000}}})")
                .find("reject_after_time_ms must exceed"),
            std::string::npos);
  EXPECT_NE(parse_error(R"({"ports": [{"name": "u", "device": "net_null0"}],
    "wireguard": {"timers": {"rekey_after": 1}}})")
                .find("unknown key \"rekey_after\""),
            std::string::npos);
}

}  // namespace
}  // namespace tether::dp
