#include "firewall/tcp_track.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace tether::fw {
namespace {

using nat::TcpState;

constexpr bool kOrig = true, kReply = false;

TcpSegment seg(uint32_t seq, uint32_t ack, uint8_t flags, uint16_t win, uint32_t payload = 0,
               int8_t wscale = -1) {
  TcpSegment s;
  s.seq = seq;
  s.ack = ack;
  s.flags = flags;
  s.win = win;
  s.payload = payload;
  s.wscale = wscale;
  return s;
}

std::string describe(const TcpWindow& w) {
  std::string r;
  for (const TcpSide& s : w.side)
    r += "[end " + std::to_string(s.end) + " maxend " + std::to_string(s.maxend) + " maxwin " +
         std::to_string(s.maxwin) + " wscale " + std::to_string(s.wscale) + " flags " +
         std::to_string(s.flags) + "]";
  return r;
}

// A session as the dataplane keeps it: the window state beside
// nat::tcp_next's state, which advances only on kOk.
struct Conn {
  TcpWindow w;
  TcpState st = TcpState::kNone;

  void start(const TcpSegment& syn) {
    ASSERT_TRUE(first_segment_ok(syn.flags));
    tcp_start(w, syn);
    st = nat::tcp_next(TcpState::kNone, true, syn.flags);
  }
  TcpVerdict send(bool from_orig, const TcpSegment& s) {
    const TcpWindow before = w;
    const TcpVerdict v = tcp_track(w, st, from_orig, s);
    if (v == TcpVerdict::kOk)
      st = nat::tcp_next(st, from_orig, s.flags);
    else
      EXPECT_EQ(0, std::memcmp(&before, &w, sizeof w)) << "a refused segment changed the state";
    return v;
  }
};

// A handshake from ISNs a (original side) and b (reply side); the windows
// in the SYNs, the scale options, and the window of the final ACK.
Conn handshake(uint32_t a, uint32_t b, int8_t wa = -1, int8_t wb = -1, uint16_t syn_win = 65535,
               uint16_t synack_win = 65535, uint16_t ack_win = 65535) {
  Conn c;
  c.start(seg(a, 0, kSyn, syn_win, 0, wa));
  EXPECT_EQ(c.st, TcpState::kSynSent);
  EXPECT_EQ(c.send(kReply, seg(b, a + 1, kSyn | kAck, synack_win, 0, wb)), TcpVerdict::kOk);
  EXPECT_EQ(c.st, TcpState::kSynReceived);
  EXPECT_EQ(c.send(kOrig, seg(a + 1, b + 1, kAck, ack_win)), TcpVerdict::kOk);
  EXPECT_EQ(c.st, TcpState::kEstablished);
  return c;
}

constexpr TcpVerdict kOk = TcpVerdict::kOk, kInvalid = TcpVerdict::kInvalid,
                     kOutOfWindow = TcpVerdict::kOutOfWindow;

TEST(TcpTrack, VerdictNamesAndFirstSegment) {
  EXPECT_STREQ(tcp_verdict_name(kOk), "ok");
  EXPECT_STREQ(tcp_verdict_name(kInvalid), "invalid");
  EXPECT_STREQ(tcp_verdict_name(kOutOfWindow), "out-of-window");
  EXPECT_TRUE(first_segment_ok(kSyn));
  EXPECT_TRUE(first_segment_ok(kSyn | kEce | kCwr));  // ECN setup (RFC 3168)
  EXPECT_FALSE(first_segment_ok(kSyn | kAck));
  EXPECT_FALSE(first_segment_ok(kSyn | kRst));
  EXPECT_FALSE(first_segment_ok(kSyn | kFin));
  EXPECT_FALSE(first_segment_ok(kAck));
  EXPECT_FALSE(first_segment_ok(0));
}

TEST(TcpTrack, StartSetsTheOriginalSide) {
  TcpWindow w;
  w.side[1].flags = TcpSide::kSeen;  // left over from an earlier connection
  tcp_start(w, seg(1000, 0, kSyn, 0, 10, 5));
  EXPECT_EQ(w.side[0].end, 1011u);  // SYN and its data
  EXPECT_EQ(w.side[0].maxend, 1011u);
  EXPECT_EQ(w.side[0].maxwin, 1u);  // never 0
  EXPECT_EQ(w.side[0].wscale, 5);
  EXPECT_EQ(w.side[0].flags, TcpSide::kSeen | TcpSide::kScaleOpt);
  EXPECT_EQ(w.side[0].isn16, 1000);
  EXPECT_EQ(w.side[1].flags, 0);
  tcp_start(w, seg(7, 0, kSyn, 512));
  EXPECT_EQ(w.side[0].maxwin, 512u);
  EXPECT_EQ(w.side[0].flags, TcpSide::kSeen);
}

// Handshake, data both ways, FIN close from the original side.
TEST(TcpTrack, FullConnectionWithoutScaling) {
  const uint32_t a = 1000, b = 700000;
  Conn c = handshake(a, b, -1, -1, 65535, 29200, 65535);
  EXPECT_EQ(c.w.side[0].wscale, 0);
  EXPECT_EQ(c.w.side[1].wscale, 0);
  EXPECT_EQ(c.w.side[0].maxend, a + 1 + 29200);  // the SYN-ACK's window
  EXPECT_EQ(c.w.side[1].maxend, b + 1 + 65535);

  // The original side fills the reply side's window exactly.
  uint32_t seq = a + 1;
  for (int i = 0; i < 20; ++i, seq += 1460)
    ASSERT_EQ(c.send(kOrig, seg(seq, b + 1, kAck | kPsh, 65535, 1460)), kOk) << i;
  EXPECT_EQ(seq, a + 1 + 29200);
  EXPECT_EQ(c.w.side[0].end, seq);
  EXPECT_EQ(c.send(kOrig, seg(seq, b + 1, kAck | kPsh, 65535, 1)), kOutOfWindow);
  EXPECT_EQ(c.send(kReply, seg(b + 1, seq, kAck, 29200)), kOk);
  EXPECT_EQ(c.w.side[0].maxend, seq + 29200);

  // The reply side answers with 100 KB, acknowledged as it goes.
  uint32_t rseq = b + 1;
  for (int i = 0; i < 70; ++i, rseq += 1448) {
    ASSERT_EQ(c.send(kReply, seg(rseq, seq, kAck | kPsh, 29200, 1448)), kOk) << i;
    ASSERT_EQ(c.send(kOrig, seg(seq, rseq + 1448, kAck, 65535)), kOk) << i;
  }
  EXPECT_EQ(c.st, TcpState::kEstablished);

  // FIN from the original side, acknowledged, then the reply side's.
  EXPECT_EQ(c.send(kOrig, seg(seq, rseq, kFin | kAck, 65535)), kOk);
  EXPECT_EQ(c.st, TcpState::kFinWait);
  EXPECT_EQ(c.w.side[0].end, seq + 1);
  EXPECT_EQ(c.send(kReply, seg(rseq, seq + 1, kAck, 29200)), kOk);
  EXPECT_EQ(c.send(kReply, seg(rseq, seq + 1, kFin | kAck, 29200)), kOk);
  EXPECT_EQ(c.st, TcpState::kClosing);
  EXPECT_EQ(c.send(kOrig, seg(seq + 1, rseq + 1, kAck, 65535)), kOk);
  // A FIN's acknowledgment counts it: one more is data never sent.
  EXPECT_EQ(c.send(kOrig, seg(seq + 1, rseq + 2, kAck, 65535)), kOutOfWindow);
  EXPECT_EQ(c.st, TcpState::kClosing);
}

TEST(TcpTrack, FullConnectionWithScaling) {
  const uint32_t a = 3000000000u, b = 42;
  // Both offer scale 7: the windows after the SYNs count 128-byte units.
  Conn c = handshake(a, b, 7, 7, 64240, 65160, 502);
  EXPECT_EQ(c.w.side[0].wscale, 7);
  EXPECT_EQ(c.w.side[1].wscale, 7);
  EXPECT_EQ(c.w.side[1].maxend, b + 1 + 502 * 128);  // the ACK's window, scaled
  EXPECT_EQ(c.w.side[0].maxend, a + 1 + 65160);      // the SYN-ACK's, never scaled
  uint32_t seq = a + 1, rseq = b + 1;
  // The reply side sends its whole scaled window, 64256 bytes.
  ASSERT_EQ(c.send(kReply, seg(rseq, seq, kAck, 509, 64256 - 1)), kOk);
  ASSERT_EQ(c.send(kReply, seg(rseq + 64255, seq, kAck, 509, 1)), kOk);
  EXPECT_EQ(c.send(kReply, seg(rseq + 64256, seq, kAck, 509, 1)), kOutOfWindow);
  rseq += 64256;
  ASSERT_EQ(c.send(kOrig, seg(seq, rseq, kAck, 1000)), kOk);
  EXPECT_EQ(c.w.side[1].maxend, rseq + 128000);
  ASSERT_EQ(c.send(kOrig, seg(seq, rseq, kAck | kPsh, 1000, 50000)), kOk);
  seq += 50000;
  ASSERT_EQ(c.send(kReply, seg(rseq, seq, kAck | kPsh, 509, 128000)), kOk);
  rseq += 128000;
  EXPECT_EQ(c.send(kReply, seg(rseq, seq, kFin | kAck, 509)), kOk);
  EXPECT_EQ(c.st, TcpState::kFinWaitReply);
  EXPECT_EQ(c.send(kOrig, seg(seq, rseq + 1, kFin | kAck, 1000)), kOk);
  EXPECT_EQ(c.st, TcpState::kClosing);
  EXPECT_EQ(c.send(kReply, seg(rseq + 1, seq + 1, kAck, 509)), kOk);
}

// RFC 7323 §2.2: scaling only when both SYNs carry the option.
TEST(TcpTrack, ScalingNeedsBothOptions) {
  for (auto [wa, wb] : {std::pair<int8_t, int8_t>{7, -1}, {-1, 7}, {-1, -1}}) {
    SCOPED_TRACE(std::to_string(wa) + " " + std::to_string(wb));
    Conn c = handshake(100, 200, wa, wb, 1000, 65535, 1000);
    EXPECT_EQ(c.w.side[0].wscale, 0);
    EXPECT_EQ(c.w.side[1].wscale, 0);
    // 1000 bytes of window, not 128000.
    EXPECT_EQ(c.send(kReply, seg(201, 101, kAck, 1000, 1000)), kOk);
    EXPECT_EQ(c.send(kReply, seg(1201, 101, kAck, 1000, 1)), kOutOfWindow);
  }
  Conn c = handshake(100, 200, 7, 3, 1000, 65535, 1000);
  EXPECT_EQ(c.w.side[0].wscale, 7);
  EXPECT_EQ(c.w.side[1].wscale, 3);
  EXPECT_EQ(c.send(kReply, seg(201, 101, kAck, 1000, 128000)), kOk);
  EXPECT_EQ(c.send(kReply, seg(128201, 101, kAck, 1000, 1)), kOutOfWindow);
  // The reply side's windows count 8-byte units.
  EXPECT_EQ(c.send(kOrig, seg(101, 128201, kAck, 1000, 65535)), kOk);
  EXPECT_EQ(c.send(kReply, seg(128201, 101 + 65535, kAck, 10000)), kOk);
  EXPECT_EQ(c.w.side[0].maxend, 101u + 65535 + 80000);
}

// Scale 7 and a window of 65535 units: 8 MB in flight without an ACK.
TEST(TcpTrack, EightMegabyteWindow) {
  const uint32_t a = 5, b = 0x7ffff000;  // the reply side's numbers cross 2^31
  Conn c = handshake(a, b, 7, 7, 65535, 65535, 65535);
  const uint32_t window = 65535u << 7;
  uint32_t rseq = b + 1;
  int n = 0;
  for (uint32_t sent = 0; sent < window; ++n) {
    uint32_t len = std::min<uint32_t>(65000, window - sent);
    ASSERT_EQ(c.send(kReply, seg(rseq, a + 1, kAck, 65535, len)), kOk) << sent;
    rseq += len;
    sent += len;
  }
  EXPECT_EQ(n, 130);
  EXPECT_EQ(c.send(kReply, seg(rseq, a + 1, kAck, 65535, 1)), kOutOfWindow);
  // Acknowledging it all opens another 8 MB.
  EXPECT_EQ(c.send(kOrig, seg(a + 1, rseq, kAck, 65535)), kOk);
  EXPECT_EQ(c.send(kReply, seg(rseq, a + 1, kAck, 65535, 65000)), kOk);
  EXPECT_EQ(c.send(kReply, seg(rseq + window - 1000, a + 1, kAck, 65535, 1000)), kOk);
  EXPECT_EQ(c.send(kReply, seg(rseq + window - 1000, a + 1, kAck, 65535, 1001)), kOutOfWindow);
  // Old data ending a whole 8 MB back is still a retransmission the checks
  // allow.
  const uint32_t oldest = rseq + window - (65535u << 7);
  EXPECT_EQ(c.send(kReply, seg(oldest - 1, a + 1, kAck, 65535, 1)), kOk);
  EXPECT_EQ(c.send(kReply, seg(oldest - 2, a + 1, kAck, 65535, 1)), kOutOfWindow);
}

TEST(TcpTrack, RetransmissionsAndOldDuplicates) {
  const uint32_t a = 1, b = 2;
  Conn c = handshake(a, b, -1, -1, 65535, 20000, 65535);
  uint32_t seq = a + 1;
  for (int i = 0; i < 10; ++i, seq += 1000)
    ASSERT_EQ(c.send(kOrig, seg(seq, b + 1, kAck, 65535, 1000)), kOk);
  // The same segments again, repacketized, and a keepalive one back.
  EXPECT_EQ(c.send(kOrig, seg(a + 1, b + 1, kAck, 65535, 1000)), kOk);
  EXPECT_EQ(c.send(kOrig, seg(a + 501, b + 1, kAck, 65535, 3000)), kOk);
  EXPECT_EQ(c.send(kOrig, seg(seq - 1, b + 1, kAck, 65535)), kOk);
  EXPECT_EQ(c.w.side[0].end, seq);  // not moved back
  // An old pure ACK, and an old ACK with an old acknowledgment.
  ASSERT_EQ(c.send(kReply, seg(b + 1, seq, kAck, 20000)), kOk);
  EXPECT_EQ(c.send(kReply, seg(b + 1, a + 5001, kAck, 20000)), kOk);
  EXPECT_EQ(c.w.side[0].maxend, seq + 20000);  // not moved back
  // Ending more than a window (the receiver's largest, 20000) back: the
  // receiver has acknowledged all of it, it is a duplicate at best.
  seq += 15000;
  ASSERT_EQ(c.send(kOrig, seg(seq - 15000, b + 1, kAck, 65535, 15000)), kOk);
  EXPECT_EQ(c.send(kOrig, seg(seq - 20100, b + 1, kAck, 65535, 100)), kOk);
  EXPECT_EQ(c.send(kOrig, seg(seq - 20101, b + 1, kAck, 65535, 100)), kOutOfWindow);
  EXPECT_EQ(c.send(kOrig, seg(seq - 1000000, b + 1, kAck, 65535, 100)), kOutOfWindow);
  EXPECT_EQ(c.send(kOrig, seg(seq - 20000, b + 1, kAck, 65535)), kOk);  // a stale pure ACK
  EXPECT_EQ(c.send(kOrig, seg(seq - 20001, b + 1, kAck, 65535)), kOutOfWindow);
  // Starting further back but reaching into the window: a repacketized
  // retransmission, which may carry what the receiver lacks.
  EXPECT_EQ(c.send(kOrig, seg(seq - 24000, b + 1, kAck, 65535, 4000)), kOk);
  EXPECT_EQ(c.send(kOrig, seg(seq - 24000, b + 1, kAck, 65535, 3999)), kOutOfWindow);
}

TEST(TcpTrack, BeyondTheWindow) {
  const uint32_t a = 10, b = 20;
  Conn c = handshake(a, b, -1, -1, 65535, 1000, 65535);
  // The SYN-ACK allows 1000 bytes.
  EXPECT_EQ(c.send(kOrig, seg(a + 1, b + 1, kAck, 65535, 1001)), kOutOfWindow);
  EXPECT_EQ(c.send(kOrig, seg(a + 1000, b + 1, kAck, 65535, 2)), kOutOfWindow);
  EXPECT_EQ(c.send(kOrig, seg(a + 1 + 5000, b + 1, kAck, 65535, 1)), kOutOfWindow);
  EXPECT_EQ(c.send(kOrig, seg(a + 1 + 0x80000000u, b + 1, kAck, 65535, 1)), kOutOfWindow);
  EXPECT_EQ(c.send(kOrig, seg(a + 1, b + 1, kAck, 65535, 1000)), kOk);
  // A FIN may take the number after the window's last; data may not.
  EXPECT_EQ(c.send(kOrig, seg(a + 1001, b + 1, kAck, 65535, 1)), kOutOfWindow);
  EXPECT_EQ(c.send(kOrig, seg(a + 1003, b + 1, kAck, 65535)), kOutOfWindow);
  EXPECT_EQ(c.send(kOrig, seg(a + 1001, b + 1, kFin | kAck, 65535)), kOk);
  EXPECT_EQ(c.send(kOrig, seg(a + 1002, b + 1, kAck, 65535)), kOk);  // the ACK after it
  EXPECT_EQ(c.send(kOrig, seg(a + 1002, b + 1, kFin | kAck, 65535)), kOutOfWindow);
  // A RST at the sender's next number, past the window after that FIN.
  EXPECT_EQ(c.send(kOrig, seg(a + 1003, 0, kRst, 0)), kOutOfWindow);
  EXPECT_EQ(c.send(kOrig, seg(a + 1002, 0, kRst, 0)), kOk);

  // A zero window: one byte (a window probe) and no more.
  Conn z = handshake(a, b, -1, -1, 65535, 1000, 65535);
  ASSERT_EQ(z.send(kOrig, seg(a + 1, b + 1, kAck, 65535, 1000)), kOk);
  ASSERT_EQ(z.send(kReply, seg(b + 1, a + 1001, kAck, 0)), kOk);
  EXPECT_EQ(z.send(kOrig, seg(a + 1001, b + 1, kAck, 65535, 2)), kOutOfWindow);
  EXPECT_EQ(z.send(kOrig, seg(a + 1001, b + 1, kAck, 65535, 1)), kOk);
  EXPECT_EQ(z.send(kOrig, seg(a + 1000, b + 1, kAck, 65535)), kOk);  // Linux's probe
  // The window only grows: a smaller one later does not take it back.
  ASSERT_EQ(z.send(kReply, seg(b + 1, a + 1001, kAck, 500)), kOk);
  ASSERT_EQ(z.send(kReply, seg(b + 1, a + 1001, kAck, 100)), kOk);
  EXPECT_EQ(z.send(kOrig, seg(a + 1001, b + 1, kAck, 65535, 500)), kOk);
  EXPECT_EQ(z.send(kOrig, seg(a + 1501, b + 1, kAck, 65535, 1)), kOutOfWindow);
}

TEST(TcpTrack, AcknowledgmentsOfUnsentData) {
  const uint32_t a = 100, b = 5000;
  Conn c = handshake(a, b, -1, -1, 65535, 65535, 65535);
  ASSERT_EQ(c.send(kReply, seg(b + 1, a + 1, kAck, 65535, 3000)), kOk);
  EXPECT_EQ(c.send(kOrig, seg(a + 1, b + 3002, kAck, 65535)), kOutOfWindow);
  EXPECT_EQ(c.send(kOrig, seg(a + 1, b + 1 + 0x40000000, kAck, 65535)), kOutOfWindow);
  EXPECT_EQ(c.send(kOrig, seg(a + 1, b + 3001, kAck, 65535)), kOk);
  // An acknowledgment far behind (more than 65535 + 1500) is not an old one.
  ASSERT_EQ(c.send(kReply, seg(b + 3001, a + 1, kAck, 65535, 65535)), kOk);
  ASSERT_EQ(c.send(kOrig, seg(a + 1, b + 3001 + 65535, kAck, 65535)), kOk);
  ASSERT_EQ(c.send(kReply, seg(b + 3001 + 65535, a + 1, kAck, 65535, 10000)), kOk);
  const uint32_t rend = b + 3001 + 65535 + 10000;
  EXPECT_EQ(c.send(kOrig, seg(a + 1, rend - 67035, kAck, 65535)), kOk);
  EXPECT_EQ(c.send(kOrig, seg(a + 1, rend - 67036, kAck, 65535)), kOutOfWindow);
  // Without ACK, the field means nothing (a RST), and the SYN-ACK's must
  // acknowledge the SYN exactly.
  for (uint32_t bad : {a, a + 2, a - 1000, 0u}) {
    Conn s;
    s.start(seg(a, 0, kSyn, 65535));
    EXPECT_EQ(s.send(kReply, seg(b, bad, kSyn | kAck, 65535)), kOutOfWindow) << bad;
    EXPECT_EQ(s.st, TcpState::kSynSent);
  }
  // A SYN that carried data may have it acknowledged or not (TCP Fast Open).
  for (uint32_t good : {a + 1, a + 101}) {
    Conn s;
    s.start(seg(a, 0, kSyn, 65535, 100));
    EXPECT_EQ(s.send(kReply, seg(b, good, kSyn | kAck, 65535)), kOk) << good;
  }
}

TEST(TcpTrack, OldAcknowledgmentsScale) {
  // The acknowledging side's scale widens how far back its ACKs may lag.
  Conn c = handshake(1, 2, 2, 0, 65535, 65535, 65535);
  uint32_t rseq = 3;
  // The reply side sends 4 * 65535 (the original side's scaled window).
  for (int i = 0; i < 4; ++i, rseq += 65535)
    ASSERT_EQ(c.send(kReply, seg(rseq, 2, kAck, 65535, 65535)), kOk) << i;
  EXPECT_EQ(c.send(kOrig, seg(2, rseq - 4 * 67035, kAck, 65535)), kOk);
  EXPECT_EQ(c.send(kOrig, seg(2, rseq - 4 * 67035 - 1, kAck, 65535)), kOutOfWindow);
}

TEST(TcpTrack, SequenceWrapAround) {
  const uint32_t a = 0xffffff00u, b = 0xfffffff0u;
  Conn c = handshake(a, b, -1, -1, 65535, 65535, 65535);
  uint32_t seq = a + 1, rseq = b + 1;
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(c.send(kOrig, seg(seq, rseq, kAck, 65535, 100)), kOk) << i;
    seq += 100;
    ASSERT_EQ(c.send(kReply, seg(rseq, seq, kAck, 65535, 10)), kOk) << i;
    rseq += 10;
    ASSERT_EQ(c.send(kOrig, seg(seq, rseq, kAck, 65535)), kOk) << i;
  }
  EXPECT_LT(seq, a);  // both wrapped
  EXPECT_LT(rseq, b);
  EXPECT_EQ(c.w.side[0].end, seq);
  // Retransmissions from before the wrap are still old data, not new.
  EXPECT_EQ(c.send(kOrig, seg(a + 1, rseq, kAck, 65535, 50)), kOk);
  EXPECT_EQ(c.w.side[0].end, seq);
  EXPECT_EQ(c.send(kReply, seg(rseq, a + 1, kAck, 65535)), kOk);  // an old ACK
  // Beyond the window and beyond what was sent, across the wrap.
  EXPECT_EQ(c.send(kOrig, seg(seq, rseq, kAck, 65535, 65535)), kOk);
  EXPECT_EQ(c.send(kOrig, seg(seq + 65535, rseq, kAck, 65535, 1000)), kOutOfWindow);
  EXPECT_EQ(c.send(kOrig, seg(seq, rseq + 1, kAck, 65535)), kOutOfWindow);
}

