// WireGuard in the control state and generations: the rules config.apply
// enforces, allowed prefixes as tunnel routes (cryptokey routing), runtime
// objects that survive unrelated changes and go away with their peer.
#include <rte_rcu_qsbr.h>

#include <gtest/gtest.h>

#include "dataplane/tables.h"
#include "dataplane/wireguard.h"
#include "tunnel/format.h"

namespace tether::dp {
namespace {

std::vector<PortInfo> ports() {
  PortInfo up{"uplink", "net_null0", 0, 0, 1500, {}, false};
  PortInfo vdc{"vdc", "net_null1", 1, 5, 1500, {}, false};
  return {up, vdc};
}

Change address(const std::string& port, const std::string& a) {
  Change c;
  c.kind = Change::Kind::kAddress;
  c.port = port;
  c.prefix = *parse_prefix(a, true);
  return c;
}

Change iface(const wg::Key& priv, const char* addr = "10.1.0.1", uint16_t port = 51820,
             uint16_t mtu = 1420) {
  Change c;
  c.kind = Change::Kind::kWgInterface;
  c.wg_interface.name = "wg0";
  c.wg_interface.private_key = priv;
  c.wg_interface.address = *parse_ipv4(addr);
  c.wg_interface.listen_port = port;
  c.wg_interface.mtu = mtu;
  return c;
}

Change peer(const wg::Key& pub, std::vector<std::string> allowed, uint16_t domain = 5,
            bool add = true) {
  Change c;
  c.kind = Change::Kind::kWgPeer;
  c.add = add;
  c.wg_peer.interface = "wg0";
  c.wg_peer.public_key = pub;
  c.wg_peer.domain = domain;
  for (auto& a : allowed) c.wg_peer.allowed.push_back(*parse_prefix(a, true));
  return c;
}

wg::Key public_of(const wg::Key& priv) {
  wg::Key pub;
  EXPECT_TRUE(wg::x25519_public(priv, &pub));
  return pub;
}

class WgStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(s.apply(address("uplink", "10.1.0.1/24"), Origin::kConfig));
    ASSERT_FALSE(s.apply(address("vdc", "10.0.0.1/24"), Origin::kConfig));
  }
  std::string refused(const Change& c) {
    auto err = s.apply(c, Origin::kApi);
    EXPECT_TRUE(err);
    return err.value_or("");
  }
  ControlState s{ports()};
  wg::Key gw = wg::x25519_generate();
  wg::Key site = public_of(wg::x25519_generate());
  wg::Key site2 = public_of(wg::x25519_generate());
};

TEST_F(WgStateTest, InterfaceRules) {
  EXPECT_NE(refused(iface(gw, "10.9.9.9")).find("not an address of a data port"),
            std::string::npos);
  EXPECT_NE(refused(iface(gw, "10.1.0.1", 51820, 1441)).find("mtu must be 576-1440"),
            std::string::npos);
  EXPECT_NE(refused(iface(wg::Key{})).find("unusable private key"), std::string::npos);
  ASSERT_FALSE(s.apply(iface(gw), Origin::kApi));
  EXPECT_NE(refused(iface(gw)).find("already configured"), std::string::npos);
  // Its address cannot go while it listens there.
  Change del = address("uplink", "10.1.0.1/24");
  del.add = false;
  EXPECT_NE(s.apply(del, Origin::kConfig).value_or("").find("listens on it"), std::string::npos);
}

TEST_F(WgStateTest, PeerRules) {
  ASSERT_FALSE(s.apply(iface(gw), Origin::kApi));
  EXPECT_NE(refused(peer(public_of(gw), {"192.168.1.0/24"})).find("own public key"),
            std::string::npos);
  EXPECT_NE(refused(peer(wg::Key{}, {"192.168.1.0/24"})).find("not a usable X25519 key"),
            std::string::npos);
  EXPECT_NE(refused(peer(site, {"192.168.1.1/24"})).find("host bits"), std::string::npos);
  EXPECT_NE(refused(peer(site, {"10.0.0.0/24"})).find("subnet of port vdc"), std::string::npos);
  ASSERT_FALSE(s.apply(peer(site, {"192.168.1.0/24", "0.0.0.0/0"}), Origin::kApi));
  EXPECT_NE(refused(peer(site2, {"192.168.1.0/24"})).find("already belongs to peer"),
            std::string::npos);
  // The same prefix in another domain is another address space.
  EXPECT_FALSE(s.apply(peer(site2, {"192.168.1.0/24"}, 6), Origin::kApi));
  // Static routes and allowed prefixes do not share a prefix in a domain.
  Change r;
  r.kind = Change::Kind::kRoute;
  r.domain = 5;
  r.prefix = *parse_prefix("192.168.1.0/24", true);
  r.via = parse_ipv4("10.0.0.9");
  EXPECT_NE(s.apply(r, Origin::kApi).value_or("").find("allowed prefix of WireGuard peer"),
            std::string::npos);
  Change del_iface = iface(gw);
  del_iface.add = false;
  EXPECT_NE(refused(del_iface).find("still has peers"), std::string::npos);
  EXPECT_FALSE(s.apply(peer(site, {}, 5, false), Origin::kApi));
  EXPECT_NE(refused(peer(site, {}, 5, false)).find("no such peer"), std::string::npos);
}

