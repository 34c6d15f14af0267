#include "dataplane/tables.h"

#include <memory>
#include <set>

#include "dataplane/worker.h"

#include <rte_rcu_qsbr.h>

#include <cstdlib>

#include <gtest/gtest.h>

namespace tether::dp {
namespace {

std::vector<PortInfo> two_ports() {
  PortInfo up{"uplink", "net_null0", 0, 0, 1500, {}, false};
  PortInfo lan{"lan", "net_null1", 1, 0, 1500, {}, false};
  PortInfo vdc{"vdc", "net_null2", 2, 7, 1420, {}, false};
  PortInfo tap{"exception", "net_tap0", 3, 0, 1500, {}, true};
  return {up, lan, vdc, tap};
}

Change address(const std::string& port, const std::string& a, bool add = true) {
  Change c;
  c.kind = Change::Kind::kAddress;
  c.add = add;
  c.port = port;
  c.prefix = *parse_prefix(a, true);
  return c;
}

Change route(const std::string& prefix, const std::string& via, std::string port = "",
             uint16_t domain = 0, bool add = true) {
  Change c;
  c.kind = Change::Kind::kRoute;
  c.add = add;
  c.domain = domain;
  c.prefix = *parse_prefix(prefix, true);
  if (!via.empty()) c.via = parse_ipv4(via);
  c.port = std::move(port);
  return c;
}

class ControlStateTest : public ::testing::Test {
 protected:
  ControlState s{two_ports()};
  void ok(const Change& c, Origin o = Origin::kApi) {
    auto err = s.apply(c, o);
    ASSERT_FALSE(err) << *err;
  }
  std::string refused(const Change& c, Origin o = Origin::kApi) {
    auto err = s.apply(c, o);
    EXPECT_TRUE(err);
    return err.value_or("");
  }
};

TEST_F(ControlStateTest, AddressesAreCheckedAgainstEachOther) {
  ok(address("uplink", "10.0.1.1/24"));
  EXPECT_EQ(refused(address("uplink", "10.0.1.1/24")),
            "address 10.0.1.1/24 on port uplink: already configured");
  EXPECT_EQ(refused(address("lan", "10.0.1.7/25")),
            "address 10.0.1.7/25 on port lan: subnet overlaps 10.0.1.1/24 on port uplink in the "
            "same routing domain");
  EXPECT_EQ(refused(address("lan", "10.0.2.0/24")),
            "address 10.0.2.0/24 on port lan: is the network or broadcast address of its subnet");
  EXPECT_EQ(refused(address("nope", "10.0.2.1/24")),
            "address 10.0.2.1/24 on port nope: no such port");
  EXPECT_EQ(refused(address("exception", "10.0.9.1/24")),
            "address 10.0.9.1/24 on port exception: the exception port mirrors addresses, it has "
            "none");
  // The same subnet in another routing domain is fine: VDC address spaces overlap.
  ok(address("vdc", "10.0.1.1/24"));
}

TEST_F(ControlStateTest, RoutesNeedAConnectedGateway) {
  ok(address("uplink", "10.0.1.1/24"));
  EXPECT_EQ(refused(route("10.9.0.0/16", "10.0.9.1")),
            "route 10.9.0.0/16 in domain 0 via 10.0.9.1: gateway 10.0.9.1 is not in a connected "
            "subnet");
  EXPECT_EQ(refused(route("10.9.0.1/16", "10.0.1.254")),
            "route 10.9.0.1/16 in domain 0 via 10.0.1.254: prefix has host bits set");
  EXPECT_EQ(refused(route("10.9.0.0/16", "10.0.1.1")),
            "route 10.9.0.0/16 in domain 0 via 10.0.1.1: gateway is an own address");
  ok(route("10.9.0.0/16", "10.0.1.254"));
  EXPECT_EQ(s.routes()[0].port, 0);
  EXPECT_EQ(refused(route("10.9.0.0/16", "10.0.1.253")),
            "route 10.9.0.0/16 in domain 0 via 10.0.1.253: a route for this prefix exists already");
  EXPECT_EQ(refused(route("10.0.1.0/24", "10.0.1.254")),
            "route 10.0.1.0/24 in domain 0 via 10.0.1.254: conflicts with address 10.0.1.1/24 of "
            "port uplink");
  EXPECT_EQ(refused(route("10.8.0.0/16", "", "vdc")),
            "route 10.8.0.0/16 in domain 0: port vdc is in domain 7");
  ok(route("10.8.0.0/16", "", "vdc", 7));  // on-link in the VDC's domain
}

TEST_F(ControlStateTest, OwnershipAndDependenciesProtectDeletes) {
  ok(address("uplink", "10.0.1.1/24"), Origin::kConfig);
  ok(route("10.9.0.0/16", "10.0.1.254"));
  EXPECT_EQ(refused(address("uplink", "10.0.1.1/24", false), Origin::kConfig),
            "address 10.0.1.1/24 on port uplink: route 10.9.0.0/16 via 10.0.1.254 depends on "
            "it; delete the route first");
  EXPECT_EQ(refused(address("uplink", "10.0.1.1/24", false), Origin::kApi),
            "address 10.0.1.1/24 on port uplink: owned by origin config, not api");
  EXPECT_EQ(refused(route("10.7.0.0/16", "", "", 0, false)),
            "route 10.7.0.0/16 in domain 0: no such route");
  ok(route("10.9.0.0/16", "", "", 0, false));
  ok(address("uplink", "10.0.1.1/24", false), Origin::kConfig);
  EXPECT_TRUE(s.addresses().empty());
}

class GenerationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string err;
    ASSERT_TRUE(neighbors.init(1024, SOCKET_ID_ANY, &err)) << err;
  }
  NextHop lookup(const Generation& g, uint16_t domain, const char* ip) {
    uint32_t idx = 0;
    const DomainTable& t = *g.domains.at(domain);
    EXPECT_TRUE(t.lookup(*parse_ipv4(ip), &idx)) << ip;
    return t.nexthops.at(idx);
  }
  bool has_route(const Generation& g, uint16_t domain, const char* ip) {
    uint32_t idx = 0;
    return g.domains.at(domain)->lookup(*parse_ipv4(ip), &idx);
  }
  NeighborTable neighbors;
};

