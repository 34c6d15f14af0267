#include "firewall/acl.h"

#include <rte_acl.h>
#include <rte_byteorder.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <limits>

namespace tether::fw {

namespace {

// Field indexes inside a rule; also the order rte_acl walks them.
enum : uint8_t { kProtoField, kSrcField, kDstField, kSportField, kDportField, kNumFields };

RTE_ACL_RULE_DEF(AclRule, kNumFields);
static_assert(sizeof(AclRule) == RTE_ACL_RULE_SZ(kNumFields));

// rte_acl's layout rules: the first field is one byte; every later input
// index is a group of 4 bytes read together, so the two ports share index 3.
rte_acl_config acl_config() {
  rte_acl_config cfg{};
  cfg.num_categories = 1;
  cfg.num_fields = kNumFields;
  cfg.max_size = 0;  // no limit: the build picks its own trie split
  cfg.defs[kProtoField] = {RTE_ACL_FIELD_TYPE_BITMASK, sizeof(uint8_t), kProtoField, 0,
                           offsetof(AclKey, proto)};
  cfg.defs[kSrcField] = {RTE_ACL_FIELD_TYPE_MASK, sizeof(uint32_t), kSrcField, 1,
                         offsetof(AclKey, src)};
  cfg.defs[kDstField] = {RTE_ACL_FIELD_TYPE_MASK, sizeof(uint32_t), kDstField, 2,
                         offsetof(AclKey, dst)};
  cfg.defs[kSportField] = {RTE_ACL_FIELD_TYPE_RANGE, sizeof(uint16_t), kSportField, 3,
                           offsetof(AclKey, sport)};
  cfg.defs[kDportField] = {RTE_ACL_FIELD_TYPE_RANGE, sizeof(uint16_t), kDportField, 3,
                           offsetof(AclKey, dport)};
  return cfg;
}

// rte_acl_create hands back the existing context when the name is taken, so
// every compile gets a name of its own.
std::atomic<uint64_t> g_next_context{0};

constexpr Ipv4Prefix kAnyPrefix{0, 0};
constexpr PortRange kAnyPort{0, 65535};

// The dport ranges a rule matches: its ICMP types and codes when it has
// some (dport carries type << 8 | code), its dport list otherwise.
std::vector<PortRange> dport_ranges(const Rule& r) {
  if (r.icmp.empty()) return r.dport.empty() ? std::vector<PortRange>{kAnyPort} : r.dport;
  std::vector<PortRange> out;
  out.reserve(r.icmp.size());
  for (const auto& t : r.icmp) {
    uint16_t base = static_cast<uint16_t>(t.type << 8);
    if (t.code < 0)
      out.push_back({base, static_cast<uint16_t>(base | 0xff)});
    else
      out.push_back({static_cast<uint16_t>(base | t.code), static_cast<uint16_t>(base | t.code)});
  }
  return out;
}

template <typename T>
const std::vector<T>& or_any(const std::vector<T>& v, const std::vector<T>& any) {
  return v.empty() ? any : v;
}

size_t heap_allocated() {
  size_t total = 0;
  for (unsigned i = 0; i < rte_socket_count(); ++i) {
    rte_malloc_socket_stats st{};
    if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &st) == 0)
      total += st.heap_allocsz_bytes;
  }
  return total;
}

bool in_ranges(const std::vector<PortRange>& list, uint16_t v) {
  for (const auto& r : list)
    if (r.lo <= v && v <= r.hi) return true;
  return false;
}

bool in_prefixes(const std::vector<Ipv4Prefix>& list, Ipv4 a) {
  if (list.empty()) return true;
  for (const auto& p : list)
    if (p.contains(a)) return true;
  return false;
}

