// Firewall benchmarks of the dataplane (tests/bench/benchmarks/fw.py): one
// process is one side of one round.
//
//   --side forward   the reference: the IPv4 pipeline with the session stage
//                    off (no zone, no policy, no NAT: nat_burst never runs),
//                    same ports, routes, neighbors, packets and harness.
//   --side fw        the firewall figures asked for, in this order:
//     fw-100, fw-1k, fw-10k  Mpps of established packets, each of a flow
//                    drawn at random among --flows (half TCP, half UDP),
//                    from the uplink to the lan zone under a policy of that
//                    many rules (session lookup, TCP window tracking, rule
//                    counters, route, neighbor, TX). Before each figure the
//                    policy is applied (Dataplane::apply_changes), the table
//                    is emptied and the flows' sessions are made again by
//                    real first packets (TCP: SYN, the server's SYN-ACK, the
//                    ACK; UDP: one datagram), so that each was classified
//                    by that policy.
//     fw-new-10k     new sessions per second: every packet the first UDP
//                    datagram of a flow of its own, classified against 10k
//                    rules and accepted by the last one (session insert
//                    included). The table starts empty and is emptied every
//                    --new-batch sessions (not timed), as in nat-new.
//     fw-swap-10k    ms of one apply_changes replacing the 10k-rule policy by
//                    another 10k rules (other filler rules, the same two
//                    accepting rules) while the worker lcore forwards the
//                    established flows; `lost` counts their packets pushed
//                    from the call until well after the return (every
//                    session re-checked) that the worker did not send.
//                    Reference: fw::Classifier::compile of the same rules,
//                    alone, in the same process.
//
// Topology (both sides): one routing domain (0), two net_null ports.
//   uplink  198.51.100.1/24, router 198.51.100.2 (default route via it).
//   lan     10.100.0.1/24, router 10.100.0.2, route 172.16.0.0/16 via it;
//           on the fw side the port is zone "lan" (fw_zone by port), so
//           uplink -> lan traffic crosses from the built-in zone "uplink"
//           to "lan" and the policy uplink->lan judges it. Nothing else
//           differs between the sides: same domain, same routes.
// Flows: clients 100.64.0.0/10 (4 flows each), servers 172.16.k.10, TCP to
// port 443 and UDP to port 4433. The policy's rules: N-2 random filler rules
// (random prefixes, protocols, port ranges and lists, ICMP types, actions),
// none of which matches a benchmark flow (each misses on its destination,
// its source, or its protocol/ports; about a third share the flows'
// destination prefix and miss only on the ports), then "web" (tcp 443) and
// "quic" (udp 4433) accepting 100.64.0.0/10 -> 172.16.0.0/16, then the
// default: drop.
//
// Threads, as nat_bench: the EAL main lcore (--main-lcore) is the API thread
// (apply_changes) and otherwise waits; the worker lcore plays worker 0
// (forward_burst on bursts it builds, then worker_after_rx) and, for the
// rate figures, the service thread too (sweeps). Only the pipeline is timed;
// building the packets (copies of pre-built 64-byte frames) is not.
//
// Usage: fw_bench --side forward|fw [--figures a,b] --warmup S --seconds S
//                 --samples N --main-lcore M --worker-lcore W [--flows 10000]
//                 [--max-sessions N] [--new-batch N] [--swap-samples N]
//                 [--swap-warmup 0|1] [--seed N] -- EAL-ARGS...
// Prints one JSON line per figure with its samples, and {"exit": ...} last.
#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_memcpy.h>
#include <rte_rcu_qsbr.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "dataplane/config.h"
#include "dataplane/dataplane.h"
#include "dataplane/fw_runtime.h"
#include "dataplane/worker.h"
#include "firewall/acl.h"
#include "firewall/rules.h"
#include "nat/flow.h"
#include "nat/session.h"
#include "tests/bench/harness.h"

