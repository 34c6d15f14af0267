#include "firewall/tcp_track.h"

#include <algorithm>

namespace tether::fw {
namespace {

using nat::TcpState;

// How far an acknowledgment may lag behind what its receiver has sent: a
// full unscaled window plus a fudge for a packet in flight (pf's MAXACKWINDOW),
// scaled by the acknowledging side's window scale.
constexpr uint32_t kMaxAckWindow = 65535 + 1500;
// RFC 7323 §2.3: a larger shift would let windows pass 2^30, where sequence
// comparisons stop telling old from new.
constexpr int8_t kMaxWscale = 14;

// Sequence numbers compare modulo 2^32 (RFC 9293 §3.4): a is after b when it
// lies less than 2^31 ahead.
bool seq_lt(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }
bool seq_leq(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) <= 0; }
bool seq_gt(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }
bool seq_geq(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) >= 0; }
uint32_t seq_max(uint32_t a, uint32_t b) { return seq_gt(a, b) ? a : b; }

// A SYN's window scale option as a shift; parse_segment clamps it already,
// but a segment made elsewhere must not shift by 32 or more.
uint8_t shift_of(int8_t wscale) { return static_cast<uint8_t>(std::min(wscale, kMaxWscale)); }

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}

// Combinations no TCP sends (the scanners' favourites): a SYN with FIN or
// RST, a FIN without ACK (xmas included), no flags at all, and anything but
// a bare SYN or a RST without an ACK (every segment after the first SYN
// acknowledges something, RFC 9293 §3.10.7.4).
bool flags_valid(uint8_t f) {
  if ((f & kSyn) && (f & (kFin | kRst))) return false;
  if ((f & kFin) && !(f & kAck)) return false;
  if (!(f & (kAck | kSyn | kRst))) return false;  // null, and PSH/URG/ECE/CWR alone
  return true;
}

// The initial sequence number of a side that has sent only its SYN (and
// perhaps data with it, fewer than 2^16 bytes): the last number at or before
// end - 1 whose low 16 bits are isn16.
uint32_t initial_seq(const TcpSide& s) {
  uint32_t last = s.end - 1;
  return last - ((last - s.isn16) & 0xffff);
}

// The reply side's first SYN (a SYN-ACK, or a bare SYN in a simultaneous
// open) fixes its sequence space and, with the original side's SYN, whether
// windows are scaled.
TcpVerdict first_reply_syn(TcpWindow& w, const TcpSegment& s) {
  TcpSide& o = w.side[0];
  TcpSide& r = w.side[1];
  if (s.flags & kAck) {
    // It must acknowledge the SYN, and nothing the SYN did not carry
    // (RFC 9293 §3.10.7.3: ISS < SEG.ACK =< SND.NXT).
    if (!seq_gt(s.ack, initial_seq(o)) || seq_gt(s.ack, o.end)) return TcpVerdict::kOutOfWindow;
    // A SYN's window is never scaled (RFC 7323 §2.2).
    o.maxend = seq_max(o.maxend, s.ack + std::max<uint32_t>(s.win, 1));
  }
  r.end = s.seq + 1 + s.payload;
  // What the original side's SYN window lets it send.
  r.maxend = seq_max(r.end, s.seq + 1 + std::max<uint32_t>(o.maxwin, 1));
  r.maxwin = std::max<uint32_t>(s.win, 1);
  r.isn16 = static_cast<uint16_t>(s.seq);
  r.flags = TcpSide::kSeen;
  if (s.wscale >= 0) r.flags |= TcpSide::kScaleOpt;
  if ((o.flags & TcpSide::kScaleOpt) && s.wscale >= 0) {
    r.wscale = shift_of(s.wscale);
  } else {
    o.wscale = 0;
    r.wscale = 0;
  }
  return TcpVerdict::kOk;
}

}  // namespace

