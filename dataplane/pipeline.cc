// The worker fast path: parse → validate → route → TTL → neighbor → TX.
// Three passes over a burst (classify each packet; look up the on-link next
// hops together; rewrite and buffer), then one enqueue of everything the
// service thread must see and one bulk free of the drops.
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_lpm.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>

#include "dataplane/dataplane.h"
#include "dataplane/log.h"
#include "dataplane/packet.h"
#include "dataplane/worker.h"

namespace tether::dp {
namespace {

constexpr uint16_t kEtherHdr = sizeof(rte_ether_hdr);

inline bool martian(uint32_t a) {
  uint32_t top = a >> 24;
  return top == 0 || top == 127 || a >= 0xe0000000u;  // this-net, loopback, multicast, E, bcast
}

enum class Verdict : uint8_t { kForward, kPunt, kDrop };

struct Classified {
  Verdict verdict;
  Drop drop;
};

// Validates the IPv4 header and routes it. On kForward, meta(m) holds the
// egress port and next hop (slot kNoSlot when it must be looked up).
inline Classified classify_ipv4(const Generation& g, const DomainTable& table, rte_mbuf* m,
                                LcoreCounters& c) {
  uint32_t l3_len = rte_pktmbuf_data_len(m) - kEtherHdr;
  if (l3_len < sizeof(rte_ipv4_hdr)) return {Verdict::kDrop, Drop::ipv4_truncated};
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEtherHdr);
  if ((ip->version_ihl >> 4) != 4) return {Verdict::kDrop, Drop::ipv4_bad_version};
  unsigned hdr_len = (ip->version_ihl & 0xf) * 4u;
  if (hdr_len < sizeof(rte_ipv4_hdr)) return {Verdict::kDrop, Drop::ipv4_bad_ihl};
  if (hdr_len > l3_len) return {Verdict::kDrop, Drop::ipv4_truncated};
  uint16_t total = rte_be_to_cpu_16(ip->total_length);
  if (total < hdr_len) return {Verdict::kDrop, Drop::ipv4_bad_length};
  uint32_t frame_l3 = rte_pktmbuf_pkt_len(m) - kEtherHdr;
  if (total > frame_l3) return {Verdict::kDrop, Drop::ipv4_truncated};
  uint64_t ck = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
  if (ck == RTE_MBUF_F_RX_IP_CKSUM_BAD ||
      (ck != RTE_MBUF_F_RX_IP_CKSUM_GOOD && !ipv4_checksum_ok(ip, hdr_len)))
    return {Verdict::kDrop, Drop::ipv4_bad_checksum};
  if (hdr_len != sizeof(rte_ipv4_hdr)) return {Verdict::kDrop, Drop::ipv4_options};
  if (total < frame_l3) rte_pktmbuf_trim(m, frame_l3 - total);  // Ethernet padding

  uint32_t src = rte_be_to_cpu_32(ip->src_addr);
  uint32_t dst = rte_be_to_cpu_32(ip->dst_addr);
  if (martian(src)) return {Verdict::kDrop, Drop::ipv4_martian_source};
  if (martian(dst)) return {Verdict::kDrop, Drop::ipv4_bad_destination};

  uint16_t frag = rte_be_to_cpu_16(ip->fragment_offset);
  uint32_t offset = (frag & RTE_IPV4_HDR_OFFSET_MASK) * 8u;
  bool more = frag & RTE_IPV4_HDR_MF_FLAG;
  if (offset || more) {
    uint32_t payload = total - hdr_len;
    // The reassembled datagram (header + offset + payload) must fit 65535.
    if (hdr_len + offset + payload > 65535 || (more && payload % 8 != 0))
      return {Verdict::kDrop, Drop::ipv4_bad_fragment};
    c.event(Event::ipv4_fragments);
  }

