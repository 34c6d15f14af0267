// The service thread's WireGuard work: handshakes (WireGuard paper §5.4),
// cookies under load (§5.3), timers and key rotation (§6), staged packets,
// keepalives. Everything here runs with WgRuntime::mutex() held, taken with
// try_lock so that the API thread (which holds it while publishing) can
// never stall ARP or the kernel path.
#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <cstring>

#include "dataplane/dataplane.h"
#include "dataplane/log.h"
#include "dataplane/packet.h"
#include "dataplane/service.h"
#include "tunnel/messages.h"

namespace tether::dp {
namespace {

constexpr uint16_t kEth = sizeof(rte_ether_hdr);
constexpr unsigned kHandshakesPerPoll = 16;  // bounded so ARP and the TAP keep their turn
constexpr unsigned kHandshakeRingSize = 4096;

uint32_t le32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return rte_le_to_cpu_32(v);
}

// The source bytes a cookie is bound to: IPv4 address and UDP port, network order.
std::array<uint8_t, 6> source_bytes(uint64_t endpoint) {
  std::array<uint8_t, 6> b;
  uint32_t ip = rte_cpu_to_be_32(WgPeer::endpoint_ip(endpoint));
  uint16_t port = rte_cpu_to_be_16(WgPeer::endpoint_port(endpoint));
  std::memcpy(b.data(), &ip, 4);
  std::memcpy(b.data() + 4, &port, 2);
  return b;
}

}  // namespace

void Service::wg_poll(const Generation& g) {
  rte_ring* ring = dp_.handshake_ring();
  if (g.wg_listen.empty() && g.wg_peers.empty() && wg_deferred_.empty() && rte_ring_empty(ring))
    return;
  std::unique_lock lock(dp_.wg().mutex(), std::try_to_lock);
  if (!lock) return;  // the API thread is publishing; next time
  uint64_t now = now_ms();
  if (wg_map_generation_ != g.id) {
    wg_by_key_.clear();
    for (WgPeer* p : g.wg_peers)
      if (p) wg_by_key_[{p->iface, p->keys.public_key}] = p;
    wg_map_generation_ = g.id;
  }

  // Punted work first (staged, fragments, routed replies), then handshakes.
  std::vector<rte_mbuf*> work;
  work.swap(wg_deferred_);
  for (rte_mbuf* m : work) wg_punted(g, m);

  // Load (WireGuard paper §5.3): handshake messages this second, or a
  // backlog in the ring, turn on cookies for a second.
  unsigned backlog = rte_ring_count(ring);
  rte_mbuf* pkts[kHandshakesPerPoll];
  unsigned n =
      rte_ring_sc_dequeue_burst(ring, reinterpret_cast<void**>(pkts), kHandshakesPerPoll, nullptr);
  if (n) {
    if (now - wg_load_window_ms_ >= 1000) {
      wg_load_window_ms_ = now;
      wg_load_count_ = 0;
    }
    wg_load_count_ += n;
    uint32_t limit = dp_.config().wireguard.under_load_per_sec;
    if (wg_load_count_ > limit || backlog >= kHandshakeRingSize / 8)
      wg_under_load_until_ms_ = now + 1000;
  }
  bool under_load = now < wg_under_load_until_ms_;
  for (unsigned i = 0; i < n; ++i) {
    if (meta(pkts[i])->punt == Punt::kWgHandshake)
      wg_handshake(g, pkts[i], under_load, now);
    else
      wg_punted(g, pkts[i]);
  }

  if (now - wg_last_timers_ms_ >= 10) {
    wg_last_timers_ms_ = now;
    wg_timers(g, now);
    dp_.wg().reclaim(dp_.qsbr());
  }
}

