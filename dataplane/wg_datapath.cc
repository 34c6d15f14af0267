// WireGuard encapsulation and decapsulation of one packet (WireGuard paper
// §5.4.6). Called by workers for every tunnelled packet and by the service
// thread for keepalives and staged packets; never blocks.
#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <cstring>

#include "dataplane/counters.h"
#include "dataplane/packet.h"
#include "dataplane/tables.h"
#include "dataplane/wireguard.h"
#include "tunnel/messages.h"

namespace tether::dp {
namespace {

constexpr uint16_t kEth = sizeof(rte_ether_hdr);
constexpr uint16_t kOuter =
    sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr) + sizeof(wg::MessageDataHeader);
constexpr uint16_t kHeadroomNeeded = kOuter;  // inner Ethernet header is reused as the outer one

// Stores a timestamp only when it changed, so that a stream of packets does
// not keep the peer's cache line bouncing between lcores.
inline void touch(std::atomic<uint64_t>& t, uint64_t now) {
  if (t.load(std::memory_order_relaxed) != now) t.store(now, std::memory_order_relaxed);
}

inline uint32_t load_le32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return rte_le_to_cpu_32(v);
}
inline uint64_t load_le64(const void* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return rte_le_to_cpu_64(v);
}

constexpr uint16_t kUdpIp = sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr);

}  // namespace

void wg_outer_headers(uint8_t* frame, const WgInterface& iface, uint64_t to, uint16_t payload_len,
                      uint8_t tos) {
  auto* eth = reinterpret_cast<rte_ether_hdr*>(frame);
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  udp->src_port = rte_cpu_to_be_16(iface.listen_port);
  udp->dst_port = rte_cpu_to_be_16(WgPeer::endpoint_port(to));
  udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(sizeof(rte_udp_hdr) + payload_len));
  udp->dgram_cksum = 0;
  ip->version_ihl = 0x45;
  ip->type_of_service = tos;
  ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(kUdpIp + payload_len));
  ip->packet_id = 0;
  ip->fragment_offset = 0;
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_UDP;
  ip->src_addr = rte_cpu_to_be_32(iface.address);
  ip->dst_addr = rte_cpu_to_be_32(WgPeer::endpoint_ip(to));
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
}

