#include "dataplane/packet.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

namespace tether::dp {
namespace {

rte_ipv4_hdr sample_header(uint8_t ttl) {
  rte_ipv4_hdr ip{};
  ip.version_ihl = 0x45;
  ip.total_length = rte_cpu_to_be_16(84);
  ip.packet_id = rte_cpu_to_be_16(0x1c46);
  ip.fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
  ip.time_to_live = ttl;
  ip.next_proto_id = IPPROTO_ICMP;
  ip.src_addr = rte_cpu_to_be_32(0x0a000102);
  ip.dst_addr = rte_cpu_to_be_32(0x0a000202);
  ip.hdr_checksum = rte_ipv4_cksum(&ip);
  return ip;
}

TEST(Checksum, TtlDecrementMatchesFullRecompute) {
  for (int ttl = 2; ttl <= 255; ++ttl) {
    rte_ipv4_hdr ip = sample_header(static_cast<uint8_t>(ttl));
    ipv4_decrement_ttl(&ip);
    EXPECT_EQ(ip.time_to_live, ttl - 1);
    uint16_t incremental = ip.hdr_checksum;
    ip.hdr_checksum = 0;
    EXPECT_EQ(incremental, rte_ipv4_cksum(&ip)) << "ttl " << ttl;
    ip.hdr_checksum = incremental;
    EXPECT_TRUE(ipv4_checksum_ok(&ip, sizeof ip));
  }
}

TEST(Checksum, Rfc1624ReplaceOnRandomHeaders) {
  std::mt19937 rng(7);
  for (int i = 0; i < 10000; ++i) {
    rte_ipv4_hdr ip = sample_header(64);
    ip.packet_id = static_cast<uint16_t>(rng());
    ip.src_addr = rng();
    ip.hdr_checksum = 0;
    ip.hdr_checksum = rte_ipv4_cksum(&ip);
    uint16_t old_word = ip.packet_id;
    ip.packet_id = static_cast<uint16_t>(rng());
    uint16_t inc = csum_replace16(ip.hdr_checksum, old_word, ip.packet_id);
    ip.hdr_checksum = 0;
    ASSERT_EQ(inc, rte_ipv4_cksum(&ip));
  }
}

TEST(Checksum, FastTwentyByteCheckAgreesWithTheGenericSum) {
  std::mt19937 rng(11);
  for (int i = 0; i < 200000; ++i) {
    rte_ipv4_hdr ip{};
    uint16_t w[10];
    for (auto& x : w) x = static_cast<uint16_t>(rng());
    std::memcpy(&ip, w, sizeof ip);
    if (i % 2) {  // half of them valid
      ip.hdr_checksum = 0;
      ip.hdr_checksum = rte_ipv4_cksum(&ip);
    }
    ASSERT_EQ(ipv4_checksum20_ok(&ip), ipv4_checksum_ok(&ip, sizeof ip)) << i;
  }
  // Carries out of every position: all-ones words.
  rte_ipv4_hdr ones;
  std::memset(&ones, 0xff, sizeof ones);
  EXPECT_EQ(ipv4_checksum20_ok(&ones), ipv4_checksum_ok(&ones, sizeof ones));
}

TEST(Checksum, DetectsCorruption) {
  rte_ipv4_hdr ip = sample_header(64);
  EXPECT_TRUE(ipv4_checksum_ok(&ip, sizeof ip));
  ip.hdr_checksum ^= 0x0100;
  EXPECT_FALSE(ipv4_checksum_ok(&ip, sizeof ip));
}

}  // namespace
}  // namespace tether::dp