namespace {

using namespace tether;
using namespace tether::bench;
using namespace tether::dp;

constexpr unsigned kVerify = 16;
constexpr Ipv4 kClients = ip4(100, 64, 0, 0);     // established flows: 4 a client
constexpr Ipv4 kNewClients = ip4(100, 96, 0, 0);  // fw-new: 16 flows a client
constexpr Ipv4Prefix kClientNet{ip4(100, 64, 0, 0), 10};
constexpr Ipv4Prefix kServerNet{ip4(172, 16, 0, 0), 16};
constexpr uint16_t kTcpPort = 443, kUdpPort = 4433;
constexpr uint32_t kClientIsn = 1, kServerIsn = 77;  // handshakes window tracking accepts
constexpr uint16_t kDomain = 0;
const rte_ether_addr kUplinkMac = mac_of(0, 0, 0, 1);
const rte_ether_addr kRouterMac = mac_of(0, 0, 0, 2);
const rte_ether_addr kLanMac = mac_of(1, 0, 0, 1);
const rte_ether_addr kLanRouterMac = mac_of(1, 0, 0, 2);

struct Options {
  std::string side;
  std::vector<std::string> figures;
  double warmup = 1.0;
  double seconds = 2.0;
  unsigned samples = 1;
  unsigned main_lcore = 0;
  unsigned worker_lcore = 1;
  uint32_t flows = 10000;
  uint32_t max_sessions = 1250000;
  uint32_t new_batch = 262144;
  unsigned swap_samples = 0;  // 0: --samples
  bool swap_warmup = true;    // a swap there and back before the samples
  uint64_t seed = 1;
  std::vector<std::string> eal;
};

Ipv4 server(uint32_t k) { return ip4(172, 16, k & 255, 10); }

// Established flow i (orig key, as it arrives on the uplink): even TCP, odd UDP.
nat::FlowKey flow(uint32_t i) {
  bool tcp = (i & 1) == 0;
  return {kClients + (i >> 2),
          server(i >> 1),
          static_cast<uint16_t>(10000 + (i & 3)),
          tcp ? kTcpPort : kUdpPort,
          kDomain,
          static_cast<uint8_t>(tcp ? IPPROTO_TCP : IPPROTO_UDP),
          nat::FlowKey::kFlow};
}

// fw-new's flow c: a UDP datagram from a client and port of its own.
nat::FlowKey new_flow(uint32_t c) {
  return {kNewClients + (c >> 4),
          server(c),
          static_cast<uint16_t>(20000 + (c & 15)),
          kUdpPort,
          kDomain,
          IPPROTO_UDP,
          nat::FlowKey::kFlow};
}

// From the client: the first packet (SYN or the datagram) or an established
// one (TCP: the handshake's ACK, then retransmissions of 10 bytes of data).
void client_frame(uint8_t* f, const nat::FlowKey& k, bool first) {
  bool tcp = k.proto == IPPROTO_TCP;
  write_frame(f, kUplinkMac, kRouterMac, k.src, k.dst, k.sport, k.dport, k.proto,
              tcp ? (first ? kTcpSyn : kTcpAck) : 0, first ? kClientIsn : kClientIsn + 1,
              kServerIsn + 1);
}

// --- the policies ---

// The rules of a policy of n >= 2 rules: n-2 fillers from `seed`, then the
// two accepting rules.
class RuleMaker {
 public:
  explicit RuleMaker(uint64_t seed) { rng_.s ^= seed * 0x9e3779b97f4a7c15ull + seed; }

  std::vector<fw::Rule> policy(uint32_t n, const std::string& tag) {
    std::vector<fw::Rule> rules;
    rules.reserve(n);
    for (uint32_t i = 0; i + 2 < n; ++i) {
      fw::Rule r = filler();
      r.name = fmt("%s-%u", tag.c_str(), i);
      rules.push_back(std::move(r));
    }
    fw::Rule web;
    web.name = "web";
    web.src = {kClientNet};
    web.dst = {kServerNet};
    web.proto = IPPROTO_TCP;
    web.dport = {{kTcpPort, kTcpPort}};
    web.action = fw::Action::kAccept;
    fw::Rule quic = web;
    quic.name = "quic";
    quic.proto = IPPROTO_UDP;
    quic.dport = {{kUdpPort, kUdpPort}};
    rules.push_back(web);
    rules.push_back(quic);
    return rules;
  }