TEST(TcpTrack, ResetsInAndOutOfTheWindow) {
  const uint32_t a = 1000, b = 9000;
  auto conn = [&] {
    Conn c = handshake(a, b, -1, -1, 30000, 20000, 30000);
    EXPECT_EQ(c.send(kOrig, seg(a + 1, b + 1, kAck, 30000, 500)), kOk);
    EXPECT_EQ(c.send(kReply, seg(b + 1, a + 501, kAck, 20000, 700)), kOk);
    return c;
  };
  // The original side: end a + 501, maxend a + 501 + 20000; the reply
  // side's largest window 20000.
  for (uint32_t seq : {a + 501, a + 20501, a + 1, a + 501 - 20000, a + 700}) {
    for (uint8_t f : {kRst, uint8_t(kRst | kAck)}) {
      Conn c = conn();
      EXPECT_EQ(c.send(kOrig, seg(seq, b + 701, f, 0)), kOk) << seq;
      EXPECT_EQ(c.st, TcpState::kClosed);
    }
  }
  for (uint32_t seq : {a + 20502, a + 500 - 20000, a + 0x80000000u, a + 100000}) {
    Conn c = conn();
    EXPECT_EQ(c.send(kOrig, seg(seq, b + 701, kRst | kAck, 0)), kOutOfWindow) << seq;
    EXPECT_EQ(c.st, TcpState::kEstablished);
  }
  // The reply side: end b + 701, maxend b + 1 + 30000 (the original side's
  // window); the original side's largest window 30000.
  for (uint32_t seq : {b + 701, b + 30001, b + 1, b + 701 - 30000}) {
    Conn c = conn();
    EXPECT_EQ(c.send(kReply, seg(seq, 0, kRst, 0)), kOk) << seq;
  }
  for (uint32_t seq : {b + 30002, b + 700 - 30000, b + 1000000}) {
    Conn c = conn();
    EXPECT_EQ(c.send(kReply, seg(seq, 0, kRst, 0)), kOutOfWindow) << seq;
  }

  // Refusing a SYN: the RST must acknowledge it (RFC 9293 §3.10.7.3).
  {
    Conn c;
    c.start(seg(a, 0, kSyn, 65535));
    EXPECT_EQ(c.send(kReply, seg(0, a + 1, kRst | kAck, 0)), kOk);
    EXPECT_EQ(c.st, TcpState::kClosed);
    // Its side stays unseen: its first segment is still to come.
    EXPECT_EQ(c.w.side[1].flags, 0);
  }
  for (auto [ack, f] : {std::pair<uint32_t, uint8_t>{a + 1, kRst},
                        {a, kRst | kAck},
                        {a + 2, kRst | kAck},
                        {a + 0x40000000, kRst | kAck}}) {
    Conn c;
    c.start(seg(a, 0, kSyn, 65535));
    EXPECT_EQ(c.send(kReply, seg(0, ack, f, 0)), kOutOfWindow) << ack << " " << int(f);
    EXPECT_EQ(c.st, TcpState::kSynSent);
  }
  // The original side aborting its own SYN: at its next number only.
  {
    Conn c;
    c.start(seg(a, 0, kSyn, 65535));
    EXPECT_EQ(c.send(kOrig, seg(a + 5, 0, kRst, 0)), kOutOfWindow);
    EXPECT_EQ(c.send(kOrig, seg(a + 1, 0, kRst, 0)), kOk);
  }
}

