// What the in-process benchmarks (wg_bench, nat_bench, fw_bench) share:
// formatting, the thread's CPU clock, and the measuring loop that adds up
// only the timed part of each step. Header-only; any thread.
//
// Below that, what nat_bench and fw_bench share: 64-byte frames, and
// PlayedWorker, a real Dataplane whose worker 0 this process plays on the
// worker lcore (forward_burst on bursts it builds, then worker_after_rx as
// worker_main does), with the service thread's RCU slot and the session
// sweeper played by the same thread when asked.
#pragma once

#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_memcpy.h>
#include <rte_rcu_qsbr.h>
#include <rte_tcp.h>
#include <rte_udp.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/config.h"
#include "dataplane/counters.h"
#include "dataplane/dataplane.h"
#include "dataplane/service.h"
#include "dataplane/worker.h"
#include "nat/flow.h"
#include "nat/session.h"
#include "nat/translate.h"

namespace tether::bench {

constexpr uint32_t ip4(unsigned a, unsigned b, unsigned c, unsigned d) {
  return a << 24 | b << 16 | c << 8 | d;
}

template <class... A>
std::string fmt(const char* f, A... args) {
  int n = std::snprintf(nullptr, 0, f, args...);
  std::string s(static_cast<size_t>(std::max(n, 0)), '\0');
  std::snprintf(s.data(), s.size() + 1, f, args...);
  return s;
}

inline double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

inline std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string x; std::getline(in, x, sep);)
    if (!x.empty()) out.push_back(x);
  return out;
}

struct Timed {
  uint64_t cycles;  // TSC cycles inside the timed part of one step
  double units;     // packets, bits, handshakes... done in them
};

struct Sample {
  double rate;       // units per timed second
  double cpu_share;  // the thread's CPU time over the wall time of the sample
};

// Steps until their timed parts add up to `seconds`.
inline Sample measure(double seconds, const std::function<Timed()>& step) {
  const double hz = static_cast<double>(rte_get_tsc_hz());
  const auto want = static_cast<uint64_t>(seconds * hz);
  uint64_t timed = 0;
  double units = 0;
  uint64_t w0 = rte_rdtsc();
  double c0 = thread_cpu_seconds();
  while (timed < want || timed == 0) {
    Timed t = step();
    timed += t.cycles;
    units += t.units;
  }
  double wall = static_cast<double>(rte_rdtsc() - w0) / hz;
  double cpu = thread_cpu_seconds() - c0;
  return {units * hz / static_cast<double>(timed), std::min(1.0, cpu / wall)};
}

// A warm-up of `warmup` seconds, then `samples` samples of `seconds` each.
inline std::vector<Sample> warm_and_sample(double warmup, double seconds, unsigned samples,
                                           const std::function<Timed()>& step) {
  measure(warmup, step);
  std::vector<Sample> s;
  for (unsigned i = 0; i < samples; ++i) s.push_back(measure(seconds, step));
  return s;
}

// --- JSON and addresses ---

