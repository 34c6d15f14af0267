// Fuzz harness for everything a frame from the wire can reach: the worker
// pipeline (parse, validate, route, neighbor) and the service thread (ARP,
// ICMP echo and errors, resolution queues, fragmentation). Runs on real mbufs
// over a real Dataplane whose ports are net_null devices. After each input,
// every mbuf must be back in the pool except those legitimately waiting for
// ARP resolution; anything else aborts (a leak), as does any crash.
//
// The firewall is on (a zone for the lan port, policies with accept,
// reject and log rules), so inputs also reach classification, TCP tracking,
// resets and the log ring.
//
// Input: byte 0 selects the ingress port (even: uplink, odd: lan); the rest
// is the Ethernet frame.
#include <rte_bus_vdev.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/dataplane.h"
#include "dataplane/packet.h"
#include "dataplane/service.h"

namespace {

using namespace tether::dp;

// Port MACs the seeds address: uplink 02:00:00:00:01:01, lan 02:00:00:00:02:01.
constexpr const char* kConfig = R"({
  "lcores": {"service": 0, "workers": [1]},
  "mbufs": 4095,
  "ports": [
    {"name": "uplink", "device": "net_null_fz0", "addresses": ["10.0.1.1/24", "10.0.1.7/24"],
     "mac": "02:00:00:00:01:01"},
    {"name": "lan", "device": "net_null_fz1", "addresses": ["10.0.2.1/24"], "mtu": 1000,
     "mac": "02:00:00:00:02:01"}],
  "routes": [{"prefix": "0.0.0.0/0", "via": "10.0.1.254"},
             {"prefix": "10.9.0.0/16", "via": "10.0.2.9"}],
  "neighbors": [{"port": "uplink", "ip": "10.0.1.254", "mac": "02:00:00:00:01:fe"},
                {"port": "lan", "ip": "10.0.2.2", "mac": "02:00:00:00:02:02"}],
  "icmp": {"rate_per_sec": 1000000, "burst": 1000000},
  "arp": {"retry_ms": 10, "retries": 1, "queue_per_neighbor": 4, "max_neighbors": 1024,
          "forget_ms": 100},
  "nat": {"max_sessions": 1024,
          "gateways": [{"domain": 0, "address": "10.0.2.1"}],
          "mappings": [{"name": "rdp", "public": "10.0.1.1", "protocol": "tcp", "ports": "3389",
                        "domain": 0, "inner": "10.0.2.5"},
                       {"name": "range", "public": "10.0.1.1", "protocol": "udp",
                        "ports": "5000-5099", "domain": 0, "inner": "10.0.2.6", "inner_port": 6000},
                       {"name": "whole", "public": "10.0.1.7", "protocol": "any", "domain": 0,
                        "inner": "10.0.2.7"}]},
  "firewall": {"log_per_sec": 1000,
               "zones": [{"name": "lan", "ports": ["lan"]}],
               "policies": [{"from": "uplink", "to": "lan", "default": "drop",
                             "rules": [{"protocol": "tcp", "dport": "23", "action": "reject", "log": true},
                                       {"protocol": "udp", "dport": "69", "action": "reject"},
                                       {"protocol": "tcp", "dport": "1-5000", "action": "accept"},
                                       {"protocol": "udp", "action": "accept", "log": true},
                                       {"protocol": "icmp", "icmp": ["8", "3"], "action": "accept"},
                                       {"src": ["10.0.1.128/25"], "action": "accept"}]},
                            {"from": "uplink", "to": "management", "default": "accept",
                             "rules": [{"protocol": "tcp", "dport": "22", "action": "reject"}]}]}
})";

Dataplane* g_dp = nullptr;
Service* g_service = nullptr;
unsigned g_pool_size = 0;

unsigned waiting_mbufs() {
  unsigned n = 0;
  {
    auto& nt = g_dp->neighbors();
    std::lock_guard lock(nt.mutex());
    for (uint32_t s = 0; s < nt.used(); ++s) n += nt.meta_locked(s).waiting.size();
  }
  // Later fragments waiting for their first (NAT), at most 64 per worker.
  for (auto& w : g_dp->workers()) n += w->frags->held();
  // Packets staged for a WireGuard handshake are held too, boundedly.
  std::lock_guard lock(g_dp->wg().mutex());
  for (WgPeer* p : g_dp->wg().peers())
    if (p) n += p->staged.size();
  return n;
}