TEST(TcpTrack, InvalidFlags) {
  const uint32_t a = 1, b = 2;
  struct Case {
    uint8_t flags;
    const char* what;
  };
  const Case invalid[] = {
      {kSyn | kFin, "SYN+FIN"},
      {kSyn | kFin | kAck, "SYN+FIN+ACK"},
      {kSyn | kRst, "SYN+RST"},
      {kSyn | kRst | kAck, "SYN+RST+ACK"},
      {kSyn | kFin | kRst | kPsh | kAck | kUrg, "all"},
      {kFin, "FIN without ACK"},
      {kFin | kPsh, "FIN+PSH without ACK"},
      {kFin | kPsh | kUrg, "xmas"},
      {kFin | kRst, "FIN+RST without ACK"},
      {0, "null"},
      {kPsh, "PSH alone"},
      {kUrg, "URG alone"},
      {kEce | kCwr, "ECE+CWR alone"},
      {kPsh | kUrg, "PSH+URG"},
  };
  for (const Case& k : invalid) {
    for (bool from_orig : {kOrig, kReply}) {
      SCOPED_TRACE(std::string(k.what) + (from_orig ? " from orig" : " from reply"));
      Conn c = handshake(a, b);
      const TcpSegment s =
          from_orig ? seg(a + 1, b + 1, k.flags, 65535, 10) : seg(b + 1, a + 1, k.flags, 65535, 10);
      EXPECT_EQ(c.send(from_orig, s), kInvalid);
      EXPECT_EQ(c.st, TcpState::kEstablished);
    }
    // Invalid in every state, tracked or not.
    for (auto st : {TcpState::kNone, TcpState::kSynSent, TcpState::kClosing, TcpState::kClosed}) {
      TcpWindow w;
      EXPECT_EQ(tcp_track(w, st, true, seg(a, b, k.flags, 100)), kInvalid) << k.what;
    }
  }
  // The same segment with valid flags passes: the flags alone decided.
  for (uint8_t f :
       {kAck, uint8_t(kAck | kPsh), uint8_t(kAck | kUrg), uint8_t(kAck | kEce),
        uint8_t(kFin | kAck), uint8_t(kFin | kPsh | kAck), uint8_t(kRst), uint8_t(kRst | kAck)}) {
    Conn c = handshake(a, b);
    EXPECT_EQ(c.send(kOrig, seg(a + 1, b + 1, f, 65535, 10)), kOk) << int(f);
  }
}