void Service::wg_punted(const Generation& g, rte_mbuf* m) {
  PacketMeta* md = meta(m);
  if (md->punt == Punt::kWgHandshake) {
    // Deferred handshakes (lock was busy) go back through the ring's path.
    return wg_handshake(g, m, now_ms() < wg_under_load_until_ms_, now_ms());
  }
  WgPeer* p = wg_peer_for(g, m);
  if (!p) return drop(m, Drop::wg_no_keys);
  uint64_t now = now_ms();
  if (md->punt == Punt::kWgFragment) {
    std::vector<rte_mbuf*> frags;
    if (!make_fragments(m, p->iface->mtu, &frags)) return;
    for (rte_mbuf* f : frags) wg_send_inner(g, p, f, now);
    return;
  }
  wg_send_inner(g, p, m, now);
}

WgPeer* Service::wg_peer_for(const Generation& g, rte_mbuf* m) {
  uint32_t id = meta(m)->nexthop;
  if (id >= g.wg_peers.size() || !g.wg_peers[id]) return nullptr;
  WgPeer* p = g.wg_peers[id];
  // The id may have been reused since the packet was punted: the current
  // generation must still route the destination to this very peer.
  const DomainTable* t = g.domain(p->domain);
  uint32_t idx;
  uint32_t dst = rte_be_to_cpu_32(rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEth)->dst_addr);
  if (!t || !t->lookup(dst, &idx) || t->nexthops[idx].kind != NextHopKind::kTunnel ||
      t->nexthops[idx].peer != id)
    return nullptr;
  return p;
}

void Service::wg_route_inner(const Generation& g, uint32_t peer, rte_mbuf* m) {
  PacketMeta* md = meta(m);
  md->nexthop = peer;
  const WgPeer* p = peer < g.wg_peers.size() ? g.wg_peers[peer] : nullptr;
  if (!p) return drop(m, Drop::no_route);
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEth);
  if (rte_be_to_cpu_16(ip->total_length) > p->iface->mtu) {
    if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG))
      return drop(m, Drop::mtu_exceeded_df);
    md->punt = Punt::kWgFragment;
  } else {
    md->punt = Punt::kWgStage;
  }
  wg_deferred_.push_back(m);
}

void Service::wg_send_inner(const Generation& g, WgPeer* p, rte_mbuf* m, uint64_t now) {
  uint16_t len = rte_be_to_cpu_16(rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEth)->total_length);
  Drop why = Drop::wg_encap_failed;
  uint16_t port;
  uint32_t hop, slot;
  switch (wg_encap(*wg_aead_, g, p, dp_.wg().timers(), now, m, len, kMaxWorkers, &why, &port, &hop,
                   &slot)) {
    case EncapResult::kSent:
      return send_via(g, m, port, hop, slot);
    case EncapResult::kStage:
      return wg_stage(g, p, m, now);
    case EncapResult::kDrop:
      return drop(m, why);
  }
}

void Service::wg_stage(const Generation& g, WgPeer* p, rte_mbuf* m, uint64_t now) {
  // WireGuard paper §6.5 ("the packet is queued"): at most MAX_QUEUED_PACKETS
  // per peer, the oldest go first; and a bound over all peers.
  if (p->staged.size() >= wg::kMaxStagedPackets) {
    drop(p->staged.front(), Drop::wg_no_keys);
    p->staged.pop_front();
    --dp_.wg().staged_total;
  }
  if (dp_.wg().staged_total >= kMaxStagedTotal) return drop(m, Drop::wg_no_keys);
  p->staged.push_back(m);
  ++dp_.wg().staged_total;
  c_.event(Event::wg_staged);
  if (!p->handshake_pending && p->timers->should_initiate(now)) wg_send_initiation(g, p, now);
}

void Service::wg_drop_staged(WgPeer* p) {
  for (rte_mbuf* m : p->staged) drop(m, Drop::wg_no_keys);
  dp_.wg().staged_total -= static_cast<unsigned>(p->staged.size());
  p->staged.clear();
}

void Service::wg_flush_staged(const Generation& g, WgPeer* p, uint64_t now) {
  std::deque<rte_mbuf*> staged;
  staged.swap(p->staged);
  dp_.wg().staged_total -= static_cast<unsigned>(staged.size());
  for (rte_mbuf* m : staged) wg_send_inner(g, p, m, now);
}