class WgGenerationTest : public WgStateTest {
 protected:
  void SetUp() override {
    WgStateTest::SetUp();
    std::string err;
    ASSERT_TRUE(neighbors.init(1024, SOCKET_ID_ANY, &err)) << err;
    size_t sz = rte_rcu_qsbr_get_memsize(1);
    qsbr = static_cast<rte_rcu_qsbr*>(aligned_alloc(64, (sz + 63) / 64 * 64));
    ASSERT_EQ(rte_rcu_qsbr_init(qsbr, 1), 0);
  }
  void TearDown() override {
    std::lock_guard l(wg.mutex());
    wg.clear();
    free(qsbr);
  }
  std::unique_ptr<Generation> build(const Generation* prev, uint64_t id) {
    std::string err;
    std::lock_guard l(wg.mutex());
    auto g = build_generation(s, prev, id, neighbors, &err, &wg);
    EXPECT_TRUE(g) << err;
    if (g) wg.collect(*g, qsbr);
    return g;
  }
  NextHop lookup(const Generation& g, uint16_t domain, const char* ip) {
    uint32_t idx = 0;
    const DomainTable& t = *g.domains.at(domain);
    EXPECT_TRUE(t.lookup(*parse_ipv4(ip), &idx));
    return t.nexthops[idx];
  }
  NeighborTable neighbors;
  WgRuntime wg;
  rte_rcu_qsbr* qsbr = nullptr;
};

TEST_F(WgGenerationTest, AllowedPrefixesAreTunnelRoutesOfThePeer) {
  ASSERT_FALSE(s.apply(iface(gw), Origin::kApi));
  ASSERT_FALSE(s.apply(peer(site, {"192.168.1.0/24"}), Origin::kApi));
  ASSERT_FALSE(s.apply(peer(site2, {"192.168.2.0/24", "192.168.2.128/25"}), Origin::kApi));
  auto g = build(nullptr, 1);
  ASSERT_TRUE(g);
  ASSERT_EQ(g->wg_listen.size(), 1u);
  EXPECT_EQ(g->wg_listen[0].port, 51820);
  EXPECT_EQ(g->wg_listen[0].domain, 0);
  auto a = lookup(*g, 5, "192.168.1.7");
  auto b = lookup(*g, 5, "192.168.2.200");
  EXPECT_EQ(a.kind, NextHopKind::kTunnel);
  EXPECT_EQ(b.kind, NextHopKind::kTunnel);
  ASSERT_LT(a.peer, g->wg_peers.size());
  ASSERT_LT(b.peer, g->wg_peers.size());
  EXPECT_EQ(g->wg_peers[a.peer]->keys.public_key, site);
  EXPECT_EQ(g->wg_peers[b.peer]->keys.public_key, site2);
  EXPECT_EQ(g->wg_peers[a.peer]->domain, 5);
  // The outer domain does not see inner prefixes.
  uint32_t idx;
  EXPECT_FALSE(g->domains.at(0)->lookup(*parse_ipv4("192.168.1.7"), &idx));
}

TEST_F(WgGenerationTest, PeersSurviveUnrelatedChangesAndDieWithTheirConfig) {
  ASSERT_FALSE(s.apply(iface(gw), Origin::kApi));
  ASSERT_FALSE(s.apply(peer(site, {"192.168.1.0/24"}), Origin::kApi));
  auto g1 = build(nullptr, 1);
  WgPeer* p = g1->wg_peers[lookup(*g1, 5, "192.168.1.1").peer];
  p->endpoint.store(WgPeer::pack_endpoint(*parse_ipv4("10.1.0.2"), 51820));
  ASSERT_FALSE(s.apply(peer(site2, {"192.168.2.0/24"}), Origin::kApi));
  auto g2 = build(g1.get(), 2);
  EXPECT_EQ(g2->wg_peers[lookup(*g2, 5, "192.168.1.1").peer], p);  // same runtime, same session
  EXPECT_NE(p->endpoint.load(), 0u);
  ASSERT_FALSE(s.apply(peer(site, {}, 5, false), Origin::kApi));
  auto g3 = build(g2.get(), 3);
  EXPECT_FALSE(g3->wg_peer_live(p, p->id));
  uint32_t idx;
  EXPECT_FALSE(g3->domains.at(5)->lookup(*parse_ipv4("192.168.1.1"), &idx) &&
               g3->domains.at(5)->nexthops[idx].kind == NextHopKind::kTunnel);
}

TEST(WgIndexTableTest, AnswersOnlyToTheFullIndex) {
  WgIndexTable t;
  WgPeer peer;
  WgKeypair kp;
  uint32_t i = t.allocate(&peer);
  ASSERT_NE(i, 0u);
  kp.local_index = i;
  t.attach(i, &kp);
  EXPECT_EQ(t.keypair(i), &kp);
  EXPECT_EQ(t.peer(i), &peer);
  uint32_t other = i ^ (1u << 30);  // same slot, other random bits
  EXPECT_EQ(t.keypair(other), nullptr);
  EXPECT_EQ(t.peer(other), nullptr);
  t.release(i);
  EXPECT_EQ(t.keypair(i), nullptr);
  EXPECT_EQ(t.peer(i), nullptr);
}

}  // namespace
}  // namespace tether::dp
