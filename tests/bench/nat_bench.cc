// NAT benchmarks of the dataplane (tests/bench/benchmarks/nat.py): one
// process is one side of one round.
//
//   --side forward   the reference: the IPv4 pipeline without NAT (no
//                    mappings: nat_burst never runs), same ports, routes,
//                    neighbors, 64-byte packets and harness as the NAT side;
//                    the packets go straight to the workloads' addresses.
//   --side nat       the NAT figures, in this order (the ones asked for):
//     nat-1k, nat-100k, nat-1m   Mpps of established packets, each chosen at
//                    random among all N sessions, from the uplink to the
//                    published addresses (session lookup, mapping check,
//                    TCP state, rewrite, route in the VDC's domain, neighbor,
//                    TX). The sessions are made before, by real first
//                    packets through the pipeline (a SYN, the SYN-ACK from
//                    the workload, the ACK; or one UDP datagram), growing
//                    from 1k to 100k to 1M in one table.
//     nat-new        new sessions per second: first packets (SYN or UDP)
//                    from distinct clients, port allocation included. The
//                    table starts empty and is emptied every --new-batch
//                    sessions (not timed): the clock is advanced beyond every
//                    timeout and Service::poll_once sweeps it, as the service
//                    thread does.
//     nat-rewrite-10k  ms of one config.apply (Dataplane::apply_changes) of
//                    10k nat_rewrite changes that move the 10k mappings of a
//                    domain (one session each) to new inner addresses, while
//                    the worker lcore forwards established packets of those
//                    sessions; `lost` counts packets pushed during the apply
//                    that did not come out toward the old or the new inner
//                    address. Reference: the same apply on another domain's
//                    10k mappings, which have no sessions, with no traffic.
//
// Topology (both sides; the forward side puts every port in domain 0):
//   uplink  net_null, 198.51.100.1/24, router 198.51.100.2 (default route).
//   vdcK    (K = 1..--vdcs) net_null in domain K, 10.100.K.1/24, router
//           10.100.K.2, route 172.16.K.0/24 via it, NAT gateway 10.100.K.254;
//           workload 172.16.K.10 published as 198.51.100.1 tcp and udp port
//           1000+K (inner ports 443 and 4433). Sessions are spread over the
//           VDCs and the two protocols: a port pool holds 64512 ports per
//           (gateway, protocol), so 1M sessions need at least 16 pools.
//   vdcr    net_ring0 (TX loops back to RX, so the rewrite figure reads what
//           the pipeline sent) in domain 100, 10.101.0.1/24, router
//           10.101.0.2, routes 172.20.0.0/16 and 172.21.0.0/16 via it,
//           gateway 10.101.0.254: 10k mappings 198.51.100.1 port 20000+j
//           (tcp for even j, udp for odd) to 172.20.x.y (then 172.21.x.y).
//   domain 1 also holds the reference's 10k mappings (ports 30000+j to
//           172.22.x.y, then 172.23.x.y), never used by traffic.
//
// Threads: the EAL main lcore (--main-lcore) is the API thread (apply_changes)
// and otherwise waits; the worker lcore runs the Dataplane's worker 0 by
// hand: forward_burst on bursts it builds, then what worker_main does after
// RX (inject ring, flush_tx, quiescent state). For the throughput figures and
// nat-new it is also the service thread (Service::poll_once for the sweeps)
// and reports quiescent states for both; during the rewrite it is only the
// worker. Packets are built into mbufs before each timed batch (the device's
// part: 64-byte frames copied from pre-built frames, so the NAT's in-place
// rewrite never needs undoing); only the pipeline, with TX into net_null
// (which frees), is timed.
//
// Usage: nat_bench --side forward|nat [--figures a,b] --warmup S --seconds S
//                  --samples N --main-lcore M --worker-lcore W [--vdcs 16]
//                  [--max-sessions N] [--flows N] [--new-batch N]
//                  [--rewrite-mappings N] [--rewrite-samples N]
//                  [--rewrite-warmup 0|1] -- EAL-ARGS...
// Prints one JSON line per figure with its samples, and {"exit": ...} last.
#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_memcpy.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_tcp.h>
#include <rte_udp.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/config.h"
#include "dataplane/dataplane.h"
#include "dataplane/packet.h"
#include "dataplane/service.h"
#include "dataplane/worker.h"
#include "nat/flow.h"
#include "nat/session.h"
#include "nat/translate.h"
#include "tests/bench/harness.h"