TEST(TcpTrack, InvalidForTheState) {
  const uint32_t a = 1000, b = 2000;
  auto syn_sent = [&] {
    Conn c;
    c.start(seg(a, 0, kSyn, 65535));
    return c;
  };
  // Before the SYN-ACK, the reply side may send only a SYN or a RST...
  for (auto [flags, len] :
       {std::pair<uint8_t, uint32_t>{kAck, 0}, {kAck | kPsh, 100}, {kFin | kAck, 0}}) {
    Conn c = syn_sent();
    EXPECT_EQ(c.send(kReply, seg(b, a + 1, flags, 65535, len)), kInvalid) << int(flags);
    EXPECT_EQ(c.st, TcpState::kSynSent);
  }
  // ...and the original side nothing but its SYN (or a RST).
  for (auto [flags, len] : {std::pair<uint8_t, uint32_t>{kAck, 0},
                            {kAck | kPsh, 100},
                            {kFin | kAck, 0},
                            {kSyn | kAck, 0}}) {
    Conn c = syn_sent();
    EXPECT_EQ(c.send(kOrig, seg(a + 1, b + 1, flags, 65535, len)), kInvalid) << int(flags);
    EXPECT_EQ(c.st, TcpState::kSynSent);
  }
  // Likewise after a refused SYN, until the reply side's own SYN.
  {
    Conn c = syn_sent();
    ASSERT_EQ(c.send(kReply, seg(0, a + 1, kRst | kAck, 0)), kOk);
    EXPECT_EQ(c.send(kReply, seg(b + 1, a + 1, kAck, 65535)), kInvalid);
    EXPECT_EQ(c.send(kOrig, seg(a + 1, b + 1, kAck, 65535)), kInvalid);
  }
  // A retransmitted SYN and SYN-ACK are fine; a SYN-ACK with another
  // sequence number, once the reply side has sent one, is not.
  {
    Conn c = syn_sent();
    ASSERT_EQ(c.send(kReply, seg(b, a + 1, kSyn | kAck, 65535)), kOk);
    EXPECT_EQ(c.send(kOrig, seg(a, 0, kSyn, 65535)), kOk);
    EXPECT_EQ(c.st, TcpState::kSynReceived);
    EXPECT_EQ(c.send(kReply, seg(b, a + 1, kSyn | kAck, 65535)), kOk);
    EXPECT_EQ(c.send(kReply, seg(b + 7, a + 1, kSyn | kAck, 65535)), kInvalid);
    EXPECT_EQ(c.send(kReply, seg(b + 7, 0, kSyn, 65535)), kInvalid);
    ASSERT_EQ(c.send(kOrig, seg(a + 1, b + 1, kAck, 65535)), kOk);
    EXPECT_EQ(c.st, TcpState::kEstablished);
    EXPECT_EQ(c.send(kReply, seg(b, a + 1, kSyn | kAck, 65535)), kOk);  // a late duplicate
    EXPECT_EQ(c.send(kReply, seg(b + 1, a + 1, kSyn | kAck, 65535)), kInvalid);
    // The same low 16 bits as its SYN's: the window catches it instead.
    EXPECT_EQ(c.send(kReply, seg(b - 65536, a + 1, kSyn | kAck, 65535)), kOutOfWindow);
    EXPECT_EQ(c.st, TcpState::kEstablished);
    // A SYN-ACK from the original side must repeat its SYN's number too.
    EXPECT_EQ(c.send(kOrig, seg(a + 1, b + 1, kSyn | kAck, 65535)), kInvalid);
  }
  // The state decides even where the windows would allow (the SYN-ACK's
  // worker has updated them, not yet the state).
  {
    Conn c = handshake(a, b);
    EXPECT_EQ(tcp_track(c.w, TcpState::kSynSent, false, seg(b + 1, a + 1, kAck, 65535)), kInvalid);
    EXPECT_EQ(tcp_track(c.w, TcpState::kSynSent, true, seg(a + 1, b + 1, kAck, 65535)), kInvalid);
    EXPECT_EQ(tcp_track(c.w, TcpState::kSynSent, false, seg(b, a + 1, kSyn | kAck, 65535)), kOk);
    EXPECT_EQ(tcp_track(c.w, TcpState::kEstablished, false, seg(b + 1, a + 1, kAck, 65535)), kOk);
  }
}

// A server may send right after its SYN-ACK (TCP Fast Open, RFC 7413 §4.2):
// within the window of the client's SYN.
TEST(TcpTrack, ReplyDataBeforeTheFinalAck) {
  const uint32_t a = 10, b = 20;
  Conn c;
  c.start(seg(a, 0, kSyn, 5000, 100, 7));
  ASSERT_EQ(c.send(kReply, seg(b, a + 101, kSyn | kAck, 65535, 0, 7)), kOk);
  EXPECT_EQ(c.send(kReply, seg(b + 1, a + 101, kAck | kPsh, 65535, 5000)), kOk);
  EXPECT_EQ(c.send(kReply, seg(b + 5001, a + 101, kAck | kPsh, 65535, 1)), kOutOfWindow);
  EXPECT_EQ(c.st, TcpState::kSynReceived);
}

TEST(TcpTrack, SimultaneousOpen) {
  const uint32_t a = 111, b = 222;
  Conn c;
  c.start(seg(a, 0, kSyn, 65535, 0, 2));
  // Each side's bare SYN crosses the other's, then each sends a SYN-ACK.
  ASSERT_EQ(c.send(kReply, seg(b, 0, kSyn, 40000, 0, 3)), kOk);
  EXPECT_EQ(c.st, TcpState::kSynReceived);
  EXPECT_EQ(c.w.side[0].wscale, 2);
  EXPECT_EQ(c.w.side[1].wscale, 3);
  ASSERT_EQ(c.send(kOrig, seg(a, b + 1, kSyn | kAck, 65535)), kOk);
  EXPECT_EQ(c.st, TcpState::kEstablished);
  ASSERT_EQ(c.send(kReply, seg(b, a + 1, kSyn | kAck, 40000)), kOk);
  // The windows: 40000 (a SYN's, unscaled) for the original side...
  EXPECT_EQ(c.send(kOrig, seg(a + 1, b + 1, kAck, 16384, 40000)), kOk);
  EXPECT_EQ(c.send(kOrig, seg(a + 40001, b + 1, kAck, 16384, 1)), kOutOfWindow);
  // ...and 16384 units of 4 bytes for the reply side.
  EXPECT_EQ(c.send(kReply, seg(b + 1, a + 40001, kAck, 100, 65536)), kOk);
  EXPECT_EQ(c.send(kReply, seg(b + 65537, a + 40001, kAck, 100, 1)), kOutOfWindow);
}