 private:
  uint32_t pct() { return rng_.below(100); }
  static bool overlaps(const Ipv4Prefix& a, const Ipv4Prefix& b) {
    uint8_t len = std::min(a.len, b.len);
    Ipv4Prefix s{a.addr, len};
    return s.contains(b.addr);
  }
  Ipv4Prefix prefix(uint8_t lo, uint8_t hi) {
    Ipv4Prefix p{static_cast<Ipv4>(rng_.next() >> 32),
                 static_cast<uint8_t>(lo + rng_.below(hi - lo + 1))};
    p.addr = p.network();
    return p;
  }
  // A prefix inside `in` of length lo..hi (>= in.len).
  Ipv4Prefix inside(const Ipv4Prefix& in, uint8_t lo, uint8_t hi) {
    Ipv4Prefix p = prefix(lo, hi);
    p.addr = (in.network() | (p.addr & ~in.mask())) & p.mask();
    return p;
  }
  Ipv4Prefix outside(const Ipv4Prefix& not_in, uint8_t lo, uint8_t hi) {
    for (;;) {
      Ipv4Prefix p = prefix(lo, hi);
      if (!overlaps(p, not_in)) return p;
    }
  }
  uint16_t port() {
    static constexpr uint16_t kCommon[] = {22,   25,   53,   80,   110,  123,  143,  443,
                                           465,  587,  993,  995,  1194, 1433, 3306, 3389,
                                           4433, 5432, 5900, 6379, 8080, 8443, 9000, 51820};
    return pct() < 60 ? kCommon[rng_.below(std::size(kCommon))]
                      : static_cast<uint16_t>(1 + rng_.below(65535));
  }
  fw::PortRange range() {
    uint32_t lo = 1 + rng_.below(65000);
    return {static_cast<uint16_t>(lo),
            static_cast<uint16_t>(std::min(65535u, lo + rng_.below(1000)))};
  }
  // dport list: a port (55 %), a range (20 %), two or three of them (10 %), any.
  std::vector<fw::PortRange> dports() {
    uint32_t p = pct();
    if (p < 55) {
      uint16_t x = port();
      return {{x, x}};
    }
    if (p < 75) return {range()};
    if (p < 85) {
      std::vector<fw::PortRange> v;
      for (uint32_t k = 2 + rng_.below(2); k > 0; --k) {
        uint16_t x = port();
        v.push_back(pct() < 70 ? fw::PortRange{x, x} : range());
      }
      return v;
    }
    return {};
  }
  static bool has(const std::vector<fw::PortRange>& v, uint16_t x) {
    if (v.empty()) return true;
    for (auto& r : v)
      if (r.lo <= x && x <= r.hi) return true;
    return false;
  }
  // tcp 50 %, udp 30 %, icmp 10 %, any 10 %, with ports or ICMP types.
  void protocol(fw::Rule& r, bool with_any) {
    r.sport.clear();
    r.dport.clear();
    r.icmp.clear();
    uint32_t p = pct();
    if (p < 50) {
      r.proto = IPPROTO_TCP;
    } else if (p < 80) {
      r.proto = IPPROTO_UDP;
    } else if (p < 90 || !with_any) {
      r.proto = IPPROTO_ICMP;
      static constexpr uint8_t kTypes[] = {0, 3, 8, 11};
      if (pct() < 50) r.icmp.push_back({kTypes[rng_.below(4)], -1});
      if (pct() < 20) r.icmp.push_back({3, static_cast<int16_t>(rng_.below(16))});
      return;
    } else {
      r.proto = 0;
      return;
    }
    r.dport = dports();
    if (pct() < 15) r.sport = {pct() < 50 ? fw::PortRange{1024, 65535} : range()};
  }
  // One rule that matches no benchmark flow.
  fw::Rule filler() {
    fw::Rule r;
    uint32_t a = pct();
    r.action = a < 35 ? fw::Action::kAccept : a < 90 ? fw::Action::kDrop : fw::Action::kReject;
    uint32_t kind = pct();
    if (kind < 45) {  // elsewhere: the destination misses
      if (pct() < 50) r.src = {prefix(8, 32)};
      r.dst = {outside(kServerNet, 12, 32)};
      if (pct() < 10) r.dst.push_back(outside(kServerNet, 16, 32));
      protocol(r, true);
    } else if (kind < 75) {  // the flows' servers, other ports or protocols
      if (pct() < 50) r.src = {pct() < 50 ? inside(kClientNet, 10, 24) : prefix(8, 32)};
      r.dst = {inside(kServerNet, 16, 32)};
      do {  // any source port: only the destination port tells these from "web"/"quic"
        protocol(r, false);
        r.sport.clear();
      } while ((r.proto == IPPROTO_TCP && has(r.dport, kTcpPort)) ||
               (r.proto == IPPROTO_UDP && has(r.dport, kUdpPort)));
    } else {  // other clients
      r.src = {outside(kClientNet, 8, 28)};
      if (pct() < 50) r.dst = {inside(kServerNet, 16, 28)};
      protocol(r, true);
    }
    return r;
  }

  Rng rng_;
};

// Shared between the API thread and the worker during a swap.
struct SwapTraffic {
  std::atomic<bool> stop{false};
  std::atomic<int> window{0};  // 0 before the apply, 1 during, 2 after
  std::atomic<uint64_t> bursts{0};
  uint64_t pushed[3] = {}, sent[3] = {};  // by window: packets pushed, packets the worker sent
  LcoreCounters at[3];                    // the worker's counters when each window began
  uint64_t t_first = 0, t_last = 0;       // TSC of the first and last burst
};

class Bench : public PlayedWorker {
 public:
  explicit Bench(const Options& o)
      : PlayedWorker(o.main_lcore, o.worker_lcore, Event::fw_sessions_created),
        o_(o),
        fw_(o.side == "fw") {}
  void setup();
  void run();

 private:
  // --- policies (API thread) ---
  struct Applied {
    uint32_t rules = 0;
    double ms = 0;
    size_t acl_rules = 0;
    size_t memory = 0;
  };
  Applied set_policy(uint32_t n, uint64_t seed);
  std::vector<fw::Rule> rules_for(uint32_t n, uint64_t seed) {
    return RuleMaker(o_.seed * 1000003 + seed).policy(n, fmt("f%lu", seed));
  }
  const FwPolicyView& policy_view() {
    const FwView& fv = dp_->current()->fw;
    const FwPolicyView* p = fv.policy(implicit_zone(kDomain), fv.zone_of_port(lan_));
    if (!p) throw std::runtime_error("no uplink->lan policy in the live generation");
    return *p;
  }

  // --- the worker's part ---
  void establish();
  unsigned verify();
  std::vector<std::string> problems(const LcoreCounters& w0, const LcoreCounters& s0,
                                    uint64_t pushed, uint64_t created);
  std::string rate_figure(const std::string& name, const Applied& a);
  std::string new_figure(const std::string& name, const Applied& a);
  double classify_ns(const FwPolicyView& p);
  std::string swap_figure(const std::string& name);
  void swap_traffic(SwapTraffic* st);
  std::string common_fields(const Applied& a);