bool parse_segment(const uint8_t* ip, uint32_t len, TcpSegment* out) {
  if (len < 20 || ip[0] >> 4 != 4 || ip[9] != 6) return false;
  const uint32_t ihl = (ip[0] & 0x0f) * 4u;
  if (ihl < 20) return false;
  const uint16_t frag = be16(ip + 6);
  if (frag & 0x1fff) return false;  // a later fragment carries no TCP header
  if (len < ihl + 20) return false;
  const uint8_t* t = ip + ihl;
  const uint32_t doff = (t[12] >> 4) * 4u;
  if (doff < 20 || len < ihl + doff) return false;
  const uint32_t total = be16(ip + 2);
  if (total < ihl + doff) return false;

  TcpSegment s;
  s.seq = be32(t + 4);
  s.ack = be32(t + 8);
  s.flags = t[13];
  s.win = be16(t + 14);
  s.payload = total - ihl - doff;
  s.fragment = (frag & 0x2000) != 0;
  // Walk every option, so that a malformed header is refused whatever its
  // flags; only a SYN's window scale counts (RFC 7323 §2.2).
  for (uint32_t i = 20; i < doff;) {
    const uint8_t kind = t[i];
    if (kind == 0) break;  // end of options
    if (kind == 1) {       // no-op
      ++i;
      continue;
    }
    if (i + 1 >= doff) return false;
    const uint8_t olen = t[i + 1];
    if (olen < 2 || i + olen > doff) return false;
    // Linux ignores a window scale of the wrong length rather than refuse
    // the segment: so do we, not to drop what the endpoint accepts.
    if (kind == 3 && olen == 3 && (s.flags & kSyn))
      s.wscale = static_cast<int8_t>(std::min<uint8_t>(t[i + 2], kMaxWscale));
    i += olen;
  }
  *out = s;
  return true;
}

bool first_segment_ok(uint8_t flags) { return (flags & kSyn) && !(flags & (kAck | kRst | kFin)); }

void tcp_start(TcpWindow& w, const TcpSegment& syn) {
  TcpSide& o = w.side[0];
  o.end = syn.seq + 1 + syn.payload;
  // Nothing beyond the SYN until the reply side's SYN-ACK opens its window.
  o.maxend = o.end;
  o.maxwin = std::max<uint32_t>(syn.win, 1);
  o.wscale = syn.wscale >= 0 ? shift_of(syn.wscale) : 0;
  o.flags = TcpSide::kSeen | (syn.wscale >= 0 ? TcpSide::kScaleOpt : 0);
  o.isn16 = static_cast<uint16_t>(syn.seq);
  w.side[1] = TcpSide{};
}