void Service::wg_send_message(const Generation& g, const WgInterface* iface, uint64_t to,
                              const void* msg, size_t len) {
  const DomainTable* t = g.domain(iface->domain);
  uint32_t idx;
  Ipv4 dst = WgPeer::endpoint_ip(to);
  if (!t || !t->lookup(dst, &idx) || t->nexthops[idx].kind != NextHopKind::kForward) {
    c_.drop(Drop::no_route);
    return;
  }
  const NextHop& nh = t->nexthops[idx];
  rte_mbuf* m = rte_pktmbuf_alloc(dp_.pool());
  if (!m) {
    c_.drop(Drop::no_buffers);
    return;
  }
  size_t total = sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) + len;
  auto* frame = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, kEth + total));
  std::memcpy(frame + kEth + sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr), msg, len);
  wg_outer_headers(frame, *iface, to, static_cast<uint16_t>(len), 0);
  // Handshake messages carry no AEAD over the whole datagram: checksum them.
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(frame + kEth);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
  send_via(g, m, nh.port, nh.gateway ? nh.gateway : dst, nh.slot);
}

void Service::wg_cookie_reply(const Generation& g, WgInterface* iface, const uint8_t* msg,
                              size_t len, uint32_t sender_index, uint64_t src, uint64_t now) {
  wg::MessageCookieReply reply;
  auto sb = source_bytes(src);
  iface->cookies->make_reply(msg, len, sender_index, wg::Bytes(sb.data(), sb.size()), now, &reply);
  wg_send_message(g, iface, src, &reply, sizeof reply);
  c_.event(Event::wg_cookie_replies_sent);
}

void Service::wg_handshake(const Generation& g, rte_mbuf* m, bool under_load, uint64_t now) {
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEth);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  // The worker named the listen entry in its generation; ours may be newer.
  WgInterface* iface = nullptr;
  for (const WgListen& l : g.wg_listen)
    if (l.addr == rte_be_to_cpu_32(ip->dst_addr) && l.port == rte_be_to_cpu_16(udp->dst_port) &&
        l.domain == meta(m)->domain)
      iface = l.iface;
  if (!iface) return drop(m, Drop::wg_malformed);
  uint32_t udp_len = rte_be_to_cpu_16(udp->dgram_len);
  if (udp_len < sizeof(rte_udp_hdr) ||
      udp_len > rte_be_to_cpu_16(ip->total_length) - sizeof(rte_ipv4_hdr) ||
      !rte_pktmbuf_is_contiguous(m) ||
      rte_pktmbuf_data_len(m) < kEth + sizeof(rte_ipv4_hdr) + udp_len)
    return drop(m, Drop::wg_malformed);
  const auto* msg = reinterpret_cast<const uint8_t*>(udp + 1);
  size_t len = udp_len - sizeof(rte_udp_hdr);
  uint64_t src =
      WgPeer::pack_endpoint(rte_be_to_cpu_32(ip->src_addr), rte_be_to_cpu_16(udp->src_port));
  auto sb = source_bytes(src);
  wg::Bytes source(sb.data(), sb.size());
  uint8_t type;
  if (!wg::message_type(msg, len, &type)) return drop(m, Drop::wg_malformed);

  // Copy out of the mbuf: nothing below keeps it.
  alignas(8) uint8_t buf[sizeof(wg::MessageInitiation)];
  switch (type) {
    case wg::kInitiation:
    case wg::kResponse: {
      size_t want =
          type == wg::kInitiation ? sizeof(wg::MessageInitiation) : sizeof(wg::MessageResponse);
      if (len != want) return drop(m, Drop::wg_malformed);
      std::memcpy(buf, msg, len);
      rte_pktmbuf_free(m);
      c_.event(type == wg::kInitiation ? Event::wg_initiations_received
                                       : Event::wg_responses_received);
      // §5.4.4: MAC1 first, always; it is cheap and needs no state.
      if (!iface->cookies->check_mac1(buf, len)) {
        c_.drop(Drop::wg_handshake_invalid);
        return;
      }
      // §5.3: under load, only a valid MAC2 (a cookie bound to this source)
      // gets the expensive DH work; everyone else gets a cookie reply.
      if (under_load && !iface->cookies->check_mac2(buf, len, source, now)) {
        return wg_cookie_reply(g, iface, buf, len, le32(buf + 4), src, now);
      }
      if (type == wg::kInitiation) return wg_initiation(g, iface, buf, src, now);
      return wg_response(g, iface, buf, src, now);
    }
    case wg::kCookieReply: {
      if (len != sizeof(wg::MessageCookieReply)) return drop(m, Drop::wg_malformed);
      wg::MessageCookieReply reply;
      std::memcpy(&reply, msg, sizeof reply);
      rte_pktmbuf_free(m);
      c_.event(Event::wg_cookie_replies_received);
      WgPeer* p = dp_.wg().indices().peer(rte_le_to_cpu_32(reply.receiver_index));
      if (!p || p->iface != iface || !p->handshake_pending ||
          !p->cookie_maker->consume_reply(reply, now))
        c_.drop(Drop::wg_handshake_invalid);
      return;
    }
    default:
      return drop(m, Drop::wg_malformed);
  }
}

