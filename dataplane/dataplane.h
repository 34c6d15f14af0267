// The dataplane process's shared state: ports, the mbuf pool, the published
// Generation, the neighbor table, the rings between workers and the service
// thread, counters, and the writer side of every table change.
//
// Threads: workers (one per worker lcore) and the service thread (main lcore)
// read `current()` as RCU readers and report quiescent states; the API thread
// is the only writer of generations (apply_changes), serialised by
// control_mutex_. Workers never lock.
#pragma once

#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dataplane/config.h"
#include "dataplane/counters.h"
#include "dataplane/nat_runtime.h"
#include "dataplane/neighbor_table.h"
#include "dataplane/tables.h"
#include "dataplane/wireguard.h"
#include "dataplane/worker.h"

namespace tether::dp {

class Dataplane {
 public:
  explicit Dataplane(DataplaneConfig cfg);
  ~Dataplane();

  // After rte_eal_init: ports, pool, rings, RCU, generation 1 from the config.
  bool setup(std::string* error);
  // Launches workers and runs the service loop on the calling (main) lcore
  // until stop() is called; returns when every worker has returned.
  int64_t run();
  // After run() and after the API server stopped: frees every held mbuf,
  // stops the ports and returns how many mbufs did not come back (0 = none lost).
  int64_t shutdown();
  void stop() { stop_.store(true, std::memory_order_relaxed); }
  bool stopping() const { return stop_.load(std::memory_order_relaxed); }

  // --- RCU readers (workers, service) ---
  const Generation* current() const { return gen_.load(std::memory_order_acquire); }
  rte_rcu_qsbr* qsbr() { return qsbr_; }

  // --- writer (API thread) ---
  // Applies a batch whole or not at all; the new generation id, or an error.
  struct ApplyResult {
    uint64_t generation = 0;
    std::string error;     // empty on success
    std::string code;      // "invalid_argument", "conflict", "internal"
    uint64_t rekeyed = 0;  // sessions whose reply key a nat_rewrite changed
  };
  ApplyResult apply_changes(const std::vector<Change>& changes, Origin origin,
                            std::optional<uint64_t> expect_generation);
  uint64_t generation_id() const { return current()->id; }
  // Called with the new generation after each publish (kernel mirroring).
  void on_publish(std::function<void(const Generation&)> fn) { on_publish_ = std::move(fn); }

  const DataplaneConfig& config() const { return cfg_; }
  const std::vector<PortInfo>& ports() const { return ports_; }
  std::optional<uint16_t> exception_port() const { return exception_port_; }
  NeighborTable& neighbors() { return neighbors_; }
  rte_mempool* pool() { return pool_; }
  rte_ring* punt_ring() { return punt_; }
  rte_ring* handshake_ring() { return handshake_; }
  WgRuntime& wg() { return wg_; }
  NatRuntime& nat() { return nat_; }
  FwRuntime& fw() { return fw_; }

  // The dataplane's clock in milliseconds: monotonic, plus whatever tests
  // advanced it by (clock.advance, with testing.clock_control). Any thread.
  uint64_t now_ms() const {
    return rte_get_timer_cycles() / cycles_per_ms_ +
           clock_offset_ms_.load(std::memory_order_relaxed);
  }
  uint64_t advance_clock(uint64_t ms) {
    clock_offset_ms_.fetch_add(ms, std::memory_order_relaxed);
    return now_ms();
  }
  std::vector<std::unique_ptr<Worker>>& workers() { return workers_; }
  CounterBlock& counters() { return *counters_; }
  unsigned service_lcore() const { return service_lcore_; }
  unsigned service_rcu_id() const { return static_cast<unsigned>(workers_.size()); }

 private:
  bool setup_ports(std::string* error);
  void publish(std::unique_ptr<Generation> g);
  uint64_t rekey_sessions(const std::map<uint32_t, std::pair<Ipv4, Ipv4>>& moved);

  DataplaneConfig cfg_;
  std::vector<PortInfo> ports_;
  std::optional<uint16_t> exception_port_;
  rte_mempool* pool_ = nullptr;
  rte_ring* punt_ = nullptr;
  rte_ring* handshake_ = nullptr;
  rte_rcu_qsbr* qsbr_ = nullptr;
  WgRuntime wg_;
  NatRuntime nat_;
  FwRuntime fw_;
  uint64_t cycles_per_ms_ = 1;
  std::atomic<uint64_t> clock_offset_ms_{0};
  NeighborTable neighbors_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<CounterBlock> counters_;
  unsigned service_lcore_ = 0;

  std::atomic<const Generation*> gen_{nullptr};
  std::unique_ptr<Generation> live_;  // owns what gen_ points to
  std::mutex control_mutex_;
  std::function<void(const Generation&)> on_publish_;
  std::atomic<bool> stop_{false};
  bool shut_down_ = false;
};

}  // namespace tether::dp
