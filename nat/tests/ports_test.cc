#include "nat/ports.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <set>
#include <thread>
#include <vector>

namespace tether::nat {
namespace {

constexpr uint32_t kDefaultCapacity = 65535 - 1024 + 1;

TEST(PortPool, AllocatesEveryPortOnceThenNone) {
  auto pool = std::make_unique<PortPool>();
  EXPECT_EQ(pool->capacity(), kDefaultCapacity);
  std::mt19937_64 rng(1);
  std::vector<bool> seen(65536);
  for (uint32_t i = 0; i < kDefaultCapacity; ++i) {
    const uint16_t p = pool->allocate(rng());
    ASSERT_GE(p, 1024) << i;
    ASSERT_FALSE(seen[p]) << p;
    seen[p] = true;
    ASSERT_TRUE(pool->is_claimed(p));
  }
  EXPECT_EQ(pool->in_use(), kDefaultCapacity);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(pool->allocate(rng()), 0);
  EXPECT_EQ(pool->in_use(), kDefaultCapacity);
}

TEST(PortPool, ReleasedPortsComeBack) {
  auto pool = std::make_unique<PortPool>();
  std::mt19937_64 rng(2);
  while (pool->allocate(rng()) != 0) {
  }
  pool->release(1024);
  pool->release(40000);
  pool->release(65535);
  EXPECT_EQ(pool->in_use(), kDefaultCapacity - 3);
  EXPECT_FALSE(pool->is_claimed(40000));
  std::set<uint16_t> again;
  for (int i = 0; i < 3; ++i) again.insert(pool->allocate(rng()));
  EXPECT_EQ(again, (std::set<uint16_t>{1024, 40000, 65535}));
  EXPECT_EQ(pool->allocate(rng()), 0);
}

TEST(PortPool, ReleasingWhatIsNotClaimedChangesNothing) {
  auto pool = std::make_unique<PortPool>();
  const uint16_t p = pool->allocate(7);
  pool->release(p);
  pool->release(p);                        // twice
  pool->release(p == 2000 ? 2001 : 2000);  // never claimed
  pool->release(80);                       // out of range: its bit must stay set
  pool->release(0);
  EXPECT_EQ(pool->in_use(), 0u);
  std::mt19937_64 rng(3);
  for (uint32_t i = 0; i < kDefaultCapacity; ++i) ASSERT_GE(pool->allocate(rng()), 1024);
  EXPECT_EQ(pool->allocate(rng()), 0);
  EXPECT_EQ(pool->in_use(), kDefaultCapacity);
}

TEST(PortPool, Claim) {
  auto pool = std::make_unique<PortPool>();
  EXPECT_TRUE(pool->claim(5000));
  EXPECT_FALSE(pool->claim(5000));
  EXPECT_FALSE(pool->claim(80));
  EXPECT_FALSE(pool->claim(0));
  EXPECT_FALSE(pool->is_claimed(80));
  EXPECT_EQ(pool->in_use(), 1u);
  std::mt19937_64 rng(4);
  for (uint32_t i = 0; i + 1 < kDefaultCapacity; ++i) ASSERT_NE(pool->allocate(rng()), 5000);
  EXPECT_EQ(pool->allocate(rng()), 0);
  pool->release(5000);
  EXPECT_TRUE(pool->claim(5000));
}

// Every port of [lo, hi] exactly once, whatever the random values.
void exhaust(uint16_t lo, uint16_t hi, uint32_t want) {
  SCOPED_TRACE(testing::Message() << lo << ".." << hi);
  auto pool = std::make_unique<PortPool>(lo, hi);
  EXPECT_EQ(pool->capacity(), want);
  std::mt19937_64 rng(uint64_t{lo} << 16 | hi);
  std::set<uint16_t> got;
  for (uint32_t i = 0; i < want; ++i) {
    const uint16_t p = pool->allocate(rng());
    ASSERT_NE(p, 0);
    ASSERT_GE(p, pool->lo());
    ASSERT_LE(p, hi);
    ASSERT_TRUE(got.insert(p).second);
  }
  EXPECT_EQ(pool->allocate(rng()), 0);
  EXPECT_EQ(pool->allocate(~uint64_t{0}), 0);
}

TEST(PortPool, SmallRanges) {
  exhaust(5000, 5000, 1);
  exhaust(64, 127, 64);  // one whole word
  exhaust(63, 64, 2);    // two words, one bit each
  exhaust(100, 200, 101);
  exhaust(65535, 65535, 1);
  exhaust(65472, 65535, 64);
  exhaust(1, 65535, 65535);
  exhaust(0, 10, 10);  // port 0 means "none": never handed out

  auto one = std::make_unique<PortPool>(5000, 5000);
  EXPECT_EQ(one->allocate(12345), 5000);
  EXPECT_EQ(one->allocate(1), 0);
  one->release(5000);
  EXPECT_EQ(one->allocate(99), 5000);
}

TEST(PortPool, SearchStartsAtRandom) {
  std::mt19937_64 rng(5);
  std::set<uint16_t> first;
  uint16_t lo = 65535, hi = 0;
  for (int i = 0; i < 200; ++i) {
    auto pool = std::make_unique<PortPool>();
    const uint16_t p = pool->allocate(rng());
    first.insert(p);
    lo = std::min(lo, p);
    hi = std::max(hi, p);
  }
  EXPECT_GT(first.size(), 190u);
  EXPECT_LT(lo, 10000);
  EXPECT_GT(hi, 56000);
}

TEST(PortPool, ConcurrentAllocationsTakeEachPortOnce) {
  auto pool = std::make_unique<PortPool>();
  constexpr int kThreads = 4;
  std::vector<std::vector<uint16_t>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      for (uint16_t p; (p = pool->allocate(rng())) != 0;) got[t].push_back(p);
    });
  }
  for (auto& th : threads) th.join();
  std::vector<uint16_t> all;
  for (auto& g : got) all.insert(all.end(), g.begin(), g.end());
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), kDefaultCapacity);
  for (uint32_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], 1024 + i);
  EXPECT_EQ(pool->in_use(), kDefaultCapacity);
}