void Service::wg_initiation(const Generation& g, WgInterface* iface, const uint8_t* buf,
                            uint64_t src, uint64_t now) {
  const auto& msg = *reinterpret_cast<const wg::MessageInitiation*>(buf);
  WgPeer* found = nullptr;
  wg::ConsumedInitiation ci;
  auto find = [&](const wg::Key& pub) -> const wg::PeerKeys* {
    auto it = wg_by_key_.find({iface, pub});
    if (it == wg_by_key_.end()) return nullptr;
    found = it->second;
    return &found->keys;
  };
  if (!wg::consume_initiation(iface->identity, msg, find, &ci) || !found) {
    c_.drop(Drop::wg_handshake_invalid);
    return;
  }
  WgPeer* p = found;
  // §5.1: the TAI64N timestamp must grow, so a captured initiation cannot
  // be replayed to reset the responder's session.
  if (std::memcmp(ci.timestamp.data(), p->latest_timestamp.data(), wg::kTimestampLen) <= 0) {
    ci.hs.clear();
    c_.drop(Drop::wg_handshake_replay);
    return;
  }
  // And at most INITIATIONS_PER_SECOND consumed per peer.
  if (p->last_initiation_consumed_ms &&
      now - p->last_initiation_consumed_ms < 1000 / wg::kInitiationsPerSecond) {
    ci.hs.clear();
    c_.drop(Drop::wg_handshake_flood);
    return;
  }
  p->latest_timestamp = ci.timestamp;
  p->last_initiation_consumed_ms = now;
  auto& indices = dp_.wg().indices();
  uint32_t index = indices.allocate(p);
  if (!index) {
    ci.hs.clear();
    c_.drop(Drop::wg_handshake_invalid);
    return;
  }
  ci.hs.local_index = index;
  wg::MessageResponse resp;
  if (!wg::create_response(p->keys, &ci.hs, &resp)) {
    indices.release(index);
    ci.hs.clear();
    c_.drop(Drop::wg_handshake_invalid);
    return;
  }
  p->cookie_maker->add_macs(reinterpret_cast<uint8_t*>(&resp), sizeof resp, now);
  wg::SessionKeys keys = wg::derive_keys(&ci.hs, /*initiator=*/false);
  wg_install(p, keys, now);
  if (p->endpoint.load(std::memory_order_relaxed) != src) {
    p->endpoint.store(src, std::memory_order_relaxed);
    c_.event(Event::wg_endpoint_changes);
  }
  wg_send_message(g, iface, src, &resp, sizeof resp);
  p->timers->response_sent(now);
  p->last_sent.store(now, std::memory_order_relaxed);
  p->last_received.store(now, std::memory_order_relaxed);
  c_.event(Event::wg_responses_sent);
}