inline std::string ipstr(uint32_t a) {
  return fmt("%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

inline std::string json_list(const std::vector<double>& v, const char* f = "%.6g") {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + fmt(f, v[i]);
  return s + "]";
}

inline std::string json_strings(const std::vector<std::string>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    std::string esc;
    for (char c : v[i]) esc += c == '"' || c == '\\' ? std::string("\\") + c : std::string(1, c);
    s += (i ? ", \"" : "\"") + esc + "\"";
  }
  return s + "]";
}

inline rte_ether_addr mac_of(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return rte_ether_addr{{2, 0, a, b, c, d}};
}
inline std::string mac_str(const rte_ether_addr& m) {
  const uint8_t* b = m.addr_bytes;
  return fmt("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
}

// --- 64-byte frames (nat_bench, fw_bench) ---

constexpr uint16_t kFrame = 64;                              // bytes, no FCS
constexpr uint16_t kIpLen = kFrame - sizeof(rte_ether_hdr);  // 50: IPv4 + TCP + 10 or + UDP + 22
// Packets built, then timed, per step: 256 is the pool's per-lcore cache,
// so the same mbufs come back, as they do to a worker that receives and sends.
constexpr unsigned kBatch = 256;
constexpr uint8_t kTcpSyn = 0x02, kTcpAck = 0x10;

// A 64-byte Ethernet/IPv4/TCP or UDP frame, every checksum real, TTL 64, DF.
// TCP: `seq`, and `ack` when the flags have ACK; window 65535, no options.
// Out of line: inlined into a caller that appends to an mbuf, GCC warns
// about the NULL that rte_pktmbuf_append may return.
[[gnu::noinline]] inline void write_frame(uint8_t* f, const rte_ether_addr& dmac,
                                          const rte_ether_addr& smac, uint32_t sip, uint32_t dip,
                                          uint16_t sport, uint16_t dport, uint8_t proto,
                                          uint8_t tcp_flags, uint32_t seq, uint32_t ack) {
  std::memset(f, 0, kFrame);
  auto* eth = reinterpret_cast<rte_ether_hdr*>(f);
  eth->dst_addr = dmac;
  eth->src_addr = smac;
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  ip->version_ihl = 0x45;
  ip->total_length = rte_cpu_to_be_16(kIpLen);
  ip->fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
  ip->time_to_live = 64;
  ip->next_proto_id = proto;
  ip->src_addr = rte_cpu_to_be_32(sip);
  ip->dst_addr = rte_cpu_to_be_32(dip);
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  if (proto == IPPROTO_TCP) {
    auto* tcp = reinterpret_cast<rte_tcp_hdr*>(ip + 1);
    tcp->src_port = rte_cpu_to_be_16(sport);
    tcp->dst_port = rte_cpu_to_be_16(dport);
    tcp->sent_seq = rte_cpu_to_be_32(seq);
    tcp->recv_ack = rte_cpu_to_be_32(tcp_flags & kTcpAck ? ack : 0);
    tcp->data_off = 5 << 4;
    tcp->tcp_flags = tcp_flags;
    tcp->rx_win = rte_cpu_to_be_16(65535);
    tcp->cksum = rte_ipv4_udptcp_cksum(ip, tcp);
  } else {
    auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
    udp->src_port = rte_cpu_to_be_16(sport);
    udp->dst_port = rte_cpu_to_be_16(dport);
    udp->dgram_len = rte_cpu_to_be_16(kIpLen - sizeof(rte_ipv4_hdr));
    udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
  }
}

// Throws unless `m` is the 64-byte frame of a forwarded packet: these MACs,
// addresses and ports, TTL 63 and every checksum right.
inline void check_forwarded(const rte_mbuf* m, const rte_ether_addr& dmac,
                            const rte_ether_addr& smac, uint32_t src, uint32_t dst, uint16_t sport,
                            uint16_t dport, const char* what) {
  const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(eth + 1);
  const auto* l4 = reinterpret_cast<const uint8_t*>(ip + 1);
  uint8_t copy[kIpLen];
  std::memcpy(copy, ip, kIpLen);
  bool sums = nat::recompute_checksums(copy, kIpLen) && std::memcmp(copy, ip, kIpLen) == 0;
  uint16_t osport = uint16_t(l4[0] << 8 | l4[1]), odport = uint16_t(l4[2] << 8 | l4[3]);
  if (rte_pktmbuf_data_len(m) != kFrame || !rte_is_same_ether_addr(&eth->dst_addr, &dmac) ||
      !rte_is_same_ether_addr(&eth->src_addr, &smac) || ip->time_to_live != 63 ||
      rte_be_to_cpu_32(ip->src_addr) != src || rte_be_to_cpu_32(ip->dst_addr) != dst ||
      osport != sport || odport != dport || !sums)
    throw std::runtime_error(fmt("%s: unexpected packet out: %s:%u -> %s:%u ttl %u, checksums %s",
                                 what, ipstr(rte_be_to_cpu_32(ip->src_addr)).c_str(), osport,
                                 ipstr(rte_be_to_cpu_32(ip->dst_addr)).c_str(), odport,
                                 ip->time_to_live, sums ? "ok" : "wrong"));
}

struct alignas(64) Frame {
  uint8_t b[kFrame];
};

// xorshift64*: random choices made outside the timing.
struct Rng {
  uint64_t s = 0x9e3779b97f4a7c15ull;
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
  }
  uint32_t below(uint32_t n) { return static_cast<uint32_t>(((next() >> 32) * n) >> 32); }
};

// A function run on another lcore (rte_eal_remote_launch); an exception
// comes back as `error`.
struct Task {
  std::function<void()> fn;
  std::string error;
};
inline int task_entry(void* arg) {
  auto* t = static_cast<Task*>(arg);
  try {
    t->fn();
  } catch (const std::exception& e) {
    t->error = e.what();
    return 1;
  }
  return 0;
}

// rte_eal_init with lcores {main, worker} (main = the EAL main lcore), the
// caller's EAL arguments, then a --vdev for each of `vdevs`.
inline int eal_init(const char* prog, unsigned main_lcore, unsigned worker_lcore,
                    const std::vector<std::string>& eal_args,
                    const std::vector<std::string>& vdevs) {
  unsigned lo = std::min(main_lcore, worker_lcore), hi = std::max(main_lcore, worker_lcore);
  std::vector<std::string> eal = {prog, "-l", fmt("%u,%u", lo, hi), "--main-lcore",
                                  std::to_string(main_lcore)};
  for (auto& a : eal_args) eal.push_back(a);
  for (auto& v : vdevs) {
    eal.push_back("--vdev");
    eal.push_back(v);
  }
  std::vector<char*> av;
  for (auto& a : eal) av.push_back(a.data());
  return rte_eal_init(static_cast<int>(av.size()), av.data());
}

// The bench binaries' command lines: `--flag value` pairs (one handler per
// flag), then `--` and the EAL's arguments.
using FlagHandlers = std::map<std::string, std::function<void(const std::string&)>>;
inline void parse_flags(int argc, char** argv, const FlagHandlers& flags,
                        std::vector<std::string>* eal) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      for (++i; i < argc; ++i) eal->push_back(argv[i]);
      return;
    }
    auto it = flags.find(a);
    if (it == flags.end()) throw std::runtime_error("unknown argument " + a);
    if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
    it->second(argv[++i]);
  }
}

