#include "dataplane/service.h"

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_rcu_qsbr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "dataplane/dataplane.h"
#include "dataplane/log.h"
#include "dataplane/packet.h"

namespace tether::dp {
namespace {

constexpr uint16_t kEth = sizeof(rte_ether_hdr);
constexpr unsigned kIcmpErrorMax = 576;  // RFC 1812 §4.3.2.3: quote as much as fits in 576

bool is_icmp_error(uint8_t type) {
  return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

rte_ipv4_hdr* ip_of(rte_mbuf* m) { return rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEth); }

void finish_ipv4_checksum(rte_ipv4_hdr* ip) {
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
}

}  // namespace

Service::Service(Dataplane& dp)
    : dp_(dp),
      c_(dp.counters()[rte_lcore_id()]),
      icmp_bucket_{static_cast<double>(dp.config().icmp.burst), 0},
      reject_bucket_{static_cast<double>(dp.config().icmp.burst), 0},
      wg_aead_(std::make_unique<wg::Aead>()) {
  icmp_bucket_.last_ms = reject_bucket_.last_ms = now_ms();
}

uint64_t Service::now_ms() const { return dp_.now_ms(); }

void Service::drop(rte_mbuf* m, Drop reason) {
  c_.drop(reason);
  rte_pktmbuf_free(m);
}

void Service::inject(rte_mbuf* m, uint16_t port) {
  auto& workers = dp_.workers();
  meta(m)->out_port = port;
  for (size_t tries = 0; tries < workers.size(); ++tries) {
    Worker& w = *workers[next_worker_++ % workers.size()];
    if (rte_ring_sp_enqueue(w.inject, m) == 0) return;
  }
  drop(m, Drop::inject_ring_full);
}

bool Service::take_icmp_token(TokenBucket& b) {
  const auto& cfg = dp_.config().icmp;
  if (cfg.rate_per_sec == 0) return false;  // ICMP errors switched off
  uint64_t now = now_ms();
  b.tokens = std::min<double>(cfg.burst, b.tokens + (now - b.last_ms) * cfg.rate_per_sec / 1000.0);
  b.last_ms = now;
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

void Service::run() {
  rte_rcu_qsbr* qsbr = dp_.qsbr();
  unsigned id = dp_.service_rcu_id();
  rte_rcu_qsbr_thread_register(qsbr, id);
  rte_rcu_qsbr_thread_online(qsbr, id);
  unsigned idle = 0;
  while (!dp_.stopping()) {
    unsigned n = poll_once();
    rte_rcu_qsbr_quiescent(qsbr, id);
    // The service lcore is not a fast path: back off when idle so that it
    // leaves the CPU to workers and the kernel.
    idle = n ? 0 : idle + 1;
    if (idle > 64) usleep(100);
  }
  flush_kernel();
  for (rte_mbuf* m : wg_deferred_) drop(m, Drop::shutdown);
  wg_deferred_.clear();
  rte_rcu_qsbr_thread_offline(qsbr, id);
  rte_rcu_qsbr_thread_unregister(qsbr, id);
}

unsigned Service::poll_once() {
  const Generation& g = *dp_.current();
  rte_mbuf* pkts[kBurst];
  unsigned n =
      rte_ring_sc_dequeue_burst(dp_.punt_ring(), reinterpret_cast<void**>(pkts), kBurst, nullptr);
  for (unsigned i = 0; i < n; ++i) handle(g, pkts[i]);
  poll_kernel(g);
  flush_kernel();
  wg_poll(g);
  uint64_t now = now_ms();
  if (now - last_timer_ms_ >= 10) {
    timers(g);
    nat_poll(g);
    fw_poll(g);
    last_timer_ms_ = now;
  }
  dp_.nat().sessions().reclaim();
  return n;
}

void Service::handle(const Generation& g, rte_mbuf* m) {
  PacketMeta* md = meta(m);
  switch (md->punt) {
    case Punt::kArp:
      return handle_arp(g, m);
    case Punt::kLocal:
      return handle_local(g, m);
    case Punt::kResolve:
      return send_via(g, m, md->out_port, md->nexthop, md->slot);
    case Punt::kTtlExceeded:
      return icmp_error(g, m, 11, 0, 0);  // RFC 792: TTL exceeded in transit
    case Punt::kNoRoute:
      return icmp_error(g, m, 3, 0, 0);  // net unreachable
    case Punt::kFragNeeded:
      return icmp_error(g, m, 3, 4, md->mtu);  // RFC 1191
    case Punt::kFragment:
      return fragment(g, m);
    case Punt::kReject:
      return fw_reject(g, m);
    case Punt::kWgStage:
    case Punt::kWgFragment:
    case Punt::kWgHandshake:
      wg_deferred_.push_back(m);  // needs the WireGuard runtime's lock: wg_poll
      return;
  }
  drop(m, Drop::shutdown);
}

// --- ARP (RFC 826) ---

void Service::handle_arp(const Generation& g, rte_mbuf* m) {
  if (rte_pktmbuf_data_len(m) < kEth + sizeof(rte_arp_hdr)) return drop(m, Drop::arp_malformed);
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
  uint16_t op = rte_be_to_cpu_16(arp->arp_opcode);
  if (rte_be_to_cpu_16(arp->arp_hardware) != RTE_ARP_HRD_ETHER ||
      rte_be_to_cpu_16(arp->arp_protocol) != RTE_ETHER_TYPE_IPV4 || arp->arp_hlen != 6 ||
      arp->arp_plen != 4 || (op != RTE_ARP_OP_REQUEST && op != RTE_ARP_OP_REPLY))
    return drop(m, Drop::arp_malformed);
  uint16_t port = meta(m)->in_port;
  uint32_t spa = rte_be_to_cpu_32(arp->arp_data.arp_sip);
  uint32_t tpa = rte_be_to_cpu_32(arp->arp_data.arp_tip);
  const PortView& pv = g.ports[port];
  bool for_us = std::any_of(pv.addresses.begin(), pv.addresses.end(),
                            [&](const Ipv4Prefix& a) { return a.addr == tpa; });
  bool sender_ok = spa != 0 && !rte_is_multicast_ether_addr(&arp->arp_data.arp_sha) &&
                   std::any_of(pv.addresses.begin(), pv.addresses.end(),
                               [&](const Ipv4Prefix& a) { return a.contains(spa); });

  // Merge the sender (RFC 826 "merge flag"): update a known entry, create one
  // when the packet is for us.
  std::vector<rte_mbuf*> ready;
  if (sender_ok) {
    std::lock_guard lock(dp_.neighbors().mutex());
    auto& nt = dp_.neighbors();
    uint32_t slot = nt.lookup(port, spa);
    if (slot == NeighborTable::kNoSlot && for_us) slot = nt.ensure_locked(port, spa);
    if (slot != NeighborTable::kNoSlot) {
      NeighborMeta& nm = nt.meta_locked(slot);
      if (nm.state != NeighborState::kPermanent) {
        MacAddr mac;
        std::memcpy(mac.bytes.data(), arp->arp_data.arp_sha.addr_bytes, 6);
        nt.publish_locked(slot, mac, NeighborState::kReachable);
        nm.confirmed_ms = now_ms();
        nm.probes = 0;
        c_.event(Event::arp_learned);
      }
      ready.swap(nm.waiting);
      waiting_total_ -= static_cast<unsigned>(ready.size());
    }
  }
  for (rte_mbuf* w : ready) {
    auto* weth = rte_pktmbuf_mtod(w, rte_ether_hdr*);
    uint16_t out = meta(w)->out_port;
    if (!dp_.neighbors().resolve(meta(w)->slot, &weth->dst_addr)) {
      drop(w, Drop::neighbor_unresolved);
      continue;
    }
    weth->src_addr = g.ports[out].mac;
    inject(w, out);
  }

  if (op != RTE_ARP_OP_REQUEST) {
    rte_pktmbuf_free(m);
    return;
  }
  if (!for_us) return drop(m, Drop::arp_not_for_us);
  // Turn the request into the reply in place.
  arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
  arp->arp_data.arp_tha = arp->arp_data.arp_sha;
  arp->arp_data.arp_tip = arp->arp_data.arp_sip;
  arp->arp_data.arp_sha = pv.mac;
  arp->arp_data.arp_sip = rte_cpu_to_be_32(tpa);
  eth->dst_addr = arp->arp_data.arp_tha;
  eth->src_addr = pv.mac;
  rte_pktmbuf_trim(m, rte_pktmbuf_pkt_len(m) - (kEth + sizeof(rte_arp_hdr)));
  c_.event(Event::arp_replies_sent);
  inject(m, port);
}

void Service::send_arp_request(const Generation& g, uint16_t port, uint32_t target) {
  auto src = g.source_for(port, target);
  if (!src) return;
  rte_mbuf* m = rte_pktmbuf_alloc(dp_.pool());
  if (!m) {
    c_.drop(Drop::no_buffers);
    return;
  }
  auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_append(m, kEth + sizeof(rte_arp_hdr)));
  auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
  std::memset(&eth->dst_addr, 0xff, RTE_ETHER_ADDR_LEN);
  eth->src_addr = g.ports[port].mac;
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
  arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
  arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  arp->arp_hlen = 6;
  arp->arp_plen = 4;
  arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
  arp->arp_data.arp_sha = g.ports[port].mac;
  arp->arp_data.arp_sip = rte_cpu_to_be_32(*src);
  std::memset(&arp->arp_data.arp_tha, 0, RTE_ETHER_ADDR_LEN);
  arp->arp_data.arp_tip = rte_cpu_to_be_32(target);
  c_.event(Event::arp_requests_sent);
  inject(m, port);
}

void Service::send_via(const Generation& g, rte_mbuf* m, uint16_t port, uint32_t nexthop,
                       uint32_t slot) {
  auto& nt = dp_.neighbors();
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  meta(m)->out_port = port;
  bool request = false;
  {
    std::lock_guard lock(nt.mutex());
    // A slot found by a worker may have been forgotten while the packet sat
    // in the ring: trust it only if it still serves this next hop.
    if (slot != NeighborTable::kNoSlot && !nt.serves(slot, nexthop, port))
      slot = NeighborTable::kNoSlot;
    if (slot == NeighborTable::kNoSlot) slot = nt.ensure_locked(port, nexthop);
    if (slot == NeighborTable::kNoSlot) {
      drop(m, Drop::neighbor_table_full);
      return;
    }
    meta(m)->slot = slot;
    if (!nt.resolve(slot, &eth->dst_addr)) {
      NeighborMeta& nm = nt.meta_locked(slot);
      // Bounded per neighbor and in total, so that traffic to many silent
      // addresses cannot pin the mbuf pool.
      if (nm.waiting.size() >= dp_.config().arp.queue_per_neighbor ||
          waiting_total_ >= kMaxWaitingTotal) {
        drop(m, Drop::neighbor_queue_full);
      } else {
        nm.waiting.push_back(m);
        ++waiting_total_;
      }
      uint64_t now = now_ms();
      if (nm.probes == 0 || now - nm.probe_ms >= dp_.config().arp.retry_ms) {
        if (nm.probes == 0) nm.probes = 1;
        nm.probe_ms = now;
        request = true;
      }
      m = nullptr;
    }
  }
  if (request) send_arp_request(g, port, nexthop);
  if (!m) return;
  eth->src_addr = g.ports[port].mac;
  inject(m, port);
}

void Service::route_and_send(const Generation& g, uint16_t domain, rte_mbuf* m) {
  auto it = g.domains.find(domain);
  if (it == g.domains.end()) return drop(m, Drop::no_route);
  rte_ipv4_hdr* ip = ip_of(m);
  uint32_t dst = rte_be_to_cpu_32(ip->dst_addr);
  uint32_t idx;
  if (!it->second->lookup(dst, &idx)) return drop(m, Drop::no_route);
  const NextHop& nh = it->second->nexthops[idx];
  if (nh.kind == NextHopKind::kTunnel) {
    meta(m)->domain = domain;
    return wg_route_inner(g, nh.peer, m);
  }
  if (nh.kind != NextHopKind::kForward) return drop(m, Drop::ipv4_bad_destination);
  if (rte_be_to_cpu_16(ip->total_length) > g.ports[nh.port].mtu) {
    if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG))
      return drop(m, Drop::mtu_exceeded_df);
    PacketMeta* md = meta(m);
    md->out_port = nh.port;
    md->nexthop = nh.gateway ? nh.gateway : dst;
    md->slot = nh.slot;
    md->mtu = g.ports[nh.port].mtu;
    return fragment(g, m);
  }
  send_via(g, m, nh.port, nh.gateway ? nh.gateway : dst, nh.slot);
}