TEST(TcpTrack, PortReuseAfterClose) {
  const uint32_t a = 1000, b = 2000, a2 = 3000000, b2 = 4000000;
  auto closed = [&](bool by_rst) {
    Conn c = handshake(a, b);
    EXPECT_EQ(c.send(kOrig, seg(a + 1, b + 1, kAck, 65535, 100)), kOk);
    if (by_rst) {
      EXPECT_EQ(c.send(kReply, seg(b + 1, a + 101, kRst | kAck, 0)), kOk);
      EXPECT_EQ(c.st, TcpState::kClosed);
    } else {
      EXPECT_EQ(c.send(kOrig, seg(a + 101, b + 1, kFin | kAck, 65535)), kOk);
      EXPECT_EQ(c.send(kReply, seg(b + 1, a + 102, kFin | kAck, 65535)), kOk);
      EXPECT_EQ(c.send(kOrig, seg(a + 102, b + 2, kAck, 65535)), kOk);
      EXPECT_EQ(c.st, TcpState::kClosing);
    }
    return c;
  };
  for (bool by_rst : {false, true}) {
    SCOPED_TRACE(by_rst ? "after RST" : "after FINs");
    Conn c = closed(by_rst);
    // A new connection from the same port: the window state starts over.
    ASSERT_EQ(c.send(kOrig, seg(a2, 0, kSyn, 1000, 0, 4)), kOk);
    EXPECT_EQ(c.st, TcpState::kSynSent);
    EXPECT_EQ(c.w.side[0].end, a2 + 1);
    EXPECT_EQ(c.w.side[0].wscale, 4);
    EXPECT_EQ(c.w.side[1].flags, 0);
    // The old connection's segments are no longer its.
    EXPECT_EQ(c.send(kOrig, seg(a + 102, b + 2, kAck, 65535)), kInvalid);
    EXPECT_EQ(c.send(kReply, seg(b + 1, a + 102, kAck, 65535)), kInvalid);
    EXPECT_EQ(c.send(kReply, seg(b, a + 1, kSyn | kAck, 65535)), kOutOfWindow);
    ASSERT_EQ(c.send(kReply, seg(b2, a2 + 1, kSyn | kAck, 65535, 0, 4)), kOk);
    ASSERT_EQ(c.send(kOrig, seg(a2 + 1, b2 + 1, kAck, 1000)), kOk);
    EXPECT_EQ(c.st, TcpState::kEstablished);
    EXPECT_EQ(c.send(kReply, seg(b2 + 1, a2 + 1, kAck, 1000, 16000)), kOk);
    EXPECT_EQ(c.send(kReply, seg(b2 + 16001, a2 + 1, kAck, 1000, 1)), kOutOfWindow);
  }
  // While the connection may live on at the far end (one FIN, or none),
  // a new SYN passes but restarts nothing: the far end answers it with an
  // ACK, the RST that provokes closes the session, and the next SYN starts.
  for (bool fin : {false, true}) {
    SCOPED_TRACE(fin ? "fin-wait" : "established");
    Conn c = handshake(a, b);
    if (fin) {
      ASSERT_EQ(c.send(kOrig, seg(a + 1, b + 1, kFin | kAck, 65535)), kOk);
    }
    const uint32_t oend = c.w.side[0].end;
    const TcpState st = c.st;
    const TcpWindow before = c.w;
    EXPECT_EQ(c.send(kOrig, seg(a2, 0, kSyn, 1000)), kOk);
    EXPECT_EQ(0, std::memcmp(&before, &c.w, sizeof before));
    EXPECT_EQ(c.st, st);
    EXPECT_EQ(c.send(kReply, seg(b + 1, oend, kAck, 65535)), kOk);
    EXPECT_EQ(c.send(kOrig, seg(oend, 0, kRst, 0)), kOk);
    EXPECT_EQ(c.st, TcpState::kClosed);
    EXPECT_EQ(c.send(kOrig, seg(a2, 0, kSyn, 1000)), kOk);
    EXPECT_EQ(c.st, TcpState::kSynSent);
    EXPECT_EQ(c.w.side[0].end, a2 + 1);
  }
  {
    // The reply side's FIN first.
    Conn c = handshake(a, b);
    ASSERT_EQ(c.send(kReply, seg(b + 1, a + 1, kFin | kAck, 65535)), kOk);
    ASSERT_EQ(c.st, TcpState::kFinWaitReply);
    const TcpWindow before = c.w;
    EXPECT_EQ(c.send(kOrig, seg(a2, 0, kSyn, 1000)), kOk);
    EXPECT_EQ(0, std::memcmp(&before, &c.w, sizeof before));
    EXPECT_EQ(c.st, TcpState::kFinWaitReply);
  }
}

// A session made before tracking was on has no window state: only the
// flags are judged.
TEST(TcpTrack, WindowNeverStarted) {
  TcpWindow w;
  const TcpWindow zero;
  EXPECT_EQ(tcp_track(w, TcpState::kEstablished, true, seg(123456, 654321, kAck, 5, 1400)), kOk);
  EXPECT_EQ(tcp_track(w, TcpState::kEstablished, false, seg(9, 99, kAck | kPsh, 5, 1400)), kOk);
  EXPECT_EQ(tcp_track(w, TcpState::kNone, false, seg(9, 99, kSyn | kAck, 5)), kOk);
  EXPECT_EQ(tcp_track(w, TcpState::kEstablished, true, seg(9, 99, kPsh, 5)), kInvalid);
  EXPECT_EQ(0, std::memcmp(&w, &zero, sizeof w));
  // Its next connection's SYN starts tracking.
  EXPECT_EQ(tcp_track(w, TcpState::kClosing, true, seg(77, 0, kSyn, 5)), kOk);
  EXPECT_EQ(w.side[0].end, 78u);
  EXPECT_EQ(w.side[0].flags, TcpSide::kSeen);
}

// A fragmented segment counts only its first fragment; its receiver may
// acknowledge the rest.
TEST(TcpTrack, FragmentedSegments) {
  const uint32_t a = 1, b = 2;
  for (bool fragment : {false, true}) {
    Conn c = handshake(a, b);
    TcpSegment s = seg(a + 1, b + 1, kAck, 65535, 1000);
    s.fragment = fragment;
    ASSERT_EQ(c.send(kOrig, s), kOk);
    EXPECT_EQ(c.w.side[0].end, a + 1001);
    EXPECT_EQ(c.send(kReply, seg(b + 1, a + 1 + 8000, kAck, 65535)), fragment ? kOk : kOutOfWindow);
    EXPECT_EQ(c.send(kReply, seg(b + 1, a + 1001 + 65536, kAck, 65535)), kOutOfWindow);
  }
}

// ---- parse_segment ----

struct Packet {
  uint8_t ihl = 5;
  uint16_t frag = 0;  // flags and offset
  uint8_t proto = 6;
  uint8_t version = 4;
  uint32_t seq = 0x01020304, ack = 0xa0b0c0d0;
  uint8_t flags = kSyn;
  uint16_t win = 0xfedc;
  std::vector<uint8_t> options;  // padded to 4 bytes with EOL
  int doff = -1;                 // -1: from the options
  uint32_t payload = 0;
  int total = -1;  // -1: the real length

  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> opt = options;
    while (opt.size() % 4) opt.push_back(0);
    const uint32_t tcp_len = 20 + static_cast<uint32_t>(opt.size());
    const uint32_t n = ihl * 4u + tcp_len + payload;
    std::vector<uint8_t> p(n, 0xee);
    p[0] = static_cast<uint8_t>(version << 4 | ihl);
    p[1] = 0;
    const uint32_t t = total >= 0 ? static_cast<uint32_t>(total) : n;
    p[2] = static_cast<uint8_t>(t >> 8);
    p[3] = static_cast<uint8_t>(t);
    p[6] = static_cast<uint8_t>(frag >> 8);
    p[7] = static_cast<uint8_t>(frag);
    p[8] = 64;
    p[9] = proto;
    uint8_t* h = p.data() + ihl * 4;
    h[0] = 0x30;
    h[1] = 0x39;
    h[2] = 0x00;
    h[3] = 0x50;
    for (int i = 0; i < 4; ++i) {
      h[4 + i] = static_cast<uint8_t>(seq >> (24 - 8 * i));
      h[8 + i] = static_cast<uint8_t>(ack >> (24 - 8 * i));
    }
    h[12] = static_cast<uint8_t>((doff >= 0 ? doff : static_cast<int>(tcp_len / 4)) << 4);
    h[13] = flags;
    h[14] = static_cast<uint8_t>(win >> 8);
    h[15] = static_cast<uint8_t>(win);
    h[16] = h[17] = h[18] = h[19] = 0;
    std::memcpy(h + 20, opt.data(), opt.size());
    return p;
  }
};

// Parses a copy in an allocation of exactly `len` bytes, so that a read
// past it is a heap overflow under AddressSanitizer.
bool parse_exact(const std::vector<uint8_t>& p, size_t len, TcpSegment* out) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[len]);
  if (len) std::memcpy(copy.get(), p.data(), len);
  return parse_segment(copy.get(), static_cast<uint32_t>(len), out);
}

bool parse(const Packet& k, TcpSegment* out) {
  const std::vector<uint8_t> p = k.bytes();
  return parse_exact(p, p.size(), out);
}

const std::vector<uint8_t> kLinuxSynOptions = {
    2, 4,  0x05, 0xb4,                    // MSS 1460
    4, 2,                                 // SACK permitted
    8, 10, 1,    2,    3, 4, 0, 0, 0, 0,  // timestamps
    1,                                    // NOP
    3, 3,  7,                             // window scale 7
};

TEST(TcpParse, SynWithOptions) {
  Packet k;
  k.options = kLinuxSynOptions;
  TcpSegment s;
  ASSERT_TRUE(parse(k, &s));
  EXPECT_EQ(s.seq, 0x01020304u);
  EXPECT_EQ(s.ack, 0xa0b0c0d0u);
  EXPECT_EQ(s.win, 0xfedc);
  EXPECT_EQ(s.flags, kSyn);
  EXPECT_EQ(s.wscale, 7);
  EXPECT_EQ(s.payload, 0u);
  EXPECT_FALSE(s.fragment);
  // The same on a SYN-ACK; not on anything else (RFC 7323 §2.2).
  k.flags = kSyn | kAck;
  ASSERT_TRUE(parse(k, &s));
  EXPECT_EQ(s.wscale, 7);
  k.flags = kAck;
  ASSERT_TRUE(parse(k, &s));
  EXPECT_EQ(s.wscale, -1);
  // No option: -1.
  Packet plain;
  ASSERT_TRUE(parse(plain, &s));
  EXPECT_EQ(s.wscale, -1);
  // Scale 0 is an option too.
  k.flags = kSyn;
  k.options = {3, 3, 0};
  ASSERT_TRUE(parse(k, &s));
  EXPECT_EQ(s.wscale, 0);
}