void Service::wg_response(const Generation& g, WgInterface* iface, const uint8_t* buf, uint64_t src,
                          uint64_t now) {
  const auto& msg = *reinterpret_cast<const wg::MessageResponse*>(buf);
  uint32_t receiver = rte_le_to_cpu_32(msg.receiver_index);
  WgPeer* p = dp_.wg().indices().peer(receiver);
  if (!p || p->iface != iface || !p->handshake_pending || p->handshake.local_index != receiver) {
    c_.drop(Drop::wg_handshake_invalid);
    return;
  }
  wg::HandshakeState hs = p->handshake;  // a forged response must not spoil the real one
  if (!wg::consume_response(iface->identity, p->keys, msg, &hs)) {
    hs.clear();
    c_.drop(Drop::wg_handshake_invalid);
    return;
  }
  p->handshake.clear();
  p->handshake_pending = false;
  wg::SessionKeys keys = wg::derive_keys(&hs, /*initiator=*/true);
  wg_install(p, keys, now);
  if (p->endpoint.load(std::memory_order_relaxed) != src) {
    p->endpoint.store(src, std::memory_order_relaxed);
    c_.event(Event::wg_endpoint_changes);
  }
  p->last_received.store(now, std::memory_order_relaxed);
  p->timers->handshake_complete(now);
  p->rekey_wanted.store(false, std::memory_order_relaxed);
  // §6.5: the initiator confirms the session with its first data message,
  // a keepalive when nothing is staged.
  if (p->staged.empty())
    wg_send_keepalive(g, p, now);
  else
    wg_flush_staged(g, p, now);
}

void Service::wg_install(WgPeer* p, wg::SessionKeys& keys, uint64_t now) {
  auto* kp = new WgKeypair;
  kp->send = keys.send;
  kp->receive = keys.receive;
  kp->local_index = keys.local_index;
  kp->remote_index = keys.remote_index;
  kp->initiator = keys.initiator;
  kp->born_ms = now;
  kp->peer = p;
  keys.clear();
  auto& rt = dp_.wg();
  rte_rcu_qsbr* qsbr = dp_.qsbr();
  rt.indices().attach(kp->local_index, kp);
  // The reference implementations' rotation: an initiator's new session is
  // usable at once; a responder's waits as `next` for the initiator's first
  // data message (wg_timers confirms it).
  if (kp->initiator) {
    WgKeypair* next = p->next.exchange(nullptr, std::memory_order_acq_rel);
    WgKeypair* current = p->current.load(std::memory_order_relaxed);
    WgKeypair* previous;
    if (next) {
      previous = p->previous.exchange(next, std::memory_order_acq_rel);
      rt.retire(current, qsbr);
    } else {
      previous = p->previous.exchange(current, std::memory_order_acq_rel);
    }
    rt.retire(previous, qsbr);
    p->current.store(kp, std::memory_order_release);
  } else {
    rt.retire(p->next.exchange(kp, std::memory_order_acq_rel), qsbr);
    rt.retire(p->previous.exchange(nullptr, std::memory_order_acq_rel), qsbr);
  }
  p->session_born_ms = now;
  p->timers->session_derived(now);
  p->handshakes++;
  p->last_handshake_wall_ms = static_cast<uint64_t>(time(nullptr)) * 1000;
  c_.event(Event::wg_handshakes_completed);
}

void Service::wg_send_initiation(const Generation& g, WgPeer* p, uint64_t now) {
  uint64_t ep = p->endpoint.load(std::memory_order_relaxed);
  if (!ep) return;  // nowhere to send it: the peer must reach us first
  auto& indices = dp_.wg().indices();
  if (p->handshake_pending) indices.release(p->handshake.local_index);
  p->handshake.clear();
  p->handshake_pending = false;
  uint32_t index = indices.allocate(p);
  if (!index) return;
  wg::MessageInitiation msg;
  if (!wg::create_initiation(p->iface->identity, p->keys, index, wg::tai64n_now(), &msg,
                             &p->handshake)) {
    indices.release(index);
    return;
  }
  p->handshake.local_index = index;
  p->handshake_pending = true;
  p->cookie_maker->add_macs(reinterpret_cast<uint8_t*>(&msg), sizeof msg, now);
  wg_send_message(g, p->iface, ep, &msg, sizeof msg);
  p->last_sent.store(now, std::memory_order_relaxed);
  p->rekey_wanted.store(false, std::memory_order_relaxed);
  if (!p->timers->handshake_in_flight()) p->timers->initiation_sent(now);
  c_.event(Event::wg_initiations_sent);
}