TEST_F(GenerationTest, OneLookupTellsForwardLocalOrBroadcast) {
  ControlState s(two_ports());
  ASSERT_FALSE(s.apply(address("uplink", "10.0.1.1/24"), Origin::kConfig));
  ASSERT_FALSE(s.apply(address("lan", "10.0.2.1/24"), Origin::kConfig));
  ASSERT_FALSE(s.apply(address("vdc", "10.0.1.1/24"), Origin::kConfig));
  ASSERT_FALSE(s.apply(route("0.0.0.0/0", "10.0.1.254"), Origin::kConfig));
  ASSERT_FALSE(s.apply(route("192.168.0.0/16", "10.0.2.9"), Origin::kApi));
  std::string err;
  auto g = build_generation(s, nullptr, 1, neighbors, &err);
  ASSERT_TRUE(g) << err;

  auto local = lookup(*g, 0, "10.0.2.1");
  EXPECT_EQ(local.kind, NextHopKind::kLocal);
  EXPECT_EQ(local.port, 1);
  EXPECT_EQ(lookup(*g, 0, "10.0.2.255").kind, NextHopKind::kBroadcast);
  auto onlink = lookup(*g, 0, "10.0.2.77");
  EXPECT_EQ(onlink.kind, NextHopKind::kForward);
  EXPECT_EQ(onlink.gateway, 0u);
  EXPECT_EQ(onlink.slot, NeighborTable::kNoSlot);
  auto via = lookup(*g, 0, "192.168.44.4");
  EXPECT_EQ(via.gateway, *parse_ipv4("10.0.2.9"));
  EXPECT_EQ(via.port, 1);
  EXPECT_EQ(via.slot, neighbors.lookup(1, *parse_ipv4("10.0.2.9")));
  EXPECT_NE(via.slot, NeighborTable::kNoSlot);
  EXPECT_EQ(lookup(*g, 0, "8.8.8.8").gateway, *parse_ipv4("10.0.1.254"));
  // Domain 7 has only its own connected subnet: no default route leaks in.
  EXPECT_EQ(lookup(*g, 7, "10.0.1.1").kind, NextHopKind::kLocal);
  EXPECT_FALSE(has_route(*g, 7, "8.8.8.8"));
  EXPECT_EQ(g->ports[0].table, g->domains.at(0).get());
  EXPECT_EQ(g->ports[2].table, g->domains.at(7).get());
  EXPECT_EQ(g->source_for(1, *parse_ipv4("10.0.2.50")), parse_ipv4("10.0.2.1"));
  EXPECT_EQ(g->source_for(0, *parse_ipv4("8.8.8.8")), parse_ipv4("10.0.1.1"));
}

