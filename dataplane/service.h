// The service thread (DPDK's main lcore): everything rare that must not slow
// the workers. It answers and learns ARP, ages neighbors and holds packets
// while their next hop resolves, builds ICMP echo replies and rate-limited
// ICMP errors, fragments packets for smaller egress MTUs, and moves traffic
// for the appliance itself between the ports and the kernel's TAP. It never
// transmits on a data port: finished frames go to a worker's inject ring.
// It is an RCU reader like the workers.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>
#include <vector>

#include "dataplane/counters.h"
#include "dataplane/tables.h"

namespace tether::dp {

class Dataplane;

class Service {
 public:
  explicit Service(Dataplane& dp);
  // Runs until dp.stopping(); returns after freeing what it holds.
  void run();
  // One iteration: punted packets, the kernel's TAP, due timers. Returns how
  // many punted packets it handled. The caller must be an online RCU reader.
  unsigned poll_once();

 private:
  uint64_t now_ms() const;
  void handle(const Generation& g, rte_mbuf* m);
  void handle_arp(const Generation& g, rte_mbuf* m);
  void handle_local(const Generation& g, rte_mbuf* m);
  void icmp_error(const Generation& g, rte_mbuf* m, uint8_t type, uint8_t code, uint16_t mtu);
  void fragment(const Generation& g, rte_mbuf* m);
  void poll_kernel(const Generation& g);
  void to_kernel(rte_mbuf* m);
  void flush_kernel();
  void timers(const Generation& g);

  // Routes a locally originated or kernel packet (no TTL change) in `domain`.
  void route_and_send(const Generation& g, uint16_t domain, rte_mbuf* m);
  // Sends a routed packet to `nexthop` out of `port`, resolving it if needed.
  void send_via(const Generation& g, rte_mbuf* m, uint16_t port, uint32_t nexthop, uint32_t slot);
  void send_arp_request(const Generation& g, uint16_t port, uint32_t target);
  void inject(rte_mbuf* m, uint16_t port);
  void drop(rte_mbuf* m, Drop reason);
  bool take_icmp_token();

  Dataplane& dp_;
  LcoreCounters& c_;
  unsigned next_worker_ = 0;
  uint16_t ip_id_ = 1;
  double icmp_tokens_;
  uint64_t icmp_last_ms_;
  uint64_t last_timer_ms_ = 0;
  uint64_t last_forget_ms_ = 0;
  std::vector<rte_mbuf*> kernel_tx_;
  // Packets held for ARP across all neighbors, and the most it may hold.
  static constexpr unsigned kMaxWaitingTotal = 1024;
  unsigned waiting_total_ = 0;
};

}  // namespace tether::dp
