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
#include <rte_udp.h>
#include <rte_vect.h>

#include "dataplane/dataplane.h"
#include "dataplane/log.h"
#include "dataplane/nat_datapath.h"
#include "dataplane/packet.h"
#include "dataplane/wireguard.h"
#include "dataplane/worker.h"
#include "tunnel/messages.h"

namespace tether::dp {
namespace {

constexpr uint16_t kEtherHdr = sizeof(rte_ether_hdr);

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

  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  uint32_t frame_l3 = rte_pktmbuf_pkt_len(m) - kEtherHdr;
  Drop d = check_ipv4(ip, rte_pktmbuf_data_len(m) - kEtherHdr, frame_l3,
                      m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK, c, dst, src);
  if (d != Drop::kCount) return {Kind::kDrop, d};
  uint16_t total = rte_be_to_cpu_16(ip->total_length);
  if (total < frame_l3) rte_pktmbuf_trim(m, frame_l3 - total);  // Ethernet padding
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

inline void set_punt(rte_mbuf* m, Punt why, uint16_t in_port, uint16_t domain) {
  PacketMeta* md = meta(m);
  md->punt = why;
  md->in_port = in_port;
  md->domain = domain;
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

namespace {

// Where a run of IPv4 packets came from: a port, or a WireGuard peer whose
// messages were just decrypted (then `table` is the peer's inner domain).
struct Origin4 {
  const DomainTable* table;
  uint16_t in_port;
  uint16_t domain;
  const WgPeer* from_peer;
};

// What leaves a burst other than by a worker's TX buffer.
struct Sink {
  rte_mbuf* punt[kBurst];
  rte_mbuf* drop[kBurst];
  rte_mbuf* handshake[kBurst];
  rte_mbuf* wg_in[kBurst];  // data messages to decrypt
  uint16_t wg_listen[kBurst];
  uint16_t npunt = 0, ndrop = 0, nhandshake = 0, nwg = 0;
};

// Index into g.wg_listen when `m` (IPv4 to own address `dst`) is UDP to a
// WireGuard listen port, else -1.
inline int wg_listen_of(const Generation& g, uint16_t domain, uint32_t dst, rte_mbuf* m) {
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEtherHdr);
  if (ip->next_proto_id != IPPROTO_UDP ||
      (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_OFFSET_MASK | RTE_IPV4_HDR_MF_FLAG)) ||
      rte_pktmbuf_data_len(m) < kEtherHdr + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) + 4 ||
      rte_be_to_cpu_16(ip->total_length) < sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) + 4)
    return -1;
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  uint16_t port = rte_be_to_cpu_16(udp->dst_port);
  for (size_t i = 0; i < g.wg_listen.size(); ++i) {
    const WgListen& l = g.wg_listen[i];
    if (l.addr == dst && l.port == port && l.domain == domain) return static_cast<int>(i);
  }
  return -1;
}

