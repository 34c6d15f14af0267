// The firewall in the dataplane (docs/decisions/007-firewall.md).
//
// FwView is what a generation carries: which zone every domain, port and
// WireGuard interface belongs to, and the policy of every configured zone
// pair, compiled to an rte_acl context. It is immutable once published;
// contexts of policies that did not change are shared with the previous
// generation, so a change recompiles only the policies it touches.
//
// FwRuntime is what outlives generations: stable ids for zones, policies
// and rules (sessions and counters name them), the policy tag, per-worker
// rule counters, and the log ring from workers to the service thread.
//
// Verdicts live in the session (nat/session.h: rule, rule_tag, zones): a
// worker classifies only a flow's first packet. Every build that changes a
// policy or a zone takes a new tag; a session whose rule_tag is older than
// the view's re-checks itself on its next packet against the policy of its
// zone pair as it is now (kept when still accepted, revoked otherwise).
#pragma once

#include <rte_config.h>
#include <rte_ring.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "firewall/acl.h"
#include "firewall/rules.h"
#include "nat/flow.h"
#include "nat/session.h"

namespace tether::dp {

class ControlState;
class FwRuntime;
struct WgInterface;

// Zone ids are stable for the dataplane's life: 0 is the management zone
// (the appliance itself), 1 + d the implicit zone of domain d ("uplink" for
// domain 0, "vdc-<d>" otherwise), and explicit zones take ids from kFirstExplicit.
inline constexpr uint16_t kZoneManagement = 0;
inline constexpr uint16_t kMaxDomains = 4096;
inline constexpr uint16_t kFirstExplicitZone = 1 + kMaxDomains;
inline constexpr uint16_t kNoZone = UINT16_MAX;
inline uint16_t implicit_zone(uint16_t domain) { return static_cast<uint16_t>(1 + domain); }
std::string implicit_zone_name(uint16_t domain);
// The domain of an implicit zone's name ("uplink", "vdc-7"), if it is one.
std::optional<uint16_t> implicit_zone_domain(std::string_view name);

// Rule ids: 0 is none; the built-in verdicts of zone pairs without a policy
// have ids of their own so that their sessions and counters are named too.
inline constexpr uint32_t kRuleNone = 0;
inline constexpr uint32_t kRuleBuiltinAccept = 1;
inline constexpr uint32_t kRuleBuiltinIsolation = 2;  // drop between two VDCs
inline constexpr uint32_t kFirstRuleId = 3;

struct FwRuleRef {
  uint32_t id = kRuleNone;
  fw::Action action = fw::Action::kDrop;
  bool log = false;
};

struct FwPolicyView {
  uint32_t id = 0;  // stable policy id
  uint16_t from = 0, to = 0;
  uint32_t changed_tag = 0;  // the tag of the build that last changed it
  fw::Policy policy;         // as configured (listing, reuse)
  std::shared_ptr<const fw::Classifier> acl;
  std::vector<FwRuleRef> rules;  // by position
  FwRuleRef fallback;            // its default action, with a rule id of its own

  // The verdict of a classifier result (position + 1, or no match).
  const FwRuleRef& verdict(uint32_t result) const {
    return result == fw::Classifier::kNoMatch ? fallback : rules[result - 1];
  }
};

struct FwZoneView {
  std::string name;
  fw::ZoneKind kind = fw::ZoneKind::kVdc;
};

class FwView {
 public:
  // Whether the session stage must run for the firewall's sake (any zone or
  // policy configured). Without it, only NAT turns the stage on: isolation
  // between VDCs needs no filtering when nothing translates between domains.
  bool configured() const { return configured_; }
  uint32_t tag() const { return tag_; }

  uint16_t zone_of_domain(uint16_t d) const {
    return d < kMaxDomains ? domain_zone_[d] : implicit_zone(0);
  }
  uint16_t zone_of_port(uint16_t port) const { return port_zone_[port]; }
  // Traffic from or to the peers of WireGuard interface `iface` (inner domain `domain`).
  uint16_t zone_of_iface(uint16_t iface, uint16_t domain) const {
    return iface < iface_zone_.size() && iface_zone_[iface] != kNoZone ? iface_zone_[iface]
                                                                       : zone_of_domain(domain);
  }
  // Whether a zone id names a zone of this generation: management, an
  // implicit zone whose domain no explicit zone claims, or an explicit zone.
  bool zone_live(uint16_t id) const {
    if (id == kZoneManagement) return true;
    if (id < kFirstExplicitZone) return domain_zone_[id - 1] == id;
    return zones_.count(id) != 0;
  }
  fw::ZoneKind zone_kind(uint16_t id) const;
  std::string zone_name(uint16_t id) const;
  const FwPolicyView* policy(uint16_t from, uint16_t to) const {
    auto it = policies_.find(uint32_t{from} << 16 | to);
    return it == policies_.end() ? nullptr : &it->second;
  }
  // The verdict for a pair without a policy (isolation between VDCs).
  FwRuleRef builtin(uint16_t from, uint16_t to) const;

  const std::map<uint16_t, FwZoneView>& explicit_zones() const { return zones_; }
  const std::unordered_map<uint32_t, FwPolicyView>& policies() const { return policies_; }

