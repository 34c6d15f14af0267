// The firewall's rule model (docs/decisions/007-firewall.md): zones, the
// policies between two zones, their ordered rules. Pure values and
// validation; no DPDK. The compiler (firewall/acl.h) turns a policy's rules
// into an rte_acl context; the dataplane evaluates the first packet of a flow
// and keeps the verdict in the flow's session.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/net.h"

namespace tether::fw {

enum class Action : uint8_t { kAccept, kDrop, kReject };
const char* action_name(Action a);
std::optional<Action> parse_action(std::string_view s);

// uplink: the Internet side (domain 0's ports); users: user tunnels; vdc: a
// virtual datacenter (its routing domain); management: the appliance itself.
enum class ZoneKind : uint8_t { kUplink, kUsers, kVdc, kManagement };
const char* zone_kind_name(ZoneKind k);
std::optional<ZoneKind> parse_zone_kind(std::string_view s);

struct PortRange {
  uint16_t lo = 0;
  uint16_t hi = 65535;
  bool operator==(const PortRange&) const = default;
};
// "80", "1024-65535", "80,443,8000-8100" (ranges in any order, lo <= hi).
std::optional<std::vector<PortRange>> parse_ports(std::string_view s, std::string* error);
std::string format_ports(const std::vector<PortRange>& r);

// An ICMP type, with a code or any code (code < 0).
struct IcmpType {
  uint8_t type = 0;
  int16_t code = -1;
  bool operator==(const IcmpType&) const = default;
};

// One rule. Empty lists match anything. Addresses are those of the packet
// as it enters the destination zone: the destination after DNAT (a
// published address's inner address), the source before SNAT.
struct Rule {
  std::string name;  // optional, unique within its policy
  std::vector<Ipv4Prefix> src;
  std::vector<Ipv4Prefix> dst;
  uint8_t proto = 0;             // 0: any protocol
  std::vector<PortRange> sport;  // TCP and UDP only
  std::vector<PortRange> dport;  // TCP and UDP only
  std::vector<IcmpType> icmp;    // ICMP only
  Action action = Action::kAccept;
  bool log = false;
  bool operator==(const Rule&) const = default;

  // Stable identity within a policy, so counters survive an update that
  // keeps the rule: its name, or a canonical text of its match and action.
  std::string identity() const;
  // How many rte_acl rules it expands to: src × dst × ports (or ICMP types).
  size_t expansion() const;
};

// At most this many rte_acl rules one rule may expand to, and a whole
// policy (compiling 12k takes about 0.4 s; a million, minutes and gigabytes).
inline constexpr size_t kMaxExpansion = 4096;
inline constexpr size_t kMaxPolicyExpansion = 262144;

// nullopt when the rule is valid; otherwise a message naming what is wrong:
// ports without TCP/UDP, ICMP types without ICMP, a prefix with host bits,
// an expansion above kMaxExpansion.
std::optional<std::string> validate(const Rule& r);

// Traffic from zone `from` to zone `to`: its rules in order, the first match
// wins; no match: `default_action`.
struct Policy {
  std::string from;
  std::string to;
  std::vector<Rule> rules;
  Action default_action = Action::kDrop;
  bool operator==(const Policy&) const = default;
};

// Every rule valid, names unique, from/to not empty.
std::optional<std::string> validate(const Policy& p);

struct Zone {
  std::string name;
  ZoneKind kind = ZoneKind::kVdc;
  std::vector<uint16_t> domains;           // routing domains in the zone
  std::vector<std::string> wg_interfaces;  // peers of these interfaces (overrides their domain)
  std::vector<std::string> ports;          // these ports (overrides their domain)
  bool operator==(const Zone&) const = default;
};

// What a flow between two zones gets when no policy names the pair:
// isolation between VDCs (two different zones of kind vdc: drop), accept
// otherwise.
Action builtin_default(ZoneKind from, uint16_t from_id, ZoneKind to, uint16_t to_id);

}  // namespace tether::fw
