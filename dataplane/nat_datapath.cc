#include "dataplane/nat_datapath.h"

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_prefetch.h>
#include <rte_random.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "dataplane/dataplane.h"
#include "dataplane/worker.h"
#include "firewall/tcp_track.h"
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

namespace {

// A first packet waiting for its verdict: what it would start, and the
// fields and policy it is classified by.
struct Job {
  uint16_t i;  // index in the burst
  uint16_t to_zone;
  bool stateful;    // an accepted packet starts a session (else: judged alone)
  bool follower;    // a later packet of an earlier job's flow: planned after that job acted
  bool classified;  // `verdict` is set
  bool hairpin;
  uint32_t mid;   // mapping, or UINT32_MAX
  uint32_t pool;  // port pool for the reply side's port, or kNoPool
  uint8_t flags;  // Session::kDynamic...
  const nat::SnatView* snat;
  nat::FlowKey reply;  // the reply key (its dport set when a port is taken)
  uint8_t icmp_type, icmp_code;
  const FwPolicyView* policy;  // nullptr: the built-in verdict of the pair
  fw::AclKey key;
  FwRuleRef verdict;
};

// Whether UDP to (dst, dport) in `domain` is a WireGuard listen address:
// the tunnels' own underlay, authenticated by the protocol, never filtered
// or tracked.
inline bool wg_listen_addr(const Generation& g, uint16_t domain, uint32_t dst, uint16_t dport) {
  for (const WgListen& l : g.wg_listen)
    if (l.addr == dst && l.port == dport && l.domain == domain) return true;
  return false;
}

}  // namespace