// --- ICMP ---

void Service::icmp_error(const Generation& g, rte_mbuf* m, uint8_t type, uint8_t code,
                         uint16_t mtu) {
  rte_ipv4_hdr* orig = ip_of(m);
  uint16_t in_port = meta(m)->in_port;
  unsigned hdr_len = (orig->version_ihl & 0xf) * 4u;
  // RFC 1812 §4.3.2.7: no errors about ICMP errors or non-first fragments.
  if (orig->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_OFFSET_MASK)) {
    rte_pktmbuf_free(m);
    return;
  }
  if (orig->next_proto_id == IPPROTO_ICMP) {
    auto* ic = reinterpret_cast<rte_icmp_hdr*>(reinterpret_cast<uint8_t*>(orig) + hdr_len);
    if (rte_pktmbuf_data_len(m) < kEth + hdr_len + 1 || is_icmp_error(ic->icmp_type)) {
      rte_pktmbuf_free(m);
      return;
    }
  }
  uint32_t to = rte_be_to_cpu_32(orig->src_addr);
  uint16_t domain = meta(m)->domain;
  // The error packet about `m`, from `from` to `to`; consumes m.
  auto build = [&](uint32_t from) -> rte_mbuf* {
    if (!take_icmp_token(rejecting_ ? reject_bucket_ : icmp_bucket_)) {
      drop(m, Drop::icmp_rate_limited);
      return nullptr;
    }
    unsigned quote = std::min<unsigned>(rte_pktmbuf_data_len(m) - kEth,
                                        kIcmpErrorMax - sizeof(rte_ipv4_hdr) - 8);
    rte_mbuf* e = rte_pktmbuf_alloc(dp_.pool());
    if (!e) {
      drop(m, Drop::no_buffers);
      return nullptr;
    }
    auto* eth = reinterpret_cast<rte_ether_hdr*>(
        rte_pktmbuf_append(e, kEth + sizeof(rte_ipv4_hdr) + 8 + quote));
    eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
    auto* icmp = reinterpret_cast<uint8_t*>(ip + 1);
    std::memcpy(icmp + 8, orig, quote);
    rte_pktmbuf_free(m);
    ip->version_ihl = 0x45;
    ip->type_of_service = 0xc0;  // RFC 1812 §4.3.2.5: internetwork control
    ip->total_length = rte_cpu_to_be_16(sizeof(rte_ipv4_hdr) + 8 + quote);
    ip->packet_id = rte_cpu_to_be_16(ip_id_++);
    ip->fragment_offset = 0;
    ip->time_to_live = 64;
    ip->next_proto_id = IPPROTO_ICMP;
    ip->src_addr = rte_cpu_to_be_32(from);
    ip->dst_addr = rte_cpu_to_be_32(to);
    finish_ipv4_checksum(ip);
    icmp[0] = type;
    icmp[1] = code;
    icmp[2] = icmp[3] = 0;
    icmp[4] = icmp[5] = 0;
    icmp[6] = static_cast<uint8_t>(mtu >> 8);  // RFC 1191: next-hop MTU
    icmp[7] = static_cast<uint8_t>(mtu);
    uint16_t ck = static_cast<uint16_t>(~rte_raw_cksum(icmp, 8 + quote));
    std::memcpy(icmp + 2, &ck, 2);
    c_.event(Event::icmp_errors_sent);
    meta(e)->in_port = in_port;
    return e;
  };
  // RFC 1812 §4.3.2.4: the source is an address of the port the error leaves
  // by. No error toward a destination we cannot reach, a broadcast or
  // ourselves (§4.3.2.7); the original was counted when it was dropped.
  auto dt = g.domains.find(domain);
  uint32_t idx;
  if (dt == g.domains.end() || !dt->second->lookup(to, &idx)) {
    rte_pktmbuf_free(m);
    return;
  }
  NextHopKind kind = dt->second->nexthops[idx].kind;
  if (kind == NextHopKind::kLocal && g.nat.enabled()) {
    // `m` was translated on its way in and its source is now ours (the
    // gateway's inner address): the error goes back through the session
    // like one from the next hop would (RFC 5508 §4), to the real source.
    if (rte_mbuf* e = build(to)) {
      if (auto d = nat_translate_error(g, e, domain)) return route_and_send(g, *d, e);
      rte_pktmbuf_free(e);
    }
    return;
  }
  if (kind != NextHopKind::kForward && kind != NextHopKind::kTunnel) {
    rte_pktmbuf_free(m);
    return;
  }
  // Toward a tunnel the error comes from one of our addresses in that domain.
  auto from = kind == NextHopKind::kTunnel ? g.source_in_domain(domain)
                                           : g.source_for(dt->second->nexthops[idx].port, to);
  if (!from) {
    rte_pktmbuf_free(m);
    return;
  }
  if (rte_mbuf* e = build(*from)) route_and_send(g, domain, e);
}

