#include "dataplane/nat_datapath.h"

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_prefetch.h>
#include <rte_random.h>

#include <algorithm>
#include <cstring>

#include "dataplane/dataplane.h"
#include "dataplane/worker.h"
#include "nat/translate.h"

namespace tether::dp {
namespace {

constexpr uint16_t kEth = sizeof(rte_ether_hdr);

uint8_t* ip_bytes(rte_mbuf* m) { return rte_pktmbuf_mtod_offset(m, uint8_t*, kEth); }

// Bytes of the IPv4 packet in the first segment (chained jumbo frames keep
// their L4 header there; only headers are read or written).
uint32_t seg_len(rte_mbuf* m) {
  uint32_t total = rte_be_to_cpu_16(rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEth)->total_length);
  return std::min<uint32_t>(total, rte_pktmbuf_data_len(m) - kEth);
}

uint16_t min_nonzero(uint16_t a, uint16_t b) { return !a ? b : !b ? a : std::min(a, b); }

// The public port of a new source-NAT session: its inside endpoint's
// binding's (endpoint-independent mapping, RFC 4787 REQ-1, RFC 5382 REQ-1),
// made when the endpoint has none. `binding` is the binding's record index,
// with a reference taken, or kNoPool when the port is the session's own (a
// binding that is being ended, or no room for a binding record). Port 0:
// the pool is exhausted.
struct SnatPort {
  uint16_t port;
  uint32_t binding;
};
SnatPort snat_port(NatRuntime& nr, unsigned worker, const nat::FlowKey& key,
                   const nat::SnatView& sv, uint32_t pool, bool sequential, uint32_t now_s) {
  nat::SessionTable& table = nr.sessions();
  nat::FlowKey bk{key.src,   sv.public_addr,        key.sport, 0, key.domain,
                  key.proto, nat::FlowKey::kBinding};
  nat::PortPool& pp = nr.pools().at(pool);
  for (int attempt = 0; attempt < 2; ++attempt) {
    uint32_t h = table.lookup(bk);
    if (h != nat::SessionTable::kMiss) {
      uint32_t b = h >> 1;
      auto& refs = nr.binding_refs(b);
      uint32_t v = refs.load(std::memory_order_acquire);
      while (v != NatRuntime::kDead &&
             !refs.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) {
      }
      if (v != NatRuntime::kDead) return {table.at(b).pool_port, b};
      break;  // being ended: this session gets a port of its own
    }
    uint16_t port = pp.allocate(sequential ? 0 : rte_rand());
    if (!port) return {0, nat::Session::kNoPool};
    nat::FlowKey mirror = bk;
    mirror.kind = nat::FlowKey::kBindingMirror;
    uint32_t index;
    auto r = table.insert(
        worker, bk, mirror,
        [&](nat::Session& s) {
          s.pool = pool;
          s.pool_port = port;
          s.flags = nat::Session::kBinding;
          s.created_s.store(now_s, std::memory_order_relaxed);
          s.last_seen_s.store(now_s, std::memory_order_relaxed);
          nr.binding_refs(static_cast<uint32_t>(&s - &table.at(0)))
              .store(1, std::memory_order_release);
        },
        &index);
    if (r == nat::SessionTable::Insert::kOk) return {port, index};
    pp.release(port);
    if (r != nat::SessionTable::Insert::kExists) break;  // full: no binding
    // kExists: another worker bound this endpoint a moment ago; take that one.
  }
  uint16_t port = pp.allocate(sequential ? 0 : rte_rand());
  return {port, nat::Session::kNoPool};
}

}  // namespace

