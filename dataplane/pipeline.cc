// The worker fast path: parse → validate → route → TTL → neighbor → TX.
// Five passes over a burst: validate each packet; route every destination and
// source in bulk; decide; look up the on-link next hops together; rewrite and
// buffer. Then one enqueue of everything the service thread must see and one
// bulk free of the drops.
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_lpm.h>
#include <rte_prefetch.h>
#include <rte_rcu_qsbr.h>
#include <rte_vect.h>

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

enum class Kind : uint8_t { kIpv4, kArp, kDrop };

struct Parsed {
  Kind kind;
  Drop drop;
};

// Validates one frame up to a routable IPv4 header (docs/decisions/004).
// Touches only the mbuf's first cache line and the packet's headers.
__attribute__((always_inline)) inline Parsed parse(const PortView& in, rte_mbuf* m,
                                                   LcoreCounters& c, uint32_t* dst, uint32_t* src) {
  if (rte_pktmbuf_data_len(m) < kEtherHdr) return {Kind::kDrop, Drop::eth_truncated};
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  uint16_t type = eth->ether_type;
  bool to_us = rte_is_same_ether_addr(&eth->dst_addr, &in.mac);
  if (type != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) {
    switch (rte_be_to_cpu_16(type)) {
      case RTE_ETHER_TYPE_ARP:
        if (!to_us && !rte_is_broadcast_ether_addr(&eth->dst_addr))
          return {Kind::kDrop, Drop::eth_not_for_us};
        return {Kind::kArp, Drop::kCount};
      case RTE_ETHER_TYPE_IPV6:
        c.event(Event::ipv6_received);
        return {Kind::kDrop, Drop::ipv6_unsupported};
      case RTE_ETHER_TYPE_VLAN:
      case RTE_ETHER_TYPE_QINQ:
        return {Kind::kDrop, Drop::vlan_unsupported};
      default:
        return {Kind::kDrop, Drop::unknown_ethertype};
    }
  }
  if (!to_us) return {Kind::kDrop, Drop::eth_not_for_us};

  uint32_t l3_len = rte_pktmbuf_data_len(m) - kEtherHdr;
  if (l3_len < sizeof(rte_ipv4_hdr)) return {Kind::kDrop, Drop::ipv4_truncated};
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  uint8_t vihl = ip->version_ihl;
  if ((vihl >> 4) != 4) return {Kind::kDrop, Drop::ipv4_bad_version};
  unsigned hdr_len = (vihl & 0xf) * 4u;
  if (hdr_len < sizeof(rte_ipv4_hdr)) return {Kind::kDrop, Drop::ipv4_bad_ihl};
  if (hdr_len > l3_len) return {Kind::kDrop, Drop::ipv4_truncated};
  uint16_t total = rte_be_to_cpu_16(ip->total_length);
  if (total < hdr_len) return {Kind::kDrop, Drop::ipv4_bad_length};
  uint32_t frame_l3 = rte_pktmbuf_pkt_len(m) - kEtherHdr;
  if (total > frame_l3) return {Kind::kDrop, Drop::ipv4_truncated};
  uint64_t ck = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
  if (ck == RTE_MBUF_F_RX_IP_CKSUM_BAD ||
      (ck != RTE_MBUF_F_RX_IP_CKSUM_GOOD &&
       !(hdr_len == sizeof(rte_ipv4_hdr) ? ipv4_checksum20_ok(ip) : ipv4_checksum_ok(ip, hdr_len))))
    return {Kind::kDrop, Drop::ipv4_bad_checksum};
  if (hdr_len != sizeof(rte_ipv4_hdr)) return {Kind::kDrop, Drop::ipv4_options};
  if (total < frame_l3) rte_pktmbuf_trim(m, frame_l3 - total);  // Ethernet padding

  *src = rte_be_to_cpu_32(ip->src_addr);
  *dst = rte_be_to_cpu_32(ip->dst_addr);
  if (martian(*src)) return {Kind::kDrop, Drop::ipv4_martian_source};
  if (martian(*dst)) return {Kind::kDrop, Drop::ipv4_bad_destination};

  uint16_t frag = rte_be_to_cpu_16(ip->fragment_offset);
  if (frag & (RTE_IPV4_HDR_OFFSET_MASK | RTE_IPV4_HDR_MF_FLAG)) {
    uint32_t offset = (frag & RTE_IPV4_HDR_OFFSET_MASK) * 8u;
    uint32_t payload = total - hdr_len;
    // The reassembled datagram (header + offset + payload) must fit 65535.
    if (hdr_len + offset + payload > 65535 || ((frag & RTE_IPV4_HDR_MF_FLAG) && payload % 8 != 0))
      return {Kind::kDrop, Drop::ipv4_bad_fragment};
    c.event(Event::ipv4_fragments);
  }
  return {Kind::kIpv4, Drop::kCount};
}