namespace {

using namespace tether;
using namespace tether::bench;
using namespace tether::dp;

constexpr Ipv4 kPublic = ip4(198, 51, 100, 1);
constexpr Ipv4 kClients = ip4(100, 64, 0, 0);   // the main flows' clients, 4 flows each
constexpr Ipv4 kRClients = ip4(100, 96, 0, 0);  // the rewrite flows' clients
constexpr uint16_t kEth = sizeof(rte_ether_hdr);
constexpr unsigned kVerify = 16;
constexpr uint16_t kRDomain = 100;
constexpr uint16_t kQDomain = 1;
constexpr uint16_t kPublicPortBase = 1000;  // + VDC number
constexpr uint16_t kRPortBase = 20000, kQPortBase = 30000;
constexpr uint16_t kInnerTcpPort = 443, kInnerUdpPort = 4433;
constexpr Ipv4 kRFrom = ip4(172, 20, 0, 1), kRTo = ip4(172, 21, 0, 1);  // + j
constexpr Ipv4 kQFrom = ip4(172, 22, 0, 1), kQTo = ip4(172, 23, 0, 1);
// TCP handshakes the firewall's window tracking accepts: the client's SYN
// at kClientIsn, the workload's SYN-ACK at kServerIsn, then every segment
// from the client at kClientIsn + 1 acknowledging kServerIsn + 1.
constexpr uint32_t kClientIsn = 1, kServerIsn = 77;

struct Options {
  std::string side;
  std::vector<std::string> figures;
  double warmup = 1.0;
  double seconds = 2.0;
  unsigned samples = 1;
  unsigned main_lcore = 0;
  unsigned worker_lcore = 1;
  unsigned vdcs = 16;
  uint32_t max_sessions = 1250000;
  uint32_t flows = 1000000;  // forward side: flows its packets are drawn from
  uint32_t new_batch = 262144;
  uint32_t rewrite_mappings = 10000;
  unsigned rewrite_samples = 1;  // default: --samples
  bool rewrite_warmup = true;    // a rewrite there and back before the samples
  std::vector<std::string> eal;
};

// --- addresses of the topology ---

const rte_ether_addr kUplinkMac = mac_of(0, 0, 0, 1);
const rte_ether_addr kRouterMac = mac_of(0, 0, 0, 2);
rte_ether_addr vdc_mac(unsigned k) { return mac_of(1, 0, uint8_t(k), 1); }
rte_ether_addr vdc_router_mac(unsigned k) { return mac_of(1, 0, uint8_t(k), 2); }
Ipv4 vdc_addr(unsigned k) { return ip4(10, 100, k, 1); }
Ipv4 vdc_router(unsigned k) { return ip4(10, 100, k, 2); }
Ipv4 vdc_gateway(unsigned k) { return ip4(10, 100, k, 254); }
Ipv4 vdc_inner(unsigned k) { return ip4(172, 16, k, 10); }
const rte_ether_addr kRMac = mac_of(2, 0, 0, 1);
const rte_ether_addr kRRouterMac = mac_of(2, 0, 0, 2);
constexpr Ipv4 kRAddr = ip4(10, 101, 0, 1), kRRouter = ip4(10, 101, 0, 2),
               kRGateway = ip4(10, 101, 0, 254);

// One flow as it arrives on the uplink. vdc: 1..K, or 0 for the rewrite domain.
struct Flow {
  Ipv4 client;
  uint16_t sport;
  Ipv4 dst;  // the published address (NAT side) or the workload (forward side)
  uint16_t dport;
  uint8_t proto;
  unsigned vdc;
};

// --- frames ---

// The frame of a flow from the uplink: established (ACK) or first (SYN).
void flow_frame(uint8_t* f, const Flow& fl, bool first, uint32_t seq) {
  uint8_t flags = fl.proto == IPPROTO_TCP ? (first ? kTcpSyn : kTcpAck) : 0;
  write_frame(f, kUplinkMac, kRouterMac, fl.client, fl.dst, fl.sport, fl.dport, fl.proto, flags,
              seq, kServerIsn + 1);
}

// Shared between the API thread and the worker during a rewrite.
struct RewriteTraffic {
  std::atomic<bool> stop{false};
  std::atomic<int> window{0};  // 0 before the apply, 1 during, 2 after
  std::atomic<uint64_t> bursts{0};
  // By window: packets pushed, out toward a `from`-set or `to`-set inner
  // address (172.20/172.21), and anything else that came out.
  uint64_t pushed[3] = {}, to_a[3] = {}, to_b[3] = {}, wrong[3] = {};
  uint64_t t_first = 0, t_last = 0;  // TSC of the first and last burst
};

class Bench : public PlayedWorker {
 public:
  explicit Bench(const Options& o)
      : PlayedWorker(o.main_lcore, o.worker_lcore, Event::nat_sessions_created),
        o_(o),
        nat_(o.side == "nat") {}
  void setup();
  void run();

 private:
  // Frees what the pipeline sent into the rewrite domain's net_ring.
  void drain_ring() {
    rte_mbuf* out[64];
    uint16_t n;
    while ((n = rte_eth_rx_burst(rport_, 0, out, 64)) > 0) rte_pktmbuf_free_bulk(out, n);
  }
  void drain_ports() override { drain_ring(); }

  Flow flow(uint32_t i) const;   // main flows
  Flow rflow(uint32_t j) const;  // rewrite flows
  const nat::Session& session_of(const Flow& f);
  uint16_t out_port(const Flow& f) const { return f.vdc ? vdc_port_[f.vdc - 1] : rport_; }

  void establish(uint32_t to);  // main flows [established_, to)
  void establish_r();
  void make_sessions(const std::vector<Flow>& flows);
  void check_out(rte_mbuf* m, const Flow& f, const char* what);
  unsigned verify(uint32_t n);