  PacketMeta* md = meta(m);
  uint32_t idx;
  if (!table.lookup(dst, &idx)) {
    md->punt = Punt::kNoRoute;
    c.drop(Drop::no_route);
    return {Verdict::kPunt, Drop::no_route};
  }
  const NextHop& nh = table.nexthops[idx];
  // RFC 1812 §5.3.7: a source that is a subnet broadcast (or one of our own
  // addresses, i.e. spoofed) is invalid; such datagrams are not forwarded.
  uint32_t src_idx;
  if (table.lookup(src, &src_idx) && table.nexthops[src_idx].kind != NextHopKind::kForward)
    return {Verdict::kDrop, Drop::ipv4_martian_source};
  if (nh.kind == NextHopKind::kLocal) {
    md->punt = Punt::kLocal;
    c.event(Event::punted_local);
    return {Verdict::kPunt, Drop::no_route};
  }
  if (nh.kind == NextHopKind::kBroadcast) return {Verdict::kDrop, Drop::ipv4_bad_destination};
  if (ip->time_to_live <= 1) {
    md->punt = Punt::kTtlExceeded;
    c.drop(Drop::ttl_exceeded);
    return {Verdict::kPunt, Drop::ttl_exceeded};
  }
  md->out_port = nh.port;
  md->nexthop = nh.gateway ? nh.gateway : dst;
  md->slot = nh.slot;
  uint16_t mtu = g.ports[nh.port].mtu;
  if (total > mtu) {
    md->mtu = mtu;
    if (frag & RTE_IPV4_HDR_DF_FLAG) {
      md->punt = Punt::kFragNeeded;
      c.drop(Drop::mtu_exceeded_df);
      return {Verdict::kPunt, Drop::mtu_exceeded_df};
    }
    ipv4_decrement_ttl(ip);
    md->punt = Punt::kFragment;
    return {Verdict::kPunt, Drop::no_route};
  }
  ipv4_decrement_ttl(ip);
  return {Verdict::kForward, Drop::no_route};
}

inline Classified classify(const Generation& g, const PortView& in, rte_mbuf* m, LcoreCounters& c) {
  if (rte_pktmbuf_data_len(m) < kEtherHdr) return {Verdict::kDrop, Drop::eth_truncated};
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  uint16_t type = rte_be_to_cpu_16(eth->ether_type);
  bool to_us = rte_is_same_ether_addr(&eth->dst_addr, &in.mac);
  switch (type) {
    case RTE_ETHER_TYPE_IPV4:
      if (!to_us) return {Verdict::kDrop, Drop::eth_not_for_us};
      return classify_ipv4(g, *in.table, m, c);
    case RTE_ETHER_TYPE_ARP:
      if (!to_us && !rte_is_broadcast_ether_addr(&eth->dst_addr))
        return {Verdict::kDrop, Drop::eth_not_for_us};
      meta(m)->punt = Punt::kArp;
      return {Verdict::kPunt, Drop::no_route};
    case RTE_ETHER_TYPE_IPV6:
      c.event(Event::ipv6_received);
      return {Verdict::kDrop, Drop::ipv6_unsupported};
    case RTE_ETHER_TYPE_VLAN:
    case RTE_ETHER_TYPE_QINQ:
      return {Verdict::kDrop, Drop::vlan_unsupported};
    default:
      return {Verdict::kDrop, Drop::unknown_ethertype};
  }
}

}  // namespace

void tx_enqueue(Worker& w, uint16_t port, rte_mbuf* m) {
  TxBuffer& b = w.tx[port];
  b.pkts[b.n++] = m;
  w.tx_dirty |= uint64_t{1} << port;
  if (b.n == kBurst) {
    uint16_t sent = rte_eth_tx_burst(port, static_cast<uint16_t>(w.index), b.pkts, b.n);
    w.counters->tx_packets += sent;
    if (sent < b.n) {
      rte_pktmbuf_free_bulk(b.pkts + sent, b.n - sent);
      w.counters->drop(Drop::tx_full, b.n - sent);
    }
    b.n = 0;
  }
}

void flush_tx(Worker& w) {
  uint64_t dirty = w.tx_dirty;
  while (dirty) {
    uint16_t port = static_cast<uint16_t>(__builtin_ctzll(dirty));
    dirty &= dirty - 1;
    TxBuffer& b = w.tx[port];
    if (b.n == 0) continue;
    uint16_t sent = rte_eth_tx_burst(port, static_cast<uint16_t>(w.index), b.pkts, b.n);
    w.counters->tx_packets += sent;
    if (sent < b.n) {
      rte_pktmbuf_free_bulk(b.pkts + sent, b.n - sent);
      w.counters->drop(Drop::tx_full, b.n - sent);
    }
    b.n = 0;
  }
  w.tx_dirty = 0;
}