TEST(TcpParse, PayloadAndIpOptions) {
  Packet k;
  k.flags = kAck | kPsh;
  k.payload = 1234;
  k.options = {1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2};
  k.ihl = 6;  // 4 bytes of IP options
  TcpSegment s;
  ASSERT_TRUE(parse(k, &s));
  EXPECT_EQ(s.payload, 1234u);
  EXPECT_EQ(s.seq, 0x01020304u);
  // The payload follows the IP total length, not the bytes at hand.
  const std::vector<uint8_t> p = k.bytes();
  ASSERT_TRUE(parse_exact(p, 24 + 32, &s));
  EXPECT_EQ(s.payload, 1234u);
  // Headers longer than the total length: impossible.
  k.total = 24 + 32 - 1;
  EXPECT_FALSE(parse(k, &s));
  k.total = 24 + 32;
  ASSERT_TRUE(parse(k, &s));
  EXPECT_EQ(s.payload, 0u);
}

TEST(TcpParse, WindowScaleClampedTo14) {
  for (auto [shift, want] :
       {std::pair<uint8_t, int8_t>{14, 14}, {15, 14}, {200, 14}, {255, 14}, {13, 13}}) {
    Packet k;
    k.options = {1, 3, 3, shift};
    TcpSegment s;
    ASSERT_TRUE(parse(k, &s));
    EXPECT_EQ(s.wscale, want) << int(shift);
  }
}

TEST(TcpParse, MalformedOptions) {
  TcpSegment s;
  // Lengths that cannot be: 0, 1, past the header.
  for (const std::vector<uint8_t>& o :
       std::vector<std::vector<uint8_t>>{{2, 0, 0, 0},
                                         {2, 1, 0, 0},
                                         {1, 1, 2, 4},  // MSS running past the header
                                         {1, 1, 1, 3},  // a kind with no length byte
                                         {3, 3, 7, 8, 10, 0, 0, 0},
                                         {8, 255, 0, 0}}) {
    Packet k;
    k.options = o;
    EXPECT_FALSE(parse(k, &s)) << int(o[0]) << " " << int(o[1]);
  }
  // A window scale of the wrong length is ignored, as Linux does.
  {
    Packet k;
    k.options = {3, 4, 7, 0};
    ASSERT_TRUE(parse(k, &s));
    EXPECT_EQ(s.wscale, -1);
  }
  // End of options: what follows is padding, not parsed.
  {
    Packet k;
    k.options = {1, 0, 3, 3, 7, 0, 0, 0};
    ASSERT_TRUE(parse(k, &s));
    EXPECT_EQ(s.wscale, -1);
    k.options = {0, 2, 0, 0};
    EXPECT_TRUE(parse(k, &s));
  }
  // The last of several options wins, as in Linux.
  {
    Packet k;
    k.options = {3, 3, 2, 3, 3, 9};
    ASSERT_TRUE(parse(k, &s));
    EXPECT_EQ(s.wscale, 9);
  }
  // Data offset below 5, and a full 60-byte header of no-ops.
  for (int doff = 0; doff < 5; ++doff) {
    Packet k;
    k.doff = doff;
    EXPECT_FALSE(parse(k, &s)) << doff;
  }
  Packet full;
  full.options.assign(40, 1);
  full.options[39] = 0;
  full.options[36] = 3;
  full.options[37] = 3;
  full.options[38] = 5;
  ASSERT_TRUE(parse(full, &s));
  EXPECT_EQ(s.wscale, 5);
}

TEST(TcpParse, NotTcpOrLaterFragment) {
  TcpSegment s;
  Packet k;
  ASSERT_TRUE(parse(k, &s));
  k.version = 6;
  EXPECT_FALSE(parse(k, &s));
  k = Packet{};
  k.proto = 17;
  EXPECT_FALSE(parse(k, &s));
  k = Packet{};
  k.ihl = 4;
  EXPECT_FALSE(parse(k, &s));
  k = Packet{};
  k.frag = 0x2000 | 185;  // more fragments, offset 1480
  EXPECT_FALSE(parse(k, &s));
  k.frag = 7;  // the last fragment
  EXPECT_FALSE(parse(k, &s));
  k.frag = 0x4000;  // DF
  ASSERT_TRUE(parse(k, &s));
  EXPECT_FALSE(s.fragment);
  k.frag = 0x2000;  // the first of several
  k.payload = 1000;
  ASSERT_TRUE(parse(k, &s));
  EXPECT_TRUE(s.fragment);
  EXPECT_EQ(s.payload, 1000u);
}

// Every prefix of a packet: false until the TCP header and its options are
// all there, never a read past the end (run under -fsanitize=address).
TEST(TcpParse, EveryPrefix) {
  std::vector<Packet> packets(3);
  packets[0].options = kLinuxSynOptions;
  packets[0].payload = 30;
  packets[1].ihl = 15;
  packets[1].options = {1, 1, 1, 3, 3, 14, 2, 4, 5, 0xb4};
  packets[2].flags = kAck;
  for (const Packet& k : packets) {
    const std::vector<uint8_t> p = k.bytes();
    const size_t headers = k.ihl * 4u + 20 + (k.options.size() + 3) / 4 * 4;
    TcpSegment full;
    ASSERT_TRUE(parse_exact(p, p.size(), &full));
    for (size_t len = 0; len <= p.size(); ++len) {
      TcpSegment s;
      s.seq = 0xdead;
      const bool ok = parse_exact(p, len, &s);
      EXPECT_EQ(ok, len >= headers) << len;
      if (ok) {
        EXPECT_EQ(s.seq, full.seq);
        EXPECT_EQ(s.wscale, full.wscale);
        EXPECT_EQ(s.payload, full.payload);
      } else {
        EXPECT_EQ(s.seq, 0xdeadu) << "written on failure";
      }
    }
  }
  // Garbage of every length and many contents must not crash or overread.
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> p(rng() % 100);
    for (auto& b : p) b = static_cast<uint8_t>(rng());
    if (p.size() > 9) {
      p[0] = static_cast<uint8_t>(0x40 | (5 + rng() % 3));
      p[9] = 6;
      p[6] = p[7] = 0;
    }
    TcpSegment s;
    (void)parse_exact(p, p.size(), &s);
  }
}

// ---- A simulation: two model TCPs through the tracker ----
//
// Each endpoint sends data (of random sizes, within the window the other
// advertised), acknowledges, reads at random speeds (so windows close and
// open), retransmits on timeout (go-back-N from the oldest unacknowledged
// byte) and after three duplicate ACKs (fast retransmit, repacketized),
// probes zero windows (BSD's way or Linux's) and closes with a FIN (BSD's
// may lie one past the window). Links lose, duplicate and reorder segments
// (within an RTT) on both sides of the gateway; the session then carries a
// second connection from the same port. Every segment a model TCP sends
// must pass, but for one kind: a duplicate overtaken by its sender's newer
// segments whose data the receiver had already acknowledged (check II
// refuses it once it ends more than a window back; see run_connection).
// TCP_SIM_SEEDS=n runs n seeds instead of 40.

struct SimParams {
  uint32_t iss;
  int8_t wscale;  // offered, -1: none
  uint64_t cap;   // receive buffer
  uint32_t mss;
  uint64_t bytes;  // to send
  bool bsd;        // FIN may go one past the window; zero-window probes carry a byte
  // Mutations, so that the simulation shows it can fail: sending past the
  // window by this much, acknowledging this much more than received.
  uint32_t overrun = 0, ack_overrun = 0;
  bool read_after_fin = false;  // the application reads only once the peer has closed
  double p_send, p_read, p_ack;
};

struct SimStats {
  uint64_t segments = 0, retransmissions = 0, reordered = 0, probes = 0, zero_windows = 0,
           fins_past_window = 0, stale_refused = 0;
};

class Endpoint {
 public:
  Endpoint(bool orig, const SimParams& p, SimStats* stats) : orig_(orig), p_(p), stats_(stats) {}

  bool orig() const { return orig_; }
  uint32_t fin_seq() const { return p_.iss + 1 + static_cast<uint32_t>(p_.bytes); }
  bool done() const { return st_ == kEst && fin_rcvd_ && una_ == fin_seq() + 1; }
  uint32_t rcv_nxt() const { return rcv_nxt_; }
  std::string debug() const {
    return "[st " + std::to_string(st_) + " una " + std::to_string(una_) + " nxt " +
           std::to_string(nxt_) + " max " + std::to_string(max_sent_) + " right " +
           std::to_string(right_) + " fin " + std::to_string(fin_seq()) + " rcv_nxt " +
           std::to_string(rcv_nxt_) + " rcv_adv " + std::to_string(rcv_adv_) + " unread " +
           std::to_string(unread_) + " cap " + std::to_string(p_.cap) + " fin_rcvd " +
           std::to_string(fin_rcvd_) + " zw " + std::to_string(zero_window_) + " bsd " +
           std::to_string(p_.bsd) + "]";
  }

  void connect(uint64_t now, std::vector<TcpSegment>* out) {
    st_ = kSynSent;
    una_ = p_.iss;
    nxt_ = max_sent_ = p_.iss + 1;
    last_progress_ = now;
    send_syn(out);
  }