// Passes 2-5 over packets of one origin whose sources were checked, in the
// routing domain of `o`, or, when `pdom` is given, each in its own domain
// (NAT moved them; `ptr` tells which were translated).
void route_dst(Dataplane& dp, Worker& w, const Generation& g, const Origin4& o, rte_mbuf** ip4,
               uint32_t* dst, uint16_t nip, Sink& out, uint64_t now, const uint16_t* pdom = nullptr,
               const bool* ptr = nullptr) {
  LcoreCounters& c = *w.counters;
  const std::atomic<uint64_t>* neighbor_words = dp.neighbors().words();
  auto dom = [&](uint16_t k) { return pdom ? pdom[k] : o.domain; };
  auto drop_one = [&](rte_mbuf* m, Drop why) {
    c.drop(why);
    out.drop[out.ndrop++] = m;
  };
  auto punt_at = [&](uint16_t k, rte_mbuf* m, Punt why) {
    PacketMeta* md = meta(m);
    md->punt = why;
    md->in_port = o.in_port;
    md->domain = dom(k);
    out.punt[out.npunt++] = m;
  };

  // Pass 2: route every destination of the burst at once: four at a time
  // in one domain, one by one across domains.
  const NextHop* hop_of[kBurst];
  if (!pdom) {
    uint32_t dres[kBurst];
    lookup_all(*o.table, dst, dres, nip);
    // Hoisted: stores into packets (uint8_t) would otherwise force reloads.
    const NextHop* nexthops = o.table->nexthops.data();
    for (uint16_t k = 0; k < nip; ++k)
      hop_of[k] = dres[k] == DomainTable::kNoDefault ? nullptr : &nexthops[dres[k]];
  } else {
    for (uint16_t k = 0; k < nip; ++k) {
      const DomainTable* t = g.table_of(pdom[k]);
      uint32_t idx;
      hop_of[k] = t && t->lookup(dst[k], &idx) ? &t->nexthops[idx] : nullptr;
    }
  }

  // Pass 3: decide. Routing results stay in these arrays; only punted
  // packets get metadata (the mbuf's second cache line).
  rte_mbuf* fwd[kBurst];
  uint16_t fport[kBurst];
  uint32_t fhop[kBurst], fslot[kBurst];
  uint16_t nfwd = 0;
  uint16_t fdom[kBurst];
  rte_mbuf* tun[kBurst];
  uint32_t tun_peer[kBurst];
  uint16_t tun_dom[kBurst];
  uint16_t ntun = 0;
  for (uint16_t k = 0; k < nip; ++k) {
    rte_mbuf* m = ip4[k];
    auto punt_one = [&](rte_mbuf* pm, Punt why) { punt_at(k, pm, why); };
    if (!hop_of[k]) {
      c.drop(Drop::no_route);
      punt_one(m, Punt::kNoRoute);
      continue;
    }
    const NextHop& nh = *hop_of[k];
    if (nh.kind == NextHopKind::kLocal) {
      // Only what arrived from a port as it is can be a WireGuard message:
      // not a decrypted packet, and not one NAT translated toward a listen
      // address (the burst's decryption has already run).
      bool may_be_wg = !o.from_peer && !(ptr && ptr[k]);
      if (may_be_wg && !g.wg_listen.empty()) {
        int li = wg_listen_of(g, dom(k), dst[k], m);
        if (li >= 0) {
          uint8_t type = *rte_pktmbuf_mtod_offset(
              m, uint8_t*, kEtherHdr + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr));
          if (type == wg::kData) {
            out.wg_in[out.nwg] = m;
            out.wg_listen[out.nwg++] = static_cast<uint16_t>(li);
          } else if (type >= wg::kInitiation && type <= wg::kCookieReply) {
            PacketMeta* md = meta(m);
            md->punt = Punt::kWgHandshake;
            md->in_port = o.in_port;
            md->domain = dom(k);
            md->slot = static_cast<uint32_t>(li);
            out.handshake[out.nhandshake++] = m;
          } else {
            drop_one(m, Drop::wg_malformed);
          }
          continue;
        }
      }
      c.event(Event::punted_local);
      punt_one(m, Punt::kLocal);
      continue;
    }
    if (nh.kind == NextHopKind::kBroadcast) {
      drop_one(m, Drop::ipv4_bad_destination);
      continue;
    }
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEtherHdr);
    if (ip->time_to_live <= 1) {
      c.drop(Drop::ttl_exceeded);
      punt_one(m, Punt::kTtlExceeded);
      continue;
    }
    if (nh.kind == NextHopKind::kTunnel) {
      const WgPeer* p = g.wg_peers[nh.peer];
      if (rte_be_to_cpu_16(ip->total_length) > p->iface->mtu) {
        PacketMeta* md = meta(m);
        md->nexthop = nh.peer;
        md->mtu = p->iface->mtu;
        if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG)) {
          c.drop(Drop::mtu_exceeded_df);
          punt_one(m, Punt::kFragNeeded);
        } else {
          ipv4_decrement_ttl(ip);
          punt_one(m, Punt::kWgFragment);
        }
        continue;
      }
      ipv4_decrement_ttl(ip);
      tun[ntun] = m;
      tun_dom[ntun] = dom(k);
      tun_peer[ntun++] = nh.peer;
      continue;
    }
    uint32_t hop = nh.gateway ? nh.gateway : dst[k];
    uint16_t mtu = g.ports[nh.port].mtu;
    if (rte_be_to_cpu_16(ip->total_length) > mtu) {
      PacketMeta* md = meta(m);
      md->out_port = nh.port;
      md->nexthop = hop;
      md->slot = nh.slot;
      md->mtu = mtu;
      if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG)) {
        c.drop(Drop::mtu_exceeded_df);
        punt_one(m, Punt::kFragNeeded);
      } else {
        ipv4_decrement_ttl(ip);
        punt_one(m, Punt::kFragment);
      }
      continue;
    }
    ipv4_decrement_ttl(ip);
    fwd[nfwd] = m;
    fdom[nfwd] = dom(k);
    fport[nfwd] = nh.port;
    fhop[nfwd] = hop;
    fslot[nfwd++] = nh.slot;
  }

  // Pass 3b: encrypt what goes into a tunnel; the outer packets join the
  // forwarded ones for the neighbor and TX passes.
  for (uint16_t i = 0; i < ntun; ++i) {
    rte_mbuf* m = tun[i];
    WgPeer* p = g.wg_peers[tun_peer[i]];
    uint16_t len =
        rte_be_to_cpu_16(rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEtherHdr)->total_length);
    Drop why = Drop::wg_encap_failed;
    switch (wg_encap(*w.aead, g, p, dp.wg().timers(), now, m, len, w.index, &why, &fport[nfwd],
                     &fhop[nfwd], &fslot[nfwd])) {
      case EncapResult::kSent:
        fdom[nfwd] = tun_dom[i];
        fwd[nfwd++] = m;
        break;
      case EncapResult::kStage: {
        PacketMeta* md = meta(m);
        md->nexthop = tun_peer[i];
        md->punt = Punt::kWgStage;
        md->in_port = o.in_port;
        md->domain = tun_dom[i];
        out.punt[out.npunt++] = m;
        break;
      }
      case EncapResult::kDrop:
        drop_one(m, why);
        break;
    }
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
      md->in_port = o.in_port;
      md->domain = fdom[i];
      md->out_port = fport[i];
      md->nexthop = fhop[i];
      md->slot = fslot[i];
      c.event(Event::punted_resolve);
      out.punt[out.npunt++] = m;
    }
  }
}