  std::string tput_figure(const std::string& name, uint32_t n);
  std::string new_figure(const std::string& name);
  std::string rewrite_figure(const std::string& name);
  std::vector<Change> rewrite_changes(uint16_t domain, Ipv4 from, Ipv4 to) const;
  void rewrite_traffic(RewriteTraffic* rt);

  std::string report(const std::string& name, const std::vector<Sample>& s,
                     const std::vector<std::string>& warnings, const std::string& extra);

  Options o_;
  bool nat_;
  uint16_t uplink_ = 0, rport_ = 0;
  std::vector<uint16_t> vdc_port_;
  std::vector<Frame> frames_;   // established frames of the main flows made so far
  std::vector<Frame> rframes_;  // established frames of the rewrite flows
  uint32_t established_ = 0;
};

Flow Bench::flow(uint32_t i) const {
  Flow f;
  f.vdc = 1 + i % o_.vdcs;
  f.proto = (i / o_.vdcs) & 1 ? IPPROTO_UDP : IPPROTO_TCP;
  f.client = kClients + (i >> 2);
  f.sport = static_cast<uint16_t>(10000 + (i & 3));
  if (nat_) {
    f.dst = kPublic;
    f.dport = static_cast<uint16_t>(kPublicPortBase + f.vdc);
  } else {
    f.dst = vdc_inner(f.vdc);
    f.dport = f.proto == IPPROTO_TCP ? kInnerTcpPort : kInnerUdpPort;
  }
  return f;
}

Flow Bench::rflow(uint32_t j) const {
  return {kRClients + j,
          40000,
          kPublic,
          static_cast<uint16_t>(kRPortBase + j),
          static_cast<uint8_t>(j & 1 ? IPPROTO_UDP : IPPROTO_TCP),
          0};
}

const nat::Session& Bench::session_of(const Flow& f) {
  nat::FlowKey k{f.client, f.dst, f.sport, f.dport, 0, f.proto, nat::FlowKey::kFlow};
  uint32_t h = table().lookup(k);
  if (h == nat::SessionTable::kMiss || (h & 1))
    throw std::runtime_error("no session for flow " + ipstr(f.client) + ":" +
                             std::to_string(f.sport) + " -> port " + std::to_string(f.dport));
  return table().at(h >> 1);
}

void Bench::setup() {
  std::string ports = fmt(
      R"({"name": "uplink", "device": "net_null_nu", "addresses": ["198.51.100.1/24"], "mac": "%s"})",
      mac_str(kUplinkMac).c_str());
  std::string routes = R"({"prefix": "0.0.0.0/0", "via": "198.51.100.2"})";
  std::string neighbors =
      fmt(R"({"port": "uplink", "ip": "198.51.100.2", "mac": "%s"})", mac_str(kRouterMac).c_str());
  for (unsigned k = 1; k <= o_.vdcs; ++k) {
    unsigned d = nat_ ? k : 0;
    ports += fmt(
        R"(, {"name": "vdc%u", "device": "net_null_nv%u", "domain": %u, "addresses": ["%s/24"], "mac": "%s"})",
        k, k, d, ipstr(vdc_addr(k)).c_str(), mac_str(vdc_mac(k)).c_str());
    routes += fmt(R"(, {"domain": %u, "prefix": "172.16.%u.0/24", "via": "%s"})", d, k,
                  ipstr(vdc_router(k)).c_str());
    neighbors += fmt(R"(, {"port": "vdc%u", "ip": "%s", "mac": "%s"})", k,
                     ipstr(vdc_router(k)).c_str(), mac_str(vdc_router_mac(k)).c_str());
  }
  unsigned rd = nat_ ? kRDomain : 0;
  ports += fmt(
      R"(, {"name": "vdcr", "device": "net_ring0", "domain": %u, "addresses": ["10.101.0.1/24"], "mac": "%s"})",
      rd, mac_str(kRMac).c_str());
  routes += fmt(R"(, {"domain": %u, "prefix": "172.20.0.0/16", "via": "10.101.0.2"})", rd);
  routes += fmt(R"(, {"domain": %u, "prefix": "172.21.0.0/16", "via": "10.101.0.2"})", rd);
  neighbors +=
      fmt(R"(, {"port": "vdcr", "ip": "10.101.0.2", "mac": "%s"})", mac_str(kRRouterMac).c_str());
  std::string json = fmt(
      R"({"lcores": {"service": %u, "workers": [%u]}, "ports": [%s], "routes": [%s],
          "neighbors": [%s], "nat": {"max_sessions": %u}})",
      o_.main_lcore, o_.worker_lcore, ports.c_str(), routes.c_str(), neighbors.c_str(),
      o_.max_sessions);
  std::string err;
  auto cfg = parse_config(json, &err);
  if (!cfg) throw std::runtime_error("config: " + err);

  // NAT entries are boot entries (origin config): generation 1 builds every
  // domain's route table once (each rte_lpm is 64 MiB of hugepages).
  if (nat_) {
    auto& n = cfg->nat;
    for (unsigned k = 1; k <= o_.vdcs; ++k) {
      n.gateways.push_back({static_cast<uint16_t>(k), vdc_gateway(k)});
      for (uint8_t proto : {nat::kTcp, nat::kUdp}) {
        nat::MappingEntry m;
        m.name = fmt("%s-vdc%u", proto == nat::kTcp ? "tcp" : "udp", k);
        m.public_addr = kPublic;
        m.proto = proto;
        m.port_lo = m.port_hi = static_cast<uint16_t>(kPublicPortBase + k);
        m.domain = static_cast<uint16_t>(k);
        m.inner_addr = vdc_inner(k);
        m.inner_port = proto == nat::kTcp ? kInnerTcpPort : kInnerUdpPort;
        n.mappings.push_back(m);
      }
    }
    n.gateways.push_back({kRDomain, kRGateway});
    for (uint32_t j = 0; j < o_.rewrite_mappings; ++j) {
      nat::MappingEntry m;
      m.name = fmt("rewrite-%u", j);
      m.public_addr = kPublic;
      m.proto = j & 1 ? nat::kUdp : nat::kTcp;
      m.port_lo = m.port_hi = m.inner_port = static_cast<uint16_t>(kRPortBase + j);
      m.domain = kRDomain;
      m.inner_addr = kRFrom + j;
      n.mappings.push_back(m);
      m.name = fmt("idle-%u", j);
      m.port_lo = m.port_hi = m.inner_port = static_cast<uint16_t>(kQPortBase + j);
      m.domain = kQDomain;
      m.inner_addr = kQFrom + j;
      n.mappings.push_back(m);
    }
  }
  start(*cfg);
  vdc_port_.resize(o_.vdcs);
  for (auto& p : dp_->ports()) {
    if (p.name == "uplink") uplink_ = p.port_id;
    if (p.name == "vdcr") rport_ = p.port_id;
    if (p.name.rfind("vdc", 0) == 0 && p.name != "vdcr")
      vdc_port_[std::stoul(p.name.substr(3)) - 1] = p.port_id;
  }
}