void Service::handle_local(const Generation& g, rte_mbuf* m) {
  rte_ipv4_hdr* ip = ip_of(m);
  unsigned total = rte_be_to_cpu_16(ip->total_length);
  bool first_and_only = (ip->fragment_offset &
                         rte_cpu_to_be_16(RTE_IPV4_HDR_OFFSET_MASK | RTE_IPV4_HDR_MF_FLAG)) == 0;
  if (ip->next_proto_id == IPPROTO_ICMP && first_and_only && total >= sizeof(*ip) + 8) {
    auto* icmp = reinterpret_cast<rte_icmp_hdr*>(ip + 1);
    if (icmp->icmp_type == RTE_IP_ICMP_ECHO_REQUEST && icmp->icmp_code == 0) {
      // The message may span chained mbufs (jumbo frames).
      uint16_t sum = 0;
      if (rte_raw_cksum_mbuf(m, kEth + sizeof(*ip), total - sizeof(*ip), &sum) != 0 ||
          sum != 0xffff)
        return drop(m, Drop::ipv4_bad_checksum);
      // Echo reply in place (RFC 792): swap addresses, type 8 → 0.
      uint16_t old_word = *reinterpret_cast<uint16_t*>(icmp);
      icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
      icmp->icmp_cksum =
          csum_replace16(icmp->icmp_cksum, old_word, *reinterpret_cast<uint16_t*>(icmp));
      rte_be32_t src = ip->src_addr;
      ip->src_addr = ip->dst_addr;
      ip->dst_addr = src;
      ip->time_to_live = 64;
      finish_ipv4_checksum(ip);
      c_.event(Event::icmp_echo_replies);
      return route_and_send(g, meta(m)->domain, m);
    }
  }
  auto tap = dp_.exception_port();
  if (!tap || meta(m)->domain != 0) return drop(m, Drop::local_unsupported);
  to_kernel(m);
}