  Options o_;
  bool fw_;
  uint16_t uplink_ = 0, lan_ = 0;
  std::vector<Frame> frames_;  // established frames of the flows
  bool policy_exists_ = false;
};

void Bench::setup() {
  std::string json = fmt(
      R"({"lcores": {"service": %u, "workers": [%u]},
          "ports": [{"name": "uplink", "device": "net_null_fu", "addresses": ["198.51.100.1/24"], "mac": "%s"},
                    {"name": "lan", "device": "net_null_fl", "addresses": ["10.100.0.1/24"], "mac": "%s"}],
          "routes": [{"prefix": "0.0.0.0/0", "via": "198.51.100.2"},
                     {"prefix": "172.16.0.0/16", "via": "10.100.0.2"}],
          "neighbors": [{"port": "uplink", "ip": "198.51.100.2", "mac": "%s"},
                        {"port": "lan", "ip": "10.100.0.2", "mac": "%s"}],
          "nat": {"max_sessions": %u}})",
      o_.main_lcore, o_.worker_lcore, mac_str(kUplinkMac).c_str(), mac_str(kLanMac).c_str(),
      mac_str(kRouterMac).c_str(), mac_str(kLanRouterMac).c_str(), o_.max_sessions);
  std::string err;
  auto cfg = parse_config(json, &err);
  if (!cfg) throw std::runtime_error("config: " + err);
  if (fw_) {  // the lan port is a zone of its own; policies come through apply_changes
    fw::Zone z;
    z.name = "lan";
    z.kind = fw::ZoneKind::kVdc;
    z.ports = {"lan"};
    cfg->firewall.zones.push_back(z);
  }
  start(*cfg);
  for (auto& p : dp_->ports()) {
    if (p.name == "uplink") uplink_ = p.port_id;
    if (p.name == "lan") lan_ = p.port_id;
  }
  if (fw_ != dp_->current()->sessions_on())
    throw std::runtime_error("the session stage is not on exactly on the fw side");
  frames_.resize(o_.flows);
  for (uint32_t i = 0; i < o_.flows; ++i) client_frame(frames_[i].b, flow(i), false);
}

// API thread, the worker idle: the uplink->lan policy becomes n rules from
// `seed` (a new policy: every filler rule differs).
Bench::Applied Bench::set_policy(uint32_t n, uint64_t seed) {
  Change c;
  c.kind = Change::Kind::kFwPolicy;
  c.add = true;
  c.update = policy_exists_;
  c.fw_policy.from = "uplink";
  c.fw_policy.to = "lan";
  c.fw_policy.default_action = fw::Action::kDrop;
  c.fw_policy.rules = rules_for(n, seed);
  // The benchmark's flows must meet "web" or "quic" first (linear reference).
  for (uint32_t i = 0; i < 64 && i < o_.flows; ++i) {
    for (const nat::FlowKey& k : {flow(o_.flows - 1 - i), new_flow(i * 7919)}) {
      uint32_t want = k.proto == IPPROTO_TCP ? n - 1 : n;
      if (fw::match_linear(c.fw_policy.rules,
                           fw::make_key(k.proto, k.src, k.dst, k.sport, k.dport)) != want)
        throw std::runtime_error("a filler rule matches a benchmark flow");
    }
  }
  uint64_t t0 = rte_rdtsc();
  auto r = dp_->apply_changes({c}, Origin::kApi, std::nullopt);
  double ms = double(rte_rdtsc() - t0) * 1e3 / double(rte_get_tsc_hz());
  if (!r.error.empty())
    throw std::runtime_error("fw_policy of " + std::to_string(n) + " rules: " + r.error);
  policy_exists_ = true;
  const FwPolicyView& p = policy_view();
  if (p.rules.size() != n) throw std::runtime_error("the live policy has other rules");
  return {n, ms, p.acl->acl_rules(), p.acl->memory()};
}

// On the worker lcore: the flows' sessions, made by their first packets
// (TCP: SYN from the client, SYN-ACK from the server, ACK), each accepted
// by "web" or "quic" and TCP established with window tracking.
void Bench::establish() {
  if (!fw_) return;  // nothing to make: the same frames go straight through
  if (table().live()) expire_all();
  const LcoreCounters w0 = *w_->counters, s0 = dp_->counters()[o_.main_lcore];
  const uint32_t n = o_.flows, tcp = (n + 1) / 2;  // even flows are TCP
  push_each(uplink_, n, [&](size_t i, uint8_t* f) { client_frame(f, flow(uint32_t(i)), true); });
  push_each(lan_, tcp, [&](size_t j, uint8_t* f) {
    nat::FlowKey k = flow(uint32_t(2 * j));
    write_frame(f, kLanMac, kLanRouterMac, k.dst, k.src, k.dport, k.sport, IPPROTO_TCP,
                kTcpSyn | kTcpAck, kServerIsn, kClientIsn + 1);
  });
  push_each(uplink_, tcp,
            [&](size_t j, uint8_t* f) { client_frame(f, flow(uint32_t(2 * j)), false); });
  for (auto& p : counter_problems(w0, s0, 0, n)) throw std::runtime_error("making sessions: " + p);
  const FwPolicyView& pv = policy_view();
  const uint32_t web = pv.rules[pv.rules.size() - 2].id, quic = pv.rules.back().id;
  for (uint32_t i = 0; i < n; ++i) {
    nat::FlowKey k = flow(i);
    const nat::Session* s = find_session(k);
    if (!s) throw std::runtime_error("no session for flow " + std::to_string(i));
    bool tcp = k.proto == IPPROTO_TCP;
    if (s->rule != (tcp ? web : quic))
      throw std::runtime_error(fmt("flow %u was accepted by rule id %u, not the %s rule", i,
                                   s->rule, tcp ? "web" : "quic"));
    if (tcp && (s->tcp.load() != static_cast<uint8_t>(nat::TcpState::kEstablished) ||
                !(s->fw.load() & nat::Session::kFwTrack)))
      throw std::runtime_error(fmt("TCP flow %u is %s after its handshake", i,
                                   nat::tcp_state_name(static_cast<nat::TcpState>(s->tcp.load()))));
  }
}