// A bench binary's main after its options are parsed: the EAL with these
// virtual devices, then setup, run and teardown of `B`, and the exit line
// with the mbufs that did not come back. 0, 1 (the bench failed) or 2.
template <class B, class O>
int bench_main(const char* prog, const O& opt, const std::vector<std::string>& vdevs) {
  if (eal_init(prog, opt.main_lcore, opt.worker_lcore, opt.eal, vdevs) < 0) {
    std::fprintf(stderr, "%s: rte_eal_init failed (hugepages reserved?)\n", prog);
    return 2;
  }
  int rc = 0;
  {
    B bench(opt);
    try {
      bench.setup();
      bench.run();
      int64_t missing = bench.teardown();
      std::printf("{\"exit\": {\"missing_mbufs\": %ld}}\n", static_cast<long>(missing));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: %s\n", prog, e.what());
      rc = 1;
    }
  }
  rte_eal_cleanup();
  return rc;
}

// A real Dataplane (no worker launched, no service loop) whose worker 0 the
// subclass plays: on the worker lcore (on_worker) it calls push() on bursts it
// builds and worker_tail() after each, as worker_main does after RX. The main
// lcore is the API thread (apply_changes). `created` is the event that counts
// the sessions the benchmark's first packets make (NAT or firewall).
class PlayedWorker {
 public:
  virtual ~PlayedWorker() = default;
  // Frees what is held and stops the ports; mbufs that did not come back.
  int64_t teardown() {
    svc_.reset();
    for (unsigned id : {w_->index, dp_->service_rcu_id()})
      rte_rcu_qsbr_thread_unregister(qsbr_, id);
    int64_t missing = dp_->shutdown();
    dp_.reset();
    return missing;
  }

 protected:
  PlayedWorker(unsigned main_lcore, unsigned worker_lcore, dp::Event created)
      : main_lcore_(main_lcore), worker_lcore_(worker_lcore), created_(created) {}

  // The Dataplane from `cfg` (generation 1), its worker 0 on the worker
  // lcore, a Service to sweep with, and both RCU slots registered.
  void start(const dp::DataplaneConfig& cfg) {
    std::string err;
    dp_ = std::make_unique<dp::Dataplane>(cfg);
    if (!dp_->setup(&err)) throw std::runtime_error("setup: " + err);
    w_ = dp_->workers()[0].get();
    if (w_->lcore != worker_lcore_) throw std::runtime_error("worker 0 is not on the worker lcore");
    qsbr_ = dp_->qsbr();
    svc_ = std::make_unique<dp::Service>(*dp_);
    for (unsigned id : {w_->index, dp_->service_rcu_id()}) rte_rcu_qsbr_thread_register(qsbr_, id);
  }