void nat_burst(Dataplane& dp, Worker& w, const Generation& g, uint16_t domain, uint16_t from_zone,
               bool from_tunnel, rte_mbuf** pkts, uint32_t* dst, uint32_t* src, uint16_t n,
               NatResult* res, uint64_t now_ms) {
  NatRuntime& nr = dp.nat();
  nat::SessionTable& table = nr.sessions();
  const nat::NatView& v = g.nat;
  const FwView& fv = g.fw;
  FwRuntime& fr = dp.fw();
  LcoreCounters& c = *w.counters;
  MappingCounters* mc = nr.counters(w.index);
  RuleCounters* rc = fr.counters(w.index);
  uint32_t now_s = static_cast<uint32_t>(now_ms / 1000);
  bool sequential = dp.config().testing.nat_sequential_ports;
  bool tcp_tracking = dp.config().firewall.tcp_window_tracking;
  bool tcp_pickup = dp.config().firewall.tcp_pickup;

  // Raw room, each entry made in place by classify(): a default-made array
  // and a copy of each result cost more than the classification (the copy
  // loads as one 16-byte word a key just stored field by field).
  union ClassSlot {
    ClassSlot() {}
    nat::Classified c;
  };
  ClassSlot class_room[kBurst];
  nat::Classified* cl = &class_room[0].c;
  const nat::FlowKey* keys[kBurst];
  uint16_t kidx[kBurst];
  uint16_t nk = 0;
  uint16_t later[kBurst];
  uint16_t nlater = 0;
  // Jobs are made only for first packets: raw room, so that a burst of
  // established packets does not construct 64 of them.
  union JobSlot {
    JobSlot() {}
    Job j;
  };
  JobSlot job_room[2 * kBurst];  // a follower may be planned again: two per packet at most
  Job* jobs = &job_room[0].j;
  static_assert(sizeof(JobSlot) == sizeof(Job));
  uint16_t njobs = 0;
  auto pass = [&](uint16_t i) { res[i] = {NatVerdict::kRoute, false, domain, Drop::kCount}; };
  // A first fragment that goes leaves a record that its later fragments go
  // too (at once, not after waiting for it).
  auto dropped_first = [&](uint16_t i) {
    if (cl[i].first_fragment)
      w.frags->record(nat::fragment_key(ip_bytes(pkts[i]), domain),
                      nat::Rewrite{0, 0, 0, 0, nat::FragmentCache::kDropped}, now_ms);
  };
  auto drop = [&](uint16_t i, Drop why) {
    res[i] = {NatVerdict::kDrop, false, domain, why};
    dropped_first(i);
  };
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
  auto total_of = [&](uint16_t i) {
    return rte_be_to_cpu_16(reinterpret_cast<rte_ipv4_hdr*>(ip_bytes(pkts[i]))->total_length);
  };
  // The zone a packet to `addr` in domain `d` goes to, by its route:
  // management for an own address, a tunnel's interface zone, an egress
  // port's zone. kNoZone without a route (routing drops it).
  auto zone_to = [&](uint16_t d, uint32_t addr) -> uint16_t {
    const DomainTable* t = g.table_of(d);
    uint32_t idx;
    if (!t || !t->lookup(addr, &idx)) return kNoZone;
    const NextHop& nh = t->nexthops[idx];
    switch (nh.kind) {
      case NextHopKind::kLocal:
        return kZoneManagement;
      case NextHopKind::kTunnel: {
        const WgPeer* p = nh.peer < g.wg_peers.size() ? g.wg_peers[nh.peer] : nullptr;
        return p ? fv.zone_of_iface(p->iface->id, d) : fv.zone_of_domain(d);
      }
      case NextHopKind::kForward:
        return fv.zone_of_port(nh.port);
      case NextHopKind::kBroadcast:
        return kNoZone;
    }
    return kNoZone;
  };
  // A packet judged alone (no session: other protocols, ICMP errors and
  // echo replies without a session, traffic to the appliance itself).
  auto judge_alone = [&](uint16_t i, uint8_t proto, uint8_t type, uint8_t code) {
    uint16_t to = zone_to(domain, dst[i]);
    if (to == kNoZone) {
      record_first(i, identity(i));
      pass(i);  // routing drops it and says why
      return;
    }
    Job& j = *new (&jobs[njobs++]) Job{};
    j.i = i;
    j.to_zone = to;
    j.stateful = false;
    j.mid = UINT32_MAX;
    j.icmp_type = type;
    j.icmp_code = code;
    j.policy = fv.policy(from_zone, to);
    if (proto == nat::kIcmp) {
      j.key = fw::make_icmp_key(src[i], dst[i], type, code);
    } else if (cl[i].what == nat::Class::kFlow) {
      j.key = fw::make_key(proto, src[i], dst[i], cl[i].key.sport, cl[i].key.dport);
    } else {
      j.key = fw::make_key(proto, src[i], dst[i], 0, 0);
    }
  };

  for (uint16_t i = 0; i < n; ++i) {
    rte_mbuf* m = pkts[i];
    new (&cl[i]) nat::Classified(nat::classify(ip_bytes(m), seg_len(m), domain));
    switch (cl[i].what) {
      case nat::Class::kFlow:
      case nat::Class::kIcmpError:
        keys[nk] = &cl[i].key;
        kidx[nk++] = i;
        break;
      case nat::Class::kLaterFragment:
        later[nlater++] = i;  // after the burst's first fragments were seen
        break;
      case nat::Class::kUnsupported: {
        // Other protocols are not translated, and a whole-address mapping
        // owns every packet to its address.
        if (v.find(domain, dst[i], 0, 0) != UINT32_MAX) {
          drop(i, Drop::nat_unsupported);
          break;
        }
        const uint8_t* ip = ip_bytes(m);
        auto* h = reinterpret_cast<const rte_ipv4_hdr*>(ip);
        bool first = (h->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_OFFSET_MASK)) == 0;
        uint8_t type = 0, code = 0;
        if (h->next_proto_id == nat::kIcmp && first && seg_len(m) >= 22) {
          type = ip[20];
          code = ip[21];
        }
        // A first fragment still tells its later fragments what became of it.
        cl[i].first_fragment =
            first && (h->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG)) != 0;
        judge_alone(i, h->next_proto_id, type, code);
        break;
      }
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
        if (rw->domain == nat::FragmentCache::kDropped) {
          drop(i, Drop::fragment_first_dropped);
        } else if (rw->src == src[i] && rw->dst == dst[i] && rw->domain == domain) {
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

  uint32_t hit[kBurst];
  if (nk) table.lookup_bulk(keys, nk, hit);
  // The records are the burst's one cache miss per packet: start them all
  // (TCP segments read the window state on the second line too).
  for (uint16_t j = 0; j < nk; ++j)
    if (hit[j] != nat::SessionTable::kMiss) {
      const nat::Session* s = &table.at(hit[j] >> 1);
      rte_prefetch0(s);
      if (cl[kidx[j]].key.proto == nat::kTcp) rte_prefetch0(s->tcp_window);
    }

  // A session accepted under an older policy tag asks the policy of its
  // zone pair as it is now. False: no longer accepted (revoked for good).
  auto recheck = [&](nat::Session& s) -> bool {
    uint32_t tag = fv.tag();
    c.event(Event::fw_rechecked);
    FwRuleRef ref;
    if (!fv.zone_live(s.from_zone) || !fv.zone_live(s.to_zone)) {
      ref = {};
    } else if (const FwPolicyView* p = fv.policy(s.from_zone, s.to_zone)) {
      if (p->changed_tag <= s.rule_tag.load(std::memory_order_relaxed)) {
        s.rule_tag.store(tag, std::memory_order_relaxed);
        return true;
      }
      fw::AclKey k = fw_key_of(s.orig, s.reply);
      const fw::AclKey* kp = &k;
      uint32_t r;
      p->acl->classify(&kp, &r, 1);
      ref = p->verdict(r);
    } else {
      ref = fv.builtin(s.from_zone, s.to_zone);
    }
    if (ref.action != fw::Action::kAccept) {
      if (!(s.fw.fetch_or(nat::Session::kFwRevoked, std::memory_order_relaxed) &
            nat::Session::kFwRevoked))
        c.event(Event::fw_sessions_revoked);
      return false;
    }
    std::atomic_ref<uint32_t>(s.rule).store(ref.id, std::memory_order_relaxed);
    s.rule_tag.store(tag, std::memory_order_relaxed);
    return true;
  };

  // A packet of session `h` (index << 1 | side).
  auto on_session = [&](uint16_t i, uint32_t h, uint8_t* ip, uint32_t len, uint16_t total) {
    const nat::Classified& k = cl[i];
    nat::Session& s = table.at(h >> 1);
    bool from_orig = (h & 1) == 0;
    if (s.fw.load(std::memory_order_relaxed) & nat::Session::kFwRevoked) {
      drop(i, Drop::fw_revoked);
      return;
    }
    if (v.mapping_stale(s.mapping, s.mapping_tag)) {
      drop(i, Drop::nat_stale_session);
      return;
    }
    // Tags only grow. A session newer than this worker's view (made a
    // moment ago by a worker already on the next generation) is not judged
    // by the older policy.
    if (s.rule_tag.load(std::memory_order_relaxed) < fv.tag() && !recheck(s)) {
      drop(i, Drop::fw_revoked);
      return;
    }
    bool xlate = s.flags & nat::Session::kTranslated;
    nat::Rewrite rw = xlate ? nat::Rewrite::toward(from_orig ? s.reply : s.orig) : identity(i);
    if (k.what == nat::Class::kIcmpError) {
      // Related to the session: passes (translated like its session). An
      // error that is not translated must be addressed to the sender of
      // the packet it quotes (key = the quote's mirror): a quote of a
      // session must not carry packets to anyone else.
      if (!xlate && dst[i] != k.key.dst) {
        drop(i, Drop::fw_icmp_unrelated);
        return;
      }
      record_first(i, rw);
      if (xlate) {
        nat::rewrite_icmp_error(ip, len, rw);
        translated(i, rw);
        c.event(Event::nat_icmp_errors_translated);
      } else {
        pass(i);
      }
      return;
    }
    if (k.key.proto == nat::kTcp) {
      auto st = static_cast<nat::TcpState>(s.tcp.load(std::memory_order_relaxed));
      if (s.fw.load(std::memory_order_relaxed) & nat::Session::kFwTrack) {
        fw::TcpSegment seg;
        if (!fw::parse_segment(ip, len, &seg)) {
          drop(i, Drop::nat_malformed);
          return;
        }
        auto* win = std::launder(reinterpret_cast<fw::TcpWindow*>(s.tcp_window));
        switch (fw::tcp_track(*win, st, from_orig, seg)) {
          case fw::TcpVerdict::kOk:
            break;
          case fw::TcpVerdict::kInvalid:
            drop(i, Drop::fw_tcp_invalid);
            return;
          case fw::TcpVerdict::kOutOfWindow:
            drop(i, Drop::fw_tcp_out_of_window);
            return;
        }
      }
      nat::TcpState next = nat::tcp_next(st, from_orig, k.tcp_flags);
      if (next != st) s.tcp.store(static_cast<uint8_t>(next), std::memory_order_relaxed);
      if (k.tcp_flags & nat::kSyn) {
        uint16_t mss = min_nonzero(v.mss(s.orig.domain), v.mss(s.reply.domain));
        if (mss && nat::clamp_mss(ip, len, mss)) c.event(Event::nat_mss_clamped);
      }
    }
    if (s.last_seen_s.load(std::memory_order_relaxed) != now_s)
      s.last_seen_s.store(now_s, std::memory_order_relaxed);
    RuleCounters& r = rc[s.rule];
    ++r.packets;
    r.bytes += total;
    record_first(i, rw);
    if (!xlate) {
      pass(i);
      return;
    }
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

  // What becomes of a first packet: decided now (passed, dropped), or a
  // job to classify.
  auto plan = [&](uint16_t i) {
    uint8_t* ip = ip_bytes(pkts[i]);
    const nat::Classified& k = cl[i];
    uint8_t proto = k.key.proto;
    if (k.what == nat::Class::kIcmpError) {
      // An error about no session of ours: judged alone, unless it is for
      // the appliance itself, whose own connections (the control plane's)
      // have no session here: the kernel relates it to them or drops it.
      if (zone_to(domain, dst[i]) == kZoneManagement) {
        record_first(i, identity(i));
        pass(i);
        return;
      }
      judge_alone(i, nat::kIcmp, ip[20], ip[21]);
      return;
    }
    if (proto == nat::kIcmp && ip[20] == 0) {  // an echo reply (type 0; IHL is 5 here)
      judge_alone(i, nat::kIcmp, 0, ip[21]);
      return;
    }
    if (proto == nat::kUdp && !from_tunnel && !g.wg_listen.empty() &&
        wg_listen_addr(g, domain, dst[i], k.key.dport)) {
      record_first(i, identity(i));
      pass(i);
      return;
    }
    // What the flow would become: a published mapping, hairpinning, source
    // NAT, or itself.
    int pi = nat::proto_index(proto);
    uint16_t lookup_port = proto == nat::kIcmp ? 0 : k.key.dport;
    uint32_t mid = v.enabled() ? v.find(domain, k.key.dst, proto, lookup_port) : UINT32_MAX;
    bool hairpin = false;
    if (mid == UINT32_MAX && domain != 0 && v.enabled()) {
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
    Job jb{};
    jb.i = i;
    jb.stateful = true;
    jb.mid = mid;
    jb.hairpin = hairpin;
    jb.pool = nat::Session::kNoPool;
    bool syn = (k.tcp_flags & (nat::kSyn | nat::kAck | nat::kRst | nat::kFin)) == nat::kSyn;
    if (mid != UINT32_MAX) {
      const nat::MappingView& mv = v.mapping(mid);
      if (proto == nat::kTcp && !syn) {
        drop(i, Drop::nat_tcp_not_syn);
        return;
      }
      uint16_t tport = proto == nat::kIcmp ? 0
                       : mv.proto == 0
                           ? k.key.dport
                           : static_cast<uint16_t>(mv.inner_port + (k.key.dport - mv.port_lo));
      jb.pool = mv.pools[pi];
      jb.flags = nat::Session::kTranslated;
      // The reply side's port is taken once the flow is accepted.
      jb.reply = {mv.inner_addr, mv.gateway, tport, 0, mv.domain, proto, nat::FlowKey::kFlow};
    } else {
      const nat::SnatView* sv = v.enabled() ? v.snat(domain) : nullptr;
      const DomainTable* t = sv ? g.domain(domain) : nullptr;
      uint32_t idx;
      if (sv && !(t && t->lookup(k.key.dst, &idx))) {
        // Dynamic source NAT only for what has no route in its own domain.
        jb.pool = sv->pools[pi];
        jb.flags = nat::Session::kDynamic | nat::Session::kTranslated;
        jb.reply = {k.key.dst,         sv->public_addr, k.key.dport,        0,
                    sv->public_domain, proto,           nat::FlowKey::kFlow};
        jb.snat = sv;
      } else {
        jb.reply = k.key.mirrored();
      }
    }
    // The destination zone, by the route the packet will take after NAT.
    bool xlate = jb.flags & nat::Session::kTranslated;
    jb.to_zone = zone_to(jb.reply.domain, jb.reply.src);
    if (jb.to_zone == kNoZone) {
      if (!xlate) {
        record_first(i, identity(i));
        pass(i);  // routing drops it and says why; no session for it
        return;
      }
      jb.to_zone = fv.zone_of_domain(jb.reply.domain);
    }
    if (jb.to_zone == kZoneManagement && !xlate) {
      // To the appliance itself: judged packet by packet (its replies come
      // from the kernel through the service thread, not through a session);
      // the host firewall tracks the connections. A TCP segment other than
      // a connection attempt belongs to one (the appliance's own, or one the
      // policy let open): the kernel's connection tracking judges it.
      if (proto == nat::kTcp && !syn) {
        record_first(i, identity(i));
        pass(i);
        return;
      }
      judge_alone(i, proto, proto == nat::kIcmp ? ip[20] : 0, proto == nat::kIcmp ? ip[21] : 0);
      return;
    }
    jb.policy = fv.policy(from_zone, jb.to_zone);
    if (!xlate && !jb.policy && !fv.policy(jb.to_zone, from_zone)) {
      // No policy filters this pair either way and the built-in verdict
      // accepts: routed as it is, as a router would, with no session, so
      // that traffic nobody filters never fills the session table.
      FwRuleRef b = fv.builtin(from_zone, jb.to_zone);
      if (b.action == fw::Action::kAccept) {
        RuleCounters& r = rc[b.id];
        ++r.packets;
        r.bytes += total_of(i);
        record_first(i, identity(i));
        pass(i);
        return;
      }
    }
    // A TCP flow starts with a SYN, unless pickup is on: then a segment of
    // a connection the gateway has no session for (it restarted, or the
    // firewall was just turned on) starts one if the policy accepts it, as
    // netfilter's loose tracking does. Never for what NAT translates.
    if (proto == nat::kTcp && !syn &&
        !(tcp_pickup && !xlate && !(k.tcp_flags & (nat::kSyn | nat::kRst)))) {
      drop(i, Drop::fw_tcp_not_syn);
      return;
    }
    jb.key = fw_key_of(k.key, jb.reply);
    new (&jobs[njobs++]) Job(jb);
  };
  // The flows that became jobs in this burst, both ways: a later packet of
  // one of them (another packet of the flow, or a reply on the same port)
  // waits for that job, since it may find the session the job makes. A
  // 512-bit filter on (src, dst, sport, proto) spares most packets the scan;
  // a translated reply's dport (the port NAT will take) is not known yet.
  uint64_t job_flows[8] = {};
  auto flow_bit = [](const nat::FlowKey& f) {
    uint64_t h = (uint64_t{f.src} << 32 | f.dst) ^ (uint64_t{f.sport} << 8 | f.proto);
    return static_cast<unsigned>(h * 0x9e3779b97f4a7c15ull >> 55);
  };
  auto mark = [&](const nat::FlowKey& f) {
    unsigned b = flow_bit(f);
    job_flows[b >> 6] |= uint64_t{1} << (b & 63);
  };
  auto follows_job = [&](uint16_t i) {
    const nat::FlowKey& f = cl[i].key;
    unsigned b = flow_bit(f);
    if (!(job_flows[b >> 6] & uint64_t{1} << (b & 63))) return false;
    for (uint16_t a = 0; a < njobs; ++a) {
      const Job& jb = jobs[a];
      if (!jb.stateful || jb.follower) continue;
      if (cl[jb.i].key == f) return true;
      const nat::FlowKey& r = jb.reply;
      if (r.src == f.src && r.dst == f.dst && r.sport == f.sport && r.proto == f.proto &&
          r.domain == f.domain && ((jb.flags & nat::Session::kTranslated) || r.dport == f.dport))
        return true;
    }
    return false;
  };

  // Sessions first; first packets become jobs.
  for (uint16_t j = 0; j < nk; ++j) {
    uint16_t i = kidx[j];
    rte_mbuf* m = pkts[i];
    if (hit[j] != nat::SessionTable::kMiss) {
      on_session(i, hit[j], ip_bytes(m), seg_len(m), total_of(i));
      continue;
    }
    if (follows_job(i)) {
      Job& jb = *new (&jobs[njobs++]) Job{};
      jb.i = i;
      jb.follower = true;
      continue;
    }
    uint16_t before = njobs;
    plan(i);
    if (njobs > before && jobs[before].stateful) {
      mark(cl[i].key);
      mark(jobs[before].reply);
    }
  }

  // Classify the first packets, all of a policy at once (rte_acl works on
  // several packets per call).
  const fw::AclKey* akeys[2 * kBurst];
  uint32_t ares[2 * kBurst];
  uint16_t aidx[2 * kBurst];
  auto classify_from = [&](uint16_t first) {
    for (uint16_t a = first; a < njobs; ++a) {
      if (jobs[a].classified || jobs[a].follower) continue;
      const FwPolicyView* p = jobs[a].policy;
      if (!p) {
        jobs[a].verdict = fv.builtin(from_zone, jobs[a].to_zone);
        jobs[a].classified = true;
        continue;
      }
      uint16_t na = 0;
      for (uint16_t b = a; b < njobs; ++b)
        if (!jobs[b].classified && !jobs[b].follower && jobs[b].policy == p) {
          akeys[na] = &jobs[b].key;
          aidx[na++] = b;
          jobs[b].classified = true;
        }
      p->acl->classify(akeys, ares, na);
      for (uint16_t x = 0; x < na; ++x) jobs[aidx[x]].verdict = p->verdict(ares[x]);
    }
  };
  classify_from(0);

  // Act on the verdicts, in the order the packets came.
  for (uint16_t a = 0; a < njobs; ++a) {
    Job& jb = jobs[a];
    uint16_t i = jb.i;
    rte_mbuf* m = pkts[i];
    uint8_t* ip = ip_bytes(m);
    uint32_t len = seg_len(m);
    const nat::Classified& k = cl[i];
    uint16_t total = total_of(i);
    if (jb.follower) {
      // Its flow's first packet has acted: a session, or planned afresh.
      uint32_t h = table.lookup(k.key);
      if (h != nat::SessionTable::kMiss) {
        on_session(i, h, ip, len, total);
      } else {
        uint16_t before = njobs;
        plan(i);
        classify_from(before);  // a job at the end, acted on in its turn
      }
      continue;
    }
    const FwRuleRef& ref = jb.verdict;
    RuleCounters& r = rc[ref.id];
    ++r.packets;
    r.bytes += total;
    if (ref.log) {
      FwLogRecord rec;
      rec.ms = now_ms;
      rec.key = k.what == nat::Class::kFlow
                    ? k.key
                    : nat::FlowKey{src[i], dst[i], 0, 0, domain, jb.key.proto, nat::FlowKey::kFlow};
      rec.rule = ref.id;
      rec.from = from_zone;
      rec.to = jb.to_zone;
      rec.action = static_cast<uint8_t>(ref.action);
      rec.icmp_type = jb.icmp_type;
      rec.icmp_code = jb.icmp_code;
      c.event(fr.log(w.index, now_ms, rec) ? Event::fw_logged : Event::fw_log_suppressed);
    }
    if (ref.action != fw::Action::kAccept) {
      if (ref.id == kRuleBuiltinIsolation) {
        drop(i, Drop::fw_isolation);
      } else if (ref.action == fw::Action::kReject && k.what != nat::Class::kIcmpError) {
        res[i] = {NatVerdict::kReject, false, domain, Drop::fw_rejected};
        dropped_first(i);
      } else {
        drop(i, Drop::fw_denied);
      }
      continue;
    }
    if (!jb.stateful) {
      record_first(i, identity(i));
      pass(i);
      continue;
    }

    uint8_t proto = k.key.proto;
    uint32_t mid = jb.mid;
    nat::FlowKey reply = jb.reply;
    bool xlate = jb.flags & nat::Session::kTranslated;
    uint32_t binding = nat::Session::kNoPool;
    uint16_t port = 0;
    if (xlate) {
      if (jb.snat) {
        SnatPort sp = snat_port(nr, w.index, k.key, *jb.snat, jb.pool, sequential, now_s);
        port = sp.port;
        binding = sp.binding;
      } else {
        port = nr.pools().at(jb.pool).allocate(sequential ? 0 : rte_rand());
      }
      if (!port) {
        if (mid != UINT32_MAX) ++mc[mid].refused;
        drop(i, Drop::nat_ports_exhausted);
        continue;
      }
      reply.dport = port;
    }
    // Undoes the port (or the binding reference) of a session not made.
    auto unport = [&] {
      if (!xlate) return;
      if (binding != nat::Session::kNoPool)
        nr.binding_refs(binding).fetch_sub(1, std::memory_order_acq_rel);
      else
        nr.pools().at(jb.pool).release(port);
    };
    fw::TcpSegment seg;
    bool track = proto == nat::kTcp && jb.to_zone != kZoneManagement && tcp_tracking;
    if (track && !fw::parse_segment(ip, len, &seg)) {
      unport();
      drop(i, Drop::nat_malformed);
      continue;
    }
    uint32_t tag = mid != UINT32_MAX ? v.mapping(mid).tag : 0;
    uint8_t tcp0 = static_cast<uint8_t>(proto == nat::kTcp
                                            ? nat::tcp_next(nat::TcpState::kNone, true, k.tcp_flags)
                                            : nat::TcpState::kNone);
    uint32_t index;
    auto ins = table.insert(
        w.index, k.key, reply,
        [&](nat::Session& s) {
          s.mapping = mid == UINT32_MAX ? nat::Session::kNoMapping : mid;
          s.mapping_tag = binding != nat::Session::kNoPool ? binding : tag;
          s.pool = !xlate || binding != nat::Session::kNoPool ? nat::Session::kNoPool : jb.pool;
          s.pool_port = port;
          s.flags = binding != nat::Session::kNoPool ? jb.flags | nat::Session::kBound : jb.flags;
          s.tcp.store(tcp0, std::memory_order_relaxed);
          s.rule = ref.id;
          s.rule_tag.store(fv.tag(), std::memory_order_relaxed);
          s.from_zone = from_zone;
          s.to_zone = jb.to_zone;
          if (track) {
            s.fw.store(nat::Session::kFwTrack, std::memory_order_relaxed);
            // A picked-up connection's windows are unknown (no SYNs seen):
            // left unstarted, its segments meet the flag checks only.
            auto* win = new (s.tcp_window) fw::TcpWindow{};
            if (fw::first_segment_ok(seg.flags)) fw::tcp_start(*win, seg);
          }
          s.created_s.store(now_s, std::memory_order_relaxed);
          s.last_seen_s.store(now_s, std::memory_order_relaxed);
        },
        &index);
    if (ins == nat::SessionTable::Insert::kExists) {
      // Made a moment ago by another worker: use that one (which counts
      // the packet for its own rule).
      unport();
      --r.packets;
      r.bytes -= total;
      uint32_t h = table.lookup(k.key);
      if (h != nat::SessionTable::kMiss) {
        on_session(i, h, ip, len, total);
      } else {
        drop(i, Drop::nat_session_race);
      }
      continue;
    }
    if (ins != nat::SessionTable::Insert::kOk) {
      unport();
      if (mid != UINT32_MAX) ++mc[mid].refused;
      drop(i,
           ins == nat::SessionTable::Insert::kFull ? Drop::nat_table_full : Drop::nat_session_race);
      continue;
    }
    ++r.sessions;
    if (!xlate) {
      c.event(Event::fw_sessions_created);
      if (proto == nat::kTcp && !(k.tcp_flags & nat::kSyn)) c.event(Event::fw_tcp_picked_up);
      if (proto == nat::kTcp) {
        uint16_t mss = min_nonzero(v.mss(domain), v.mss(reply.domain));
        if (mss && nat::clamp_mss(ip, len, mss)) c.event(Event::nat_mss_clamped);
      }
      record_first(i, identity(i));
      pass(i);
      continue;
    }
    c.event(Event::nat_sessions_created);
    if (jb.hairpin) c.event(Event::nat_hairpinned);
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
               uint16_t* nready, rte_mbuf** expired, uint16_t* nexpired, rte_mbuf** dropped,
               uint16_t* ndropped) {
  *ndropped = 0;
  nat::FragmentCache::Ready r[nat::FragmentCache::kHeld];
  void* e[nat::FragmentCache::kHeld];
  uint32_t nr = 0, ne = 0;
  w.frags->drain(now_ms, r, &nr, e, &ne);
  uint16_t k = 0;
  for (uint32_t i = 0; i < nr; ++i) {
    auto* m = static_cast<rte_mbuf*>(r[i].pkt);
    if (r[i].rw.domain == nat::FragmentCache::kDropped) {  // its first was refused
      dropped[(*ndropped)++] = m;
      continue;
    }
    nat::rewrite_addresses(ip_bytes(m), r[i].rw);
    ready[k] = m;
    domain[k] = r[i].rw.domain;
    dst[k++] = r[i].rw.dst;
  }
  for (uint32_t i = 0; i < ne; ++i) expired[i] = static_cast<rte_mbuf*>(e[i]);
  *nready = k;
  *nexpired = static_cast<uint16_t>(ne);
}

}  // namespace tether::dp