// --- fragmentation (RFC 791 §3.2) ---

bool Service::make_fragments(rte_mbuf* m, uint16_t mtu, std::vector<rte_mbuf*>* out) {
  PacketMeta md = *meta(m);
  rte_ipv4_hdr* ip = ip_of(m);
  unsigned hdr_len = (ip->version_ihl & 0xf) * 4u;
  unsigned total = rte_be_to_cpu_16(ip->total_length);
  unsigned payload = total - hdr_len;
  // Each fragment is one fresh single-segment mbuf: never larger than its room.
  unsigned room = RTE_MBUF_DEFAULT_DATAROOM - kEth - hdr_len;
  unsigned chunk = (std::min<unsigned>(mtu - hdr_len, room) / 8) * 8;
  uint16_t frag = rte_be_to_cpu_16(ip->fragment_offset);
  unsigned base = (frag & RTE_IPV4_HDR_OFFSET_MASK) * 8u;
  bool orig_more = frag & RTE_IPV4_HDR_MF_FLAG;
  auto fail = [&](rte_mbuf* f) {
    if (f) rte_pktmbuf_free(f);
    for (auto* x : *out) rte_pktmbuf_free(x);
    out->clear();
    drop(m, Drop::fragment_failed);
    return false;
  };
  for (unsigned off = 0; off < payload; off += chunk) {
    unsigned len = std::min(chunk, payload - off);
    rte_mbuf* f = rte_pktmbuf_alloc(dp_.pool());
    if (!f) return fail(nullptr);
    auto* dst = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(f, kEth + hdr_len + len));
    if (!dst) return fail(f);
    std::memcpy(dst, rte_pktmbuf_mtod(m, uint8_t*), kEth + hdr_len);
    // rte_pktmbuf_read copies only when the range spans segments.
    const void* src = rte_pktmbuf_read(m, kEth + hdr_len + off, len, dst + kEth + hdr_len);
    if (!src) return fail(f);
    if (src != dst + kEth + hdr_len) std::memcpy(dst + kEth + hdr_len, src, len);
    auto* fip = reinterpret_cast<rte_ipv4_hdr*>(dst + kEth);
    bool more = off + len < payload || orig_more;
    fip->total_length = rte_cpu_to_be_16(hdr_len + len);
    fip->fragment_offset = rte_cpu_to_be_16(((base + off) / 8) | (more ? RTE_IPV4_HDR_MF_FLAG : 0));
    fip->hdr_checksum = 0;
    fip->hdr_checksum = static_cast<uint16_t>(~rte_raw_cksum(fip, hdr_len));
    *meta(f) = md;
    out->push_back(f);
  }
  rte_pktmbuf_free(m);
  c_.event(Event::fragmented);
  return true;
}

