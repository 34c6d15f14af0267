#include "firewall/rules.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <string_view>
#include <unordered_map>

namespace tether::fw {

const char* action_name(Action a) {
  switch (a) {
    case Action::kAccept:
      return "accept";
    case Action::kDrop:
      return "drop";
    case Action::kReject:
      return "reject";
  }
  return "?";
}

std::optional<Action> parse_action(std::string_view s) {
  for (Action a : {Action::kAccept, Action::kDrop, Action::kReject})
    if (s == action_name(a)) return a;
  return std::nullopt;
}

const char* zone_kind_name(ZoneKind k) {
  switch (k) {
    case ZoneKind::kUplink:
      return "uplink";
    case ZoneKind::kUsers:
      return "users";
    case ZoneKind::kVdc:
      return "vdc";
    case ZoneKind::kManagement:
      return "management";
  }
  return "?";
}

std::optional<ZoneKind> parse_zone_kind(std::string_view s) {
  for (ZoneKind k : {ZoneKind::kUplink, ZoneKind::kUsers, ZoneKind::kVdc, ZoneKind::kManagement})
    if (s == zone_kind_name(k)) return k;
  return std::nullopt;
}

namespace {

constexpr uint8_t kIcmp = 1;
constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void set_error(std::string* error, std::string text) {
  if (error) *error = std::move(text);
}

// One port: decimal digits only (no sign, no spaces inside), 0-65535.
std::optional<uint16_t> parse_port(std::string_view token, std::string* error) {
  uint32_t v = 0;
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), v);
  if (token.empty() || ec != std::errc{} || end != token.data() + token.size() || v > 65535) {
    set_error(error, "port \"" + std::string(token) + "\" is not 0-65535");
    return std::nullopt;
  }
  return static_cast<uint16_t>(v);
}

std::string format_range(const PortRange& r) {
  if (r.lo == r.hi) return std::to_string(r.lo);
  return std::to_string(r.lo) + "-" + std::to_string(r.hi);
}

// Multiplication that sticks at SIZE_MAX: an absurd rule must still compare
// above kMaxExpansion instead of wrapping around to a small count.
size_t mul_sat(size_t a, size_t b) {
  if (a != 0 && b > std::numeric_limits<size_t>::max() / a)
    return std::numeric_limits<size_t>::max();
  return a * b;
}

std::string proto_text(uint8_t proto) {
  switch (proto) {
    case 0:
      return "any";
    case kIcmp:
      return "icmp";
    case kTcp:
      return "tcp";
    case kUdp:
      return "udp";
  }
  return std::to_string(proto);
}

// Sorted and without duplicates, so two rules that list the same things in
// another order get the same identity (and keep their counters).
template <typename T, typename Less>
std::vector<T> canonical(std::vector<T> v, Less less) {
  std::sort(v.begin(), v.end(), less);
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

std::string prefixes_text(const std::vector<Ipv4Prefix>& list) {
  if (list.empty()) return "any";
  std::string out;
  for (const auto& p : canonical(list, std::less<Ipv4Prefix>{})) {
    if (!out.empty()) out += ',';
    out += format_prefix(p);
  }
  return out;
}

std::string ports_text(const std::vector<PortRange>& list) {
  if (list.empty()) return "any";
  return format_ports(canonical(list, [](const PortRange& a, const PortRange& b) {
    return a.lo != b.lo ? a.lo < b.lo : a.hi < b.hi;
  }));
}

std::string icmp_text(const std::vector<IcmpType>& list) {
  if (list.empty()) return "any";
  std::string out;
  for (const auto& t : canonical(list, [](const IcmpType&a, const IcmpType&b) {
         return a.type != b.type ? a.type < b.type : a.code < b.code;
       })) {
    if (!out.empty()) out += ',';
    out += std::to_string(t.type);
    if (t.code >= 0) (out += '/') += std::to_string(t.code);
  }
  return out;
}

std::optional<std::string> check_prefixes(const char* what, const std::vector<Ipv4Prefix>& list) {
  for (const auto& p : list) {
    if (p.len > 32) return std::string(what) + " " + format_prefix(p) + " has a length over 32";
    if (p.addr != p.network())
      return std::string(what) + " " + format_prefix(p) + " has host bits set; did you mean " +
             format_prefix({p.network(), p.len}) + "?";
  }
  return std::nullopt;
}

std::optional<std::string> check_ranges(const char* what, const std::vector<PortRange>& list) {
  for (const auto& r : list)
    if (r.lo > r.hi)
      return std::string(what) + " range " + std::to_string(r.lo) + "-" + std::to_string(r.hi) +
             " has lo > hi";
  return std::nullopt;
}

}  // namespace

