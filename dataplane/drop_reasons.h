// Every reason a packet can leave the dataplane without being forwarded, and
// every non-drop event worth counting. Listed once here: the enums and the
// counter names the API reports both come from these tables. Header-only,
// usable from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace tether::dp {

#define TETHER_DROP_REASONS(X)                                                               \
  X(eth_truncated, "frame shorter than an Ethernet header")                                  \
  X(eth_not_for_us, "destination MAC is neither ours nor broadcast")                         \
  X(vlan_unsupported, "VLAN-tagged frame on a port without VLANs")                           \
  X(unknown_ethertype, "ethertype not ARP, IPv4 or IPv6")                                    \
  X(ipv6_unsupported, "IPv6 is parsed and counted but not forwarded yet")                    \
  X(ipv4_truncated, "frame shorter than the IPv4 header or total length")                    \
  X(ipv4_bad_version, "IP version field is not 4")                                           \
  X(ipv4_bad_ihl, "IHL below 5")                                                             \
  X(ipv4_bad_length, "total length below the header length")                                 \
  X(ipv4_bad_checksum, "IPv4 header checksum does not verify")                               \
  X(ipv4_options, "IPv4 options are not forwarded")                                          \
  X(ipv4_bad_fragment, "fragment extends past 65535 or has a misaligned length")             \
  X(ipv4_martian_source, "source is 0/8, 127/8, multicast, broadcast or our own")            \
  X(ipv4_bad_destination, "destination is 0/8, 127/8, multicast or broadcast")               \
  X(no_route, "no route in the port's routing domain")                                       \
  X(ttl_exceeded, "TTL would reach 0")                                                       \
  X(mtu_exceeded_df, "larger than the egress MTU with DF set")                               \
  X(fragment_failed, "fragmentation failed (no buffers)")                                    \
  X(neighbor_unresolved, "next hop did not answer ARP")                                      \
  X(neighbor_queue_full, "too many packets waiting for a next hop (per neighbor or in all)") \
  X(neighbor_table_full, "no free neighbor slot")                                            \
  X(arp_malformed, "ARP not Ethernet/IPv4 or truncated")                                     \
  X(arp_not_for_us, "ARP request for an address we do not own")                              \
  X(local_unsupported, "packet to an own address with no exception path")                    \
  X(punt_ring_full, "service ring full")                                                     \
  X(inject_ring_full, "worker inject ring full")                                             \
  X(exception_tx_failed, "TAP port refused the packet")                                      \
  X(exception_bad_frame, "kernel sent a frame that is not valid unicast IPv4")               \
  X(tx_full, "port TX queue full")                                                           \
  X(icmp_rate_limited, "ICMP error suppressed by the rate limit")                            \
  X(no_buffers, "mbuf pool empty")                                                           \
  X(wg_malformed, "WireGuard message of a wrong type or length, or not in one segment")      \
  X(wg_unknown_index, "WireGuard receiver index names no live session")                      \
  X(wg_replay, "WireGuard counter already seen or older than the replay window")             \
  X(wg_auth_failed, "WireGuard data message did not authenticate")                           \
  X(wg_bad_inner_source, "decrypted packet's source is not an allowed prefix of its peer")   \
  X(wg_keys_expired, "WireGuard session too old or counter exhausted")                       \
  X(wg_no_keys, "no WireGuard session could be made for a staged packet")                    \
  X(wg_no_endpoint, "WireGuard peer has no known endpoint")                                  \
  X(wg_encap_failed, "no room to add WireGuard headers")                                     \
  X(wg_handshake_invalid, "handshake message failed MAC1 or did not decrypt")                \
  X(wg_handshake_replay, "initiation timestamp not newer than the last one")                 \
  X(wg_handshake_flood, "initiations from one peer above 50 per second")                     \
  X(wg_handshake_queue_full, "handshake queue to the service thread full")                   \
  X(nat_table_full, "NAT session table full: a first packet was refused")                    \
  X(nat_ports_exhausted, "no free port for a new NAT session")                               \
  X(nat_session_race, "another worker made the same NAT session at the same moment")         \
  X(nat_stale_session, "packet of a session whose mapping was removed")                      \
  X(nat_tcp_not_syn, "first TCP packet to a published resource is not a SYN")                \
  X(nat_malformed, "L4 header truncated or impossible while NAT is on")                      \
  X(nat_unsupported, "protocol or ICMP type a whole-address mapping cannot translate")       \
  X(nat_fragment_timeout, "later fragment whose first fragment never came")                  \
  X(nat_fragment_hold_full, "too many later fragments waiting for their first")              \
  X(fragment_first_dropped, "later fragment of a datagram whose first fragment was dropped") \
  X(fw_denied, "a firewall rule or a policy's default dropped a flow's first packet")        \
  X(fw_isolation, "first packet between two VDCs that no policy joins (isolation)")          \
  X(fw_rejected, "a firewall rule rejected it (answered with a TCP reset or ICMP)")          \
  X(fw_icmp_unrelated, "ICMP error quoting a session but addressed to another host")         \
  X(fw_revoked, "packet of a session that a policy change no longer accepts")                \
  X(fw_tcp_not_syn, "first TCP packet of a flow is not a SYN")                               \
  X(fw_tcp_invalid, "TCP flags impossible, or not allowed in the connection's state")        \
  X(fw_tcp_out_of_window, "TCP sequence or acknowledgment outside the connection's windows") \
  X(shutdown, "freed while shutting down")

