// The forwarding tables workers read, and the control state they are built
// from. The API thread owns ControlState and builds a Generation from it
// beside the live one; workers only ever read a published Generation (RCU,
// see dataplane/dataplane.h). A Generation is immutable once published.
//
// One DomainTable per routing domain: an rte_lpm whose next-hop ids index the
// domain's next-hop array. Own addresses are /32 entries of kind kLocal, so a
// single lookup tells forward, deliver locally or drop. Domains whose entries
// did not change are shared with the previous generation, so a change in one
// VDC's domain rebuilds only that domain.
#pragma once

#include <rte_ether.h>
#include <rte_lpm.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/net.h"
#include "dataplane/fw_runtime.h"
#include "dataplane/neighbor_table.h"
#include "firewall/rules.h"
#include "nat/mapping.h"
#include "tunnel/crypto.h"

namespace tether::dp {

enum class Origin : uint8_t { kConfig, kApi, kConnected };
const char* origin_name(Origin o);
std::optional<Origin> parse_origin(std::string_view s);

// What the API thread knows about a port; fixed after start-up.
struct PortInfo {
  std::string name;
  std::string device;
  uint16_t port_id = 0;
  uint16_t domain = 0;
  uint16_t mtu = 1500;
  MacAddr mac;
  bool exception = false;  // the TAP to the kernel
};

struct AddressEntry {
  uint16_t port = 0;
  Ipv4Prefix addr;  // host bits kept: 10.0.1.1/24
  Origin origin = Origin::kConfig;
  bool operator==(const AddressEntry&) const = default;
};

struct RouteEntry {
  uint16_t domain = 0;
  Ipv4Prefix prefix;
  Ipv4 via = 0;  // 0: on-link, the destination itself is the next hop
  uint16_t port = 0;
  Origin origin = Origin::kConfig;
  bool operator==(const RouteEntry&) const = default;
};

struct StaticNeighbor {
  uint16_t port = 0;
  Ipv4 ip = 0;
  MacAddr mac;
  Origin origin = Origin::kConfig;
  bool operator==(const StaticNeighbor&) const = default;
};

// A WireGuard interface: our key, where it listens (an own address of a
// data port), and the inner MTU of its tunnels.
struct WgInterfaceEntry {
  std::string name;
  wg::Key private_key{};
  Ipv4 address = 0;
  uint16_t listen_port = 0;
  uint16_t mtu = 1420;
  Origin origin = Origin::kConfig;
  bool operator==(const WgInterfaceEntry&) const = default;
};

// A WireGuard peer of an interface; its allowed prefixes are routes of kind
// kTunnel in `domain` (cryptokey routing).
struct WgPeerEntry {
  std::string interface;
  wg::Key public_key{};
  wg::Key preshared_key{};
  bool has_psk = false;
  uint64_t endpoint = 0;  // WgPeer::pack_endpoint; 0: learnt from the peer
  std::vector<Ipv4Prefix> allowed;
  uint16_t domain = 0;
  uint16_t persistent_keepalive = 0;  // seconds
  Origin origin = Origin::kConfig;
  bool operator==(const WgPeerEntry&) const = default;
};

// One requested change (docs/dataplane-api.md, config.apply).
struct Change {
  enum class Kind {
    kAddress,
    kRoute,
    kNeighbor,
    kWgInterface,
    kWgPeer,
    kNatMapping,
    kNatGateway,
    kNatSnat,
    kNatRewrite,
    kFwZone,
    kFwPolicy,
  } kind = Kind::kRoute;
  bool add = true;
  bool update = false;  // wg_interface / wg_peer / nat_mapping / fw_*: replace the existing entry
  std::string port;     // name; may be empty for a route with `via`
  uint16_t domain = 0;
  Ipv4Prefix prefix;  // address (host bits kept) or route prefix
  std::optional<Ipv4> via;
  Ipv4 ip = 0;
  MacAddr mac;
  WgInterfaceEntry wg_interface;  // kWgInterface
  WgPeerEntry wg_peer;            // kWgPeer
  nat::MappingEntry nat_mapping;  // kNatMapping (del: name only)
  nat::GatewayEntry nat_gateway;  // kNatGateway
  nat::SnatEntry nat_snat;        // kNatSnat
  struct Rewrite {  // kNatRewrite: every mapping of `domain` to `from` now goes to `to`
    uint16_t domain = 0;
    Ipv4 from = 0, to = 0;
  } nat_rewrite;
  fw::Zone fw_zone;      // kFwZone (del: name only)
  fw::Policy fw_policy;  // kFwPolicy (del: from and to only)
};

// Entries carry their origin like the other kinds.
struct NatMapping {
  nat::MappingEntry e;
  Origin origin = Origin::kConfig;
  bool operator==(const NatMapping&) const = default;
};
struct NatGateway {
  nat::GatewayEntry e;
  Origin origin = Origin::kConfig;
  bool operator==(const NatGateway&) const = default;
};
struct NatSnat {
  nat::SnatEntry e;
  Origin origin = Origin::kConfig;
  bool operator==(const NatSnat&) const = default;
};

struct FwZoneEntry {
  fw::Zone e;
  Origin origin = Origin::kConfig;
  bool operator==(const FwZoneEntry&) const = default;
};
struct FwPolicyEntry {
  fw::Policy e;
  Origin origin = Origin::kConfig;
  bool operator==(const FwPolicyEntry&) const = default;
};

class ControlState {
 public:
  explicit ControlState(std::vector<PortInfo> ports) : ports_(std::move(ports)) {}