// Passes 2-5 over validated IPv4 packets of one origin: check every source
// in the origin's domain, translate (NAT), then route each group of packets
// that ended up in the same domain.
void route_ipv4(Dataplane& dp, Worker& w, const Generation& g, const Origin4& o, rte_mbuf** ip4,
                uint32_t* dst, uint32_t* src, uint16_t nip, Sink& out, uint64_t now) {
  LcoreCounters& c = *w.counters;
  const NextHop* nexthops = o.table->nexthops.data();
  uint32_t sres[kBurst];
  lookup_all(*o.table, src, sres, nip);
  uint16_t n = 0;
  for (uint16_t k = 0; k < nip; ++k) {
    rte_mbuf* m = ip4[k];
    Drop why = Drop::kCount;
    if (o.from_peer) {
      // Cryptokey routing (WireGuard paper §2): the inner source must be an
      // allowed prefix of the peer it came from.
      if (sres[k] == DomainTable::kNoDefault || nexthops[sres[k]].kind != NextHopKind::kTunnel ||
          g.wg_peers[nexthops[sres[k]].peer] != o.from_peer) {
        const_cast<WgPeer*>(o.from_peer)
            ->counters[w.index]
            .drops[static_cast<size_t>(WgPeerDrop::kBadInnerSource)]++;
        why = Drop::wg_bad_inner_source;
      }
    } else if (sres[k] != DomainTable::kNoDefault &&
               (nexthops[sres[k]].kind == NextHopKind::kLocal ||
                nexthops[sres[k]].kind == NextHopKind::kBroadcast)) {
      // RFC 1812 §5.3.7: a source that is a subnet broadcast (or one of our
      // own addresses, i.e. spoofed) is invalid; such datagrams are not forwarded.
      why = Drop::ipv4_martian_source;
    }
    if (why != Drop::kCount) {
      c.drop(why);
      out.drop[out.ndrop++] = m;
      continue;
    }
    ip4[n] = m;
    dst[n] = dst[k];
    src[n++] = src[k];
  }
  if (!n) return;
  if (!g.sessions_on()) return route_dst(dp, w, g, o, ip4, dst, n, out, now);

  NatResult res[kBurst];
  uint16_t from_zone = o.from_peer ? g.fw.zone_of_iface(o.from_peer->iface->id, o.domain)
                                   : g.fw.zone_of_port(o.in_port);
  nat_burst(dp, w, g, o.domain, from_zone, o.from_peer != nullptr, ip4, dst, src, n, res, now);
  uint16_t pdom[kBurst];
  bool ptr[kBurst];
  uint16_t m = 0;
  bool mixed = false;
  for (uint16_t k = 0; k < n; ++k) {
    switch (res[k].verdict) {
      case NatVerdict::kDrop:
        c.drop(res[k].drop);
        out.drop[out.ndrop++] = ip4[k];
        continue;
      case NatVerdict::kHeld:
        meta(ip4[k])->in_port = o.in_port;
        continue;
      case NatVerdict::kReject:  // the service answers for the rule
        c.drop(res[k].drop);
        set_punt(ip4[k], Punt::kReject, o.in_port, o.domain);
        out.punt[out.npunt++] = ip4[k];
        continue;
      case NatVerdict::kRoute:
        break;
    }
    ip4[m] = ip4[k];
    dst[m] = dst[k];
    pdom[m] = res[k].domain;
    ptr[m] = res[k].translated;
    mixed |= pdom[m] != o.domain || ptr[m];
    ++m;
  }
  if (!m) return;
  if (!mixed) return route_dst(dp, w, g, o, ip4, dst, m, out, now);
  route_dst(dp, w, g, o, ip4, dst, m, out, now, pdom, ptr);
}