// kVerify random flows, one established packet each, read from the worker's
// TX buffer of the lan port before it is flushed: forwarded unchanged but
// for the TTL and the MACs.
unsigned Bench::verify() {
  flush_tx(*w_);
  for (unsigned v = 0; v < kVerify; ++v) {
    uint32_t i = rng_.below(o_.flows);
    nat::FlowKey k = flow(i);
    rte_mbuf* m = alloc();
    rte_mov64(reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, kFrame)), frames_[i].b);
    push(uplink_, &m, 1);
    const TxBuffer& b = w_->tx[lan_];
    if (b.n != 1)
      throw std::runtime_error(fmt("verify: %u packets queued on the lan port, not 1", b.n));
    check_forwarded(b.pkts[0], kLanRouterMac, kLanMac, k.src, k.dst, k.sport, k.dport, "verify");
    flush_tx(*w_);
  }
  return kVerify;
}

std::vector<std::string> Bench::problems(const LcoreCounters& w0, const LcoreCounters& s0,
                                         uint64_t pushed, uint64_t created) {
  std::vector<std::string> out = counter_problems(w0, s0, pushed, created);
  const LcoreCounters& w1 = *w_->counters;
  for (Event e : {Event::fw_rechecked, Event::fw_sessions_revoked, Event::nat_sessions_created}) {
    size_t x = static_cast<size_t>(e);
    if (uint64_t d = w1.events[x] - w0.events[x])
      out.push_back(fmt("events %s=%lu", std::string(kEventNames[x]).c_str(), d));
  }
  return out;
}

std::string Bench::common_fields(const Applied& a) {
  return fmt(
      ", \"lcore\": %u, \"rules\": %u, \"acl_rules\": %zu, \"acl_memory\": %zu, "
      "\"apply_ms\": %.3f, \"table_capacity\": %u, \"batch\": %u, \"burst\": %u, "
      "\"pkt_size\": %u",
      rte_lcore_id(), a.rules, a.acl_rules, a.memory, a.ms, table().capacity(), kBatch, kBurst,
      kFrame);
}

// --- throughput: established packets, random flows ---

std::string Bench::rate_figure(const std::string& name, const Applied& a) {
  auto c0 = std::chrono::steady_clock::now();
  establish();
  double setup_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - c0).count();
  unsigned verified = verify();
  const LcoreCounters w0 = *w_->counters, s0 = dp_->counters()[o_.main_lcore];
  uint64_t pushed = 0;
  auto step = [&] { return copies_step(uplink_, frames_, o_.flows, &pushed); };
  std::vector<Sample> s = warm_and_sample(o_.warmup, o_.seconds, o_.samples, step);
  std::vector<std::string> warnings = problems(w0, s0, pushed, 0);
  verified += verify();
  return report_line(
      name, s, warnings,
      common_fields(a) + fmt(", \"flows\": %u, \"tcp_flows\": %u, \"udp_flows\": %u, "
                             "\"live\": %u, \"packets\": %lu, \"verified\": %u, "
                             "\"establish_s\": %.3f",
                             o_.flows, (o_.flows + 1) / 2, o_.flows / 2, table().live(), pushed,
                             verified, setup_s));
}

// --- new sessions ---

// What rte_acl alone takes per first packet: the policy's classifier on
// bursts of 32 keys of new flows, as nat_burst calls it.
double Bench::classify_ns(const FwPolicyView& p) {
  constexpr unsigned kKeys = 4096;
  std::vector<fw::AclKey> keys(kKeys);
  for (unsigned i = 0; i < kKeys; ++i) {
    nat::FlowKey k = new_flow(i * 257);
    keys[i] = fw::make_key(k.proto, k.src, k.dst, k.sport, k.dport);
  }
  const fw::AclKey* kp[kBurst];
  uint32_t res[kBurst];
  uint64_t bad = 0, t = 0, n = 0;
  for (unsigned round = 0; round < 8; ++round) {
    uint64_t t0 = rte_rdtsc();
    for (unsigned i = 0; i < kKeys; i += kBurst) {
      for (unsigned j = 0; j < kBurst; ++j) kp[j] = &keys[i + j];
      p.acl->classify(kp, res, kBurst);
      for (unsigned j = 0; j < kBurst; ++j) bad += res[j] != p.rules.size();
    }
    if (round) t += rte_rdtsc() - t0, n += kKeys;  // the first round warms the caches
  }
  if (bad) throw std::runtime_error("classify: a new flow is not accepted by the last rule");
  return double(t) * 1e9 / double(rte_get_tsc_hz()) / double(n);
}