  const std::vector<PortInfo>& ports() const { return ports_; }
  const PortInfo* port_by_name(const std::string& name) const;
  const PortInfo* port_by_id(uint16_t id) const;

  const std::vector<AddressEntry>& addresses() const { return addresses_; }
  const std::vector<RouteEntry>& routes() const { return routes_; }
  const std::vector<StaticNeighbor>& neighbors() const { return neighbors_; }
  const std::vector<WgInterfaceEntry>& wg_interfaces() const { return wg_interfaces_; }
  const std::vector<WgPeerEntry>& wg_peers() const { return wg_peers_; }
  const WgInterfaceEntry* wg_interface(const std::string& name) const;
  const std::vector<NatMapping>& nat_mappings() const { return nat_mappings_; }
  const std::vector<NatGateway>& nat_gateways() const { return nat_gateways_; }
  const std::vector<NatSnat>& nat_snats() const { return nat_snats_; }
  const NatMapping* nat_mapping(const std::string& name) const;
  const std::vector<FwZoneEntry>& fw_zones() const { return fw_zones_; }
  const std::vector<FwPolicyEntry>& fw_policies() const { return fw_policies_; }
  const FwZoneEntry* fw_zone(const std::string& name) const;
  // Whether `name` names a zone a policy may use: an explicit zone, the
  // management zone, or the implicit zone of a domain no explicit zone claims.
  bool fw_zone_exists(const std::string& name) const;
  const NatGateway* nat_gateway(uint16_t domain) const;
  // An own address (of a port) in `domain`.
  bool is_own_address(uint16_t domain, Ipv4 a) const;
  // What NAT entry publishes own address `a` of `domain`, if any.
  std::optional<std::string> nat_address_user(uint16_t domain, Ipv4 a) const;

  // Applies one change after checking it against the state as it stands;
  // an error message a user can act on, or nullopt when applied.
  std::optional<std::string> apply(const Change& c, Origin origin);
  // n nat_rewrite changes at once, in one pass over the mappings. They apply
  // together: {a->b, b->a} swaps. On error *bad is the failing change.
  std::optional<std::string> apply_nat_rewrites(const Change* c, size_t n, size_t* bad);

 private:
  std::optional<std::string> apply_address(const Change& c, Origin origin);
  std::optional<std::string> apply_route(const Change& c, Origin origin);
  std::optional<std::string> apply_neighbor(const Change& c, Origin origin);
  std::optional<std::string> apply_wg_interface(const Change& c, Origin origin);
  std::optional<std::string> apply_wg_peer(const Change& c, Origin origin);
  std::optional<std::string> apply_nat_mapping(const Change& c, Origin origin);
  std::optional<std::string> apply_nat_gateway(const Change& c, Origin origin);
  std::optional<std::string> apply_nat_snat(const Change& c, Origin origin);
  std::optional<std::string> apply_nat_rewrite(const Change& c, Origin origin);
  std::optional<std::string> apply_fw_zone(const Change& c, Origin origin);
  std::optional<std::string> apply_fw_policy(const Change& c, Origin origin);
  const AddressEntry* connected_for(uint16_t domain, Ipv4 ip, int port = -1) const;