void forward_burst(Dataplane& dp, Worker& w, const Generation& g, uint16_t in_port, rte_mbuf** pkts,
                   uint16_t n) {
  LcoreCounters& c = *w.counters;
  const PortView& in = g.ports[in_port];
  rte_mbuf* fwd[kBurst];
  rte_mbuf* punt[kBurst];
  rte_mbuf* drop[kBurst];
  uint16_t nfwd = 0, npunt = 0, ndrop = 0;

  // Pass 1: classify.
  for (uint16_t i = 0; i < n; ++i) {
    if (i + 3 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 3], void*));
    rte_mbuf* m = pkts[i];
    meta(m)->in_port = in_port;
    Classified r = classify(g, in, m, c);
    switch (r.verdict) {
      case Verdict::kForward:
        fwd[nfwd++] = m;
        break;
      case Verdict::kPunt:
        punt[npunt++] = m;
        break;
      case Verdict::kDrop:
        c.drop(r.drop);
        drop[ndrop++] = m;
        break;
    }
  }

  // Pass 2: look up the on-link next hops of the burst in one go.
  NeighborKey keys[kBurst];
  uint16_t key_idx[kBurst];
  uint32_t slots[kBurst];
  uint16_t nkeys = 0;
  for (uint16_t i = 0; i < nfwd; ++i) {
    PacketMeta* md = meta(fwd[i]);
    if (md->slot == NeighborTable::kNoSlot) {
      keys[nkeys] = NeighborKey{md->nexthop, md->out_port};
      key_idx[nkeys++] = i;
    }
  }
  if (nkeys) {
    dp.neighbors().lookup_bulk(keys, nkeys, slots);
    for (uint16_t k = 0; k < nkeys; ++k) meta(fwd[key_idx[k]])->slot = slots[k];
  }

  // Pass 3: rewrite Ethernet and buffer, or hand to the service to resolve.
  for (uint16_t i = 0; i < nfwd; ++i) {
    rte_mbuf* m = fwd[i];
    PacketMeta* md = meta(m);
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    if (md->slot != NeighborTable::kNoSlot && dp.neighbors().resolve(md->slot, &eth->dst_addr)) {
      eth->src_addr = g.ports[md->out_port].mac;
      tx_enqueue(w, md->out_port, m);
    } else {
      md->punt = Punt::kResolve;
      c.event(Event::punted_resolve);
      punt[npunt++] = m;
    }
  }

  if (npunt) {
    unsigned q =
        rte_ring_mp_enqueue_burst(dp.punt_ring(), reinterpret_cast<void**>(punt), npunt, nullptr);
    if (q < npunt) {
      c.drop(Drop::punt_ring_full, npunt - q);
      rte_pktmbuf_free_bulk(punt + q, npunt - q);
    }
  }
  if (ndrop) rte_pktmbuf_free_bulk(drop, ndrop);
}

int worker_main(void* arg) {
  Worker& w = *static_cast<Worker*>(arg);
  Dataplane& dp = *w.dp;
  if (rte_lcore_id() != w.lcore) {
    TLOG(ERR, "worker %u started on lcore %u, expected %u", w.index, rte_lcore_id(), w.lcore);
    return -1;
  }
  rte_rcu_qsbr* qsbr = dp.qsbr();
  rte_rcu_qsbr_thread_register(qsbr, w.index);
  rte_rcu_qsbr_thread_online(qsbr, w.index);
  TLOG(INFO, "worker %u on lcore %u polls %zu queue(s)", w.index, w.lcore, w.rx_queues.size());
  rte_mbuf* pkts[kBurst];
  while (!dp.stopping()) {
    const Generation* g = dp.current();
    for (auto [port, queue] : w.rx_queues) {
      uint16_t n = rte_eth_rx_burst(port, queue, pkts, kBurst);
      if (n == 0) continue;
      w.counters->rx_packets += n;
      forward_burst(dp, w, *g, port, pkts, n);
    }
    unsigned k =
        rte_ring_sc_dequeue_burst(w.inject, reinterpret_cast<void**>(pkts), kBurst, nullptr);
    for (unsigned i = 0; i < k; ++i) tx_enqueue(w, meta(pkts[i])->out_port, pkts[i]);
    flush_tx(w);
    rte_rcu_qsbr_quiescent(qsbr, w.index);
  }
  flush_tx(w);
  rte_rcu_qsbr_thread_offline(qsbr, w.index);
  rte_rcu_qsbr_thread_unregister(qsbr, w.index);
  return 0;
}

}  // namespace tether::dp