  // Frees what the pipeline sent into ports that loop back (net_ring); called
  // after every burst of push_each and every step of expire_all.
  virtual void drain_ports() {}

  // --- the worker's part ---
  void push(uint16_t port, rte_mbuf** pkts, uint16_t n) {
    w_->counters->rx_packets += n;
    dp::forward_burst(*dp_, *w_, *dp_->current(), port, pkts, n);
  }
  void worker_tail() {  // the rest of worker_main's loop
    dp::worker_after_rx(*dp_, *w_, *dp_->current());
    rte_rcu_qsbr_quiescent(qsbr_, w_->index);
  }
  void both_quiescent() {
    rte_rcu_qsbr_quiescent(qsbr_, w_->index);
    rte_rcu_qsbr_quiescent(qsbr_, dp_->service_rcu_id());
  }
  rte_mbuf* alloc() {
    rte_mbuf* m = rte_pktmbuf_alloc(dp_->pool());
    if (!m) throw std::runtime_error("mbuf pool empty");
    return m;
  }
  // n packets pushed in bursts of kBurst, each burst followed by the
  // worker's tail: the timed part of a step. TSC cycles taken.
  uint64_t timed_push(uint16_t port, rte_mbuf** pkts, unsigned n) {
    uint64_t t0 = rte_rdtsc();
    for (unsigned i = 0; i < n; i += dp::kBurst) {
      push(port, pkts + i, dp::kBurst);
      worker_tail();
    }
    return rte_rdtsc() - t0;
  }
  // One step of established traffic: kBatch packets, each a copy of one of
  // frames[0, n) drawn at random (the device's part: not timed), then
  // pushed on `port` (timed), then the service's quiescent state.
  Timed copies_step(uint16_t port, const std::vector<Frame>& frames, uint32_t n, uint64_t* pushed) {
    rte_mbuf* pkts[kBatch];
    if (rte_pktmbuf_alloc_bulk(dp_->pool(), pkts, kBatch) != 0)
      throw std::runtime_error("mbuf pool empty");
    for (unsigned i = 0; i < kBatch; ++i)  // the device's part: not timed
      rte_mov64(reinterpret_cast<uint8_t*>(rte_pktmbuf_append(pkts[i], kFrame)),
                frames[rng_.below(n)].b);
    uint64_t t = timed_push(port, pkts, kBatch);
    rte_rcu_qsbr_quiescent(qsbr_, dp_->service_rcu_id());
    *pushed += kBatch;
    return {t, double(kBatch)};
  }
  // Untimed: `count` packets filled by `fill(i, frame)`, pushed in bursts on `port`.
  void push_each(uint16_t port, size_t count, const std::function<void(size_t, uint8_t*)>& fill) {
    for (size_t i = 0; i < count; i += dp::kBurst) {
      uint16_t n = static_cast<uint16_t>(std::min<size_t>(dp::kBurst, count - i));
      rte_mbuf* pkts[dp::kBurst];
      if (rte_pktmbuf_alloc_bulk(dp_->pool(), pkts, n) != 0)
        throw std::runtime_error("mbuf pool empty");
      for (uint16_t k = 0; k < n; ++k)
        fill(i + k, reinterpret_cast<uint8_t*>(rte_pktmbuf_append(pkts[k], kFrame)));
      push(port, pkts, n);
      worker_tail();
      drain_ports();
      rte_rcu_qsbr_quiescent(qsbr_, dp_->service_rcu_id());
    }
  }

  // Not timed, on the worker lcore playing the service too: every session
  // times out (the clock jumps beyond the longest timeout) and the service's
  // sweep takes them, 1/100 of the table per 10 ms of dataplane clock, as it
  // does in a running dataplane; then the grace periods pass and the records
  // and key slots come back.
  void expire_all() {
    dp_->advance_clock(10'000'000);  // 10000 s > tcp_established_s
    for (unsigned i = 0; table().live() > 0; ++i) {
      if (i > 100000) throw std::runtime_error("the sweep does not empty the session table");
      dp_->advance_clock(10);
      svc_->poll_once();
      worker_tail();
      both_quiescent();
    }
    for (unsigned i = 0; i < 4; ++i) {  // reclaim() after the last quiescent states
      dp_->advance_clock(10);
      svc_->poll_once();
      worker_tail();
      both_quiescent();
    }
    drain_ports();
    ++expiries_;
  }

