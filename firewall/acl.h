// A policy's rules compiled to an rte_acl context (docs/decisions/007-firewall.md).
// Built by the API thread beside the live generation (it allocates and can
// take long for many rules); classify() is called by workers and never
// allocates or locks. A Classifier is immutable once built and shared by
// every generation that keeps its policy unchanged.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "firewall/rules.h"

struct rte_acl_ctx;

namespace tether::fw {

// The fields a rule matches, laid out as rte_acl reads them: network byte
// order. For ICMP, sport is 0 and dport is type << 8 | code.
struct AclKey {
  uint8_t proto = 0;
  uint8_t pad[3] = {0, 0, 0};
  uint32_t src = 0;  // network order
  uint32_t dst = 0;  // network order
  uint16_t sport = 0;  // network order
  uint16_t dport = 0;  // network order
};
static_assert(sizeof(AclKey) == 16);

// From host-order values.
AclKey make_key(uint8_t proto, Ipv4 src, Ipv4 dst, uint16_t sport, uint16_t dport);
AclKey make_icmp_key(Ipv4 src, Ipv4 dst, uint8_t type, uint8_t code);

class Classifier {
 public:
  static constexpr uint32_t kNoMatch = 0;

  // Compiles `rules` (each valid); the first matching rule wins. nullptr and
  // rte_acl's reason when it cannot (memory). An empty list compiles to a
  // classifier that matches nothing.
  static std::unique_ptr<Classifier> compile(const std::vector<Rule>& rules, int socket,
                                             std::string* error);
  ~Classifier();
  Classifier(const Classifier&) = delete;
  Classifier& operator=(const Classifier&) = delete;

  // results[i]: position + 1 of the first rule matching *keys[i], or kNoMatch.
  // Any n; no allocation. Safe from several threads at once.
  void classify(const AclKey* const* keys, uint32_t* results, uint32_t n) const;

  size_t rules() const { return rules_; }          // rules compiled
  size_t acl_rules() const { return acl_rules_; }  // rte_acl rules after expansion
  // Bytes of rte_malloc memory the context holds (its rule copy and the built
  // tries): DPDK exposes no size, so this is the malloc heaps' growth across
  // the compile, an estimate that another thread's rte_malloc traffic during
  // the compile skews.
  size_t memory() const;

 private:
  Classifier() = default;
  rte_acl_ctx* ctx_ = nullptr;
  size_t rules_ = 0;
  size_t acl_rules_ = 0;
  size_t memory_ = 0;
};

// The reference the compiler is tested against: a linear scan, same result
// encoding as Classifier::classify.
uint32_t match_linear(const std::vector<Rule>& rules, const AclKey& key);

}  // namespace tether::fw