std::string Bench::new_figure(const std::string& name, const Applied& a) {
  expire_all();
  const uint64_t start_expiries = expiries_;
  const uint32_t cycle = std::max<uint32_t>(4 * o_.new_batch, 1u << 20);
  const size_t created_ev = static_cast<size_t>(Event::fw_sessions_created);
  const FwPolicyView& pv = policy_view();
  const uint32_t quic = pv.rules.back().id;
  RuleCounters* rc = dp_->fw().counters(w_->index);
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
      client_frame(reinterpret_cast<uint8_t*>(rte_pktmbuf_append(pkts[i], kFrame)),
                   new_flow(cursor), true);
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
  const RuleCounters q0 = rc[quic];
  std::vector<Sample> s;
  for (unsigned i = 0; i < o_.samples; ++i) s.push_back(measure(o_.seconds, step));
  max_live = std::max(max_live, table().live());
  std::vector<std::string> warnings = problems(w0, s0, pushed, created);
  if (created != pushed)
    warnings.push_back(fmt("%lu first packets made %lu sessions", pushed, created));
  const uint64_t by_quic = rc[quic].sessions - q0.sessions;
  if (by_quic != pushed)
    warnings.push_back(
        fmt("%lu first packets, %lu sessions accepted by the last rule", pushed, by_quic));
  const uint64_t expiries = expiries_ - start_expiries;
  expire_all();
  // Each of kVerify first packets alone: out on the lan port, unchanged.
  flush_tx(*w_);
  for (unsigned v = 0; v < kVerify; ++v) {
    nat::FlowKey k = new_flow(rng_.below(cycle));
    rte_mbuf* m = alloc();
    client_frame(reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, kFrame)), k, true);
    push(uplink_, &m, 1);
    const TxBuffer& b = w_->tx[lan_];
    if (b.n != 1) throw std::runtime_error("fw-new verify: the first packet did not go out");
    check_forwarded(b.pkts[0], kLanRouterMac, kLanMac, k.src, k.dst, k.sport, k.dport,
                    "fw-new verify");
    flush_tx(*w_);
    const nat::Session* ss = find_session(k);
    if (!ss || ss->rule != quic) throw std::runtime_error("fw-new verify: no session by quic");
  }
  double acl_ns = classify_ns(pv);
  std::string extra =
      common_fields(a) +
      fmt(", \"packets\": %lu, \"sessions_made\": %lu, \"accepted_by_last_rule\": %lu, "
          "\"batch_sessions\": %u, \"expiries\": %lu, \"max_live\": %u, \"verified\": %u, "
          "\"acl_classify_ns\": %.1f",
          pushed, created, by_quic, o_.new_batch, expiries, max_live, kVerify, acl_ns);
  expire_all();
  return report_line(name, s, warnings, extra);
}

// --- the swap ---

// On the worker lcore: established packets of the flows, in a shuffled
// order that visits every flow once per cycle, until told to stop. Each
// burst is flushed before the next (worker_after_rx), so the worker's TX
// counter moves by exactly what was sent of it.
void Bench::swap_traffic(SwapTraffic* st) {
  online(false);
  std::vector<uint32_t> order(o_.flows);
  for (uint32_t i = 0; i < o_.flows; ++i) order[i] = i;
  for (uint32_t i = o_.flows - 1; i > 0; --i) std::swap(order[i], order[rng_.below(i + 1)]);
  uint32_t next = 0;
  int last = -1;
  st->t_first = rte_rdtsc();
  while (!st->stop.load(std::memory_order_acquire)) {
    rte_mbuf* pkts[kBurst];
    if (rte_pktmbuf_alloc_bulk(dp_->pool(), pkts, kBurst) != 0) {
      offline(false);
      throw std::runtime_error("mbuf pool empty");
    }
    for (unsigned i = 0; i < kBurst; ++i) {
      rte_mov64(reinterpret_cast<uint8_t*>(rte_pktmbuf_append(pkts[i], kFrame)),
                frames_[order[next]].b);
      next = next + 1 == o_.flows ? 0 : next + 1;
    }
    int win = st->window.load(std::memory_order_acquire);
    while (last < win) st->at[++last] = *w_->counters;
    uint64_t tx0 = w_->counters->tx_packets;
    push(uplink_, pkts, kBurst);
    worker_tail();
    st->pushed[win] += kBurst;
    st->sent[win] += w_->counters->tx_packets - tx0;
    st->bursts.fetch_add(1, std::memory_order_release);
  }
  st->t_last = rte_rdtsc();
  offline(false);
}

