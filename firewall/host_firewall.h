// The appliance's host firewall, through libnftables (docs/decisions/007-firewall.md).
// Owned by the process that drives the interfaces; any thread, never the
// fast path; one object per process, not thread-safe (callers serialise).
//
// InterfaceClaim: claims the kernel interfaces that the dataplane drives
// through packet sockets (net_af_packet), with a netdev ingress chain that
// drops every frame before the kernel's IP stack sees it. Packet taps run
// before the ingress hook, so the dataplane still receives everything, while
// the kernel can no longer answer ARP or IP on the dataplane's behalf.
//
// HostFirewall: guards the appliance's own kernel side (the management
// interface, the exception path's TAP) with table `inet <table>`: on the
// guarded interfaces only established/related traffic, ICMP echo requests
// and the management services from the admin ranges (new connections
// rate-limited) and the extra rules are accepted, everything else is
// dropped (IPv4 only: the admin ranges are IPv4, so is every service).
// Traffic on other interfaces is not touched. A policy is applied as one
// nftables transaction: it takes effect whole or not at all, and a refused
// one (with libnftables' message) leaves the previous in force.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/net.h"

struct nft_ctx;

namespace tether::fw {

class InterfaceClaim {
 public:
  InterfaceClaim() = default;
  ~InterfaceClaim();
  InterfaceClaim(const InterfaceClaim&) = delete;
  InterfaceClaim& operator=(const InterfaceClaim&) = delete;

  // Installs table `netdev <table>` with one ingress drop chain per interface,
  // replacing a table of that name left by an earlier run.
  bool claim(const std::string& table, const std::vector<std::string>& ifnames, std::string* error);
  // Removes the table (also done by the destructor).
  void release();

 private:
  bool run(const std::string& cmd, std::string* error);
  nft_ctx* ctx_ = nullptr;
  std::string table_;
};

struct HostPolicy {
  struct Service {
    uint8_t proto = 6;  // 6 (TCP) or 17 (UDP)
    uint16_t port = 0;
    bool operator==(const Service&) const = default;
  };
  std::vector<std::string> interfaces;  // guarded interfaces; empty: the policy is off
  std::vector<Ipv4Prefix> admin;        // who may reach the management services
  std::vector<Service> services;        // management services (e.g. tcp 443, tcp 22)
  uint32_t new_per_second = 20;         // new connections per second to the services (all sources)
  uint32_t burst = 40;                  // packets above the rate allowed in a burst (>= 1)
  bool allow_ping = true;  // ICMP echo requests from the admin ranges (same rate, own budget)
  // Extra rules in nft syntax, appended to the guard chain before its final
  // drop (e.g. "udp dport 51820 accept"), one rule each; libnftables judges
  // them.
  std::vector<std::string> extra;
  bool operator==(const HostPolicy&) const = default;
};

// nullopt or a message for what libnftables should never see: an interface
// name that is malformed, an admin range with host bits, a service that is
// not TCP/UDP or has port 0, a rate or burst of 0, an extra rule that is not
// one rule of the chain (a newline, ';', '#', unbalanced braces, include or
// define).
std::optional<std::string> validate(const HostPolicy& p);

class HostFirewall {
 public:
  explicit HostFirewall(std::string table = "tether_host") : table_(std::move(table)) {}
  ~HostFirewall();  // removes the table
  HostFirewall(const HostFirewall&) = delete;
  HostFirewall& operator=(const HostFirewall&) = delete;

  // Replaces the live policy in one transaction (also a table of this name
  // left by an earlier run). A policy without interfaces removes the table.
  // false and a message (the validation's, or libnftables' own) when
  // refused; the previous policy then stays in force, and so does `policy()`.
  bool apply(const HostPolicy& p, std::string* error);
  const HostPolicy& policy() const { return policy_; }
  // The ruleset as the kernel reports it (`nft list table inet <table>`),
  // empty when no policy is in force.
  std::string ruleset(std::string* error);
  // The nft script apply() runs for `p` (for tests and the API's dry look).
  std::string script(const HostPolicy& p) const;
  // Deletes the table if this object installed it; policy() is then HostPolicy{}.
  void remove();

 private:
  bool run(const std::string& cmd, std::string* out, std::string* error);
  nft_ctx* ctx_ = nullptr;
  std::string table_;
  HostPolicy policy_;
  bool installed_ = false;
};

}  // namespace tether::fw