#define TETHER_EVENTS(X)                                                       \
  X(ipv6_received, "IPv6 packets seen")                                        \
  X(ipv4_fragments, "well-formed IPv4 fragments received (never reassembled)") \
  X(punted_local, "packets to own addresses passed to the service")            \
  X(punted_resolve, "packets held while resolving a next hop")                 \
  X(to_kernel, "packets sent to the kernel through the TAP")                   \
  X(from_kernel, "packets the kernel sent through the TAP")                    \
  X(arp_requests_sent, "ARP requests sent")                                    \
  X(arp_replies_sent, "ARP replies sent")                                      \
  X(arp_learned, "neighbors learned or refreshed")                             \
  X(icmp_echo_replies, "ICMP echo replies sent")                               \
  X(icmp_errors_sent, "ICMP errors sent")                                      \
  X(fragmented, "packets fragmented to fit the egress MTU")                    \
  X(neighbors_expired, "neighbors that stopped answering")                     \
  X(neighbors_forgotten, "silent addresses forgotten, slots reused")           \
  X(wg_initiations_received, "WireGuard initiations received")                 \
  X(wg_responses_received, "WireGuard responses received")                     \
  X(wg_cookie_replies_received, "WireGuard cookie replies received")           \
  X(wg_initiations_sent, "WireGuard initiations sent")                         \
  X(wg_responses_sent, "WireGuard responses sent")                             \
  X(wg_cookie_replies_sent, "WireGuard cookie replies sent under load")        \
  X(wg_handshakes_completed, "WireGuard sessions derived")                     \
  X(wg_keepalives_received, "WireGuard keepalives received")                   \
  X(wg_keepalives_sent, "WireGuard keepalives sent")                           \
  X(wg_endpoint_changes, "WireGuard peers seen at a new endpoint")             \
  X(wg_staged, "packets held for a WireGuard handshake")                       \
  X(wg_keys_zeroed, "WireGuard peers whose keys were erased by timer")         \
  X(nat_sessions_created, "NAT sessions made")                                 \
  X(nat_sessions_expired, "NAT sessions ended by timeout or removal")          \
  X(nat_hairpinned, "NAT sessions from a VDC to a published address")          \
  X(nat_icmp_errors_translated, "ICMP errors translated for a session")        \
  X(nat_fragments_followed, "later fragments translated like the first")       \
  X(nat_fragments_held, "later fragments that waited for their first")         \
  X(nat_mss_clamped, "TCP SYNs whose MSS was lowered to the tunnel's")         \
  X(nat_sessions_rekeyed, "NAT sessions moved to a rewritten address")         \
  X(fw_sessions_created, "sessions made that only filter (no NAT)")            \
  X(fw_rechecked, "sessions re-checked after a policy change")                 \
  X(fw_sessions_revoked, "sessions a policy change no longer accepts")         \
  X(fw_logged, "firewall log records queued")                                  \
  X(fw_log_suppressed, "firewall log records over the rate, not logged")       \
  X(fw_resets_sent, "TCP resets sent for rejected flows")                      \
  X(fw_tcp_picked_up, "TCP connections picked up mid-stream (tcp_pickup)")

enum class Drop : uint8_t {
#define X(name, text) name,
  TETHER_DROP_REASONS(X)
#undef X
      kCount
};

enum class Event : uint8_t {
#define X(name, text) name,
  TETHER_EVENTS(X)
#undef X
      kCount
};

inline constexpr size_t kNumDrops = static_cast<size_t>(Drop::kCount);
inline constexpr size_t kNumEvents = static_cast<size_t>(Event::kCount);

inline constexpr std::array<std::string_view, kNumDrops> kDropNames = {
#define X(name, text) #name,
    TETHER_DROP_REASONS(X)
#undef X
};
inline constexpr std::array<std::string_view, kNumEvents> kEventNames = {
#define X(name, text) #name,
    TETHER_EVENTS(X)
#undef X
};

}  // namespace tether::dp