EncapResult wg_encap(wg::Aead& aead, const Generation& g, WgPeer* p, const wg::TimerConfig& t,
                     uint64_t now, rte_mbuf* m, uint16_t inner_len, unsigned cslot, Drop* why,
                     uint16_t* out_port, uint32_t* hop, uint32_t* slot) {
  const WgInterface& iface = *p->iface;
  WgKeypair* kp = p->current.load(std::memory_order_acquire);
  // WireGuard paper §6.2: a session is not used past REJECT_AFTER_TIME.
  if (!kp || now - kp->born_ms >= t.reject_after_time_ms) return EncapResult::kStage;
  uint64_t ctr = kp->send_counter.fetch_add(1, std::memory_order_relaxed);
  if (ctr >= t.reject_after_messages) return EncapResult::kStage;
  // §6.2: the initiator starts a new handshake after REKEY_AFTER_MESSAGES or
  // REKEY_AFTER_TIME; the service thread sees the flag.
  if (kp->initiator &&
      (ctr >= t.rekey_after_messages || now - kp->born_ms >= t.rekey_after_time_ms) &&
      !p->rekey_wanted.load(std::memory_order_relaxed))
    p->rekey_wanted.store(true, std::memory_order_relaxed);
  uint64_t ep = p->endpoint.load(std::memory_order_relaxed);
  if (!ep) {
    *why = Drop::wg_no_endpoint;
    return EncapResult::kDrop;
  }
  // Outer route first: nothing is touched when the endpoint is unreachable.
  const DomainTable* outer = g.domain(iface.domain);
  uint32_t idx;
  Ipv4 ep_ip = WgPeer::endpoint_ip(ep);
  if (!outer || !outer->lookup(ep_ip, &idx) || outer->nexthops[idx].kind != NextHopKind::kForward) {
    *why = Drop::no_route;
    return EncapResult::kDrop;
  }
  const NextHop& nh = outer->nexthops[idx];

  // §5.4.6: pad the plaintext to a multiple of 16, but not beyond the MTU.
  uint16_t padded = static_cast<uint16_t>((inner_len + 15u) & ~15u);
  if (padded > iface.mtu) padded = inner_len > iface.mtu ? inner_len : iface.mtu;
  uint16_t tail = static_cast<uint16_t>(padded - inner_len + wg::kTagLen);
  uint32_t outer_len = kOuter + padded + wg::kTagLen;
  if (outer_len > g.ports[nh.port].mtu) {
    *why = Drop::mtu_exceeded_df;
    return EncapResult::kDrop;
  }
  if (!rte_pktmbuf_is_contiguous(m) || rte_pktmbuf_tailroom(m) < tail ||
      rte_pktmbuf_headroom(m) < kHeadroomNeeded) {
    *why = Drop::wg_encap_failed;
    return EncapResult::kDrop;
  }
  uint8_t tos = inner_len >= sizeof(rte_ipv4_hdr)
                    ? rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEth)->type_of_service
                    : 0;
  char* pad = rte_pktmbuf_append(m, tail);
  std::memset(pad, 0, padded - inner_len);
  auto* frame = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, kHeadroomNeeded));
  uint8_t* plain = frame + kEth + kOuter;
  if (!aead.seal(kp->send, ctr, {}, plain, padded, plain)) {
    *why = Drop::wg_encap_failed;
    return EncapResult::kDrop;
  }
  auto* hdr = reinterpret_cast<wg::MessageDataHeader*>(frame + kEth + sizeof(rte_ipv4_hdr) +
                                                       sizeof(rte_udp_hdr));
  uint32_t word = rte_cpu_to_le_32(wg::kData);  // type 4, reserved zero
  std::memcpy(hdr, &word, 4);
  hdr->receiver_index = rte_cpu_to_le_32(kp->remote_index);
  hdr->counter = rte_cpu_to_le_64(ctr);

  // RFC 6040 normal mode: DSCP and ECN copied outward. UDP checksum zero
  // (RFC 768: optional over IPv4; the AEAD tag protects the payload).
  wg_outer_headers(frame, iface, ep, static_cast<uint16_t>(outer_len - kUdpIp), tos);

  WgPeerCounters& pc = p->counters[cslot];
  pc.tx_packets++;
  pc.tx_bytes += inner_len;
  touch(p->last_sent, now);
  if (inner_len) touch(p->last_data_sent, now);
  *out_port = nh.port;
  *hop = nh.gateway ? nh.gateway : ep_ip;
  *slot = nh.slot;
  return EncapResult::kSent;
}

