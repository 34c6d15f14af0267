#include "common/net.h"

#include <gtest/gtest.h>

namespace tether {
namespace {

TEST(Ipv4, ParsesAndFormats) {
  EXPECT_EQ(parse_ipv4("10.0.1.254"), 0x0a0001feu);
  EXPECT_EQ(format_ipv4(0xc0a80001u), "192.168.0.1");
  EXPECT_EQ(parse_ipv4("0.0.0.0"), 0u);
  EXPECT_EQ(parse_ipv4("255.255.255.255"), 0xffffffffu);
}

TEST(Ipv4, RejectsMalformed) {
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.0.0.1", "1.2.3.04", "a.b.c.d", "1..2.3",
                          "1.2.3.4 ", "-1.2.3.4", "1.2.3.1234"})
    EXPECT_FALSE(parse_ipv4(bad)) << bad;
}

TEST(Prefix, ParsesNetworksAndRejectsHostBits) {
  auto p = parse_prefix("10.2.0.0/16");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->len, 16);
  EXPECT_TRUE(p->contains(*parse_ipv4("10.2.255.1")));
  EXPECT_FALSE(p->contains(*parse_ipv4("10.3.0.1")));
  EXPECT_FALSE(parse_prefix("10.2.0.1/16"));
  EXPECT_TRUE(parse_prefix("10.2.0.1/16", true));
  EXPECT_EQ(parse_prefix("10.9.9.9")->len, 32);
  EXPECT_EQ(parse_prefix("0.0.0.0/0")->mask(), 0u);
  EXPECT_FALSE(parse_prefix("10.0.0.0/33"));
  EXPECT_FALSE(parse_prefix("10.0.0.0/"));
  EXPECT_FALSE(parse_prefix("10.0.0.0/8x"));
  EXPECT_EQ(format_prefix(*parse_prefix("172.16.0.0/12")), "172.16.0.0/12");
}

TEST(Mac, RoundTrips) {
  auto m = parse_mac("02:00:0a:ff:00:01");
  ASSERT_TRUE(m);
  EXPECT_EQ(format_mac(*m), "02:00:0a:ff:00:01");
  EXPECT_FALSE(parse_mac("02:00:0a:ff:00"));
  EXPECT_FALSE(parse_mac("02-00-0a-ff-00-01"));
  EXPECT_FALSE(parse_mac("02:00:0a:ff:00:0g"));
  EXPECT_TRUE(MacAddr{}.is_zero());
}

}  // namespace
}  // namespace tether
