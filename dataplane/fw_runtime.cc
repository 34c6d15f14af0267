#include "dataplane/fw_runtime.h"

#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_memory.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include "dataplane/log.h"
#include "dataplane/tables.h"
#include "dataplane/wireguard.h"

namespace tether::dp {

std::string implicit_zone_name(uint16_t domain) {
  return domain == 0 ? "uplink" : "vdc-" + std::to_string(domain);
}

std::optional<uint16_t> implicit_zone_domain(std::string_view name) {
  if (name == "uplink") return 0;
  if (name.substr(0, 4) != "vdc-" || name.size() < 5 || name.size() > 8) return std::nullopt;
  unsigned d = 0;
  for (char ch : name.substr(4)) {
    if (ch < '0' || ch > '9') return std::nullopt;
    d = d * 10 + static_cast<unsigned>(ch - '0');
  }
  // "vdc-07" is not the canonical name of domain 7; "vdc-0" is "uplink".
  if (d == 0 || d >= kMaxDomains || name[4] == '0') return std::nullopt;
  return static_cast<uint16_t>(d);
}

fw::ZoneKind FwView::zone_kind(uint16_t id) const {
  if (id == kZoneManagement) return fw::ZoneKind::kManagement;
  if (id == implicit_zone(0)) return fw::ZoneKind::kUplink;
  if (id < kFirstExplicitZone) return fw::ZoneKind::kVdc;
  auto it = zones_.find(id);
  return it == zones_.end() ? fw::ZoneKind::kVdc : it->second.kind;
}

std::string FwView::zone_name(uint16_t id) const {
  if (id == kZoneManagement) return "management";
  if (id < kFirstExplicitZone) return implicit_zone_name(static_cast<uint16_t>(id - 1));
  auto it = zones_.find(id);
  return it == zones_.end() ? "zone#" + std::to_string(id) : it->second.name;
}

FwRuleRef FwView::builtin(uint16_t from, uint16_t to) const {
  return fw::builtin_default(zone_kind(from), from, zone_kind(to), to) == fw::Action::kAccept
             ? FwRuleRef{kRuleBuiltinAccept, fw::Action::kAccept, false}
             : FwRuleRef{kRuleBuiltinIsolation, fw::Action::kDrop, false};
}

fw::AclKey fw_key_of(const nat::FlowKey& orig, const nat::FlowKey& reply) {
  if (orig.proto == nat::kIcmp) return fw::make_icmp_key(orig.src, reply.src, 8, 0);
  return fw::make_key(orig.proto, orig.src, reply.src, orig.sport, reply.sport);
}

bool build_fw_view(const ControlState& state, const FwView* prev, FwRuntime& rt,
                   const std::vector<WgInterface*>& ifaces, FwView* v, std::string* error) {
  v->configured_ = !state.fw_zones().empty() || !state.fw_policies().empty();
  for (uint16_t d = 0; d < kMaxDomains; ++d) v->domain_zone_[d] = implicit_zone(d);
  v->iface_zone_.assign(ifaces.size(), kNoZone);
  std::map<std::string, uint16_t> ids;  // explicit zone name -> id
  for (auto& z : state.fw_zones()) {
    uint16_t id = rt.zone_id(z.e.name);
    if (id == kNoZone) {
      *error = "firewall: zone ids are used up (restart the dataplane)";
      return false;
    }
    ids[z.e.name] = id;
    v->zones_[id] = {z.e.name, z.e.kind};
    for (auto d : z.e.domains) v->domain_zone_[d] = id;
    for (auto& name : z.e.wg_interfaces)
      for (const WgInterface* w : ifaces)
        if (w && w->name == name) v->iface_zone_[w->id] = id;
  }
  for (auto& p : state.ports()) {
    uint16_t zone = v->zone_of_domain(p.domain);
    if (p.exception) zone = kZoneManagement;
    for (auto& z : state.fw_zones())
      if (std::find(z.e.ports.begin(), z.e.ports.end(), p.name) != z.e.ports.end())
        zone = ids[z.e.name];
    v->port_zone_[p.port_id] = zone;
  }
  auto zone_of_name = [&](const std::string& name) -> uint16_t {
    if (name == "management") return kZoneManagement;
    if (auto d = implicit_zone_domain(name)) return implicit_zone(*d);
    return ids.at(name);
  };

  // Policies: unchanged ones keep their classifier and their tag.
  bool changed = !prev || prev->domain_zone_ != v->domain_zone_ ||
                 prev->port_zone_ != v->port_zone_ || prev->iface_zone_ != v->iface_zone_ ||
                 prev->zones_.size() != v->zones_.size() ||
                 prev->policies_.size() != state.fw_policies().size();
  if (prev && !changed)
    for (auto& [id, z] : v->zones_) {
      auto it = prev->zones_.find(id);
      if (it == prev->zones_.end() || it->second.kind != z.kind) changed = true;
    }
  std::vector<std::pair<uint32_t, FwPolicyView>> fresh;  // compiled now; tagged below
  for (auto& pe : state.fw_policies()) {
    uint16_t from = zone_of_name(pe.e.from), to = zone_of_name(pe.e.to);
    uint32_t key = uint32_t{from} << 16 | to;
    const FwPolicyView* old = prev ? prev->policy(from, to) : nullptr;
    if (old && old->policy == pe.e) {
      v->policies_.emplace(key, *old);
      continue;
    }
    changed = true;
    FwPolicyView pv;
    pv.id = rt.policy_id(from, to);
    pv.from = from;
    pv.to = to;
    pv.policy = pe.e;
    pv.acl = rt.take_compiled(pe.e);
    if (!pv.acl) {
      auto acl = fw::Classifier::compile(pe.e.rules, SOCKET_ID_ANY, error);
      if (!acl) {
        *error = "fw_policy " + pe.e.from + "->" + pe.e.to + ": " + *error;
        return false;
      }
      pv.acl = std::move(acl);
    }
    for (auto& r : pe.e.rules) {
      FwRuleRef ref{rt.rule_id(pv.id, r.identity()), r.action, r.log};
      if (ref.id == kRuleNone) {
        *error = "firewall: more than " + std::to_string(rt.config().max_rules) +
                 " rules (firewall.max_rules)";
        return false;
      }
      pv.rules.push_back(ref);
    }
    pv.fallback = {rt.rule_id(pv.id, "#default"), pe.e.default_action, false};
    if (pv.fallback.id == kRuleNone) {
      *error = "firewall: more than " + std::to_string(rt.config().max_rules) +
               " rules (firewall.max_rules)";
      return false;
    }
    fresh.emplace_back(key, std::move(pv));
  }
  // One tag per build that changes anything: sessions made under an older
  // tag re-check themselves on their next packet.
  v->tag_ = changed ? rt.new_tag() : prev->tag_;
  for (auto& [key, pv] : fresh) {
    pv.changed_tag = v->tag_;
    v->policies_.emplace(key, std::move(pv));
  }
  return true;
}

// --- FwRuntime ---

bool FwRuntime::precompile(const ControlState& state, const FwView* live, std::string* error) {
  compiled_.clear();
  for (auto& pe : state.fw_policies()) {
    bool same = false;
    if (live)
      for (auto& [key, pv] : live->policies()) same = same || pv.policy == pe.e;
    if (same) continue;
    auto acl = fw::Classifier::compile(pe.e.rules, SOCKET_ID_ANY, error);
    if (!acl) {
      *error = "fw_policy " + pe.e.from + "->" + pe.e.to + ": " + *error;
      compiled_.clear();
      return false;
    }
    compiled_.emplace_back(pe.e, std::move(acl));
  }
  return true;
}

std::shared_ptr<const fw::Classifier> FwRuntime::take_compiled(const fw::Policy& p) {
  for (auto it = compiled_.begin(); it != compiled_.end(); ++it)
    if (it->first == p) {
      auto acl = std::move(it->second);
      compiled_.erase(it);
      return acl;
    }
  return nullptr;
}

FwRuntime::~FwRuntime() {
  if (log_ring_) rte_ring_free(log_ring_);
}

bool FwRuntime::setup(const Config& cfg, unsigned workers, std::string* error) {
  cfg_ = cfg;
  // Only the sets that count: one per worker, and the last (API/service).
  for (unsigned i = 0; i < kCounterSets; ++i)
    if (i < workers || i == kCounterSets - 1) counters_[i].reset(new RuleCounters[cfg.max_rules]());
  rule_names_.assign(cfg.max_rules, {});
  for (uint32_t i = kFirstRuleId; i < cfg.max_rules; ++i) free_rules_.push_back(i);
  rule_names_[kRuleBuiltinAccept] = "built-in accept";
  rule_names_[kRuleBuiltinIsolation] = "built-in isolation";
  static std::atomic<unsigned> instance{0};
  std::string name = "fw_log" + std::to_string(instance.fetch_add(1));
  log_ring_ =
      rte_ring_create_elem(name.c_str(), sizeof(FwLogRecord), 1024, SOCKET_ID_ANY, RING_F_SC_DEQ);
  if (!log_ring_) {
    *error = std::string("firewall: cannot create the log ring: ") + rte_strerror(rte_errno);
    return false;
  }
  return true;
}

uint16_t FwRuntime::zone_id(const std::string& name) {
  auto it = zone_ids_.find(name);
  if (it != zone_ids_.end()) return it->second;
  if (next_zone_ == kNoZone) return kNoZone;
  zone_ids_[name] = next_zone_;
  return next_zone_++;
}

uint32_t FwRuntime::policy_id(uint16_t from, uint16_t to) {
  uint32_t key = uint32_t{from} << 16 | to;
  auto it = policy_ids_.find(key);
  if (it != policy_ids_.end()) return it->second;
  return policy_ids_[key] = next_policy_++;
}

uint32_t FwRuntime::rule_id(uint32_t policy, const std::string& identity) {
  std::lock_guard lock(names_mu_);
  auto key = std::make_pair(policy, identity);
  auto it = rule_ids_.find(key);
  if (it != rule_ids_.end()) return it->second;
  if (free_rules_.empty()) return kRuleNone;
  uint32_t id = free_rules_.front();
  free_rules_.pop_front();
  for (auto& c : counters_)
    if (c) c[id] = {};
  rule_ids_[key] = id;
  rule_names_[id] = identity;
  return id;
}

void FwRuntime::forget_except(const FwView& live) {
  std::set<uint32_t> keep;
  for (auto& [key, pv] : live.policies()) {
    for (auto& r : pv.rules) keep.insert(r.id);
    keep.insert(pv.fallback.id);
  }
  std::lock_guard lock(names_mu_);
  for (auto it = rule_ids_.begin(); it != rule_ids_.end();) {
    if (keep.count(it->second)) {
      ++it;
      continue;
    }
    rule_names_[it->second].clear();
    free_rules_.push_back(it->second);
    it = rule_ids_.erase(it);
  }
}

std::optional<std::string> FwRuntime::rule_name(uint32_t id) const {
  std::lock_guard lock(names_mu_);
  if (id >= rule_names_.size() || rule_names_[id].empty()) return std::nullopt;
  return rule_names_[id];
}

RuleCounters FwRuntime::sum(uint32_t rule) const {
  RuleCounters s;
  if (rule >= cfg_.max_rules) return s;
  for (auto& c : counters_) {
    if (!c) continue;
    s.packets += c[rule].packets;
    s.bytes += c[rule].bytes;
    s.sessions += c[rule].sessions;
  }
  return s;
}

bool FwRuntime::log(unsigned worker, uint64_t now_ms, const FwLogRecord& r) {
  Bucket& b = buckets_[worker];
  double cap = std::max<double>(1, cfg_.log_per_sec);
  b.tokens = std::min(cap, b.tokens + (now_ms - b.last_ms) * cfg_.log_per_sec / 1000.0);
  b.last_ms = now_ms;
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return rte_ring_mp_enqueue_elem(log_ring_, const_cast<FwLogRecord*>(&r), sizeof(r)) == 0;
}

unsigned FwRuntime::drain_log(const std::function<std::string(uint16_t zone)>& zone_name) {
  if (!log_ring_ || rte_ring_count(log_ring_) == 0) return 0;
  FwLogRecord recs[32];
  unsigned n = rte_ring_sc_dequeue_burst_elem(log_ring_, recs, sizeof(FwLogRecord), 32, nullptr);
  for (unsigned i = 0; i < n; ++i) {
    const FwLogRecord& r = recs[i];
    const nat::FlowKey& k = r.key;
    char what[96];
    if (k.proto == nat::kTcp || k.proto == nat::kUdp)
      std::snprintf(what, sizeof(what), "%s %s:%u -> %s:%u", k.proto == nat::kTcp ? "tcp" : "udp",
                    format_ipv4(k.src).c_str(), k.sport, format_ipv4(k.dst).c_str(), k.dport);
    else if (k.proto == nat::kIcmp)
      std::snprintf(what, sizeof(what), "icmp %s -> %s type %u code %u", format_ipv4(k.src).c_str(),
                    format_ipv4(k.dst).c_str(), r.icmp_type, r.icmp_code);
    else
      std::snprintf(what, sizeof(what), "proto %u %s -> %s", k.proto, format_ipv4(k.src).c_str(),
                    format_ipv4(k.dst).c_str());
    std::string line = std::string("fw ") + fw::action_name(static_cast<fw::Action>(r.action)) +
                       " " + what + " domain " + std::to_string(k.domain) + " " +
                       zone_name(r.from) + "->" + zone_name(r.to) + " rule \"" +
                       rule_name(r.rule).value_or("#" + std::to_string(r.rule)) + "\"";
    TLOG(INFO, "%s", line.c_str());
    std::lock_guard lock(log_mu_);
    recent_.push_back(std::to_string(r.ms) + " " + line);
    if (recent_.size() > 1000) recent_.pop_front();
  }
  return n;
}

std::vector<std::string> FwRuntime::recent_log(size_t max) const {
  std::lock_guard lock(log_mu_);
  size_t n = std::min(max, recent_.size());
  return {recent_.end() - static_cast<std::ptrdiff_t>(n), recent_.end()};
}

}  // namespace tether::dp