std::optional<std::vector<PortRange>> parse_ports(std::string_view s, std::string* error) {
  const std::string_view all = s;
  std::vector<PortRange> out;
  if (trim(s).empty()) {
    set_error(error, "empty port list");
    return std::nullopt;
  }
  while (true) {
    size_t comma = s.find(',');
    std::string_view item = trim(s.substr(0, comma));
    if (item.empty()) {
      set_error(error, "empty entry in port list \"" + std::string(all) + "\"");
      return std::nullopt;
    }
    PortRange r;
    size_t dash = item.find('-');
    if (dash != std::string_view::npos &&
        (trim(item.substr(0, dash)).empty() || trim(item.substr(dash + 1)).empty())) {
      set_error(error, "range \"" + std::string(item) + "\" is missing a port");
      return std::nullopt;
    }
    auto lo = parse_port(trim(item.substr(0, dash)), error);
    if (!lo) return std::nullopt;
    r.lo = r.hi = *lo;
    if (dash != std::string_view::npos) {
      auto hi = parse_port(trim(item.substr(dash + 1)), error);
      if (!hi) return std::nullopt;
      r.hi = *hi;
      if (r.lo > r.hi) {
        set_error(error,
                  "range " + std::to_string(r.lo) + "-" + std::to_string(r.hi) + " has lo > hi");
        return std::nullopt;
      }
    }
    out.push_back(r);
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

// An empty list (a rule's "any") formats as "", which parse_ports refuses:
// callers that show rules print their own word for it.
std::string format_ports(const std::vector<PortRange>& r) {
  std::string out;
  for (const auto& p : r) {
    if (!out.empty()) out += ',';
    out += format_range(p);
  }
  return out;
}

// "<proto> src=<prefixes> dst=<prefixes> [sport=.. dport=..] [icmp=..] <action> [log]",
// lists sorted and "any" when empty; ports shown for TCP/UDP, types for ICMP.
std::string Rule::identity() const {
  if (!name.empty()) return name;
  std::string out = proto_text(proto);
  out += " src=" + prefixes_text(src);
  out += " dst=" + prefixes_text(dst);
  if (proto == kTcp || proto == kUdp || !sport.empty() || !dport.empty()) {
    out += " sport=" + ports_text(sport);
    out += " dport=" + ports_text(dport);
  }
  if (proto == kIcmp || !icmp.empty()) out += " icmp=" + icmp_text(icmp);
  out += ' ';
  out += action_name(action);
  if (log) out += " log";
  return out;
}

size_t Rule::expansion() const {
  size_t n = 1;
  for (size_t k : {src.size(), dst.size(), sport.size(), dport.size(), icmp.size()})
    n = mul_sat(n, std::max<size_t>(k, 1));
  return n;
}

std::optional<std::string> validate(const Rule& r) {
  if ((!r.sport.empty() || !r.dport.empty()) && r.proto != kTcp && r.proto != kUdp)
    return "ports need protocol tcp or udp, not " + proto_text(r.proto);
  if (!r.icmp.empty() && r.proto != kIcmp)
    return "icmp types need protocol icmp, not " + proto_text(r.proto);
  if (auto e = check_prefixes("src", r.src)) return e;
  if (auto e = check_prefixes("dst", r.dst)) return e;
  if (auto e = check_ranges("sport", r.sport)) return e;
  if (auto e = check_ranges("dport", r.dport)) return e;
  for (const auto& t : r.icmp)
    if (t.code > 255)
      return "icmp type " + std::to_string(t.type) + " code " + std::to_string(t.code) +
             " is not 0-255";
  if (size_t n = r.expansion(); n > kMaxExpansion)
    return "expands to " + std::to_string(n) + " classifier rules (src x dst x ports); at most " +
           std::to_string(kMaxExpansion);
  return std::nullopt;
}

std::optional<std::string> validate(const Policy& p) {
  if (p.from.empty()) return std::string("policy has no from zone");
  if (p.to.empty()) return std::string("policy from \"" + p.from + "\" has no to zone");
  // Each name to the position that first used it, for a message naming both.
  std::unordered_map<std::string_view, size_t> seen;
  size_t total = 0;
  for (size_t i = 0; i < p.rules.size(); ++i) {
    const Rule& r = p.rules[i];
    std::string where = "rule " + std::to_string(i + 1);
    if (!r.name.empty()) where += " (\"" + r.name + "\")";
    if (auto e = validate(r)) return where + ": " + *e;
    total += r.expansion();
    if (total > kMaxPolicyExpansion)
      return where + ": the policy expands to more than " + std::to_string(kMaxPolicyExpansion) +
             " rte_acl rules (prefixes x ports per rule); split it or use wider prefixes";
    if (r.name.empty()) continue;
    auto [it, added] = seen.emplace(r.name, i);
    if (!added) return where + ": name already used by rule " + std::to_string(it->second + 1);
  }
  return std::nullopt;
}

Action builtin_default(ZoneKind from, uint16_t from_id, ZoneKind to, uint16_t to_id) {
  if (from == ZoneKind::kVdc && to == ZoneKind::kVdc && from_id != to_id) return Action::kDrop;
  return Action::kAccept;
}

}  // namespace tether::fw