// Decrypts the burst's WireGuard data messages and routes what they carried
// in each peer's inner domain, a run of same-peer packets at a time.
void decap_and_route(Dataplane& dp, Worker& w, const Generation& g, Sink& out, uint64_t now) {
  LcoreCounters& c = *w.counters;
  rte_mbuf* inner[kBurst];
  WgPeer* from[kBurst];
  uint32_t dst[kBurst], src[kBurst];
  uint16_t n = 0;
  uint16_t nwg = out.nwg;
  out.nwg = 0;
  for (uint16_t i = 0; i < nwg; ++i) {
    rte_mbuf* m = out.wg_in[i];
    WgPeer* p = nullptr;
    Drop why = Drop::wg_malformed;
    switch (wg_decap(*w.aead, g, dp.wg().indices(), g.wg_listen[out.wg_listen[i]], dp.wg().timers(),
                     now, m, w.index, c, &p, &why, &src[n], &dst[n])) {
      case DecapResult::kInner:
        inner[n] = m;
        from[n++] = p;
        break;
      case DecapResult::kKeepalive:
        out.drop[out.ndrop++] = m;  // consumed, not a drop: no counter
        break;
      case DecapResult::kDrop:
        c.drop(why);
        out.drop[out.ndrop++] = m;
        break;
    }
  }
  for (uint16_t i = 0; i < n;) {
    uint16_t j = i + 1;
    while (j < n && from[j] == from[i]) ++j;
    const WgPeer* p = from[i];
    const DomainTable* t = g.domain(p->domain);
    if (t) {
      Origin4 o{t, p->iface->port, p->domain, p};
      route_ipv4(dp, w, g, o, inner + i, dst + i, src + i, static_cast<uint16_t>(j - i), out, now);
    } else {
      for (uint16_t k = i; k < j; ++k) {
        c.drop(Drop::no_route);
        out.drop[out.ndrop++] = inner[k];
      }
    }
    i = j;
  }
}

}  // namespace

namespace {

// One enqueue of what the service must see, one bulk free of the drops.
void finish(Dataplane& dp, LcoreCounters& c, Sink& out) {
  if (out.nwg) {  // never queued after decryption ran; freed rather than lost
    c.drop(Drop::wg_malformed, out.nwg);
    rte_pktmbuf_free_bulk(out.wg_in, out.nwg);
    out.nwg = 0;
  }
  if (out.nhandshake) {
    unsigned q = rte_ring_mp_enqueue_burst(
        dp.handshake_ring(), reinterpret_cast<void**>(out.handshake), out.nhandshake, nullptr);
    if (q < out.nhandshake) {
      c.drop(Drop::wg_handshake_queue_full, out.nhandshake - q);
      rte_pktmbuf_free_bulk(out.handshake + q, out.nhandshake - q);
    }
  }
  if (out.npunt) {
    unsigned q = rte_ring_mp_enqueue_burst(dp.punt_ring(), reinterpret_cast<void**>(out.punt),
                                           out.npunt, nullptr);
    if (q < out.npunt) {
      c.drop(Drop::punt_ring_full, out.npunt - q);
      rte_pktmbuf_free_bulk(out.punt + q, out.npunt - q);
    }
  }
  if (out.ndrop) rte_pktmbuf_free_bulk(out.drop, out.ndrop);
}

}  // namespace