// Real first packets through the pipeline: the SYN (or the UDP datagram)
// from the uplink, the SYN-ACK from the workload (to the session's reply
// key: the gateway's address and the allocated port), the ACK. Then every
// session is looked up: TCP ones must be established.
void Bench::make_sessions(const std::vector<Flow>& flows) {
  const LcoreCounters w0 = *w_->counters, s0 = dp_->counters()[o_.main_lcore];
  push_each(uplink_, flows.size(),
            [&](size_t i, uint8_t* f) { flow_frame(f, flows[i], true, kClientIsn); });
  std::vector<std::vector<const Flow*>> tcp_by_port(RTE_MAX_ETHPORTS);
  for (auto& f : flows)
    if (f.proto == IPPROTO_TCP) tcp_by_port[out_port(f)].push_back(&f);
  std::vector<const Flow*> tcp;
  for (uint16_t port = 0; port < RTE_MAX_ETHPORTS; ++port) {
    auto& v = tcp_by_port[port];
    if (v.empty()) continue;
    const rte_ether_addr pmac = v[0]->vdc ? vdc_mac(v[0]->vdc) : kRMac;
    const rte_ether_addr rmac = v[0]->vdc ? vdc_router_mac(v[0]->vdc) : kRRouterMac;
    push_each(port, v.size(), [&](size_t i, uint8_t* f) {
      const nat::Session& s = session_of(*v[i]);
      write_frame(f, pmac, rmac, s.reply.src, s.reply.dst, s.reply.sport, s.reply.dport,
                  IPPROTO_TCP, kTcpSyn | kTcpAck, kServerIsn, kClientIsn + 1);
    });
    tcp.insert(tcp.end(), v.begin(), v.end());
  }
  push_each(uplink_, tcp.size(),
            [&](size_t i, uint8_t* f) { flow_frame(f, *tcp[i], false, kClientIsn + 1); });
  for (auto& p : counter_problems(w0, s0, 0, flows.size()))
    throw std::runtime_error("making sessions: " + p);
  for (auto& f : flows) {
    const nat::Session& s = session_of(f);
    if (f.proto == IPPROTO_TCP && s.tcp.load() != static_cast<uint8_t>(nat::TcpState::kEstablished))
      throw std::runtime_error(fmt("a TCP session is %s after its handshake",
                                   nat::tcp_state_name(static_cast<nat::TcpState>(s.tcp.load()))));
  }
}

void Bench::establish(uint32_t to) {
  uint32_t from = established_;
  if (to <= from) return;
  frames_.resize(to);
  std::vector<Flow> flows;
  flows.reserve(to - from);
  for (uint32_t i = from; i < to; ++i) {
    flows.push_back(flow(i));
    flow_frame(frames_[i].b, flows.back(), false, kClientIsn + 1);
  }
  if (nat_) make_sessions(flows);
  established_ = to;
}

void Bench::establish_r() {
  std::vector<Flow> flows;
  rframes_.resize(o_.rewrite_mappings);
  for (uint32_t j = 0; j < o_.rewrite_mappings; ++j) {
    flows.push_back(rflow(j));
    flow_frame(rframes_[j].b, flows.back(), false, kClientIsn + 1);
  }
  make_sessions(flows);
}