  void on_segment(uint64_t now, const TcpSegment& s, std::vector<TcpSegment>* out) {
    if (st_ == kListen) {
      if (!(s.flags & kSyn) || (s.flags & kAck)) return;
      peer_wscale_ = s.wscale;
      rcv_nxt_ = s.seq + 1;
      st_ = kSynRcvd;
      una_ = p_.iss;
      nxt_ = max_sent_ = p_.iss + 1;
      right_ = nxt_ + s.win;  // from its ISN + 1: the SYN's window is never scaled
      set_scales();
      last_progress_ = now;
      send_syn(out);
      return;
    }
    if (st_ == kSynSent) {
      if ((s.flags & (kSyn | kAck)) != (kSyn | kAck) || s.ack != p_.iss + 1) return;
      peer_wscale_ = s.wscale;
      set_scales();
      rcv_nxt_ = s.seq + 1;
      rcv_adv_ = rcv_nxt_ + syn_win_;
      una_ = s.ack;
      right_ = s.ack + s.win;
      st_ = kEst;
      last_progress_ = now;
      out->push_back(make(nxt_, 0, kAck));
      return;
    }
    if (s.flags & kSyn) {
      // A duplicate SYN (SYN-ACK) of the other side: answer as a TCP would,
      // with our SYN-ACK again before we are established, else an ACK.
      if (st_ == kSynRcvd && !(s.flags & kAck))
        send_syn(out);
      else if (st_ == kEst)
        ack_pending_ = true;
      return;
    }
    if (st_ == kSynRcvd) {
      if (!(s.flags & kAck) || s.ack != p_.iss + 1) return;
      st_ = kEst;
    }
    // Acknowledgment and window.
    if (s.flags & kAck) {
      if (seq_after(s.ack, una_) && !seq_after(s.ack, max_sent_)) {
        una_ = s.ack;
        last_progress_ = now;
        dupacks_ = 0;
        if (seq_after(una_, nxt_)) nxt_ = una_;
      } else if (s.ack == una_ && una_ != max_sent_ && !s.payload && !(s.flags & kFin)) {
        ++dupacks_;  // the receiver lacks what starts at una_
      }
      if (!seq_after(s.ack, max_sent_)) {
        const uint32_t edge = s.ack + (static_cast<uint32_t>(s.win) << snd_shift_);
        if (seq_after(edge, right_)) right_ = edge;
        if (s.ack == una_) zero_window_ = s.win == 0;
      }
    }
    // Data and FIN: in order only (no reassembly queue), trimmed to the
    // window we advertised.
    const bool fin = s.flags & kFin;
    if (s.payload || fin) {
      const uint32_t data_end = s.seq + s.payload;
      if (!seq_after(s.seq, rcv_nxt_) && seq_after(data_end + (fin ? 1 : 0), rcv_nxt_)) {
        uint32_t upto = data_end;
        if (seq_after(upto, rcv_adv_)) upto = rcv_adv_;
        if (seq_after(upto, rcv_nxt_)) {
          unread_ += upto - rcv_nxt_;
          rcv_nxt_ = upto;
        }
        if (fin && rcv_nxt_ == data_end) {
          ++rcv_nxt_;
          fin_rcvd_ = true;
        }
      }
      ack_pending_ = true;  // new data, or a duplicate to answer
    } else if (s.seq == rcv_nxt_ - 1) {
      ack_pending_ = true;  // a window probe or keepalive
    }
  }

  void tick(uint64_t now, std::mt19937_64& rng, std::vector<TcpSegment>* out) {
    auto chance = [&](double p) { return std::uniform_real_distribution<>(0, 1)(rng) < p; };
    const uint64_t rto = 60;
    if (st_ == kSynSent || st_ == kSynRcvd) {
      if (now - last_progress_ > rto) {
        last_progress_ = now;
        ++stats_->retransmissions;
        send_syn(out);
      }
      return;
    }
    if (st_ != kEst) return;
    // The application reads.
    if (unread_ && (fin_rcvd_ || !p_.read_after_fin) && chance(p_.p_read)) {
      const uint64_t before = window_now();
      unread_ -= std::uniform_int_distribution<uint64_t>(1, unread_)(rng);
      if (window_now() >= before + p_.mss || before == 0) ack_pending_ = true;
    }
    // Timeout: go back to the oldest unacknowledged byte.
    if (una_ != max_sent_ && now - last_progress_ > rto) {
      nxt_ = una_;
      last_progress_ = now;
      ++stats_->retransmissions;
    }
    // Fast retransmission (RFC 5681 §3.2) of the oldest data, sized anew,
    // after three duplicate ACKs.
    if (una_ != max_sent_ && dupacks_ >= 3) {
      dupacks_ = 0;
      const uint32_t data_left =
          seq_after(max_sent_, fin_seq()) ? fin_seq() - una_ : max_sent_ - una_;
      if (data_left) {
        const uint32_t len =
            std::uniform_int_distribution<uint32_t>(1, std::min<uint32_t>(p_.mss, data_left))(rng);
        const bool fin = una_ + len == fin_seq() && seq_after(max_sent_, fin_seq());
        out->push_back(make(una_, len, kAck | (fin ? kFin : 0)));
        ++stats_->retransmissions;
      }
    }
    // New data (or data again after a timeout), then the FIN.
    bool sent = false;
    if (chance(p_.p_send)) {
      uint32_t limit = seq_after(right_ + p_.overrun, fin_seq()) ? fin_seq() : right_ + p_.overrun;
      if (seq_after(limit, nxt_)) {
        // A full segment (what a TCP with data waiting sends) or any size
        // (an application writing little at a time).
        const uint32_t most = std::min<uint32_t>(p_.mss, limit - nxt_);
        const uint32_t len =
            chance(0.5) ? most : std::uniform_int_distribution<uint32_t>(1, most)(rng);
        send_data(len, out);
        sent = true;
      } else if (nxt_ == fin_seq() && (p_.bsd || seq_after(right_, fin_seq()))) {
        send_data(0, out);
        sent = true;
      }
    }
    // Zero-window probe.
    if (!sent && zero_window_ && una_ == nxt_ && !seq_after(right_, nxt_) &&
        nxt_ != fin_seq() + 1 && now - last_probe_ > rto) {
      last_probe_ = now;
      ++stats_->probes;
      if (p_.bsd) {
        send_data(nxt_ == fin_seq() ? 0 : 1, out);
      } else {
        out->push_back(make(una_ - 1, 0, kAck));
      }
      sent = true;
    }
    if (ack_pending_ && !sent && chance(p_.p_ack)) out->push_back(make(nxt_, 0, kAck));
  }

 private:
  enum State { kListen, kSynSent, kSynRcvd, kEst };
  static bool seq_after(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }

  void set_scales() {
    if (p_.wscale >= 0 && peer_wscale_ >= 0) {
      rcv_shift_ = static_cast<uint8_t>(p_.wscale);
      snd_shift_ = static_cast<uint8_t>(peer_wscale_);
    }
  }
  uint64_t window_now() const { return p_.cap > unread_ ? p_.cap - unread_ : 0; }

  void send_syn(std::vector<TcpSegment>* out) {
    syn_win_ = static_cast<uint16_t>(std::min<uint64_t>(window_now(), 65535));
    TcpSegment s;
    s.seq = p_.iss;
    s.flags = kSyn;
    if (st_ == kSynRcvd) {
      s.flags |= kAck;
      s.ack = rcv_nxt_;
      rcv_adv_ = rcv_nxt_ + syn_win_;
    }
    s.win = syn_win_;
    s.wscale = p_.wscale;
    if (!orig_ && peer_wscale_ < 0) s.wscale = -1;  // RFC 7323: only in reply to one
    out->push_back(s);
  }

  // Our window: what the buffer has free, but never less than what we
  // advertised before (no TCP shrinks its window), rounded up to the scale.
  uint16_t advertise() {
    const int64_t kept = static_cast<int32_t>(rcv_adv_ - rcv_nxt_);
    const uint64_t wnd = std::max<uint64_t>(window_now(), kept > 0 ? kept : 0);
    const uint64_t field = std::min<uint64_t>((wnd + (1u << rcv_shift_) - 1) >> rcv_shift_, 65535);
    const uint32_t edge = rcv_nxt_ + static_cast<uint32_t>(field << rcv_shift_);
    if (seq_after(edge, rcv_adv_)) rcv_adv_ = edge;
    if (field == 0) ++stats_->zero_windows;
    return static_cast<uint16_t>(field);
  }

  TcpSegment make(uint32_t seq, uint32_t len, uint8_t flags) {
    TcpSegment s;
    s.seq = seq;
    s.ack = rcv_nxt_ + p_.ack_overrun;
    s.flags = flags;
    s.payload = len;
    s.win = advertise();
    ack_pending_ = false;
    return s;
  }

  void send_data(uint32_t len, std::vector<TcpSegment>* out) {
    bool fin = nxt_ + len == fin_seq() && (p_.bsd || seq_after(right_, fin_seq()));
    if (fin && seq_after(fin_seq() + 1, right_)) ++stats_->fins_past_window;
    if (seq_after(max_sent_, nxt_)) ++stats_->retransmissions;
    out->push_back(make(nxt_, len, kAck | (len ? kPsh : 0) | (fin ? kFin : 0)));
    nxt_ += len + (fin ? 1 : 0);
    if (seq_after(nxt_, max_sent_)) max_sent_ = nxt_;
  }

  bool orig_;
  SimParams p_;
  SimStats* stats_;
  State st_ = kListen;
  int8_t peer_wscale_ = -1;
  uint8_t rcv_shift_ = 0, snd_shift_ = 0;
  uint32_t una_ = 0, nxt_ = 0, max_sent_ = 0, right_ = 0;
  uint32_t rcv_nxt_ = 0, rcv_adv_ = 0;
  uint16_t syn_win_ = 0;
  uint64_t unread_ = 0;
  bool fin_rcvd_ = false, ack_pending_ = false, zero_window_ = false;
  int dupacks_ = 0;
  uint64_t last_progress_ = 0, last_probe_ = 0;
};