DecapResult wg_decap(wg::Aead& aead, const Generation& g, const WgIndexTable& indices,
                     const WgListen& listen, const wg::TimerConfig& t, uint64_t now, rte_mbuf* m,
                     unsigned cslot, LcoreCounters& c, WgPeer** peer, Drop* why, uint32_t* src,
                     uint32_t* dst) {
  auto drop = [&](Drop d) {
    *why = d;
    return DecapResult::kDrop;
  };
  auto* frame = rte_pktmbuf_mtod(m, uint8_t*);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(frame + kEth);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  uint32_t udp_len = rte_be_to_cpu_16(udp->dgram_len);
  uint32_t ip_payload = rte_be_to_cpu_16(ip->total_length) - sizeof(rte_ipv4_hdr);
  // §5.4.6: header (16) and tag (16) at least; the message in one segment.
  if (udp_len < sizeof(rte_udp_hdr) + wg::kDataOverhead || udp_len > ip_payload ||
      !rte_pktmbuf_is_contiguous(m) ||
      rte_pktmbuf_data_len(m) < kEth + sizeof(rte_ipv4_hdr) + udp_len)
    return drop(Drop::wg_malformed);
  auto* hdr = reinterpret_cast<const wg::MessageDataHeader*>(udp + 1);
  if (load_le32(hdr) != wg::kData) return drop(Drop::wg_malformed);  // reserved bytes zero
  // The receiver index is ours; the table answers only to the full index.
  WgKeypair* kp = indices.keypair(load_le32(&hdr->receiver_index));
  if (!kp) return drop(Drop::wg_unknown_index);
  WgPeer* p = kp->peer;
  if (!g.wg_peer_live(p, p->id) || p->iface != listen.iface) return drop(Drop::wg_unknown_index);
  WgPeerCounters& pc = p->counters[cslot];
  uint64_t ctr = load_le64(&hdr->counter);
  if (ctr >= t.reject_after_messages || now - kp->born_ms >= t.reject_after_time_ms) {
    pc.drops[static_cast<size_t>(WgPeerDrop::kKeysExpired)]++;
    return drop(Drop::wg_keys_expired);
  }
  rte_spinlock_lock(&kp->replay_lock);
  bool fresh = kp->replay.may_accept(ctr);
  rte_spinlock_unlock(&kp->replay_lock);
  if (!fresh) {
    pc.drops[static_cast<size_t>(WgPeerDrop::kReplay)]++;
    return drop(Drop::wg_replay);
  }
  uint32_t sealed = udp_len - sizeof(rte_udp_hdr) - sizeof(wg::MessageDataHeader);
  uint32_t plain_len = sealed - wg::kTagLen;
  auto* plain = const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(hdr + 1));
  if (!aead.open(kp->receive, ctr, {}, plain, plain_len, plain)) {
    pc.drops[static_cast<size_t>(WgPeerDrop::kAuthFailed)]++;
    return drop(Drop::wg_auth_failed);
  }
  // Only an authenticated counter moves the window (§5.4.6).
  rte_spinlock_lock(&kp->replay_lock);
  bool accepted = kp->replay.accept(ctr);
  rte_spinlock_unlock(&kp->replay_lock);
  if (!accepted) {
    pc.drops[static_cast<size_t>(WgPeerDrop::kReplay)]++;
    return drop(Drop::wg_replay);
  }
  *peer = p;
  if (!kp->received.load(std::memory_order_relaxed))
    kp->received.store(true, std::memory_order_release);
  touch(p->last_received, now);
  // §6.5 roaming: the source of an authenticated message is the endpoint.
  uint64_t from =
      WgPeer::pack_endpoint(rte_be_to_cpu_32(ip->src_addr), rte_be_to_cpu_16(udp->src_port));
  if (p->endpoint.load(std::memory_order_relaxed) != from) {
    p->endpoint.store(from, std::memory_order_relaxed);
    c.event(Event::wg_endpoint_changes);
  }
  pc.rx_packets++;
  if (plain_len == 0) {
    c.event(Event::wg_keepalives_received);
    return DecapResult::kKeepalive;
  }
  // The inner packet: as sound as one from a port (its own checks and counters).
  auto* inner = reinterpret_cast<const rte_ipv4_hdr*>(plain);
  Drop bad = check_ipv4(inner, plain_len, plain_len, 0, c, dst, src);
  if (bad != Drop::kCount) return drop(bad);
  uint16_t total = rte_be_to_cpu_16(inner->total_length);
  pc.rx_bytes += total;
  touch(p->last_data_received, now);
  // Reshape to Ethernet + inner: drop the outer headers, then the padding and tag.
  rte_pktmbuf_adj(m, kOuter);
  rte_pktmbuf_trim(m, static_cast<uint16_t>(rte_pktmbuf_pkt_len(m) - kEth - total));
  rte_pktmbuf_mtod(m, rte_ether_hdr*)->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  return DecapResult::kInner;
}

}  // namespace tether::dp
