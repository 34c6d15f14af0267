// The service thread's share of the firewall: answering what a rule
// rejects, and writing the workers' log records.
#include <rte_ip.h>
#include <rte_tcp.h>

#include <cstring>

#include "dataplane/dataplane.h"
#include "dataplane/packet.h"
#include "dataplane/service.h"

namespace tether::dp {

void Service::fw_reject(const Generation& g, rte_mbuf* m) {
  constexpr uint16_t kEth = sizeof(rte_ether_hdr);
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEth);
  if (ip->next_proto_id != IPPROTO_TCP) {
    rejecting_ = true;
    icmp_error(g, m, 3, 13, 0);
    rejecting_ = false;
    return;
  }
  // The worker counted the packet as fw_rejected; what is not answered here
  // is freed without a second count.
  unsigned ihl = (ip->version_ihl & 0xf) * 4u;
  if ((ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_OFFSET_MASK)) ||
      rte_pktmbuf_data_len(m) < kEth + ihl + sizeof(rte_tcp_hdr)) {
    rte_pktmbuf_free(m);
    return;
  }
  auto* tcp = reinterpret_cast<rte_tcp_hdr*>(reinterpret_cast<uint8_t*>(ip) + ihl);
  uint8_t flags = tcp->tcp_flags;
  if (flags & RTE_TCP_RST_FLAG) {  // never answer a reset (RFC 9293 §3.10.7.1)
    rte_pktmbuf_free(m);
    return;
  }
  if (!take_icmp_token(reject_bucket_)) return drop(m, Drop::icmp_rate_limited);
  unsigned doff = (tcp->data_off >> 4) * 4u;
  unsigned total = rte_be_to_cpu_16(ip->total_length);
  uint32_t seglen = total > ihl + doff ? total - ihl - doff : 0;
  if (flags & RTE_TCP_SYN_FLAG) ++seglen;
  if (flags & RTE_TCP_FIN_FLAG) ++seglen;
  // RFC 9293 §3.10.7.1: with an ACK the reset takes its sequence number
  // from it; without, it has sequence 0 and acknowledges the segment.
  uint32_t seq = 0, ack = 0;
  uint8_t rflags = RTE_TCP_RST_FLAG;
  if (flags & RTE_TCP_ACK_FLAG) {
    seq = rte_be_to_cpu_32(tcp->recv_ack);
  } else {
    ack = rte_be_to_cpu_32(tcp->sent_seq) + seglen;
    rflags |= RTE_TCP_ACK_FLAG;
  }
  // The reset is a fresh 54-byte frame: the rejected segment may be a
  // chain of segments (a jumbo frame), and none of its data goes back.
  rte_mbuf* r = rte_pktmbuf_alloc(dp_.pool());
  if (!r) return drop(m, Drop::no_buffers);
  constexpr unsigned kLen = sizeof(rte_ipv4_hdr) + sizeof(rte_tcp_hdr);
  auto* frame = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(r, kEth + kLen));
  if (!frame) {
    rte_pktmbuf_free(r);
    return drop(m, Drop::no_buffers);
  }
  std::memcpy(frame, rte_pktmbuf_mtod(m, void*), kEth);
  std::memset(frame + kEth, 0, kLen);
  auto* rip = reinterpret_cast<rte_ipv4_hdr*>(frame + kEth);
  auto* rtcp = reinterpret_cast<rte_tcp_hdr*>(frame + kEth + sizeof(rte_ipv4_hdr));
  rip->version_ihl = 0x45;
  rip->total_length = rte_cpu_to_be_16(kLen);
  rip->packet_id = rte_cpu_to_be_16(ip_id_++);
  rip->time_to_live = 64;
  rip->next_proto_id = IPPROTO_TCP;
  rip->src_addr = ip->dst_addr;
  rip->dst_addr = ip->src_addr;
  rtcp->src_port = tcp->dst_port;
  rtcp->dst_port = tcp->src_port;
  rtcp->sent_seq = rte_cpu_to_be_32(seq);
  rtcp->recv_ack = rte_cpu_to_be_32(ack);
  rtcp->data_off = 5 << 4;
  rtcp->tcp_flags = rflags;
  rip->hdr_checksum = rte_ipv4_cksum(rip);
  rtcp->cksum = rte_ipv4_udptcp_cksum(rip, rtcp);
  PacketMeta* md = meta(r);
  *md = *meta(m);
  rte_pktmbuf_free(m);
  c_.event(Event::fw_resets_sent);
  route_and_send(g, md->domain, r);
}

void Service::fw_poll(const Generation& g) {
  dp_.fw().drain_log([&](uint16_t zone) { return g.fw.zone_name(zone); });
}

}  // namespace tether::dp