// What a translated (or forwarded) packet of `f` must look like on its VDC port.
void Bench::check_out(rte_mbuf* m, const Flow& f, const char* what) {
  Ipv4 src = f.client, dst = f.dst;
  uint16_t sport = f.sport, dport = f.dport;
  if (nat_) {
    const nat::Session& s = session_of(f);
    src = s.reply.dst;
    dst = s.reply.src;
    sport = s.reply.dport;
    dport = s.reply.sport;
    Ipv4 gw = f.vdc ? vdc_gateway(f.vdc) : kRGateway;
    Ipv4 inner = f.vdc ? vdc_inner(f.vdc) : kRFrom;
    uint16_t iport = f.vdc ? (f.proto == IPPROTO_TCP ? kInnerTcpPort : kInnerUdpPort) : f.dport;
    if (src != gw || (f.vdc && dst != inner) || dport != iport)
      throw std::runtime_error(std::string(what) + ": the session does not lead to the workload");
  }
  rte_ether_addr dmac = f.vdc ? vdc_router_mac(f.vdc) : kRRouterMac;
  rte_ether_addr smac = f.vdc ? vdc_mac(f.vdc) : kRMac;
  check_forwarded(m, dmac, smac, src, dst, sport, dport, what);
}

// kVerify random flows of the first n, one packet each, read from the
// worker's TX buffer before it is flushed.
unsigned Bench::verify(uint32_t n) {
  flush_tx(*w_);
  for (unsigned v = 0; v < kVerify; ++v) {
    uint32_t i = rng_.below(n);
    Flow f = flow(i);
    rte_mbuf* m = alloc();
    rte_mov64(reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, kFrame)), frames_[i].b);
    push(uplink_, &m, 1);
    const TxBuffer& b = w_->tx[out_port(f)];
    if (b.n != 1)
      throw std::runtime_error(fmt("verify: %u packets queued on the VDC's port, not 1", b.n));
    check_out(b.pkts[0], f, "verify");
    flush_tx(*w_);
  }
  return kVerify;
}

std::string Bench::report(const std::string& name, const std::vector<Sample>& s,
                          const std::vector<std::string>& warnings, const std::string& extra) {
  return report_line(name, s, warnings,
                     fmt(", \"lcore\": %u, \"vdcs\": %u, \"table_capacity\": %u", rte_lcore_id(),
                         o_.vdcs, table().capacity()) +
                         extra);
}

// --- throughput: established packets, random sessions ---

std::string Bench::tput_figure(const std::string& name, uint32_t n) {
  auto w0c = std::chrono::steady_clock::now();
  establish(n);
  double setup_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - w0c).count();
  unsigned verified = verify(n);
  const LcoreCounters w0 = *w_->counters, s0 = dp_->counters()[o_.main_lcore];
  uint64_t pushed = 0;
  auto step = [&] { return copies_step(uplink_, frames_, n, &pushed); };
  std::vector<Sample> s = warm_and_sample(o_.warmup, o_.seconds, o_.samples, step);
  std::vector<std::string> warnings = counter_problems(w0, s0, pushed, 0);
  verified += verify(n);
  return report(name, s, warnings,
                fmt(", \"sessions\": %u, \"live\": %u, \"packets\": %lu, \"batch\": %u, "
                    "\"burst\": %u, \"verified\": %u, \"establish_s\": %.3f, \"pkt_size\": %u",
                    nat_ ? n : 0u, nat_ ? table().live() : 0u, pushed, kBatch, kBurst, verified,
                    setup_s, kFrame));
}

// --- new sessions ---