TEST_F(GenerationTest, UnchangedDomainsAreSharedWithThePreviousGeneration) {
  ControlState s(two_ports());
  ASSERT_FALSE(s.apply(address("uplink", "10.0.1.1/24"), Origin::kConfig));
  ASSERT_FALSE(s.apply(address("vdc", "172.16.0.1/24"), Origin::kConfig));
  std::string err;
  auto g1 = build_generation(s, nullptr, 1, neighbors, &err);
  ASSERT_TRUE(g1);
  ASSERT_FALSE(s.apply(route("10.50.0.0/16", "10.0.1.9"), Origin::kApi));
  auto g2 = build_generation(s, g1.get(), 2, neighbors, &err);
  ASSERT_TRUE(g2);
  EXPECT_NE(g2->domains.at(0), g1->domains.at(0));  // rebuilt: it changed
  EXPECT_EQ(g2->domains.at(7), g1->domains.at(7));  // shared: it did not
  EXPECT_TRUE(has_route(*g2, 0, "10.50.3.3"));
  EXPECT_FALSE(has_route(*g1, 0, "10.50.3.3"));  // the old generation is untouched
}

TEST(NeighborTableTest, SlotsArePublishedAtomicallyAndNeverReused) {
  NeighborTable t;
  std::string err;
  ASSERT_TRUE(t.init(16, SOCKET_ID_ANY, &err)) << err;
  rte_ether_addr mac;
  std::lock_guard lock(t.mutex());
  uint32_t a = t.ensure_locked(1, 0x0a000002);
  EXPECT_EQ(t.ensure_locked(1, 0x0a000002), a);
  EXPECT_NE(t.ensure_locked(2, 0x0a000002), a);  // per port
  EXPECT_FALSE(t.resolve(a, &mac));
  t.publish_locked(a, *parse_mac("02:11:22:33:44:55"), NeighborState::kReachable);
  ASSERT_TRUE(t.resolve(a, &mac));
  EXPECT_EQ(mac.addr_bytes[0], 0x02);
  EXPECT_EQ(mac.addr_bytes[5], 0x55);
  t.publish_locked(a, {}, NeighborState::kIncomplete);
  EXPECT_FALSE(t.resolve(a, &mac));
  EXPECT_EQ(t.lookup(1, 0x0a000002), a);  // the key stays
  for (uint32_t i = 0; i < 14; ++i) EXPECT_NE(t.ensure_locked(3, i + 1), NeighborTable::kNoSlot);
  EXPECT_EQ(t.ensure_locked(3, 99), NeighborTable::kNoSlot);  // full, counted by the caller
}

}  // namespace
}  // namespace tether::dp