void Service::wg_send_keepalive(const Generation& g, WgPeer* p, uint64_t now) {
  WgKeypair* kp = p->current.load(std::memory_order_relaxed);
  if (!kp || now - kp->born_ms >= dp_.wg().timers().reject_after_time_ms) {
    // No session to carry it: make one (§6.5, a keepalive is queued like data).
    if (!p->handshake_pending && p->timers->should_initiate(now)) wg_send_initiation(g, p, now);
    return;
  }
  rte_mbuf* m = rte_pktmbuf_alloc(dp_.pool());
  if (!m) {
    c_.drop(Drop::no_buffers);
    return;
  }
  rte_pktmbuf_append(m, kEth);
  Drop why = Drop::wg_encap_failed;
  uint16_t port;
  uint32_t hop, slot;
  switch (wg_encap(*wg_aead_, g, p, dp_.wg().timers(), now, m, 0, kMaxWorkers, &why, &port, &hop,
                   &slot)) {
    case EncapResult::kSent:
      c_.event(Event::wg_keepalives_sent);
      p->timers->keepalive_sent(now);
      return send_via(g, m, port, hop, slot);
    case EncapResult::kStage:
      rte_pktmbuf_free(m);
      return;
    case EncapResult::kDrop:
      return drop(m, why);
  }
}

void Service::wg_timers(const Generation& g, uint64_t now) {
  auto& rt = dp_.wg();
  rte_rcu_qsbr* qsbr = dp_.qsbr();
  for (WgPeer* p : rt.peers()) {
    if (!p || p->dead) continue;
    // A responder's session becomes current once the initiator used it.
    WgKeypair* next = p->next.load(std::memory_order_acquire);
    if (next && next->received.load(std::memory_order_acquire)) {
      p->next.store(nullptr, std::memory_order_release);
      rt.retire(p->previous.exchange(p->current.load(std::memory_order_relaxed),
                                     std::memory_order_acq_rel),
                qsbr);
      p->current.store(next, std::memory_order_release);
      p->timers->handshake_complete(now);
      wg_flush_staged(g, p, now);
    }
    wg::PeerActivity a;
    a.last_data_sent = p->last_data_sent.load(std::memory_order_relaxed);
    a.last_data_received = p->last_data_received.load(std::memory_order_relaxed);
    a.last_sent = p->last_sent.load(std::memory_order_relaxed);
    a.last_received = p->last_received.load(std::memory_order_relaxed);
    a.session_born = p->session_born_ms;
    a.have_endpoint = p->endpoint.load(std::memory_order_relaxed) != 0;
    a.keys_present = p->current.load(std::memory_order_relaxed) ||
                     p->previous.load(std::memory_order_relaxed) ||
                     p->next.load(std::memory_order_relaxed) || p->handshake_pending;
    a.staged = !p->staged.empty();
    a.rekey_requested = p->rekey_wanted.load(std::memory_order_relaxed);
    wg::TimerActions act = p->timers->poll(a, now);
    if (act.give_up) {
      // §6.4: after REKEY_ATTEMPT_TIME stop trying; what waited is lost.
      wg_drop_staged(p);
      if (p->handshake_pending) rt.indices().release(p->handshake.local_index);
      p->handshake_pending = false;
      p->handshake.clear();
    }
    if (act.send_initiation) wg_send_initiation(g, p, now);
    if (act.send_keepalive) wg_send_keepalive(g, p, now);
    if (act.zero_keys) {
      for (auto* slot : {&p->current, &p->previous, &p->next})
        rt.retire(slot->exchange(nullptr, std::memory_order_acq_rel), qsbr);
      if (p->handshake_pending) rt.indices().release(p->handshake.local_index);
      p->handshake_pending = false;
      p->handshake.clear();
      c_.event(Event::wg_keys_zeroed);
    }
  }
}

}  // namespace tether::dp