std::string Bench::new_figure(const std::string& name) {
  expire_all();
  const uint64_t start_expiries = expiries_;
  const uint32_t cycle = std::max<uint32_t>(4 * o_.new_batch, 1u << 20);
  const size_t created_ev = static_cast<size_t>(Event::nat_sessions_created);
  uint32_t cursor = 0, made = 0, max_live = 0;
  uint64_t pushed = 0, created = 0;  // by timed packets, after the warm-up
  auto step = [&]() -> Timed {
    if (made + kBatch > o_.new_batch) {  // not timed: empty the table
      max_live = std::max(max_live, table().live());
      expire_all();
      made = 0;
    }
    rte_mbuf* pkts[kBatch];
    if (rte_pktmbuf_alloc_bulk(dp_->pool(), pkts, kBatch) != 0)
      throw std::runtime_error("mbuf pool empty");
    for (unsigned i = 0; i < kBatch; ++i) {  // not timed
      flow_frame(reinterpret_cast<uint8_t*>(rte_pktmbuf_append(pkts[i], kFrame)), flow(cursor),
                 true, cursor);
      cursor = cursor + 1 == cycle ? 0 : cursor + 1;
    }
    const uint64_t c0 = w_->counters->events[created_ev];
    uint64_t t = timed_push(uplink_, pkts, kBatch);
    rte_rcu_qsbr_quiescent(qsbr_, dp_->service_rcu_id());
    created += w_->counters->events[created_ev] - c0;
    made += kBatch;
    pushed += kBatch;
    return {t, double(kBatch)};
  };
  measure(o_.warmup, step);
  pushed = created = 0;  // from here every packet pushed must make a session
  const LcoreCounters w0 = *w_->counters, s0 = dp_->counters()[o_.main_lcore];
  std::vector<Sample> s;
  for (unsigned i = 0; i < o_.samples; ++i) s.push_back(measure(o_.seconds, step));
  max_live = std::max(max_live, table().live());
  std::vector<std::string> warnings = counter_problems(w0, s0, pushed, created);
  if (created != pushed)
    warnings.push_back(fmt("%lu first packets made %lu sessions", pushed, created));
  const uint64_t expiries = expiries_ - start_expiries;
  expire_all();
  // Each of kVerify first packets alone: out on its VDC's port, translated
  // as the session it made says.
  flush_tx(*w_);
  for (unsigned v = 0; v < kVerify; ++v) {
    Flow f = flow(rng_.below(cycle));
    rte_mbuf* m = alloc();
    flow_frame(reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, kFrame)), f, true, v);
    push(uplink_, &m, 1);
    const TxBuffer& b = w_->tx[out_port(f)];
    if (b.n != 1) throw std::runtime_error("nat-new verify: the first packet did not go out");
    check_out(b.pkts[0], f, "nat-new verify");
    flush_tx(*w_);
  }
  std::string extra =
      fmt(", \"packets\": %lu, \"sessions_made\": %lu, \"batch_sessions\": %u, \"expiries\": %lu, "
          "\"max_live\": %u, \"batch\": %u, \"burst\": %u, \"pkt_size\": %u, \"verified\": %u",
          pushed, created, o_.new_batch, expiries, max_live, kBatch, kBurst, kFrame, kVerify);
  expire_all();
  return report(name, s, warnings, extra);
}

// --- rewrite ---

std::vector<Change> Bench::rewrite_changes(uint16_t domain, Ipv4 from, Ipv4 to) const {
  std::vector<Change> v(o_.rewrite_mappings);
  for (uint32_t j = 0; j < o_.rewrite_mappings; ++j) {
    v[j].kind = Change::Kind::kNatRewrite;
    v[j].add = true;
    v[j].update = true;
    v[j].nat_rewrite.domain = domain;
    v[j].nat_rewrite.from = from + j;
    v[j].nat_rewrite.to = to + j;
  }
  return v;
}

// On the worker lcore: established packets of random rewrite flows from the
// uplink, and what comes out of the rewrite domain's port, until told to stop.
void Bench::rewrite_traffic(RewriteTraffic* rt) {
  online(false);
  const uint32_t n = o_.rewrite_mappings;
  rt->t_first = rte_rdtsc();
  while (!rt->stop.load(std::memory_order_acquire)) {
    rte_mbuf* pkts[kBurst];
    if (rte_pktmbuf_alloc_bulk(dp_->pool(), pkts, kBurst) != 0) {
      offline(false);
      throw std::runtime_error("mbuf pool empty");
    }
    for (unsigned i = 0; i < kBurst; ++i)
      rte_mov64(reinterpret_cast<uint8_t*>(rte_pktmbuf_append(pkts[i], kFrame)),
                rframes_[rng_.below(n)].b);
    int win = rt->window.load(std::memory_order_acquire);
    push(uplink_, pkts, kBurst);
    worker_tail();
    rt->pushed[win] += kBurst;
    rte_mbuf* out[64];
    uint16_t got;
    while ((got = rte_eth_rx_burst(rport_, 0, out, 64)) > 0) {
      for (uint16_t i = 0; i < got; ++i) {
        const auto* ip = rte_pktmbuf_mtod_offset(out[i], const rte_ipv4_hdr*, kEth);
        const auto* l4 = reinterpret_cast<const uint8_t*>(ip + 1);
        uint32_t j = uint32_t(l4[2] << 8 | l4[3]) - kRPortBase;  // inner port = 20000 + j
        Ipv4 dst = rte_be_to_cpu_32(ip->dst_addr);
        bool from_gw = rte_be_to_cpu_32(ip->src_addr) == kRGateway && ip->time_to_live == 63;
        if (j < n && from_gw && dst == kRFrom + j)
          ++rt->to_a[win];
        else if (j < n && from_gw && dst == kRTo + j)
          ++rt->to_b[win];
        else
          ++rt->wrong[win];
      }
      rte_pktmbuf_free_bulk(out, got);
    }
    rt->bursts.fetch_add(1, std::memory_order_release);
  }
  rt->t_last = rte_rdtsc();
  offline(false);
}

