// The dataplane's boot configuration (docs/config.md), parsed and validated
// from JSON before EAL starts. Plain data; the main thread owns it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/net.h"
#include "firewall/host_firewall.h"
#include "firewall/rules.h"
#include "nat/mapping.h"
#include "nat/session.h"
#include "tunnel/timers.h"

namespace tether::dp {

struct PortConfig {
  std::string name;
  std::string device;  // vdev string ("net_af_packet0,iface=x") or PCI address
  uint16_t domain = 0;
  std::vector<Ipv4Prefix> addresses;  // interface addresses: host bits kept
  uint16_t mtu = 1500;
  std::optional<MacAddr> mac;

  bool is_vdev() const { return device.rfind("net_", 0) == 0; }
  std::string device_name() const { return device.substr(0, device.find(',')); }
};

struct RouteConfig {
  uint16_t domain = 0;
  Ipv4Prefix prefix;
  std::optional<Ipv4> via;
  std::string port;  // empty: derived from the connected subnet of `via`
};

struct NeighborConfig {
  std::string port;
  Ipv4 ip = 0;
  MacAddr mac;
};

struct IcmpConfig {
  uint32_t rate_per_sec = 100;
  uint32_t burst = 50;
};

struct ArpConfig {
  uint32_t reachable_ms = 30000;
  uint32_t retry_ms = 1000;
  uint32_t retries = 3;
  uint32_t forget_ms = 30000;
  uint32_t queue_per_neighbor = 4;
  uint32_t max_neighbors = 65536;
};

struct WireguardConfig {
  // Handshake messages per second above which an interface is "under load"
  // and asks initiators for a cookie first (WireGuard paper §5.3).
  uint32_t under_load_per_sec = 1000;
  wg::TimerConfig timers;  // the protocol's constants unless a test shortens them
};

// NAT (docs/config.md, "nat"): table sizes, timeouts, and entries applied at
// boot with origin "config".
struct NatConfig {
  uint32_t max_sessions = 262144;
  uint32_t max_mappings = 65536;
  nat::Timeouts timeouts;
  std::vector<nat::GatewayEntry> gateways;
  std::vector<nat::MappingEntry> mappings;
  std::vector<nat::SnatEntry> snat;
};

// The firewall (docs/config.md, "firewall"): limits, logging, and zones and
// policies applied at boot with origin "config".
struct FirewallConfig {
  uint32_t max_rules = 65536;  // rules with counters (stable ids) at once
  uint32_t log_per_sec = 100;  // log lines per second per worker
  // TCP sessions check flags, states and windows (firewall/tcp_track.h).
  // Off only where a connection's two directions do not both pass the
  // gateway (asymmetric routing) or in tests that send one side first.
  bool tcp_window_tracking = true;
  // A TCP segment without a SYN may start a session (that only filters) if
  // the policy accepts it: connections survive turning the firewall on and
  // restarts, at the price of windows that are not checked for them.
  bool tcp_pickup = false;
  std::vector<fw::Zone> zones;
  std::vector<fw::Policy> policies;
};

struct TestingConfig {
  bool clock_control = false;  // enables clock.advance in the API
  // NAT ports from the bottom of each pool up, not from a random place, so
  // that pcap cases can expect them. Never in production.
  bool nat_sequential_ports = false;
};

struct DataplaneConfig {
  std::string api_socket = "/run/tether/dataplane.sock";
  std::vector<std::string> eal_args = {"--in-memory", "--no-pci", "--no-telemetry"};
  std::optional<unsigned> service_lcore;
  std::vector<unsigned> worker_lcores;
  uint32_t mbufs = 16383;
  std::vector<PortConfig> ports;
  std::optional<std::string> exception_device;
  std::vector<RouteConfig> routes;
  std::vector<NeighborConfig> neighbors;
  IcmpConfig icmp;
  ArpConfig arp;
  WireguardConfig wireguard;
  NatConfig nat;
  FirewallConfig firewall;
  std::optional<fw::HostPolicy> host_firewall;  // the appliance's own (libnftables)
  TestingConfig testing;
};

// Parses the JSON text; on failure returns nullopt and sets `error` to a
// message naming the offending field.
std::optional<DataplaneConfig> parse_config(const std::string& json_text, std::string* error);
std::optional<DataplaneConfig> load_config(const std::string& path, std::string* error);

}  // namespace tether::dp
