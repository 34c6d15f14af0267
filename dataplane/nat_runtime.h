// NAT state that outlives generations: the session table, the port pools,
// stable ids for mappings, and per-worker counters per mapping. Owned by
// Dataplane; generations refer to it by id only (docs/decisions/006-nat.md).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/config.h"
#include "nat/mapping.h"
#include "nat/ports.h"
#include "nat/session.h"

struct rte_rcu_qsbr;

namespace tether::dp {

// Counted by the worker that handled the packet (no sharing); the API sums.
struct MappingCounters {
  uint64_t packets_in = 0;   // toward the workload
  uint64_t packets_out = 0;  // replies toward the user
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t sessions = 0;  // sessions created
  uint64_t refused = 0;   // first packets refused: ports exhausted or table full
};

class NatRuntime {
 public:
  static constexpr unsigned kCounterSets = 17 + 1;  // workers, then the service

  // After the EAL and the RCU variable exist. False with a message when
  // memory runs out.
  bool setup(const NatConfig& cfg, rte_rcu_qsbr* qsbr, unsigned workers, std::string* error);
  bool ready() const { return sessions_ != nullptr; }

  nat::SessionTable& sessions() { return *sessions_; }
  nat::PortPools& pools() { return pools_; }
  const NatConfig& config() const { return cfg_; }

  // A stable id for a mapping name (API thread, control mutex held); the
  // tag changes every time a name gets an id anew, so a mapping removed and
  // added again does not inherit the old one's sessions. UINT32_MAX when
  // max_mappings are in use.
  struct Id {
    uint32_t id = UINT32_MAX;
    uint32_t tag = 0;
  };
  Id id_for(const std::string& name);
  // The id of a configured name without making one (listing).
  std::optional<Id> find_id(const std::string& name) const;
  // The newest tag handed out.
  uint32_t max_tag() const {
    std::lock_guard lock(mu_);
    return next_tag_ - 1;
  }
  // Names no longer configured give their ids back (counters reset).
  void forget_except(const std::vector<std::string>& names);
  std::optional<std::string> name_of(uint32_t id) const;

  MappingCounters* counters(unsigned set) { return counters_[set].get(); }

  // References to a source-NAT binding record by its sessions, by record
  // index. kDead: the sweeper is ending it; no new session may take it.
  static constexpr uint32_t kDead = UINT32_MAX;
  std::atomic<uint32_t>& binding_refs(uint32_t index) { return refs_[index]; }
  MappingCounters sum(uint32_t id) const;

 private:
  NatConfig cfg_;
  std::unique_ptr<nat::SessionTable> sessions_;
  nat::PortPools pools_;
  mutable std::mutex mu_;
  std::map<std::string, Id> ids_;
  std::vector<std::string> names_;  // by id; empty: free
  std::vector<uint32_t> free_ids_;
  uint32_t next_tag_ = 1;
  std::array<std::unique_ptr<MappingCounters[]>, kCounterSets> counters_;
  std::unique_ptr<std::atomic<uint32_t>[]> refs_;
};

}  // namespace tether::dp