std::string Bench::swap_figure(const std::string& name) {
  const double hz = static_cast<double>(rte_get_tsc_hz());
  const uint32_t n = 10000;
  std::vector<double> ours, ref, lost, during, after, rechecked, revoked;
  std::vector<double> mpps_before, mpps_during, mpps_after, acl_rules;
  std::vector<std::string> warnings;
  std::map<std::string, uint64_t> drops_during;
  uint64_t seed = 1;  // the live policy's (fw-10k's)
  auto wait_bursts = [&](SwapTraffic& st, uint64_t more) {
    uint64_t target = st.bursts.load(std::memory_order_acquire) + more;
    uint64_t end = rte_rdtsc() + uint64_t(20 * hz);
    while (st.bursts.load(std::memory_order_acquire) < target) {
      if (rte_eal_get_lcore_state(o_.worker_lcore) == WAIT || rte_rdtsc() > end) {
        st.stop.store(true, std::memory_order_release);
        throw std::runtime_error("swap: the worker stopped forwarding");
      }
      rte_pause();
    }
  };
  // Every flow at least twice after the apply returned, and no fewer than
  // 2000 bursts (~64k packets) on each side of it.
  const uint64_t settle = std::max<uint64_t>(2000, 2 * (o_.flows + kBurst - 1) / kBurst + 2);
  auto one = [&](bool record) {
    uint64_t next_seed = seed == 1 ? 2 : 1;  // there and back: every swap changes every filler
    std::vector<fw::Rule> rules = rules_for(n, next_seed);
    // Reference: the same rules compiled alone, no traffic.
    std::string err;
    uint64_t t0 = rte_rdtsc();
    auto cls = fw::Classifier::compile(rules, static_cast<int>(rte_socket_id()), &err);
    double compile_ms = double(rte_rdtsc() - t0) * 1e3 / hz;
    if (!cls) throw std::runtime_error("compile: " + err);
    size_t nacl = cls->acl_rules();
    cls.reset();

    Change c;
    c.kind = Change::Kind::kFwPolicy;
    c.add = c.update = true;
    c.fw_policy.from = "uplink";
    c.fw_policy.to = "lan";
    c.fw_policy.default_action = fw::Action::kDrop;
    c.fw_policy.rules = std::move(rules);
    SwapTraffic st;
    Task task{[&] { swap_traffic(&st); }, ""};
    on_worker(&task);
    wait_bursts(st, settle);
    st.window.store(1, std::memory_order_release);
    t0 = rte_rdtsc();
    auto r = dp_->apply_changes({c}, Origin::kApi, std::nullopt);
    uint64_t t1 = rte_rdtsc();
    st.window.store(2, std::memory_order_release);
    wait_bursts(st, settle);
    st.stop.store(true, std::memory_order_release);
    wait_worker(&task);
    if (!r.error.empty()) throw std::runtime_error("swap: " + r.error);
    seed = next_seed;
    const LcoreCounters& end = *w_->counters;
    uint64_t lost_before = st.pushed[0] - st.sent[0];
    uint64_t lost_swap = (st.pushed[1] - st.sent[1]) + (st.pushed[2] - st.sent[2]);
    size_t rx = static_cast<size_t>(Event::fw_rechecked);
    size_t rv = static_cast<size_t>(Event::fw_sessions_revoked);
    uint64_t nrechecked = end.events[rx] - st.at[1].events[rx];
    uint64_t nrevoked = end.events[rv] - st.at[1].events[rv];
    if (!record) return;
    ours.push_back(double(t1 - t0) * 1e3 / hz);
    ref.push_back(compile_ms);
    lost.push_back(double(lost_swap));
    during.push_back(double(st.pushed[1]));
    after.push_back(double(st.pushed[2]));
    rechecked.push_back(double(nrechecked));
    revoked.push_back(double(nrevoked));
    acl_rules.push_back(double(nacl));
    mpps_before.push_back(st.pushed[0] / ((t0 - st.t_first) / hz) / 1e6);
    mpps_during.push_back(st.pushed[1] / ((t1 - t0) / hz) / 1e6);
    mpps_after.push_back(st.pushed[2] / ((st.t_last - t1) / hz) / 1e6);
    for (size_t d = 0; d < kNumDrops; ++d)
      if (uint64_t x = end.drops[d] - st.at[1].drops[d])
        drops_during[std::string(kDropNames[d])] += x;
    if (lost_before) warnings.push_back(fmt("%lu packets lost before the apply", lost_before));
    if (nrechecked != o_.flows)
      warnings.push_back(fmt("%lu sessions re-checked, not %u", nrechecked, o_.flows));
    if (st.at[1].events[rx] != st.at[0].events[rx])
      warnings.push_back("sessions re-checked before the apply");
  };
  if (o_.swap_warmup) {
    one(false);
    one(false);
  }
  for (unsigned i = 0; i < o_.swap_samples; ++i) one(true);
  if (table().live() != o_.flows)
    warnings.push_back(fmt("%u sessions live after the swaps, not %u", table().live(), o_.flows));
  std::sort(warnings.begin(), warnings.end());
  warnings.erase(std::unique(warnings.begin(), warnings.end()), warnings.end());
  std::string drops = "{";
  for (auto& [k, v] : drops_during)
    drops += fmt("%s\"%s\": %lu", drops.size() > 1 ? ", " : "", k.c_str(), v);
  drops += "}";
  return "{\"figure\": \"" + name + "\", \"value_samples\": " + json_list(ours) +
         ", \"ref_samples\": " + json_list(ref) + ", \"lost_samples\": " + json_list(lost, "%.0f") +
         ", \"pushed_during\": " + json_list(during, "%.0f") +
         ", \"pushed_after\": " + json_list(after, "%.0f") +
         ", \"rechecked\": " + json_list(rechecked, "%.0f") +
         ", \"revoked\": " + json_list(revoked, "%.0f") +
         ", \"acl_rules\": " + json_list(acl_rules, "%.0f") +
         ", \"mpps_before\": " + json_list(mpps_before, "%.3f") +
         ", \"mpps_during\": " + json_list(mpps_during, "%.3f") +
         ", \"mpps_after\": " + json_list(mpps_after, "%.3f") + ", \"drops_during\": " + drops +
         ", \"warnings\": " + json_strings(warnings) +
         fmt(", \"rules\": %u, \"flows\": %u, \"settle_bursts\": %lu, \"lcore\": %u, "
             "\"api_lcore\": %u",
             n, o_.flows, settle, o_.worker_lcore, rte_lcore_id()) +
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
  // A part on the worker lcore, worker and service at once.
  auto on_worker_lcore = [&](const std::function<std::string()>& fn) {
    std::string line;
    Task task{[&] {
                online(true);
                struct Off {
                  Bench* b;
                  ~Off() { b->offline(true); }
                } off{this};
                line = fn();
              },
              ""};
    on_worker(&task);
    wait_worker(&task);
    if (!line.empty()) emit(line);
  };
  if (!fw_) {
    std::fprintf(stderr, "fw_bench: forward\n");
    on_worker_lcore([&] { return rate_figure("forward", Applied{}); });
    return;
  }
  const std::pair<const char*, uint32_t> sizes[] = {
      {"fw-100", 100}, {"fw-1k", 1000}, {"fw-10k", 10000}};
  Applied ten_k{};
  for (auto [f, n] : sizes)
    if (wants(f)) {
      std::fprintf(stderr, "fw_bench: %s\n", f);
      Applied a = set_policy(n, 1);
      if (n == 10000) ten_k = a;
      on_worker_lcore([&] { return rate_figure(f, a); });
    }
  if (!wants("fw-new-10k") && !wants("fw-swap-10k")) return;
  if (ten_k.rules != 10000) ten_k = set_policy(10000, 1);
  if (wants("fw-new-10k")) {
    std::fprintf(stderr, "fw_bench: fw-new-10k\n");
    on_worker_lcore([&] { return new_figure("fw-new-10k", ten_k); });
  }
  if (wants("fw-swap-10k")) {
    std::fprintf(stderr, "fw_bench: fw-swap-10k (sessions)\n");
    on_worker_lcore([&] {
      establish();
      return std::string();
    });
    std::fprintf(stderr, "fw_bench: fw-swap-10k\n");
    emit(swap_figure("fw-swap-10k"));
  }
}