// A WireGuard interface on the uplink (UDP 51820) and one peer behind
// 10.50.0.0/16, so inputs reach the handshake queue, decryption and staging.
void add_wireguard() {
  tether::wg::Key priv{}, peer_priv{};
  for (size_t i = 0; i < priv.size(); ++i) {
    priv[i] = static_cast<uint8_t>(i + 1);
    peer_priv[i] = static_cast<uint8_t>(0x80 + i);
  }
  Change iface;
  iface.kind = Change::Kind::kWgInterface;
  iface.wg_interface.name = "wg0";
  iface.wg_interface.private_key = priv;
  iface.wg_interface.address = *tether::parse_ipv4("10.0.1.1");
  iface.wg_interface.listen_port = 51820;
  Change peer;
  peer.kind = Change::Kind::kWgPeer;
  peer.wg_peer.interface = "wg0";
  if (!tether::wg::x25519_public(peer_priv, &peer.wg_peer.public_key)) std::abort();
  peer.wg_peer.allowed = {*tether::parse_prefix("10.50.0.0/16", false)};
  peer.wg_peer.endpoint = WgPeer::pack_endpoint(*tether::parse_ipv4("10.0.1.254"), 51820);
  auto r = g_dp->apply_changes({iface, peer}, Origin::kApi, std::nullopt);
  if (!r.error.empty()) {
    std::fprintf(stderr, "wireguard: %s\n", r.error.c_str());
    std::abort();
  }
}

void drain_injected() {
  void* m;
  for (auto& w : g_dp->workers())
    while (rte_ring_dequeue(w->inject, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::string prefix = "--file-prefix=tether-fuzz-" + std::to_string(getpid());
  std::vector<std::string> args = {"fuzz",
                                   "-l",
                                   "0-1",
                                   "--no-huge",
                                   "-m",
                                   "1024",
                                   "--no-pci",
                                   "--no-telemetry",
                                   "--log-level=*:error",
                                   prefix};
  std::vector<char*> av;
  for (auto& a : args) av.push_back(a.data());
  if (rte_eal_init(static_cast<int>(av.size()), av.data()) < 0) std::abort();
  if (rte_vdev_init("net_null_fz0", nullptr) != 0 || rte_vdev_init("net_null_fz1", nullptr) != 0)
    std::abort();
  std::string err;
  auto cfg = parse_config(kConfig, &err);
  if (!cfg) {
    std::fprintf(stderr, "config: %s\n", err.c_str());
    std::abort();
  }
  g_dp = new Dataplane(*cfg);
  if (!g_dp->setup(&err)) {
    std::fprintf(stderr, "setup: %s\n", err.c_str());
    std::abort();
  }
  add_wireguard();
  g_service = new Service(*g_dp);
  g_pool_size = g_dp->pool()->size;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size - 1 > RTE_MBUF_DEFAULT_DATAROOM) return 0;
  rte_mbuf* m = rte_pktmbuf_alloc(g_dp->pool());
  if (!m) std::abort();
  char* p = rte_pktmbuf_append(m, static_cast<uint16_t>(size - 1));
  if (size > 1) std::memcpy(p, data + 1, size - 1);
  uint16_t port = g_dp->ports()[data[0] & 1].port_id;
  Worker& w = *g_dp->workers()[0];
  forward_burst(*g_dp, w, *g_dp->current(), port, &m, 1);
  flush_tx(w);
  // Let the service handle what was punted, including timer-driven releases.
  while (g_service->poll_once() > 0) {
  }
  drain_injected();
  unsigned in_use = g_pool_size - rte_mempool_avail_count(g_dp->pool());
  unsigned held = waiting_mbufs();
  if (in_use != held) {
    std::fprintf(stderr, "mbuf leak: %u in use, %u waiting for ARP\n", in_use, held);
    std::abort();
  }
  return 0;
}