SimParams random_params(std::mt19937_64& rng, bool near_wrap) {
  auto pick = [&](uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
  };
  SimParams p;
  p.iss = near_wrap ? static_cast<uint32_t>(0 - pick(1, 200000)) : static_cast<uint32_t>(rng());
  p.wscale = pick(0, 3) == 0 ? -1 : static_cast<int8_t>(pick(0, 14));
  const uint32_t mss[] = {536, 1460, 1448, 8960, 65000};
  p.mss = mss[pick(0, 4)];
  const uint8_t shift = p.wscale >= 0 ? static_cast<uint8_t>(p.wscale) : 0;
  // Buffers from tiny (windows close all the time) to 64 KiB scaled.
  const uint64_t max_cap = 65535ull << shift;
  p.cap = std::min<uint64_t>(max_cap, pick(0, 2) == 0 ? pick(500, 8000) : pick(8000, 8u << 20));
  p.bytes = pick(300, 1500);  // segments, made bytes once the peer's window is known
  p.bsd = pick(0, 1);
  p.p_send = 0.3 + 0.7 * std::uniform_real_distribution<>(0, 1)(rng);
  p.p_read = pick(0, 3) == 0 ? 0.05 : 0.8;
  p.p_ack = 0.5;
  return p;
}

// One connection through the gateway; false (with a message) on a refused
// segment.
::testing::AssertionResult run_connection(Conn& gw, std::mt19937_64& rng, SimStats* stats,
                                          bool near_wrap, uint32_t overrun = 0,
                                          uint32_t ack_overrun = 0) {
  SimParams pa = random_params(rng, near_wrap), pb = random_params(rng, near_wrap);
  auto real = [&](uint64_t lo, uint64_t hi) {
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
  };
  if (pa.wscale < 0 || pb.wscale < 0) {  // the other side's scale does not apply
    pa.cap = std::min<uint64_t>(pa.cap, 65535);
    pb.cap = std::min<uint64_t>(pb.cap, 65535);
  }
  if (overrun) pb.cap = std::min<uint64_t>(pb.cap, 4000);  // so that the window limits
  // Now and then the transfer fills the receiver's buffer exactly, read only
  // after the FIN: a BSD sender's FIN then lies past the window.
  const bool exact = !overrun && real(0, 5) == 0;
  // Hundreds to thousands of segments each way, of at most half the
  // receiver's buffer.
  pa.bytes *= std::min<uint64_t>(pa.mss, std::max<uint64_t>(pb.cap / 2, 100));
  pb.bytes *= std::min<uint64_t>(pb.mss, std::max<uint64_t>(pa.cap / 2, 100));
  if (exact) {
    pa.bytes = pb.cap;
    pa.bsd = true;
    pb.read_after_fin = true;
  }
  pa.overrun = overrun;
  pa.ack_overrun = ack_overrun;
  Endpoint ep[2] = {Endpoint(true, pa, stats), Endpoint(false, pb, stats)};
  const uint64_t base = real(2, 6), jitter = real(0, base);  // reordering within an RTT
  const double loss1 = 0.001 * real(0, 80), loss2 = 0.001 * real(0, 80), dup = 0.001 * real(0, 20);
  auto chance = [&](double p) { return std::uniform_real_distribution<>(0, 1)(rng) < p; };

  struct InFlight {
    bool from_orig;
    bool past_gateway;
    uint64_t id;  // the order its sender sent it in
    TcpSegment s;
  };
  std::multimap<uint64_t, InFlight> net;
  uint64_t sent[2] = {0, 0};    // per direction (0: from the original side)
  uint64_t passed[2] = {0, 0};  // the latest-sent segment that passed the gateway, + 1
  uint32_t acked[2] = {0, 0};   // the highest ACK that passed, of each direction's data
  bool any_ack[2] = {false, false};
  auto emit = [&](uint64_t now, bool from_orig, const std::vector<TcpSegment>& segs) {
    for (const TcpSegment& s : segs) {
      const uint64_t id = sent[from_orig ? 0 : 1]++;
      const int copies = chance(dup) ? 2 : 1;
      for (int copy = 0; copy < copies; ++copy) {
        if (chance(loss1)) continue;
        net.emplace(now + base + real(0, jitter), InFlight{from_orig, false, id, s});
      }
    }
  };
  std::vector<TcpSegment> out;
  ep[0].connect(0, &out);
  emit(0, true, out);
  for (uint64_t now = 1; now < 2000000; ++now) {
    while (!net.empty() && net.begin()->first <= now) {
      InFlight f = net.begin()->second;
      net.erase(net.begin());
      if (!f.past_gateway) {
        const int d = f.from_orig ? 0 : 1;
        TcpVerdict v;
        const TcpState st = gw.st;
        const TcpWindow before = gw.w;
        if (gw.st == TcpState::kNone) {
          gw.start(f.s);
          v = TcpVerdict::kOk;
        } else {
          v = gw.send(f.from_orig, f.s);
        }
        ++stats->segments;
        const bool overtaken = f.id < passed[d];
        if (overtaken) ++stats->reordered;
        // A duplicate overtaken by its sender's later segments, all of whose
        // sequence space its receiver had acknowledged: the receiver holds
        // what it carries, and the later segments carried newer ACKs and
        // windows. Dropping it changes nothing for either end; no other
        // segment may be refused.
        const uint32_t seg_end = f.s.seq + f.s.payload + ((f.s.flags & (kSyn | kFin)) ? 1 : 0);
        const bool stale = overtaken && any_ack[d] && static_cast<int32_t>(seg_end - acked[d]) <= 0;
        if (v == TcpVerdict::kOutOfWindow && stale && !(f.s.flags & (kSyn | kRst))) {
          ++stats->stale_refused;
          continue;
        }
        if (v != TcpVerdict::kOk) {
          return ::testing::AssertionFailure()
                 << tcp_verdict_name(v) << " at " << now << " from "
                 << (f.from_orig ? "orig" : "reply") << " in " << nat::tcp_state_name(st)
                 << ": seq " << f.s.seq << " ack " << f.s.ack << " len " << f.s.payload << " flags "
                 << int(f.s.flags) << " win " << f.s.win << " window " << describe(before);
        }
        passed[d] = std::max(passed[d], f.id + 1);
        if (f.s.flags & kAck) {
          uint32_t& k = acked[1 - d];
          if (!any_ack[1 - d] || static_cast<int32_t>(f.s.ack - k) > 0) k = f.s.ack;
          any_ack[1 - d] = true;
        }
        if (chance(loss2)) continue;
        f.past_gateway = true;
        net.emplace(now + base + real(0, jitter), f);
        continue;
      }
      out.clear();
      Endpoint& to = ep[f.from_orig ? 1 : 0];
      to.on_segment(now, f.s, &out);
      emit(now, to.orig(), out);
    }
    if (ep[0].done() && ep[1].done() && net.empty()) {
      if (ep[1].rcv_nxt() != ep[0].fin_seq() + 1 || ep[0].rcv_nxt() != ep[1].fin_seq() + 1)
        return ::testing::AssertionFailure() << "the model lost data";
      if (gw.st != TcpState::kClosing)
        return ::testing::AssertionFailure() << "ends in " << nat::tcp_state_name(gw.st);
      return ::testing::AssertionSuccess();
    }
    for (Endpoint& e : ep) {
      out.clear();
      e.tick(now, rng, &out);
      emit(now, e.orig(), out);
    }
  }
  return ::testing::AssertionFailure()
         << "the model did not finish: " << ep[0].debug() << " " << ep[1].debug();
}

TEST(TcpTrackSim, ModelTcpsAlwaysPass) {
  SimStats stats;
  const uint64_t seeds =
      getenv("TCP_SIM_SEEDS") ? strtoull(getenv("TCP_SIM_SEEDS"), nullptr, 10) : 40;
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    Conn gw;  // one session: the second connection reuses the port
    ASSERT_TRUE(run_connection(gw, rng, &stats, seed % 4 == 0));
    ASSERT_TRUE(run_connection(gw, rng, &stats, seed % 4 == 1));
  }
  // The model must have exercised what it claims to.
  EXPECT_GT(stats.segments, 100000u);
  EXPECT_GT(stats.retransmissions, 1000u);
  EXPECT_GT(stats.reordered, 1000u);
  EXPECT_GT(stats.probes, 10u);
  EXPECT_GT(stats.zero_windows, 100u);
  EXPECT_GT(stats.fins_past_window, 0u);
  // Refused duplicates are rare (a few in a million).
  EXPECT_LT(stats.stale_refused * 10000, stats.segments);
  std::printf(
      "segments %llu retransmissions %llu reordered %llu probes %llu zero windows %llu "
      "FINs past the window %llu stale refused %llu\n",
      (unsigned long long)stats.segments, (unsigned long long)stats.retransmissions,
      (unsigned long long)stats.reordered, (unsigned long long)stats.probes,
      (unsigned long long)stats.zero_windows, (unsigned long long)stats.fins_past_window,
      (unsigned long long)stats.stale_refused);
}

// The same model with one mutation: a sender that sends past the window,
// or a receiver that acknowledges what it never got, is caught. So the
// simulation's passing is not the checks passing everything.
TEST(TcpTrackSim, MutatedModelsAreCaught) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    for (auto [overrun, ack_overrun] : {std::pair<uint32_t, uint32_t>{1, 0}, {0, 1}}) {
      SCOPED_TRACE("seed " + std::to_string(seed) + " overrun " + std::to_string(overrun));
      std::mt19937_64 rng(seed);
      SimStats stats;
      Conn gw;
      ::testing::AssertionResult r = run_connection(gw, rng, &stats, false, overrun, ack_overrun);
      EXPECT_FALSE(r);
      EXPECT_NE(std::string(r.message()).find("out-of-window"), std::string::npos) << r.message();
    }
  }
}

}  // namespace
}  // namespace tether::fw