  nat::SessionTable& table() { return dp_->nat().sessions(); }
  // The session of a key (either side), or nullptr.
  const nat::Session* find_session(const nat::FlowKey& k) {
    uint32_t h = table().lookup(k);
    return h == nat::SessionTable::kMiss ? nullptr : &table().at(h >> 1);
  }

  // --- lcores ---
  void online(bool service) {
    rte_rcu_qsbr_thread_online(qsbr_, w_->index);
    if (service) rte_rcu_qsbr_thread_online(qsbr_, dp_->service_rcu_id());
  }
  void offline(bool service) {
    dp::flush_tx(*w_);
    rte_rcu_qsbr_thread_offline(qsbr_, w_->index);
    if (service) rte_rcu_qsbr_thread_offline(qsbr_, dp_->service_rcu_id());
  }
  void on_worker(Task* t) {
    if (rte_eal_remote_launch(task_entry, t, worker_lcore_) != 0)
      throw std::runtime_error("cannot launch on the worker lcore");
  }
  // Sleeps (the API thread's CPU is shared with the runner) until the task returns.
  void wait_worker(Task* t) {
    while (rte_eal_get_lcore_state(worker_lcore_) != WAIT)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    rte_eal_wait_lcore(worker_lcore_);
    if (!t->error.empty()) throw std::runtime_error(t->error);
  }

  // --- checks and output ---
  // What went wrong since the snapshots w0 (worker) and s0 (main lcore):
  // drops, punts, sessions made other than `created`, and, when `pushed`,
  // a worker TX other than `pushed`.
  std::vector<std::string> counter_problems(const dp::LcoreCounters& w0,
                                            const dp::LcoreCounters& s0, uint64_t pushed,
                                            uint64_t created) const {
    std::vector<std::string> out;
    const dp::LcoreCounters& w1 = *w_->counters;
    const dp::LcoreCounters& s1 = dp_->counters()[main_lcore_];
    for (size_t d = 0; d < dp::kNumDrops; ++d) {
      uint64_t n = (w1.drops[d] - w0.drops[d]) + (s1.drops[d] - s0.drops[d]);
      if (n) out.push_back(fmt("drops %s=%lu", std::string(dp::kDropNames[d]).c_str(), n));
    }
    for (size_t e = 0; e < dp::kNumEvents; ++e) {
      std::string_view name = dp::kEventNames[e];
      uint64_t n = w1.events[e] - w0.events[e];
      if (n && name.starts_with("punted"))
        out.push_back(fmt("events %s=%lu", std::string(name).c_str(), n));
    }
    size_t ci = static_cast<size_t>(created_);
    uint64_t made = w1.events[ci] - w0.events[ci];
    if (made != created) out.push_back(fmt("%lu sessions created, expected %lu", made, created));
    if (pushed && w1.tx_packets - w0.tx_packets != pushed)
      out.push_back(
          fmt("pushed %lu packets, worker sent %lu", pushed, w1.tx_packets - w0.tx_packets));
    return out;
  }
  // One figure's JSON line: its samples, warnings, then `extra` (", \"k\": v...").
  static std::string report_line(const std::string& name, const std::vector<Sample>& s,
                                 const std::vector<std::string>& warnings,
                                 const std::string& extra) {
    std::vector<double> rates, shares;
    for (auto& x : s) {
      rates.push_back(x.rate);
      shares.push_back(x.cpu_share);
    }
    return "{\"figure\": \"" + name + "\", \"value_samples\": " + json_list(rates) +
           ", \"cpu_shares\": " + json_list(shares) + ", \"warnings\": " + json_strings(warnings) +
           extra + "}";
  }

  const unsigned main_lcore_, worker_lcore_;
  const dp::Event created_;
  std::unique_ptr<dp::Dataplane> dp_;
  std::unique_ptr<dp::Service> svc_;
  dp::Worker* w_ = nullptr;
  rte_rcu_qsbr* qsbr_ = nullptr;
  uint64_t expiries_ = 0;
  Rng rng_;
};

}  // namespace tether::bench