Options parse_args(int argc, char** argv) {
  Options o;
  FlagHandlers flags = {
      {"--side", [&](const std::string& v) { o.side = v; }},
      {"--figures", [&](const std::string& v) { o.figures = split(v, ','); }},
      {"--warmup", [&](const std::string& v) { o.warmup = std::stod(v); }},
      {"--seconds", [&](const std::string& v) { o.seconds = std::stod(v); }},
      {"--samples", [&](const std::string& v) { o.samples = std::stoul(v); }},
      {"--main-lcore", [&](const std::string& v) { o.main_lcore = std::stoul(v); }},
      {"--worker-lcore", [&](const std::string& v) { o.worker_lcore = std::stoul(v); }},
      {"--flows", [&](const std::string& v) { o.flows = std::stoul(v); }},
      {"--max-sessions", [&](const std::string& v) { o.max_sessions = std::stoul(v); }},
      {"--new-batch", [&](const std::string& v) { o.new_batch = std::stoul(v); }},
      {"--swap-samples", [&](const std::string& v) { o.swap_samples = std::stoul(v); }},
      {"--swap-warmup", [&](const std::string& v) { o.swap_warmup = std::stoul(v) != 0; }},
      {"--seed", [&](const std::string& v) { o.seed = std::stoull(v); }},
  };
  parse_flags(argc, argv, flags, &o.eal);
  if (!o.swap_samples) o.swap_samples = o.samples;
  if (o.side != "forward" && o.side != "fw") throw std::runtime_error("--side forward|fw");
  if (o.side == "fw" && o.figures.empty()) throw std::runtime_error("--figures is empty");
  for (auto& f : o.figures)
    if (f != "fw-100" && f != "fw-1k" && f != "fw-10k" && f != "fw-new-10k" && f != "fw-swap-10k")
      throw std::runtime_error("unknown figure " + f);
  if (o.flows < 2 || o.flows > (1u << 20)) throw std::runtime_error("--flows must be 2-1M");
  if (o.new_batch < kBatch) throw std::runtime_error("--new-batch must be at least 256");
  if (o.max_sessions < o.new_batch + o.flows)
    throw std::runtime_error("--max-sessions must hold --new-batch + --flows");
  if (o.main_lcore == o.worker_lcore) throw std::runtime_error("two different lcores needed");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  try {
    opt = parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fw_bench: %s\n", e.what());
    return 2;
  }
  return bench_main<Bench>("fw_bench", opt, {"net_null_fu", "net_null_fl"});
}
