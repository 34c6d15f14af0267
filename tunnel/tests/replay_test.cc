// ReplayWindow (tunnel/replay.h): RFC 6479 sliding window semantics, checked
// case by case and against an exact model (a std::set of everything seen).
#include "tunnel/replay.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <set>

namespace tether::wg {
namespace {

constexpr uint64_t W = ReplayWindow::kWindow;

TEST(ReplayWindow, CounterZeroFirst) {
  ReplayWindow w;
  EXPECT_EQ(w.highest(), 0u);
  EXPECT_TRUE(w.may_accept(0));
  EXPECT_TRUE(w.accept(0));
  EXPECT_EQ(w.highest(), 1u);  // highest accepted + 1
  EXPECT_FALSE(w.may_accept(0));
  EXPECT_FALSE(w.accept(0));
}

TEST(ReplayWindow, InOrderThenReplays) {
  ReplayWindow w;
  for (uint64_t c = 0; c < 10000; ++c) ASSERT_TRUE(w.accept(c)) << c;
  EXPECT_EQ(w.highest(), 10000u);
  // Everything still inside the window is remembered.
  for (uint64_t c = 10000 - 1 - W; c < 10000; ++c) {
    EXPECT_FALSE(w.may_accept(c)) << c;
    EXPECT_FALSE(w.accept(c)) << c;
  }
  // Older than the window: refused as too old.
  EXPECT_FALSE(w.accept(10000 - 2 - W));
  EXPECT_FALSE(w.accept(0));
}

TEST(ReplayWindow, OutOfOrderWithinWindow) {
  ReplayWindow w;
  ASSERT_TRUE(w.accept(5000));
  // Every counter from 5000 - W up is new and accepted once, in any order.
  for (uint64_t c = 5000 - W; c < 5000; c += 2) EXPECT_TRUE(w.accept(c)) << c;
  for (uint64_t c = 5000 - W + 1; c < 5000; c += 2) EXPECT_TRUE(w.accept(c)) << c;
  for (uint64_t c = 5000 - W; c <= 5000; ++c) EXPECT_FALSE(w.accept(c)) << c;
  EXPECT_FALSE(w.may_accept(5000 - W - 1));
  EXPECT_FALSE(w.accept(5000 - W - 1));
  EXPECT_EQ(w.highest(), 5001u);
}

TEST(ReplayWindow, WindowEdgeExactly) {
  ReplayWindow w;
  const uint64_t top = 100000;
  ASSERT_TRUE(w.accept(top));
  EXPECT_TRUE(w.may_accept(top - W));  // the oldest still tracked
  EXPECT_FALSE(w.may_accept(top - W - 1));
  EXPECT_TRUE(w.accept(top - W));
  EXPECT_FALSE(w.accept(top - W));
  EXPECT_FALSE(w.accept(top - W - 1));
  // WireGuard needs at least 2000 packets of reordering tolerance.
  EXPECT_GE(W, 2000u);
}

TEST(ReplayWindow, SmallStepsForwardKeepHistory) {
  ReplayWindow w;
  ASSERT_TRUE(w.accept(10));
  ASSERT_TRUE(w.accept(70));   // next word
  ASSERT_TRUE(w.accept(200));  // a few words on
  EXPECT_FALSE(w.accept(10));
  EXPECT_FALSE(w.accept(70));
  EXPECT_TRUE(w.accept(11));
  EXPECT_TRUE(w.accept(199));
}

// A jump beyond the ring clears it: counters whose bits share a ring
// position with old ones must read as unseen, and the old ones are too old.
TEST(ReplayWindow, BigJumpClearsEverything) {
  ReplayWindow w;
  for (uint64_t c = 0; c < 4096; ++c) ASSERT_TRUE(w.accept(c));
  const uint64_t ring = uint64_t{ReplayWindow::kWords} * 64;
  ASSERT_TRUE(w.accept(10 * ring + 100));
  for (uint64_t c = 10 * ring + 100 - W; c < 10 * ring + 100; ++c) {
    EXPECT_TRUE(w.may_accept(c)) << c;
  }
  for (uint64_t c = 0; c < 4096; ++c) EXPECT_FALSE(w.may_accept(c)) << c;
  // A jump of less than a ring but more than the window: the same.
  ReplayWindow v;
  for (uint64_t c = 0; c < 3000; ++c) ASSERT_TRUE(v.accept(c));
  ASSERT_TRUE(v.accept(3000 + W + 50));
  for (uint64_t c = 3000 + 50; c < 3000 + W + 50; ++c) ASSERT_TRUE(v.accept(c)) << c;
  for (uint64_t c = 0; c < 3000 + 50; ++c) EXPECT_FALSE(v.may_accept(c)) << c;
}

TEST(ReplayWindow, Reset) {
  ReplayWindow w;
  for (uint64_t c = 0; c < 100; ++c) ASSERT_TRUE(w.accept(c));
  w.reset();
  EXPECT_EQ(w.highest(), 0u);
  for (uint64_t c = 0; c < 100; ++c) EXPECT_TRUE(w.accept(c)) << c;
}

// No overflow at the top of the range: UINT64_MAX cannot be represented as
// highest + 1 and is refused; the counters just below it behave normally.
TEST(ReplayWindow, NearUint64Max) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  ReplayWindow w;
  EXPECT_FALSE(w.may_accept(kMax));
  EXPECT_FALSE(w.accept(kMax));
  EXPECT_TRUE(w.accept(kMax - 1));
  EXPECT_EQ(w.highest(), kMax);
  EXPECT_FALSE(w.accept(kMax - 1));
  EXPECT_TRUE(w.accept(kMax - 2));
  EXPECT_TRUE(w.accept(kMax - 1 - W));
  EXPECT_FALSE(w.accept(kMax - 2 - W));
  EXPECT_FALSE(w.accept(0));
  EXPECT_FALSE(w.accept(kMax));
  // REJECT_AFTER_MESSAGES (2^64 - 2^13 - 1, WireGuard paper §6.4) is the
  // callers' limit; the window itself handles counters around it.
  ReplayWindow v;
  const uint64_t reject_after = kMax - (uint64_t{1} << 13);
  EXPECT_TRUE(v.accept(reject_after - 1));
  EXPECT_TRUE(v.accept(reject_after - 2));
  EXPECT_FALSE(v.accept(reject_after - 1));
}

// ~100k random operations against an exact model: accept(c) is true iff c
// was never accepted and is ahead of, or within kWindow of, the highest
// accepted counter. may_accept must predict accept without changing state.
TEST(ReplayWindow, RandomizedAgainstSetModel) {
  std::mt19937_64 rng(0x7e7e7e7eULL);
  for (int round = 0; round < 4; ++round) {
    ReplayWindow w;
    std::set<uint64_t> seen;
    bool any = false;
    uint64_t top = 0;  // highest accepted, valid when any
    // Start some rounds far from zero to exercise ring wrap-around offsets.
    uint64_t base = round < 2 ? 0 : rng() >> 2;
    uint64_t cursor = base;
    for (int i = 0; i < 25000; ++i) {
      uint64_t c;
      switch (rng() % 8) {
        case 0:  // a replay of something recent
          c = any ? top - std::min<uint64_t>(top - base, rng() % 64) : base;
          break;
        case 1:  // just outside or inside the window edge
          c = any && top - base > W + 2 ? top - W - 2 + rng() % 5 : cursor;
          break;
        case 2:  // an occasional big jump
          cursor += (rng() % 20 == 0) ? W + rng() % (3 * 4096) : rng() % 200;
          c = cursor;
          break;
        case 3:  // far behind
          c = base + (any ? rng() % (top - base + 1) : 0);
          break;
        default:  // mostly in order with reordering within ~300
          cursor += 1;
          c = cursor > base + 300 ? cursor - rng() % 300 : cursor;
          break;
      }
      const bool expect = !seen.count(c) && (!any || c > top || top - c <= W);
      ASSERT_EQ(w.may_accept(c), expect) << "op " << i << " c=" << c << " top=" << top;
      ASSERT_EQ(w.accept(c), expect) << "op " << i << " c=" << c << " top=" << top;
      if (expect) {
        seen.insert(c);
        if (!any || c > top) top = c;
        any = true;
        ASSERT_EQ(w.highest(), top + 1);
      }
      // Keep the model small: entries older than the window can never be
      // accepted again whatever the set says.
      if (seen.size() > 20000) seen.erase(seen.begin(), seen.lower_bound(top - W));
    }
  }
}

}  // namespace
}  // namespace tether::wg