void forward_burst(Dataplane& dp, Worker& w, const Generation& g, uint16_t in_port, rte_mbuf** pkts,
                   uint16_t n) {
  LcoreCounters& c = *w.counters;
  const PortView& in = g.ports[in_port];
  Sink out;
  uint64_t now = g.wg_listen.empty() && g.wg_peers.empty() && !g.sessions_on() ? 0 : dp.now_ms();

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
      set_punt(m, Punt::kArp, in_port, in.domain);
      out.punt[out.npunt++] = m;
    } else {
      c.drop(r.drop);
      out.drop[out.ndrop++] = m;
    }
  }
  if (nip)
    route_ipv4(dp, w, g, Origin4{in.table, in_port, in.domain, nullptr}, ip4, dst, src, nip, out,
               now);
  if (out.nwg) decap_and_route(dp, w, g, out, now);

  finish(dp, c, out);
}

namespace {

// Routes the later fragments that waited for their first fragment, and
// drops those that waited too long.
void release_fragments(Dataplane& dp, Worker& w, const Generation& g) {
  LcoreCounters& c = *w.counters;
  rte_mbuf* ready[nat::FragmentCache::kHeld];
  rte_mbuf* expired[nat::FragmentCache::kHeld];
  rte_mbuf* dropped[nat::FragmentCache::kHeld];
  uint16_t domain[nat::FragmentCache::kHeld];
  uint32_t dst[nat::FragmentCache::kHeld];
  uint16_t nready = 0, nexpired = 0, ndropped = 0;
  nat_drain(w, dp.now_ms(), ready, domain, dst, &nready, expired, &nexpired, dropped, &ndropped);
  if (nexpired) {
    c.drop(Drop::nat_fragment_timeout, nexpired);
    rte_pktmbuf_free_bulk(expired, nexpired);
  }
  if (ndropped) {
    c.drop(Drop::fragment_first_dropped, ndropped);
    rte_pktmbuf_free_bulk(dropped, ndropped);
  }
  for (uint16_t i = 0; i < nready;) {
    // Runs of one domain, at most a burst each.
    uint16_t j = i + 1;
    while (j < nready && j - i < kBurst && domain[j] == domain[i]) ++j;
    Sink out;
    const DomainTable* t = g.domain(domain[i]);
    if (t) {
      route_dst(dp, w, g, Origin4{t, meta(ready[i])->in_port, domain[i], nullptr}, ready + i,
                dst + i, static_cast<uint16_t>(j - i), out, dp.now_ms());
    } else {
      c.drop(Drop::no_route, j - i);
      rte_pktmbuf_free_bulk(ready + i, j - i);
    }
    finish(dp, c, out);
    i = j;
  }
}

}  // namespace

void worker_after_rx(Dataplane& dp, Worker& w, const Generation& g) {
  if (w.frags->held()) release_fragments(dp, w, g);
  rte_mbuf* pkts[kBurst];
  unsigned k = rte_ring_sc_dequeue_burst(w.inject, reinterpret_cast<void**>(pkts), kBurst, nullptr);
  for (unsigned i = 0; i < k; ++i) tx_enqueue(w, meta(pkts[i])->out_port, pkts[i]);
  flush_tx(w);
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
    worker_after_rx(dp, w, *g);
    rte_rcu_qsbr_quiescent(qsbr, w.index);
  }
  flush_tx(w);
  rte_rcu_qsbr_thread_offline(qsbr, w.index);
  rte_rcu_qsbr_thread_unregister(qsbr, w.index);
  return 0;
}

}  // namespace tether::dp