void Service::fragment(const Generation& g, rte_mbuf* m) {
  PacketMeta md = *meta(m);
  std::vector<rte_mbuf*> out;
  if (!make_fragments(m, md.mtu, &out)) return;
  for (auto* f : out) send_via(g, f, md.out_port, md.nexthop, md.slot);
}

// --- exception path: the kernel's TAP ---

void Service::to_kernel(rte_mbuf* m) {
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  rte_eth_macaddr_get(*dp_.exception_port(), &eth->dst_addr);
  c_.event(Event::to_kernel);
  kernel_tx_.push_back(m);
  if (kernel_tx_.size() >= kBurst) flush_kernel();
}

void Service::flush_kernel() {
  if (kernel_tx_.empty()) return;
  uint16_t n = static_cast<uint16_t>(kernel_tx_.size());
  uint16_t sent = rte_eth_tx_burst(*dp_.exception_port(), 0, kernel_tx_.data(), n);
  for (uint16_t i = sent; i < n; ++i) drop(kernel_tx_[i], Drop::exception_tx_failed);
  kernel_tx_.clear();
}

void Service::poll_kernel(const Generation& g) {
  auto tap = dp_.exception_port();
  if (!tap) return;
  rte_mbuf* pkts[kBurst];
  uint16_t n = rte_eth_rx_burst(*tap, 0, pkts, kBurst);
  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    c_.event(Event::from_kernel);
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    // The kernel is trusted no more than the wire: a well-formed IPv4 header
    // without options, a length that fits the frame, a unicast destination.
    bool ok = rte_pktmbuf_data_len(m) >= kEth + sizeof(rte_ipv4_hdr) &&
              eth->ether_type == rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
    if (ok) {
      rte_ipv4_hdr* ip = ip_of(m);
      unsigned total = rte_be_to_cpu_16(ip->total_length);
      uint32_t dst = rte_be_to_cpu_32(ip->dst_addr);
      ok = ip->version_ihl == 0x45 && total >= sizeof(rte_ipv4_hdr) &&
           total <= rte_pktmbuf_pkt_len(m) - kEth && (dst >> 24) != 0 && (dst >> 24) != 127 &&
           dst < 0xe0000000u;
      if (ok && total < rte_pktmbuf_pkt_len(m) - kEth)
        rte_pktmbuf_trim(m, rte_pktmbuf_pkt_len(m) - kEth - total);
    }
    if (!ok) {
      drop(m, Drop::exception_bad_frame);
      continue;
    }
    meta(m)->in_port = *tap;
    meta(m)->domain = 0;
    route_and_send(g, 0, m);
  }
}