std::string Bench::rewrite_figure(const std::string& name) {
  const double hz = static_cast<double>(rte_get_tsc_hz());
  const uint32_t n = o_.rewrite_mappings;
  std::vector<double> ours, ref, lost, during, old_during, new_during, rekeyed, after_old;
  std::vector<double> mpps_before, mpps_during, mpps_after;
  std::vector<std::string> warnings;
  bool r_at_a = true, q_at_a = true;
  auto wait_bursts = [&](RewriteTraffic& rt, uint64_t more) {
    uint64_t target = rt.bursts.load(std::memory_order_acquire) + more;
    uint64_t end = rte_rdtsc() + uint64_t(10 * hz);
    while (rt.bursts.load(std::memory_order_acquire) < target) {
      if (rte_eal_get_lcore_state(o_.worker_lcore) == WAIT || rte_rdtsc() > end) {
        rt.stop.store(true, std::memory_order_release);
        throw std::runtime_error("rewrite: the worker stopped forwarding");
      }
      rte_pause();
    }
  };
  // One rewrite of each side; `record` false for the warm-up pair.
  auto one = [&](bool record) {
    // Reference: the idle domain's 10k mappings, no sessions, no traffic.
    auto qc = rewrite_changes(kQDomain, q_at_a ? kQFrom : kQTo, q_at_a ? kQTo : kQFrom);
    uint64_t t0 = rte_rdtsc();
    auto qr = dp_->apply_changes(qc, Origin::kApi, std::nullopt);
    double q_ms = (rte_rdtsc() - t0) * 1e3 / hz;
    if (!qr.error.empty()) throw std::runtime_error("reference rewrite: " + qr.error);
    if (qr.rekeyed != 0) warnings.push_back(fmt("reference rewrite rekeyed %lu", qr.rekeyed));
    q_at_a = !q_at_a;
    table().reclaim();

    // Ours: the traffic domain, its worker forwarding meanwhile.
    const LcoreCounters w0 = *w_->counters;
    auto rc = rewrite_changes(kRDomain, r_at_a ? kRFrom : kRTo, r_at_a ? kRTo : kRFrom);
    RewriteTraffic rt;
    Task task{[&] { rewrite_traffic(&rt); }, ""};
    on_worker(&task);
    wait_bursts(rt, 2000);  // ~64k packets before
    rt.window.store(1, std::memory_order_release);
    t0 = rte_rdtsc();
    auto rr = dp_->apply_changes(rc, Origin::kApi, std::nullopt);
    uint64_t t1 = rte_rdtsc();
    rt.window.store(2, std::memory_order_release);
    wait_bursts(rt, 2000);  // and after
    rt.stop.store(true, std::memory_order_release);
    wait_worker(&task);
    if (!rr.error.empty()) throw std::runtime_error("rewrite: " + rr.error);
    table().reclaim();
    // Before: everything to the old set; after: everything to the new set.
    uint64_t* old_set = r_at_a ? rt.to_a : rt.to_b;
    uint64_t* new_set = r_at_a ? rt.to_b : rt.to_a;
    uint64_t lost_during = rt.pushed[1] - old_set[1] - new_set[1];
    uint64_t lost_before = rt.pushed[0] - old_set[0];
    uint64_t lost_after = rt.pushed[2] - new_set[2];
    r_at_a = !r_at_a;
    if (!record) return;
    ours.push_back((t1 - t0) * 1e3 / hz);
    ref.push_back(q_ms);
    lost.push_back(double(lost_during));
    during.push_back(double(rt.pushed[1]));
    old_during.push_back(double(old_set[1]));
    new_during.push_back(double(new_set[1]));
    after_old.push_back(double(old_set[2]));
    rekeyed.push_back(double(rr.rekeyed));
    mpps_before.push_back(rt.pushed[0] / ((t0 - rt.t_first) / hz) / 1e6);
    mpps_during.push_back(rt.pushed[1] / ((t1 - t0) / hz) / 1e6);
    mpps_after.push_back(rt.pushed[2] / ((rt.t_last - t1) / hz) / 1e6);
    if (rr.rekeyed != n)
      warnings.push_back(fmt("rewrite rekeyed %lu of %u sessions", rr.rekeyed, n));
    if (lost_before || lost_after)
      warnings.push_back(fmt("packets not translated as expected: %lu before, %lu after the apply",
                             lost_before, lost_after));
    for (auto& p : counter_problems(w0, dp_->counters()[o_.main_lcore], 0, 0))
      if (p.rfind("drops", 0) == 0 || p.rfind("events", 0) == 0) warnings.push_back(p);
  };
  if (o_.rewrite_warmup) {
    one(false);
    one(false);
  }
  for (unsigned i = 0; i < o_.rewrite_samples; ++i) one(true);
  std::sort(warnings.begin(), warnings.end());
  warnings.erase(std::unique(warnings.begin(), warnings.end()), warnings.end());
  return "{\"figure\": \"" + name + "\", \"value_samples\": " + json_list(ours) +
         ", \"ref_samples\": " + json_list(ref) + ", \"lost_samples\": " + json_list(lost, "%.0f") +
         ", \"pushed_during\": " + json_list(during, "%.0f") +
         ", \"old_during\": " + json_list(old_during, "%.0f") +
         ", \"new_during\": " + json_list(new_during, "%.0f") +
         ", \"old_after\": " + json_list(after_old, "%.0f") +
         ", \"rekeyed\": " + json_list(rekeyed, "%.0f") +
         ", \"mpps_before\": " + json_list(mpps_before, "%.3f") +
         ", \"mpps_during\": " + json_list(mpps_during, "%.3f") +
         ", \"mpps_after\": " + json_list(mpps_after, "%.3f") +
         ", \"warnings\": " + json_strings(warnings) +
         fmt(", \"mappings\": %u, \"sessions\": %u, \"changes\": %u, \"idle_mappings\": %u, "
             "\"all_mappings\": %u, \"table_capacity\": %u, \"lcore\": %u, \"api_lcore\": %u",
             n, n, n, n, 2 * n + 2 * o_.vdcs, table().capacity(), o_.worker_lcore, rte_lcore_id()) +
         "}";
}