// Next-hop indices of n addresses, four at a time with rte_lpm's SIMD
// lookup; a miss yields the domain's default (kNoDefault when it has none).
inline void lookup_all(const DomainTable& t, const uint32_t* ips, uint32_t* idx, uint16_t n) {
  uint16_t i = 0;
  for (; i + 4 <= n; i += 4) {
    xmm_t v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ips + i));
    rte_lpm_lookupx4(t.lpm, v, idx + i, t.default_nh);
  }
  for (; i < n; ++i)
    if (rte_lpm_lookup(t.lpm, ips[i], &idx[i]) != 0) idx[i] = t.default_nh;
}

inline void set_punt(rte_mbuf* m, Punt why, uint16_t in_port) {
  PacketMeta* md = meta(m);
  md->punt = why;
  md->in_port = in_port;
}

}  // namespace

void flush_tx(Worker& w) {
  uint64_t dirty = w.tx_dirty;
  while (dirty) {
    uint16_t port = static_cast<uint16_t>(__builtin_ctzll(dirty));
    dirty &= dirty - 1;
    if (w.tx[port].n) tx_send(w, port);
  }
  w.tx_dirty = 0;
}

void forward_burst(Dataplane& dp, Worker& w, const Generation& g, uint16_t in_port, rte_mbuf** pkts,
                   uint16_t n) {
  LcoreCounters& c = *w.counters;
  const PortView& in = g.ports[in_port];
  const DomainTable& table = *in.table;
  // Hoisted: stores into packets (uint8_t) would otherwise force reloads.
  const NextHop* nexthops = table.nexthops.data();
  const std::atomic<uint64_t>* neighbor_words = dp.neighbors().words();
  rte_mbuf* punt[kBurst];
  rte_mbuf* drop[kBurst];
  uint16_t npunt = 0, ndrop = 0;
  auto drop_one = [&](rte_mbuf* m, Drop why) {
    c.drop(why);
    drop[ndrop++] = m;
  };

  // Pass 1: parse and validate.
  rte_mbuf* ip4[kBurst];
  uint32_t dst[kBurst], src[kBurst];
  uint16_t nip = 0;
  for (uint16_t i = 0; i < n; ++i) {
    if (i + 4 < n) rte_prefetch0(rte_pktmbuf_mtod(pkts[i + 4], void*));
    rte_mbuf* m = pkts[i];
    Parsed r = parse(in, m, c, &dst[nip], &src[nip]);
    if (r.kind == Kind::kIpv4) {
      ip4[nip++] = m;
    } else if (r.kind == Kind::kArp) {
      set_punt(m, Punt::kArp, in_port);
      punt[npunt++] = m;
    } else {
      drop_one(m, r.drop);
    }
  }
  if (nip == 0) goto out;

  {
    // Pass 2: route every destination and every source of the burst at once.
    uint32_t dres[kBurst], sres[kBurst];
    lookup_all(table, dst, dres, nip);
    lookup_all(table, src, sres, nip);

    // Pass 3: decide. Routing results stay in these arrays; only punted
    // packets get metadata (the mbuf's second cache line).
    rte_mbuf* fwd[kBurst];
    uint16_t fport[kBurst];
    uint32_t fhop[kBurst], fslot[kBurst];
    uint16_t nfwd = 0;
    for (uint16_t k = 0; k < nip; ++k) {
      rte_mbuf* m = ip4[k];
      // RFC 1812 §5.3.7: a source that is a subnet broadcast (or one of our
      // own addresses, i.e. spoofed) is invalid; such datagrams are not forwarded.
      if (sres[k] != DomainTable::kNoDefault && nexthops[sres[k]].kind != NextHopKind::kForward) {
        drop_one(m, Drop::ipv4_martian_source);
        continue;
      }
      uint32_t idx = dres[k];
      if (idx == DomainTable::kNoDefault) {
        c.drop(Drop::no_route);
        set_punt(m, Punt::kNoRoute, in_port);
        punt[npunt++] = m;
        continue;
      }
      const NextHop& nh = nexthops[idx];
      if (nh.kind != NextHopKind::kForward) {
        if (nh.kind == NextHopKind::kLocal) {
          c.event(Event::punted_local);
          set_punt(m, Punt::kLocal, in_port);
          punt[npunt++] = m;
        } else {
          drop_one(m, Drop::ipv4_bad_destination);
        }
        continue;
      }
      auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEtherHdr);
      if (ip->time_to_live <= 1) {
        c.drop(Drop::ttl_exceeded);
        set_punt(m, Punt::kTtlExceeded, in_port);
        punt[npunt++] = m;
        continue;
      }
      uint32_t hop = nh.gateway ? nh.gateway : dst[k];
      uint16_t mtu = g.ports[nh.port].mtu;
      if (rte_be_to_cpu_16(ip->total_length) > mtu) {
        PacketMeta* md = meta(m);
        md->in_port = in_port;
        md->out_port = nh.port;
        md->nexthop = hop;
        md->slot = nh.slot;
        md->mtu = mtu;
        if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG)) {
          c.drop(Drop::mtu_exceeded_df);
          md->punt = Punt::kFragNeeded;
        } else {
          ipv4_decrement_ttl(ip);
          md->punt = Punt::kFragment;
        }
        punt[npunt++] = m;
        continue;
      }
      ipv4_decrement_ttl(ip);
      fwd[nfwd] = m;
      fport[nfwd] = nh.port;
      fhop[nfwd] = hop;
      fslot[nfwd++] = nh.slot;
    }

    // Pass 4: on-link next hops: the worker's slot cache first, then one
    // bulk lookup in the shared neighbor table for the misses.
    NeighborKey keys[kBurst];
    uint16_t key_idx[kBurst];
    uint32_t slots[kBurst];
    uint16_t nkeys = 0;
    for (uint16_t i = 0; i < nfwd; ++i) {
      if (fslot[i] != NeighborTable::kNoSlot) continue;
      // A cached slot may have been retired and reused since: check its key.
      uint32_t cached = w.neighbor_cache.find(fhop[i], fport[i]);
      if (cached != NeighborTable::kNoSlot && dp.neighbors().serves(cached, fhop[i], fport[i])) {
        fslot[i] = cached;
      } else {
        keys[nkeys] = NeighborKey{fhop[i], fport[i]};
        key_idx[nkeys++] = i;
      }
    }
    if (nkeys) {
      dp.neighbors().lookup_bulk(keys, nkeys, slots);
      for (uint16_t k = 0; k < nkeys; ++k) {
        fslot[key_idx[k]] = slots[k];
        if (slots[k] != NeighborTable::kNoSlot)
          w.neighbor_cache.put(keys[k].ip, keys[k].port, slots[k]);
      }
    }

    // Pass 5: rewrite Ethernet and buffer, or hand to the service to resolve.
    for (uint16_t i = 0; i < nfwd; ++i) {
      rte_mbuf* m = fwd[i];
      auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
      if (fslot[i] != NeighborTable::kNoSlot &&
          NeighborTable::resolve(neighbor_words, fslot[i], &eth->dst_addr)) {
        eth->src_addr = g.ports[fport[i]].mac;
        tx_enqueue(w, fport[i], m);
      } else {
        PacketMeta* md = meta(m);
        md->punt = Punt::kResolve;
        md->in_port = in_port;
        md->out_port = fport[i];
        md->nexthop = fhop[i];
        md->slot = fslot[i];
        c.event(Event::punted_resolve);
        punt[npunt++] = m;
      }
    }
  }

out:
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