// --- neighbor timers ---

void Service::timers(const Generation& g) {
  const ArpConfig& cfg = dp_.config().arp;
  uint64_t now = now_ms();
  auto& nt = dp_.neighbors();
  struct Probe {
    uint16_t port;
    uint32_t ip;
  };
  std::vector<Probe> probes;
  std::vector<rte_mbuf*> failed;
  std::vector<rte_mbuf*> ready;
  // Once a second: forget addresses that never answered and that no route
  // names as its gateway, so that traffic to many silent addresses cannot
  // fill the table for good.
  bool forget = now - last_forget_ms_ >= 1000;
  std::vector<uint8_t> referenced;
  if (forget) {
    last_forget_ms_ = now;
    referenced.assign(nt.used(), 0);
    for (auto& [domain, table] : g.domains)
      for (auto& nh : table->nexthops)
        if (nh.slot < referenced.size()) referenced[nh.slot] = 1;
  }
  {
    std::lock_guard lock(nt.mutex());
    if (forget) nt.collect_locked(dp_.qsbr());
    for (uint32_t s = 0; s < nt.used(); ++s) {
      NeighborMeta& nm = nt.meta_locked(s);
      if (!nm.in_use) continue;
      if (forget && nm.state == NeighborState::kIncomplete && nm.waiting.empty() &&
          s < referenced.size() && !referenced[s] &&
          now - std::max(nm.created_ms, nm.probe_ms) >= cfg.forget_ms) {
        nt.retire_locked(s, dp_.qsbr());
        c_.event(Event::neighbors_forgotten);
        continue;
      }
      // Resolved some other way (a static entry pinned by the API): release.
      if (nm.state != NeighborState::kIncomplete && !nm.waiting.empty()) {
        waiting_total_ -= static_cast<unsigned>(nm.waiting.size());
        ready.insert(ready.end(), nm.waiting.begin(), nm.waiting.end());
        nm.waiting.clear();
      }
      switch (nm.state) {
        case NeighborState::kPermanent:
          break;
        case NeighborState::kReachable:
          if (now - nm.confirmed_ms >= cfg.reachable_ms) {
            nt.publish_locked(s, nt.mac_of(s), NeighborState::kStale);
            nm.probes = 0;
          }
          break;
        case NeighborState::kStale:
          // Keep forwarding with the old MAC while asking again.
          if (nm.probes == 0 || now - nm.probe_ms >= cfg.retry_ms) {
            if (nm.probes >= cfg.retries) {
              nt.publish_locked(s, {}, NeighborState::kIncomplete);
              nm.probes = 0;
              c_.event(Event::neighbors_expired);
            } else {
              ++nm.probes;
              nm.probe_ms = now;
              probes.push_back({nm.port, nm.ip});
            }
          }
          break;
        case NeighborState::kIncomplete:
          if (nm.waiting.empty() || now - nm.probe_ms < cfg.retry_ms) break;
          if (nm.probes >= cfg.retries) {
            waiting_total_ -= static_cast<unsigned>(nm.waiting.size());
            failed.insert(failed.end(), nm.waiting.begin(), nm.waiting.end());
            nm.waiting.clear();
            nm.probes = 0;
          } else {
            ++nm.probes;
            nm.probe_ms = now;
            probes.push_back({nm.port, nm.ip});
          }
          break;
      }
    }
  }
  for (rte_mbuf* w : ready) {
    auto* weth = rte_pktmbuf_mtod(w, rte_ether_hdr*);
    if (!nt.resolve(meta(w)->slot, &weth->dst_addr)) {
      drop(w, Drop::neighbor_unresolved);
      continue;
    }
    weth->src_addr = g.ports[meta(w)->out_port].mac;
    inject(w, meta(w)->out_port);
  }
  for (auto& p : probes) send_arp_request(g, p.port, p.ip);
  // RFC 1812 §4.3.3.1: host unreachable for what could not be delivered. The
  // waiting packets already had their TTL decremented; the quote shows that.
  for (size_t i = 0; i < failed.size(); ++i) {
    c_.drop(Drop::neighbor_unresolved);
    if (i == 0)
      icmp_error(g, failed[i], 3, 1, 0);
    else
      rte_pktmbuf_free(failed[i]);
  }
}

}  // namespace tether::dp