TEST(PortPool, ConcurrentChurnKeepsCountsRight) {
  // A small range so threads contend on the same words.
  auto pool = std::make_unique<PortPool>(2000, 2300);
  std::vector<std::atomic<uint8_t>> owned(65536);
  std::atomic<bool> duplicate{false};
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(200 + t);
      std::vector<uint16_t> mine;
      for (int i = 0; i < 200000; ++i) {
        if (mine.size() < 100 && rng() % 2) {
          const uint16_t p = pool->allocate(rng());
          if (p == 0) continue;
          if (owned[p].exchange(1) != 0) duplicate = true;
          mine.push_back(p);
        } else if (!mine.empty()) {
          const size_t k = rng() % mine.size();
          owned[mine[k]] = 0;
          pool->release(mine[k]);
          mine[k] = mine.back();
          mine.pop_back();
        }
        if (i % 1000 == 0) pool->release(uint16_t(1000 + rng() % 1000));  // out of range: no-op
      }
      for (uint16_t p : mine) {
        owned[p] = 0;
        pool->release(p);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_FALSE(duplicate);
  EXPECT_EQ(pool->in_use(), 0u);
  for (uint32_t p = 0; p < 65536; ++p) EXPECT_FALSE(pool->is_claimed(uint16_t(p))) << p;
  for (uint32_t i = 0; i < pool->capacity(); ++i) ASSERT_NE(pool->allocate(i * 7919), 0);
  EXPECT_EQ(pool->allocate(1), 0);
}

TEST(PortPools, OneIdPerKeyUpToTheLimit) {
  auto pools = std::make_unique<PortPools>();
  const uint32_t a = pools->get_or_make(1, 0xcb007101, 6);
  const uint32_t b = pools->get_or_make(1, 0xcb007101, 17);
  const uint32_t c = pools->get_or_make(2, 0xcb007101, 6);
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(b, c);
  EXPECT_EQ(pools->get_or_make(1, 0xcb007101, 6), a);
  EXPECT_TRUE(pools->at(a).claim(3000));
  EXPECT_FALSE(pools->at(a).claim(3000));
  EXPECT_TRUE(pools->at(b).claim(3000));

  uint32_t listed = 0;
  pools->for_each([&](const PortPools::Info& i) {
    ++listed;
    if (i.id == b) {
      EXPECT_EQ(i.domain, 1);
      EXPECT_EQ(i.addr, 0xcb007101u);
      EXPECT_EQ(i.proto, 17);
    }
  });
  EXPECT_EQ(listed, 3u);

  for (uint32_t i = 3; i < PortPools::kMaxPools; ++i)
    ASSERT_NE(pools->get_or_make(3, i, 6), PortPools::kNone) << i;
  EXPECT_EQ(pools->get_or_make(3, 0xffffffff, 6), PortPools::kNone);
  EXPECT_EQ(pools->get_or_make(1, 0xcb007101, 17), b);  // existing pools still found
}

}  // namespace
}  // namespace tether::nat