TcpVerdict tcp_track(TcpWindow& w, TcpState state, bool from_orig, const TcpSegment& s) {
  const uint8_t f = s.flags;
  if (!flags_valid(f)) return TcpVerdict::kInvalid;
  const bool syn = f & kSyn, ack = f & kAck, rst = f & kRst, fin = f & kFin;

  if (from_orig && syn && !ack) {
    if (state == TcpState::kNone || state == TcpState::kSynSent || state == TcpState::kClosing ||
        state == TcpState::kClosed)
      tcp_start(w, s);
    return TcpVerdict::kOk;
  }
  if (!(w.side[0].flags & TcpSide::kSeen)) return TcpVerdict::kOk;

  TcpSide& snd = w.side[from_orig ? 0 : 1];
  TcpSide& rcv = w.side[from_orig ? 1 : 0];
  const bool rcv_seen = rcv.flags & TcpSide::kSeen;

  if (!(snd.flags & TcpSide::kSeen)) {
    // The reply side's first segment: a SYN, or a RST refusing the SYN,
    // acceptable only when it acknowledges the SYN (RFC 9293 §3.10.7.3).
    if (rst) {
      return ack && seq_gt(s.ack, initial_seq(rcv)) && seq_leq(s.ack, rcv.end)
                 ? TcpVerdict::kOk
                 : TcpVerdict::kOutOfWindow;
    }
    if (!syn) return TcpVerdict::kInvalid;
    return first_reply_syn(w, s);
  }
  // Until the reply side has answered, the original side has nothing to
  // acknowledge and no window to send data in: only its SYN (above) or a
  // RST aborting it.
  if (!rcv_seen && !rst) return TcpVerdict::kInvalid;
  if (state == TcpState::kSynSent && !rst && (from_orig || !syn)) return TcpVerdict::kInvalid;
  // A SYN from a side that has sent its own must repeat it; a new one would
  // restart a connection the other side still holds.
  if (syn && static_cast<uint16_t>(s.seq) != snd.isn16) return TcpVerdict::kInvalid;

  if (rst) {
    // RFC 5961 §3 in spirit: a RST must fall in the window its receiver
    // would accept, or an attacker's guess resets the connection. Its
    // sender's next number is always acceptable, even one past the window
    // after a FIN (see (I)).
    return seq_geq(s.seq, snd.end - rcv.maxwin) && seq_leq(s.seq, seq_max(snd.maxend, snd.end))
               ? TcpVerdict::kOk
               : TcpVerdict::kOutOfWindow;
  }

  // A SYN's window is never scaled (RFC 7323 §2.2).
  const uint32_t win = syn ? s.win : static_cast<uint32_t>(s.win) << snd.wscale;
  const uint32_t data_end = s.seq + s.payload + (syn ? 1 : 0);
  const uint32_t end = data_end + (fin ? 1 : 0);
  // (I) Within what the receiver allowed: every byte of data (and a SYN).
  // A FIN may take the number one past the edge, as it needs no buffer space
  // and BSD-derived stacks send it with a full (or zero) window; so may then
  // a segment without data, whose number is the one after the FIN.
  if (seq_gt(end, snd.maxend + 1) || ((s.payload || syn) && seq_gt(data_end, snd.maxend)))
    return TcpVerdict::kOutOfWindow;
  // (II) A retransmission is at most one window old. Its end must reach
  // into the last window, not its start: the receiver has acknowledged
  // everything before snd.end - rcv.maxwin (snd could not send beyond its
  // ack plus window), so this refuses only duplicates of what it holds,
  // while a retransmission that starts before and ends after, repacketized
  // and overtaken by new data, still carries what it lacks.
  if (seq_lt(end, snd.end - rcv.maxwin)) return TcpVerdict::kOutOfWindow;
  if (ack) {
    // (III) Only what the receiver sent can be acknowledged; when it sent
    // fragmented datagrams, `end` counts only their first fragments, which
    // an IPv4 datagram's 64 KiB bounds.
    const uint32_t slack = (rcv.flags & TcpSide::kFragmented) ? 65535 : 0;
    if (seq_gt(s.ack, rcv.end + slack)) return TcpVerdict::kOutOfWindow;
    // (IV) An old acknowledgment (reordered, duplicated) lags by at most
    // about a window of the acknowledging side.
    if (seq_lt(s.ack, rcv.end - (kMaxAckWindow << snd.wscale))) return TcpVerdict::kOutOfWindow;
  }

  snd.end = seq_max(snd.end, end);
  // Only the first fragment was counted: the datagram ends further on.
  if (s.fragment) snd.flags |= TcpSide::kFragmented;
  snd.maxwin = std::max(snd.maxwin, std::max<uint32_t>(win, 1));
  // A zero window still lets one byte through: a window probe (RFC 9293
  // §3.8.6.1).
  if (ack) rcv.maxend = seq_max(rcv.maxend, s.ack + std::max<uint32_t>(win, 1));
  return TcpVerdict::kOk;
}

const char* tcp_verdict_name(TcpVerdict v) {
  switch (v) {
    case TcpVerdict::kOk:
      return "ok";
    case TcpVerdict::kInvalid:
      return "invalid";
    case TcpVerdict::kOutOfWindow:
      return "out-of-window";
  }
  return "?";
}

}  // namespace tether::fw
