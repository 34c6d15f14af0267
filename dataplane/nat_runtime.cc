#include "dataplane/nat_runtime.h"

#include <algorithm>
#include <set>

namespace tether::dp {

bool NatRuntime::setup(const NatConfig& cfg, rte_rcu_qsbr* qsbr, unsigned workers,
                       std::string* error) {
  cfg_ = cfg;
  nat::SessionTable::Config sc;
  sc.name = "nat_sessions";
  sc.max_sessions = cfg.max_sessions;
  sc.max_workers = std::max(1u, workers);
  sessions_ = nat::SessionTable::create(sc, qsbr, error);
  if (!sessions_) return false;
  for (auto& c : counters_) c.reset(new MappingCounters[cfg.max_mappings]());
  refs_.reset(new std::atomic<uint32_t>[cfg.max_sessions]());
  names_.assign(cfg.max_mappings, {});
  for (uint32_t i = cfg.max_mappings; i-- > 0;) free_ids_.push_back(i);
  return true;
}

NatRuntime::Id NatRuntime::id_for(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = ids_.find(name);
  if (it != ids_.end()) return it->second;
  if (free_ids_.empty()) return {};
  Id id{free_ids_.back(), next_tag_++};
  free_ids_.pop_back();
  for (auto& c : counters_) c[id.id] = {};
  names_[id.id] = name;
  ids_[name] = id;
  return id;
}

std::optional<NatRuntime::Id> NatRuntime::find_id(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = ids_.find(name);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

void NatRuntime::forget_except(const std::vector<std::string>& names) {
  std::set<std::string> keep(names.begin(), names.end());
  std::lock_guard lock(mu_);
  for (auto it = ids_.begin(); it != ids_.end();) {
    if (keep.count(it->first)) {
      ++it;
      continue;
    }
    names_[it->second.id].clear();
    free_ids_.push_back(it->second.id);
    it = ids_.erase(it);
  }
}

std::optional<std::string> NatRuntime::name_of(uint32_t id) const {
  std::lock_guard lock(mu_);
  if (id >= names_.size() || names_[id].empty()) return std::nullopt;
  return names_[id];
}

MappingCounters NatRuntime::sum(uint32_t id) const {
  MappingCounters s;
  if (id >= cfg_.max_mappings) return s;
  for (auto& c : counters_) {
    if (!c) continue;
    const MappingCounters& x = c[id];
    s.packets_in += x.packets_in;
    s.packets_out += x.packets_out;
    s.bytes_in += x.bytes_in;
    s.bytes_out += x.bytes_out;
    s.sessions += x.sessions;
    s.refused += x.refused;
  }
  return s;
}

}  // namespace tether::dp