namespace tether::dp {
namespace {

TEST(NeighborSlotCacheTest, RemembersSlotsPerPortAndIp) {
  auto cache = std::make_unique<NeighborSlotCache>();
  EXPECT_EQ(cache->find(0x0a000002, 1), UINT32_MAX);  // empty
  cache->put(0x0a000002, 1, 0);                       // slot 0 is a real slot
  EXPECT_EQ(cache->find(0x0a000002, 1), 0u);
  EXPECT_EQ(cache->find(0x0a000002, 2), UINT32_MAX);  // other port
  cache->put(0x0a000002, 2, 77);
  EXPECT_EQ(cache->find(0x0a000002, 2), 77u);
  // 512 addresses of 64 /24s spread over the buckets (a weak index once
  // folded them into 64).
  std::set<uint32_t> hits;
  for (uint32_t a = 0; a < 64; ++a)
    for (uint32_t b = 2; b < 10; ++b) {
      uint32_t ip = (198u << 24) | (19u << 16) | (a << 8) | b;
      cache->put(ip, 0, a * 8 + b);
    }
  for (uint32_t a = 0; a < 64; ++a)
    for (uint32_t b = 2; b < 10; ++b) {
      uint32_t ip = (198u << 24) | (19u << 16) | (a << 8) | b;
      uint32_t s = cache->find(ip, 0);
      if (s != UINT32_MAX) {
        EXPECT_EQ(s, a * 8 + b);  // a hit is always right
        hits.insert(ip);
      }
    }
  EXPECT_GT(hits.size(), 350u);
  cache->put(0x0a000009, 2000, 5);  // port not representable: not cached
  EXPECT_EQ(cache->find(0x0a000009, 2000), UINT32_MAX);
}

}  // namespace
}  // namespace tether::dp

namespace tether::dp {
namespace {

TEST(NeighborTableTest, ForgottenSlotsAreReusedOnlyAfterAGracePeriod) {
  NeighborTable t;
  std::string err;
  ASSERT_TRUE(t.init(8, SOCKET_ID_ANY, &err)) << err;
  size_t sz = rte_rcu_qsbr_get_memsize(1);
  auto* qsbr = static_cast<rte_rcu_qsbr*>(aligned_alloc(RTE_CACHE_LINE_SIZE, sz));
  ASSERT_EQ(rte_rcu_qsbr_init(qsbr, 1), 0);
  rte_rcu_qsbr_thread_register(qsbr, 0);
  rte_rcu_qsbr_thread_online(qsbr, 0);  // one reader, e.g. a worker
  std::lock_guard lock(t.mutex());
  uint32_t slots[8];
  for (uint32_t i = 0; i < 8; ++i)
    ASSERT_NE(slots[i] = t.ensure_locked(1, 100 + i), NeighborTable::kNoSlot);
  EXPECT_EQ(t.ensure_locked(1, 200), NeighborTable::kNoSlot);  // full
  EXPECT_TRUE(t.serves(slots[2], 102, 1));

  t.retire_locked(slots[2], qsbr);
  EXPECT_FALSE(t.serves(slots[2], 102, 1));  // cached copies now miss
  EXPECT_EQ(t.lookup(1, 102), NeighborTable::kNoSlot);
  t.collect_locked(qsbr);
  EXPECT_EQ(t.ensure_locked(1, 200), NeighborTable::kNoSlot);  // reader may still hold it

  rte_rcu_qsbr_quiescent(qsbr, 0);
  t.collect_locked(qsbr);
  uint32_t reused = t.ensure_locked(1, 200);
  EXPECT_EQ(reused, slots[2]);
  EXPECT_TRUE(t.serves(reused, 200, 1));
  EXPECT_FALSE(t.serves(reused, 102, 1));
  rte_ether_addr mac;
  EXPECT_FALSE(t.resolve(reused, &mac));  // starts incomplete, no stale MAC
  rte_rcu_qsbr_thread_offline(qsbr, 0);
  free(qsbr);
}

}  // namespace
}  // namespace tether::dp