// The reference's own reading of dport, written apart from dport_ranges so
// that a mistake there shows up as a disagreement.
bool dport_matches(const Rule& r, uint16_t dport) {
  if (r.icmp.empty()) return r.dport.empty() || in_ranges(r.dport, dport);
  for (const auto& t : r.icmp)
    if ((dport >> 8) == t.type && (t.code < 0 || (dport & 0xff) == t.code)) return true;
  return false;
}

}  // namespace

AclKey make_key(uint8_t proto, Ipv4 src, Ipv4 dst, uint16_t sport, uint16_t dport) {
  AclKey k;
  k.proto = proto;
  k.src = rte_cpu_to_be_32(src);
  k.dst = rte_cpu_to_be_32(dst);
  k.sport = rte_cpu_to_be_16(sport);
  k.dport = rte_cpu_to_be_16(dport);
  return k;
}

AclKey make_icmp_key(Ipv4 src, Ipv4 dst, uint8_t type, uint8_t code) {
  return make_key(1, src, dst, 0, static_cast<uint16_t>(type << 8 | code));
}

std::unique_ptr<Classifier> Classifier::compile(const std::vector<Rule>& rules, int socket,
                                                std::string* error) {
  auto fail = [&](std::string text) -> std::unique_ptr<Classifier> {
    if (error) *error = std::move(text);
    return nullptr;
  };
  // A malformed rule would otherwise reach rte_acl as a silently different
  // match (a host-bit prefix, an inverted range) or as a huge expansion.
  for (size_t i = 0; i < rules.size(); ++i)
    if (auto e = validate(rules[i])) return fail("rule " + std::to_string(i + 1) + ": " + *e);

  std::unique_ptr<Classifier> c(new Classifier);
  c->rules_ = rules.size();
  // rte_acl refuses to build a context without rules; an empty policy simply
  // matches nothing, which classify() answers without a context.
  if (rules.empty()) return c;

  const std::vector<Ipv4Prefix> any_prefix{kAnyPrefix};
  const std::vector<PortRange> any_port{kAnyPort};
  size_t total = 0;
  for (const auto& r : rules) total += r.expansion();  // each <= kMaxExpansion after validate
  // rte_acl_create sizes its rule copy as max_rule_num * rule_size in 32-bit
  // arithmetic: past 4 GiB it wraps, allocates too little and
  // rte_acl_add_rules then writes beyond the allocation. Stay well below.
  constexpr size_t kMaxAclRules = (std::numeric_limits<uint32_t>::max() / 2) / sizeof(AclRule);
  // Earlier rules get higher priorities, one each, from RTE_ACL_MAX_PRIORITY
  // down; every rule expands to at least one rte_acl rule, so this bound
  // also keeps the priorities within rte_acl's range.
  static_assert(kMaxAclRules <= RTE_ACL_MAX_PRIORITY - RTE_ACL_MIN_PRIORITY + 1);
  if (total > kMaxAclRules)
    return fail("rules expand to " + std::to_string(total) +
                " classifier rules; rte_acl takes at most " + std::to_string(kMaxAclRules));

  const size_t heap_before = heap_allocated();
  char name[RTE_ACL_NAMESIZE];
  do {
    std::snprintf(name, sizeof name, "tether_fw_%llu",
                  static_cast<unsigned long long>(g_next_context.fetch_add(1)));
  } while (rte_acl_find_existing(name) != nullptr);  // someone else's context of that name
  rte_acl_param param{};
  param.name = name;
  param.socket_id = socket;
  param.rule_size = RTE_ACL_RULE_SZ(kNumFields);
  param.max_rule_num = static_cast<uint32_t>(total);
  rte_errno = 0;
  c->ctx_ = rte_acl_create(&param);
  if (c->ctx_ == nullptr)
    return fail("rte_acl_create for " + std::to_string(total) + " classifier rules: " +
                (rte_errno != 0 ? std::strerror(rte_errno) : "cannot allocate its memory"));

  // One rule's expansion at a time keeps the temporary copy small; rte_acl
  // copies the rules into the context.
  std::vector<AclRule> batch;
  for (size_t i = 0; i < rules.size(); ++i) {
    const Rule& r = rules[i];
    const auto dports = dport_ranges(r);
    batch.clear();
    AclRule a{};
    a.data.category_mask = 1;
    a.data.priority = static_cast<int32_t>(RTE_ACL_MAX_PRIORITY - i);
    a.data.userdata = static_cast<uint32_t>(i + 1);
    a.field[kProtoField].value.u8 = r.proto;
    a.field[kProtoField].mask_range.u8 = r.proto == 0 ? 0 : 0xff;
    for (const auto& s : or_any(r.src, any_prefix)) {
      a.field[kSrcField].value.u32 = s.network();
      a.field[kSrcField].mask_range.u32 = s.len;
      for (const auto& d : or_any(r.dst, any_prefix)) {
        a.field[kDstField].value.u32 = d.network();
        a.field[kDstField].mask_range.u32 = d.len;
        for (const auto& sp : or_any(r.sport, any_port)) {
          a.field[kSportField].value.u16 = sp.lo;
          a.field[kSportField].mask_range.u16 = sp.hi;
          for (const auto& dp : dports) {
            a.field[kDportField].value.u16 = dp.lo;
            a.field[kDportField].mask_range.u16 = dp.hi;
            batch.push_back(a);
          }
        }
      }
    }
    int ret = rte_acl_add_rules(c->ctx_, reinterpret_cast<const rte_acl_rule*>(batch.data()),
                                static_cast<uint32_t>(batch.size()));
    if (ret != 0)
      return fail("rule " + std::to_string(i + 1) + ": rte_acl_add_rules: " + std::strerror(-ret));
    c->acl_rules_ += batch.size();
  }

  rte_acl_config cfg = acl_config();
  if (int ret = rte_acl_build(c->ctx_, &cfg); ret != 0) {
    std::string text = std::string("rte_acl_build of ") + std::to_string(c->acl_rules_) +
                       " classifier rules: " + std::strerror(-ret);
    // rte_acl says ENOMEM both when memory runs out and when the rules
    // overlap so much that they would need more than its 8 tries.
    if (ret == -ENOMEM) text += " (or the rules overlap too much for rte_acl's 8 tries)";
    return fail(text);
  }
  const size_t heap_after = heap_allocated();
  c->memory_ = heap_after > heap_before ? heap_after - heap_before : 0;
  return c;
}