 private:
  friend bool build_fw_view(const ControlState& state, const FwView* prev, FwRuntime& rt,
                            const std::vector<WgInterface*>& ifaces, FwView* v, std::string* error);
  bool configured_ = false;
  uint32_t tag_ = 0;
  std::array<uint16_t, kMaxDomains> domain_zone_{};
  std::array<uint16_t, RTE_MAX_ETHPORTS> port_zone_{};
  std::vector<uint16_t> iface_zone_;                     // by WgInterface::id
  std::map<uint16_t, FwZoneView> zones_;                 // explicit zones only
  std::unordered_map<uint32_t, FwPolicyView> policies_;  // by from << 16 | to
};

// Builds the firewall view of `state` (API thread, control mutex held):
// ids from `rt`, classifiers reused from `prev` for unchanged policies and
// compiled for the others. False with a message when compiling fails
// (rte_acl out of memory) or ids run out; nothing is published then.
bool build_fw_view(const ControlState& state, const FwView* prev, FwRuntime& rt,
                   const std::vector<WgInterface*>& ifaces, FwView* v, std::string* error);

// Counted by the worker that handled the packet; the API sums.
struct RuleCounters {
  uint64_t packets = 0;  // first packets it decided and packets of the sessions it accepted
  uint64_t bytes = 0;
  uint64_t sessions = 0;  // sessions it accepted
};

// One log line's worth, from a worker to the service thread (48 bytes).
struct FwLogRecord {
  uint64_t ms = 0;
  nat::FlowKey key;  // the packet as it arrived
  uint32_t rule = 0;
  uint16_t from = 0, to = 0;
  uint8_t action = 0;  // fw::Action
  uint8_t icmp_type = 0, icmp_code = 0;
  uint8_t pad[13] = {};
};
static_assert(sizeof(FwLogRecord) == 48);

class FwRuntime {
 public:
  static constexpr unsigned kCounterSets = 17 + 1;  // workers, then the service

  struct Config {
    uint32_t max_rules = 65536;  // stable rule ids (counters) in use at once
    uint32_t log_per_sec = 100;  // log lines per second per worker (token bucket)
  };
  bool setup(const Config& cfg, unsigned workers, std::string* error);
  const Config& config() const { return cfg_; }

  // --- API thread (control mutex held) ---
  uint16_t zone_id(const std::string& explicit_name);  // kNoZone when ids ran out
  uint32_t policy_id(uint16_t from, uint16_t to);
  uint32_t rule_id(uint32_t policy, const std::string& identity);  // kRuleNone: ran out
  // Everything the new generation no longer names gives its id back (after
  // publish; counters reset when an id is reused).
  void forget_except(const FwView& live);
  uint32_t new_tag() { return ++tag_; }
  // Compiles the policies of `state` that `live` does not have as they are,
  // so that the build (which holds the WireGuard runtime's lock) finds them
  // ready: rte_acl takes about 40 ms per 1k rules, and WireGuard handshakes
  // wait for that lock. False with rte_acl's message.
  bool precompile(const ControlState& state, const FwView* live, std::string* error);
  // A classifier precompile() made for `p`, taken (nullptr: none).
  std::shared_ptr<const fw::Classifier> take_compiled(const fw::Policy& p);
  uint32_t tag() const { return tag_; }
  std::optional<std::string> rule_name(uint32_t id) const;  // its name, or canonical text

  // --- workers ---
  RuleCounters* counters(unsigned set) { return counters_[set].get(); }
  // Queues a log record unless the worker's rate is used up (then counted).
  bool log(unsigned worker, uint64_t now_ms, const FwLogRecord& r);

  // --- service thread ---
  // Moves queued records into the recent-log buffer and the process log.
  unsigned drain_log(const std::function<std::string(uint16_t zone)>& zone_name);
  // --- API thread ---
  RuleCounters sum(uint32_t rule) const;
  std::vector<std::string> recent_log(size_t max) const;

 private:
  Config cfg_;
  uint16_t next_zone_ = kFirstExplicitZone;
  std::map<std::string, uint16_t> zone_ids_;
  uint32_t next_policy_ = 1;
  std::map<uint32_t, uint32_t> policy_ids_;  // from << 16 | to -> id
  std::map<std::pair<uint32_t, std::string>, uint32_t> rule_ids_;
  mutable std::mutex names_mu_;  // rule ids and names: the API thread writes, the service reads
  std::vector<std::string> rule_names_;  // by id
  // Oldest freed first: an id comes back as late as possible, so that
  // sessions and log records that still name a deleted rule (until they
  // re-check) rarely see another rule's name.
  std::deque<uint32_t> free_rules_;
  uint32_t tag_ = 0;
  std::vector<std::pair<fw::Policy, std::shared_ptr<const fw::Classifier>>> compiled_;
  std::array<std::unique_ptr<RuleCounters[]>, kCounterSets> counters_;
  struct alignas(64) Bucket {
    double tokens = 0;
    uint64_t last_ms = 0;
  };
  std::array<Bucket, kCounterSets> buckets_{};
  rte_ring* log_ring_ = nullptr;
  mutable std::mutex log_mu_;
  std::deque<std::string> recent_;

 public:
  ~FwRuntime();
};

// The fields a rule matches for a session: the source before SNAT, the
// destination after DNAT (nat/flow.h: the reply key's source), the ports
// likewise; ICMP echo sessions match as echo requests (type 8, code 0).
fw::AclKey fw_key_of(const nat::FlowKey& orig, const nat::FlowKey& reply);

}  // namespace tether::dp
