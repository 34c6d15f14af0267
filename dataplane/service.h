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
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "dataplane/counters.h"
#include "dataplane/tables.h"
#include "dataplane/wireguard.h"

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
  // Splits `m` (consumed) into fragments of at most `mtu`; false (counted) if it could not.
  bool make_fragments(rte_mbuf* m, uint16_t mtu, std::vector<rte_mbuf*>* out);
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
  // A token of the ICMP error rate (icmp.rate_per_sec, icmp.burst), from
  // the bucket of the errors the routing raises or from the firewall's
  // rejects' own, so that a scan of `reject` rules never starves the
  // errors (fragmentation needed, time exceeded) real traffic depends on.
  struct TokenBucket {
    double tokens = 0;
    uint64_t last_ms = 0;
  };
  bool take_icmp_token(TokenBucket& b);
  bool take_icmp_token() { return take_icmp_token(icmp_bucket_); }

  // --- WireGuard (dataplane/wg_service.cc), under WgRuntime::mutex() ---
  void wg_poll(const Generation& g);
  // NAT housekeeping: expire a slice of the session table, free what the
  // workers can no longer see (dataplane/nat_service.cc).
  void nat_poll(const Generation& g);
  // Translates an ICMP error the service made about a packet that NAT had
  // translated (it is addressed to our gateway address); the domain to
  // route it in, or nullopt when no session matches.
  std::optional<uint16_t> nat_translate_error(const Generation& g, rte_mbuf* e, uint16_t domain);
  // A packet a firewall rule rejects: a TCP reset (RFC 9293 §3.10.7.1) for
  // TCP, ICMP communication administratively prohibited (RFC 1812 §5.2.7.1)
  // otherwise; rate-limited like ICMP errors (dataplane/fw_service.cc).
  void fw_reject(const Generation& g, rte_mbuf* m);
  // Writes the workers' firewall log records to the log.
  void fw_poll(const Generation& g);
  void wg_handshake(const Generation& g, rte_mbuf* m, bool under_load, uint64_t now);
  void wg_initiation(const Generation& g, WgInterface* iface, const uint8_t* msg, uint64_t src,
                     uint64_t now);
  void wg_response(const Generation& g, WgInterface* iface, const uint8_t* msg, uint64_t src,
                   uint64_t now);
  void wg_timers(const Generation& g, uint64_t now);
  void wg_send_initiation(const Generation& g, WgPeer* p, uint64_t now);
  void wg_send_keepalive(const Generation& g, WgPeer* p, uint64_t now);
  void wg_send_message(const Generation& g, const WgInterface* iface, uint64_t to, const void* msg,
                       size_t len);
  void wg_cookie_reply(const Generation& g, WgInterface* iface, const uint8_t* msg, size_t len,
                       uint32_t sender_index, uint64_t src, uint64_t now);
  // Encrypts an inner IPv4 packet to `p` and sends it, or stages it.
  void wg_send_inner(const Generation& g, WgPeer* p, rte_mbuf* m, uint64_t now);
  void wg_stage(const Generation& g, WgPeer* p, rte_mbuf* m, uint64_t now);
  void wg_flush_staged(const Generation& g, WgPeer* p, uint64_t now);
  void wg_drop_staged(WgPeer* p);
  void wg_install(WgPeer* p, wg::SessionKeys& keys, uint64_t now);
  // The peer a punted inner packet was meant for, if the current generation
  // still routes its destination there.
  WgPeer* wg_peer_for(const Generation& g, rte_mbuf* m);
  // Punted WireGuard work that needs the runtime lock (kWgStage, kWgFragment).
  void wg_punted(const Generation& g, rte_mbuf* m);
  // Sends or fragments a packet routed to a tunnel (local replies, kernel traffic).
  void wg_route_inner(const Generation& g, uint32_t peer, rte_mbuf* m);

  Dataplane& dp_;
  LcoreCounters& c_;
  unsigned next_worker_ = 0;
  uint16_t ip_id_ = 1;
  TokenBucket icmp_bucket_;
  TokenBucket reject_bucket_;
  bool rejecting_ = false;  // icmp_error() answers a firewall reject: its bucket
  uint64_t last_timer_ms_ = 0;
  uint64_t last_forget_ms_ = 0;
  std::vector<rte_mbuf*> kernel_tx_;
  // Packets held for ARP across all neighbors, and the most it may hold.
  static constexpr unsigned kMaxWaitingTotal = 1024;
  unsigned waiting_total_ = 0;

  std::unique_ptr<wg::Aead> wg_aead_;
  uint64_t wg_load_window_ms_ = 0;
  uint32_t wg_load_count_ = 0;
  uint64_t wg_under_load_until_ms_ = 0;
  uint64_t wg_last_timers_ms_ = 0;
  uint64_t wg_map_generation_ = 0;
  std::map<std::pair<const WgInterface*, wg::Key>, WgPeer*> wg_by_key_;
  std::vector<rte_mbuf*> wg_deferred_;  // punted WireGuard work that found the lock taken
};

}  // namespace tether::dp