  std::vector<PortInfo> ports_;
  std::vector<AddressEntry> addresses_;
  std::vector<RouteEntry> routes_;
  std::vector<StaticNeighbor> neighbors_;
  std::vector<WgInterfaceEntry> wg_interfaces_;
  std::vector<WgPeerEntry> wg_peers_;
  std::vector<NatMapping> nat_mappings_;
  std::vector<NatGateway> nat_gateways_;
  std::vector<NatSnat> nat_snats_;
  std::vector<FwZoneEntry> fw_zones_;
  std::vector<FwPolicyEntry> fw_policies_;
};

// kTunnel: encrypt to WireGuard peer `peer` (an allowed prefix of it).
enum class NextHopKind : uint8_t { kForward, kLocal, kBroadcast, kTunnel };

struct NextHop {
  uint16_t port = 0;
  NextHopKind kind = NextHopKind::kForward;
  Ipv4 gateway = 0;                        // 0: on-link
  uint32_t slot = NeighborTable::kNoSlot;  // neighbor slot of `gateway`
  uint32_t peer = UINT32_MAX;              // kTunnel: WgPeer::id
  bool operator==(const NextHop& o) const {
    return port == o.port && kind == o.kind && gateway == o.gateway && peer == o.peer;
  }
};

struct DomainEntry {
  Ipv4Prefix prefix;
  NextHop nh;
  bool operator==(const DomainEntry&) const = default;
};

class DomainTable {
 public:
  static constexpr uint32_t kNoDefault = UINT32_MAX;
  ~DomainTable();

  // Longest-prefix match; false when nothing, not even a default, matches.
  // rte_lpm takes depths 1-32, so 0.0.0.0/0 lives beside it.
  bool lookup(uint32_t dst, uint32_t* nexthop_idx) const {
    if (rte_lpm_lookup(lpm, dst, nexthop_idx) == 0) return true;
    *nexthop_idx = default_nh;
    return default_nh != kNoDefault;
  }

  rte_lpm* lpm = nullptr;
  uint32_t default_nh = kNoDefault;
  std::vector<NextHop> nexthops;
  std::vector<DomainEntry> entries;  // what it was built from, to detect reuse
};

struct PortView {
  bool active = false;
  bool exception = false;
  uint16_t domain = 0;
  uint16_t mtu = 1500;
  rte_ether_addr mac{};
  const DomainTable* table = nullptr;  // the port's domain: the fast path's one pointer
  std::vector<Ipv4Prefix> addresses;   // own addresses on this port (host bits kept)
};

class WgRuntime;
class NatRuntime;
struct WgInterface;
struct WgPeer;

// Where WireGuard listens: UDP to (addr, port) in `domain` is a tunnel message.
struct WgListen {
  Ipv4 addr = 0;
  uint16_t port = 0;  // host order
  uint16_t domain = 0;
  WgInterface* iface = nullptr;
};

struct Generation {
  uint64_t id = 0;
  std::map<uint16_t, std::shared_ptr<DomainTable>> domains;
  std::array<PortView, RTE_MAX_ETHPORTS> ports;
  ControlState state{{}};
  std::vector<WgListen> wg_listen;
  std::vector<WgPeer*> wg_peers;  // by WgPeer::id; nullptr: not in this generation
  std::vector<WgInterface*> wg_interfaces;
  nat::NatView nat;
  FwView fw;
  // Whether workers run the session stage (NAT and the firewall).
  bool sessions_on() const { return nat.enabled() || fw.configured(); }

  bool wg_peer_live(const WgPeer* p, uint32_t id) const {
    return id < wg_peers.size() && wg_peers[id] == p;
  }
  // By domain number, for the fast path (domains are 0-4095).
  std::vector<const DomainTable*> domain_tables;
  const DomainTable* table_of(uint16_t d) const {
    return d < domain_tables.size() ? domain_tables[d] : nullptr;
  }
  const DomainTable* domain(uint16_t d) const {
    if (!domain_tables.empty()) return table_of(d);
    auto it = domains.find(d);
    return it == domains.end() ? nullptr : it->second.get();
  }

  // Source address for packets the dataplane itself sends out of `port`
  // toward `dst`: the port's address in dst's subnet, else its first one.
  std::optional<Ipv4> source_for(uint16_t port, Ipv4 dst) const;
  // The first address of any port in `domain`.
  std::optional<Ipv4> source_in_domain(uint16_t domain) const;
};

// Builds the generation for `state`, reusing unchanged domains of `prev`.
// Fails (with a message) only when DPDK memory runs out.
// WireGuard interfaces and peers get their runtime objects from `wg` (under
// its mutex, held by the caller); nullptr when there are none to build.
// NAT mappings get stable ids and port pools from `nat` (nullptr: NAT off);
// firewall zones, policies and rules ids and tags from `fw` (nullptr: off).
std::unique_ptr<Generation> build_generation(const ControlState& state, const Generation* prev,
                                             uint64_t id, NeighborTable& neighbors,
                                             std::string* error, WgRuntime* wg = nullptr,
                                             NatRuntime* nat = nullptr, FwRuntime* fw = nullptr);

// Fills the NAT view of a generation (ids and pools from `rt`).
bool build_nat_view(const ControlState& state, NatRuntime& rt, nat::NatView* v, std::string* error);

}  // namespace tether::dp