Classifier::~Classifier() { rte_acl_free(ctx_); }

void Classifier::classify(const AclKey* const* keys, uint32_t* results, uint32_t n) const {
  if (n == 0) return;
  if (ctx_ == nullptr) {
    std::fill_n(results, n, kNoMatch);
    return;
  }
  // rte_acl takes a non-const array of pointers but only reads it.
  rte_acl_classify(ctx_, reinterpret_cast<const uint8_t**>(const_cast<const AclKey**>(keys)),
                   results, n, 1);
}

size_t Classifier::memory() const { return memory_; }

uint32_t match_linear(const std::vector<Rule>& rules, const AclKey& key) {
  const Ipv4 src = rte_be_to_cpu_32(key.src);
  const Ipv4 dst = rte_be_to_cpu_32(key.dst);
  const uint16_t sport = rte_be_to_cpu_16(key.sport);
  const uint16_t dport = rte_be_to_cpu_16(key.dport);
  for (size_t i = 0; i < rules.size(); ++i) {
    const Rule& r = rules[i];
    if (r.proto != 0 && r.proto != key.proto) continue;
    if (!in_prefixes(r.src, src) || !in_prefixes(r.dst, dst)) continue;
    if (!r.sport.empty() && !in_ranges(r.sport, sport)) continue;
    if (!dport_matches(r, dport)) continue;
    return static_cast<uint32_t>(i + 1);
  }
  return Classifier::kNoMatch;
}

}  // namespace tether::fw
