// Stateful TCP checks of the firewall (docs/decisions/007-firewall.md):
// which segments a tracked connection accepts, after Guido van Rooij's
// "Real Stateful TCP Packet Filtering in IP Filter" (the scheme pf and
// netfilter use): every segment must lie in the window its receiver
// advertised and acknowledge only data that was sent, with slack for
// retransmissions; flag combinations no TCP sends, and segments a
// connection's state does not allow, are invalid.
// Pure functions on a 32-byte state kept in the session record; no DPDK.
// Called by workers: no allocation, no locks.
#pragma once

#include <cstdint>

#include "nat/session.h"

namespace tether::fw {

inline constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10,
                         kUrg = 0x20, kEce = 0x40, kCwr = 0x80;

// What the checks need of one segment (host order).
struct TcpSegment {
  uint32_t seq = 0;
  uint32_t ack = 0;
  uint16_t win = 0;      // as in the header (unscaled)
  uint8_t flags = 0;     // the low 8 flag bits
  int8_t wscale = -1;    // the window scale option of a SYN, -1 when absent
  uint32_t payload = 0;  // bytes of data (total length - IP and TCP headers)
  // The first fragment of several: `payload` counts only this fragment's
  // bytes, so the segment may end further on (later fragments follow the
  // first through the dataplane without being tracked).
  bool fragment = false;
};

// Reads the segment of an IPv4 packet (IP header at ip[0], `len` bytes
// available, TCP, first fragment or unfragmented). false when the TCP header
// or its options are truncated or impossible (data offset < 5, an option
// length < 2 or past the header, the headers longer than the IP total
// length), or the packet is not IPv4 TCP or is a later fragment. Never reads
// past `len`.
bool parse_segment(const uint8_t* ip, uint32_t len, TcpSegment* out);

// One direction's view: what it has sent and what it may send.
struct TcpSide {
  uint32_t end = 0;     // highest sequence number sent + 1 (seq + payload + SYN + FIN)
  uint32_t maxend = 0;  // where what it may send ends: the other side's ack + window
  uint32_t maxwin = 0;  // largest window it advertised (scaled)
  // Its window scale: its SYN's option until the other side's SYN is seen,
  // then 0 unless both SYNs carried the option (RFC 7323 §2.2).
  uint8_t wscale = 0;
  uint8_t flags = 0;  // kSeen | kScaleOpt | kFragmented
  // The low 16 bits of its initial sequence number: tells a retransmitted
  // SYN (or SYN-ACK) from one that starts something new.
  uint16_t isn16 = 0;
  static constexpr uint8_t kSeen = 1;      // it sent a segment
  static constexpr uint8_t kScaleOpt = 2;  // its SYN carried a window scale option
  // It sent a fragmented segment, whose length counted only the first
  // fragment: `end` may be short by up to 64 KiB.
  static constexpr uint8_t kFragmented = 4;
};
struct TcpWindow {
  TcpSide side[2];  // 0: the original direction, 1: the reply direction
};
static_assert(sizeof(TcpWindow) == 32);

enum class TcpVerdict : uint8_t {
  kOk,
  kInvalid,      // flags no TCP sends, or not allowed in the connection's state
  kOutOfWindow,  // sequence or acknowledgment outside the windows
};
const char* tcp_verdict_name(TcpVerdict v);

// The first segment of a connection (a SYN from the original side): starts
// the window state. Call only when first_segment_ok(flags).
void tcp_start(TcpWindow& w, const TcpSegment& syn);
// Whether a connection may start with a segment with these flags: a SYN
// without ACK, RST or FIN.
bool first_segment_ok(uint8_t flags);

// Checks a segment of an established session from the original side
// (from_orig) or the reply side, in connection state `state` (the state
// before this segment, nat::TcpState), and on kOk updates the window state.
// On any other verdict the state is unchanged. Besides the checks
// (tcp_track.cc, (I) to (IV)):
// - A bare SYN from the original side is always kOk: in kNone, kSynSent,
//   kClosing and kClosed it starts the window state over (tcp_start: a
//   retransmitted SYN or the port reused, and nat::tcp_next moves the
//   session to kSynSent); in the other states it passes and changes nothing,
//   since the connection may still be alive at the far end, which answers
//   with an ACK (RFC 5961 §4) whose RST closes the session for the next SYN.
// - A window never started (the original side unseen: the session was made
//   before tracking was on) is not judged: only the flags are checked, as
//   without the SYNs the window scale is unknown.
// - Each field has one writer, the worker of one direction (end, maxwin,
//   flags: the side's own direction; maxend: the other one's), but during
//   the handshake (tcp_start, the reply side's first SYN), when the other
//   direction has nothing to send.
TcpVerdict tcp_track(TcpWindow& w, nat::TcpState state, bool from_orig, const TcpSegment& s);

}  // namespace tether::fw