void nat_burst(Dataplane& dp, Worker& w, const Generation& g, uint16_t domain, rte_mbuf** pkts,
               uint32_t* dst, uint32_t* src, uint16_t n, NatResult* res, uint64_t now_ms) {
  NatRuntime& nr = dp.nat();
  nat::SessionTable& table = nr.sessions();
  const nat::NatView& v = g.nat;
  LcoreCounters& c = *w.counters;
  MappingCounters* mc = nr.counters(w.index);
  uint32_t now_s = static_cast<uint32_t>(now_ms / 1000);
  bool sequential = dp.config().testing.nat_sequential_ports;

  nat::Classified cl[kBurst];
  const nat::FlowKey* keys[kBurst];
  uint16_t kidx[kBurst];
  uint16_t nk = 0;
  uint16_t later[kBurst];
  uint16_t nlater = 0;
  auto pass = [&](uint16_t i) { res[i] = {NatVerdict::kRoute, false, domain, Drop::kCount}; };
  auto drop = [&](uint16_t i, Drop why) { res[i] = {NatVerdict::kDrop, false, domain, why}; };
  // Every first fragment leaves a record, translated or not, so that its
  // later fragments know they need not wait.
  auto record_first = [&](uint16_t i, const nat::Rewrite& rw) {
    if (cl[i].first_fragment)
      w.frags->record(nat::fragment_key(ip_bytes(pkts[i]), domain), rw, now_ms);
  };
  auto identity = [&](uint16_t i) { return nat::Rewrite{src[i], dst[i], 0, 0, domain}; };
  auto translated = [&](uint16_t i, const nat::Rewrite& rw) {
    res[i] = {NatVerdict::kRoute, true, rw.domain, Drop::kCount};
    dst[i] = rw.dst;
    src[i] = rw.src;
  };

  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    cl[i] = nat::classify(ip_bytes(m), seg_len(m), domain);
    switch (cl[i].what) {
      case nat::Class::kFlow:
      case nat::Class::kIcmpError:
        keys[nk] = &cl[i].key;
        kidx[nk++] = i;
        break;
      case nat::Class::kLaterFragment:
        later[nlater++] = i;  // after the burst's first fragments were seen
        break;
      case nat::Class::kUnsupported:
        // Other protocols pass untranslated, except to a whole-address
        // mapping, which owns every packet to its address.
        if (v.find(domain, dst[i], 0, 0) != UINT32_MAX) {
          drop(i, Drop::nat_unsupported);
        } else {
          // A first fragment still tells its later fragments not to wait.
          auto* h = reinterpret_cast<const rte_ipv4_hdr*>(ip_bytes(m));
          if ((h->fragment_offset &
               rte_cpu_to_be_16(RTE_IPV4_HDR_OFFSET_MASK | RTE_IPV4_HDR_MF_FLAG)) ==
              rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG))
            w.frags->record(nat::fragment_key(ip_bytes(m), domain), identity(i), now_ms);
          pass(i);
        }
        break;
      case nat::Class::kMalformed:
        drop(i, Drop::nat_malformed);
        break;
    }
  }
  // Later fragments follow their first, which may have been in this burst.
  auto follow_fragments = [&] {
    for (uint16_t x = 0; x < nlater; ++x) {
      uint16_t i = later[x];
      rte_mbuf* m = pkts[i];
      if (const nat::Rewrite* rw = w.frags->find(cl[i].key, now_ms)) {
        if (rw->src == src[i] && rw->dst == dst[i] && rw->domain == domain) {
          pass(i);  // a datagram NAT does not touch
        } else {
          nat::rewrite_addresses(ip_bytes(m), *rw);
          translated(i, *rw);
          c.event(Event::nat_fragments_followed);
        }
      } else if (w.frags->hold(cl[i].key, m, now_ms)) {
        res[i] = {NatVerdict::kHeld, false, domain, Drop::kCount};
        c.event(Event::nat_fragments_held);
      } else {
        drop(i, Drop::nat_fragment_hold_full);
      }
    }
  };
  if (!nk) return follow_fragments();

  uint32_t hit[kBurst];
  table.lookup_bulk(keys, nk, hit);
  // The records are the burst's one cache miss per packet: start them all.
  for (uint16_t j = 0; j < nk; ++j)
    if (hit[j] != nat::SessionTable::kMiss) rte_prefetch0(&table.at(hit[j] >> 1));

  // A packet of session `h` (index << 1 | side).
  auto on_session = [&](uint16_t i, uint32_t h, uint8_t* ip, uint32_t len, uint16_t total) {
    const nat::Classified& k = cl[i];
    nat::Session& s = table.at(h >> 1);
    bool from_orig = (h & 1) == 0;
    if (v.mapping_stale(s.mapping, s.mapping_tag)) {
      drop(i, Drop::nat_stale_session);
      return;
    }
    nat::Rewrite rw = nat::Rewrite::toward(from_orig ? s.reply : s.orig);
    if (k.what == nat::Class::kIcmpError) {
      record_first(i, rw);
      nat::rewrite_icmp_error(ip, len, rw);
      translated(i, rw);
      c.event(Event::nat_icmp_errors_translated);
      return;
    }
    if (k.key.proto == nat::kTcp) {
      auto st = static_cast<nat::TcpState>(s.tcp.load(std::memory_order_relaxed));
      nat::TcpState next = nat::tcp_next(st, from_orig, k.tcp_flags);
      if (next != st) s.tcp.store(static_cast<uint8_t>(next), std::memory_order_relaxed);
      if (k.tcp_flags & nat::kSyn) {
        uint16_t mss = min_nonzero(v.mss(s.orig.domain), v.mss(s.reply.domain));
        if (mss && nat::clamp_mss(ip, len, mss)) c.event(Event::nat_mss_clamped);
      }
    }
    if (s.last_seen_s.load(std::memory_order_relaxed) != now_s)
      s.last_seen_s.store(now_s, std::memory_order_relaxed);
    record_first(i, rw);
    nat::rewrite(ip, len, rw);
    translated(i, rw);
    if (s.mapping != nat::Session::kNoMapping) {
      MappingCounters& x = mc[s.mapping];
      if (from_orig) {
        ++x.packets_in;
        x.bytes_in += total;
      } else {
        ++x.packets_out;
        x.bytes_out += total;
      }
    }
  };
  bool made = false;  // a session made in this burst may serve later packets of it
  for (uint16_t j = 0; j < nk; ++j) {
    uint16_t i = kidx[j];
    rte_mbuf* m = pkts[i];
    uint8_t* ip = ip_bytes(m);
    uint32_t len = seg_len(m);
    const nat::Classified& k = cl[i];
    uint16_t total = rte_be_to_cpu_16(reinterpret_cast<rte_ipv4_hdr*>(ip)->total_length);

    uint32_t h = hit[j];
    if (h == nat::SessionTable::kMiss && made) h = table.lookup(k.key);
    if (h != nat::SessionTable::kMiss) {
      on_session(i, h, ip, len, total);
      continue;
    }

    // No session.
    bool echo_reply = k.key.proto == nat::kIcmp && ip[20] == 0;  // type 0; IHL is 5 here
    if (k.what == nat::Class::kIcmpError || echo_reply) {
      record_first(i, identity(i));
      pass(i);
      continue;
    }
    uint8_t proto = k.key.proto;
    int pi = nat::proto_index(proto);
    uint16_t lookup_port = proto == nat::kIcmp ? 0 : k.key.dport;
    uint32_t mid = v.find(domain, k.key.dst, proto, lookup_port);
    bool hairpin = false;
    if (mid == UINT32_MAX && domain != 0) {
      // From a VDC (or a user tunnel) to a published address: hairpinning
      // (RFC 4787 REQ-9), translated like a packet from the uplink, unless
      // the domain has a route of its own for that address (its address
      // space overlaps ours): a default route does not count.
      const DomainTable* t = g.table_of(domain);
      uint32_t idx;
      if (!t || rte_lpm_lookup(t->lpm, k.key.dst, &idx) != 0) {
        mid = v.find(0, k.key.dst, proto, lookup_port);
        hairpin = mid != UINT32_MAX;
      }
    }
    nat::FlowKey reply;
    uint32_t pool = nat::Session::kNoPool;
    uint8_t flags = 0;
    const nat::SnatView* snat = nullptr;
    if (mid != UINT32_MAX) {
      const nat::MappingView& mv = v.mapping(mid);
      if (proto == nat::kTcp && (k.tcp_flags & (nat::kSyn | nat::kAck | nat::kRst)) != nat::kSyn) {
        drop(i, Drop::nat_tcp_not_syn);
        continue;
      }
      uint16_t tport = proto == nat::kIcmp ? 0
                       : mv.proto == 0
                           ? k.key.dport
                           : static_cast<uint16_t>(mv.inner_port + (k.key.dport - mv.port_lo));
      pool = mv.pools[pi];
      reply = {mv.inner_addr, mv.gateway, tport, 0, mv.domain, proto, nat::FlowKey::kFlow};
    } else if (const nat::SnatView* sv = v.snat(domain)) {
      // Dynamic source NAT only for what has no route in its own domain.
      const DomainTable* t = g.domain(domain);
      uint32_t idx;
      if ((t && t->lookup(k.key.dst, &idx)) ||
          (proto == nat::kTcp &&
           (k.tcp_flags & (nat::kSyn | nat::kAck | nat::kRst)) != nat::kSyn)) {
        record_first(i, identity(i));
        pass(i);
        continue;
      }
      pool = sv->pools[pi];
      flags = nat::Session::kDynamic;
      reply = {k.key.dst,         sv->public_addr, k.key.dport,        0,
               sv->public_domain, proto,           nat::FlowKey::kFlow};
      snat = sv;
    } else {
      record_first(i, identity(i));
      pass(i);
      continue;
    }
    nat::PortPool& pp = nr.pools().at(pool);
    uint32_t binding = nat::Session::kNoPool;
    uint16_t port;
    if (snat) {
      SnatPort sp = snat_port(nr, w.index, k.key, *snat, pool, sequential, now_s);
      port = sp.port;
      binding = sp.binding;
    } else {
      port = pp.allocate(sequential ? 0 : rte_rand());
    }
    // Undoes the port (or the binding reference) of a session not made.
    auto unport = [&] {
      if (binding != nat::Session::kNoPool)
        nr.binding_refs(binding).fetch_sub(1, std::memory_order_acq_rel);
      else
        pp.release(port);
    };
    if (!port) {
      if (mid != UINT32_MAX) ++mc[mid].refused;
      drop(i, Drop::nat_ports_exhausted);
      continue;
    }
    reply.dport = port;
    uint32_t tag = mid != UINT32_MAX ? v.mapping(mid).tag : 0;
    uint8_t tcp0 = static_cast<uint8_t>(proto == nat::kTcp
                                            ? nat::tcp_next(nat::TcpState::kNone, true, k.tcp_flags)
                                            : nat::TcpState::kNone);
    uint32_t index;
    auto r = table.insert(
        w.index, k.key, reply,
        [&](nat::Session& s) {
          s.mapping = mid == UINT32_MAX ? nat::Session::kNoMapping : mid;
          s.mapping_tag = binding != nat::Session::kNoPool ? binding : tag;
          s.pool = binding != nat::Session::kNoPool ? nat::Session::kNoPool : pool;
          s.pool_port = port;
          s.flags = binding != nat::Session::kNoPool ? flags | nat::Session::kBound : flags;
          s.tcp.store(tcp0, std::memory_order_relaxed);
          s.created_s.store(now_s, std::memory_order_relaxed);
          s.last_seen_s.store(now_s, std::memory_order_relaxed);
        },
        &index);
    if (r == nat::SessionTable::Insert::kExists) {
      // Made a moment ago by another worker: use that one.
      unport();
      h = table.lookup(k.key);
      if (h != nat::SessionTable::kMiss) {
        on_session(i, h, ip, len, total);
      } else {
        drop(i, Drop::nat_session_race);
      }
      continue;
    }
    if (r != nat::SessionTable::Insert::kOk) {
      unport();
      if (mid != UINT32_MAX) ++mc[mid].refused;
      drop(i,
           r == nat::SessionTable::Insert::kFull ? Drop::nat_table_full : Drop::nat_session_race);
      continue;
    }
    made = true;
    c.event(Event::nat_sessions_created);
    if (hairpin) c.event(Event::nat_hairpinned);
    nat::Rewrite rw = nat::Rewrite::toward(reply);
    if (proto == nat::kTcp) {
      uint16_t mss = min_nonzero(v.mss(domain), v.mss(reply.domain));
      if (mss && nat::clamp_mss(ip, len, mss)) c.event(Event::nat_mss_clamped);
    }
    record_first(i, rw);
    nat::rewrite(ip, len, rw);
    translated(i, rw);
    if (mid != UINT32_MAX) {
      ++mc[mid].sessions;
      ++mc[mid].packets_in;
      mc[mid].bytes_in += total;
    }
  }
  follow_fragments();
}

void nat_drain(Worker& w, uint64_t now_ms, rte_mbuf** ready, uint16_t* domain, uint32_t* dst,
               uint16_t* nready, rte_mbuf** expired, uint16_t* nexpired) {
  nat::FragmentCache::Ready r[nat::FragmentCache::kHeld];
  void* e[nat::FragmentCache::kHeld];
  uint32_t nr = 0, ne = 0;
  w.frags->drain(now_ms, r, &nr, e, &ne);
  for (uint32_t i = 0; i < nr; ++i) {
    auto* m = static_cast<rte_mbuf*>(r[i].pkt);
    nat::rewrite_addresses(ip_bytes(m), r[i].rw);
    ready[i] = m;
    domain[i] = r[i].rw.domain;
    dst[i] = r[i].rw.dst;
  }
  for (uint32_t i = 0; i < ne; ++i) expired[i] = static_cast<rte_mbuf*>(e[i]);
  *nready = static_cast<uint16_t>(nr);
  *nexpired = static_cast<uint16_t>(ne);
}

}  // namespace tether::dp