void Bench::run() {
  auto wants = [&](const char* f) {
    return std::find(o_.figures.begin(), o_.figures.end(), f) != o_.figures.end();
  };
  auto emit = [](const std::string& line) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  };
  // Single-threaded part on the worker lcore: worker and service at once.
  std::vector<std::string> lines;
  Task task{[&] {
              online(true);
              struct Off {
                Bench* b;
                ~Off() { b->offline(true); }
              } off{this};
              if (!nat_) {
                std::fprintf(stderr, "nat_bench: forward\n");
                lines.push_back(tput_figure("forward", o_.flows));
                return;
              }
              const std::pair<const char*, uint32_t> sizes[] = {
                  {"nat-1k", 1000}, {"nat-100k", 100000}, {"nat-1m", 1000000}};
              for (auto [f, n] : sizes)
                if (wants(f)) {
                  std::fprintf(stderr, "nat_bench: %s\n", f);
                  lines.push_back(tput_figure(f, n));
                }
              if (wants("nat-new")) {
                std::fprintf(stderr, "nat_bench: nat-new\n");
                lines.push_back(new_figure("nat-new"));
              }
              if (wants("nat-rewrite-10k")) {
                std::fprintf(stderr, "nat_bench: nat-rewrite-10k (sessions)\n");
                if (table().live()) expire_all();
                establish_r();
              }
            },
            ""};
  on_worker(&task);
  try {
    wait_worker(&task);
  } catch (...) {
    for (auto& l : lines) emit(l);
    throw;
  }
  for (auto& l : lines) emit(l);
  if (nat_ && wants("nat-rewrite-10k")) {
    std::fprintf(stderr, "nat_bench: nat-rewrite-10k\n");
    emit(rewrite_figure("nat-rewrite-10k"));
  }
}

Options parse_args(int argc, char** argv) {
  Options o;
  bool rewrite_samples_set = false;
  FlagHandlers flags = {
      {"--side", [&](const std::string& v) { o.side = v; }},
      {"--figures", [&](const std::string& v) { o.figures = split(v, ','); }},
      {"--warmup", [&](const std::string& v) { o.warmup = std::stod(v); }},
      {"--seconds", [&](const std::string& v) { o.seconds = std::stod(v); }},
      {"--samples", [&](const std::string& v) { o.samples = std::stoul(v); }},
      {"--main-lcore", [&](const std::string& v) { o.main_lcore = std::stoul(v); }},
      {"--worker-lcore", [&](const std::string& v) { o.worker_lcore = std::stoul(v); }},
      {"--vdcs", [&](const std::string& v) { o.vdcs = std::stoul(v); }},
      {"--max-sessions", [&](const std::string& v) { o.max_sessions = std::stoul(v); }},
      {"--flows", [&](const std::string& v) { o.flows = std::stoul(v); }},
      {"--new-batch", [&](const std::string& v) { o.new_batch = std::stoul(v); }},
      {"--rewrite-mappings", [&](const std::string& v) { o.rewrite_mappings = std::stoul(v); }},
      {"--rewrite-samples",
       [&](const std::string& v) {
         o.rewrite_samples = std::stoul(v);
         rewrite_samples_set = true;
       }},
      {"--rewrite-warmup", [&](const std::string& v) { o.rewrite_warmup = std::stoul(v) != 0; }},
  };
  parse_flags(argc, argv, flags, &o.eal);
  if (!rewrite_samples_set) o.rewrite_samples = o.samples;
  if (o.side != "forward" && o.side != "nat") throw std::runtime_error("--side forward|nat");
  if (o.side == "nat" && o.figures.empty()) throw std::runtime_error("--figures is empty");
  if (o.vdcs < 1 || o.vdcs > 200) throw std::runtime_error("--vdcs must be 1-200");
  if (o.rewrite_mappings < 1 || o.rewrite_mappings > 10000)
    throw std::runtime_error("--rewrite-mappings must be 1-10000");
  if (o.new_batch < kBatch) throw std::runtime_error("--new-batch must be at least 256");
  if (o.flows < 1 || o.flows > (1u << 24)) throw std::runtime_error("--flows must be 1-16M");
  if (o.main_lcore == o.worker_lcore) throw std::runtime_error("two different lcores needed");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  try {
    opt = parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "nat_bench: %s\n", e.what());
    return 2;
  }
  std::vector<std::string> vdevs = {"net_null_nu"};
  for (unsigned k = 1; k <= opt.vdcs; ++k) vdevs.push_back(fmt("net_null_nv%u", k));
  vdevs.push_back("net_ring0");
  return bench_main<Bench>("nat_bench", opt, vdevs);
}
