#include "nat/fragments.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>

namespace tether::nat {
namespace {

FlowKey frag_key(uint16_t ip_id, uint32_t src = 0x0a000001) {
  return {src, 0xc6336401, ip_id, 0, 1, kUdp, FlowKey::kFragment};
}

void* pkt(uintptr_t n) { return reinterpret_cast<void*>(n); }

struct Drained {
  std::array<FragmentCache::Ready, FragmentCache::kHeld> ready{};
  std::array<void*, FragmentCache::kHeld> expired{};
  uint32_t nready = 0, nexpired = 0;
};

Drained drain(FragmentCache& c, uint64_t now) {
  Drained d;
  c.drain(now, d.ready.data(), &d.nready, d.expired.data(), &d.nexpired);
  return d;
}

TEST(FragmentCache, RecordFindExpire) {
  FragmentCache c;
  const Rewrite rw{1, 2, 3, 4, 5};
  EXPECT_EQ(c.find(frag_key(1), 0), nullptr);
  c.record(frag_key(1), rw, 1000);
  const Rewrite* got = c.find(frag_key(1), 1000);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->src, 1u);
  EXPECT_EQ(got->dport, 4);
  EXPECT_EQ(got->domain, 5);
  EXPECT_NE(c.find(frag_key(1), 1000 + FragmentCache::kRecordMs - 1), nullptr);
  EXPECT_EQ(c.find(frag_key(1), 1000 + FragmentCache::kRecordMs), nullptr);

  // Only the exact key: another id, address, domain or a flow key miss.
  EXPECT_EQ(c.find(frag_key(2), 1000), nullptr);
  EXPECT_EQ(c.find(frag_key(1, 0x0a000002), 1000), nullptr);
  FlowKey other_domain = frag_key(1);
  other_domain.domain = 2;
  EXPECT_EQ(c.find(other_domain, 1000), nullptr);
  FlowKey flow = frag_key(1);
  flow.kind = FlowKey::kFlow;
  EXPECT_EQ(c.find(flow, 1000), nullptr);

  // Recording again refreshes the time.
  c.record(frag_key(1), Rewrite{9, 9, 9, 9, 9}, 2500);
  ASSERT_NE(c.find(frag_key(1), 4000), nullptr);
  EXPECT_EQ(c.find(frag_key(1), 4000)->src, 9u);
}

TEST(FragmentCache, CollisionOverwritesTheOlderRecord) {
  // Find two keys sharing a slot: with 1024 slots, a few thousand ids do.
  FlowKey a{}, b{};
  bool found = false;
  for (uint16_t id = 0; id < 5000 && !found; ++id) {
    FragmentCache c;
    c.record(frag_key(0), Rewrite{}, 0);
    c.record(frag_key(id + 1), Rewrite{}, 0);
    if (c.find(frag_key(0), 0) == nullptr) {
      a = frag_key(0);
      b = frag_key(id + 1);
      found = true;
    }
  }
  ASSERT_TRUE(found);
  FragmentCache c;
  c.record(a, Rewrite{1, 1, 1, 1, 1}, 0);
  c.record(b, Rewrite{2, 2, 2, 2, 2}, 0);
  EXPECT_EQ(c.find(a, 0), nullptr);
  ASSERT_NE(c.find(b, 0), nullptr);
  EXPECT_EQ(c.find(b, 0)->src, 2u);
}

TEST(FragmentCache, KeysSpreadOverSlots) {
  // As many keys as slots, differing in one field at a time: a random
  // mapping keeps 1 - 1/e (63%) of them; a hash blind to a field keeps one.
  auto kept = [](auto make) {
    FragmentCache c;
    for (uint32_t i = 0; i < FragmentCache::kRecords; ++i) c.record(make(i), Rewrite{}, 0);
    uint32_t n = 0;
    for (uint32_t i = 0; i < FragmentCache::kRecords; ++i) n += c.find(make(i), 0) != nullptr;
    return n;
  };
  const uint32_t half = FragmentCache::kRecords / 2;
  EXPECT_GT(kept([](uint32_t i) { return frag_key(uint16_t(i)); }), half);
  EXPECT_GT(kept([](uint32_t i) { return frag_key(0, i << 22); }), half);
  EXPECT_GT(kept([](uint32_t i) {
              FlowKey k = frag_key(0);
              k.dst = i;
              return k;
            }),
            half);
  EXPECT_GT(kept([](uint32_t i) {
              FlowKey k = frag_key(0);
              k.domain = uint16_t(i);
              return k;
            }),
            half);
}

TEST(FragmentCache, HoldUntilTheFirstArrives) {
  FragmentCache c;
  EXPECT_TRUE(c.hold(frag_key(1), pkt(1), 100));
  EXPECT_TRUE(c.hold(frag_key(2), pkt(2), 110));
  EXPECT_TRUE(c.hold(frag_key(1), pkt(3), 120));
  EXPECT_EQ(c.held(), 3u);

  Drained d = drain(c, 130);  // nothing known yet, nothing old
  EXPECT_EQ(d.nready, 0u);
  EXPECT_EQ(d.nexpired, 0u);
  EXPECT_EQ(c.held(), 3u);

  c.record(frag_key(1), Rewrite{7, 8, 0, 0, 1}, 140);
  d = drain(c, 150);
  ASSERT_EQ(d.nready, 2u);
  EXPECT_EQ(d.ready[0].pkt, pkt(1));  // in arrival order
  EXPECT_EQ(d.ready[1].pkt, pkt(3));
  EXPECT_EQ(d.ready[0].rw.src, 7u);
  EXPECT_EQ(d.ready[1].rw.dst, 8u);
  EXPECT_EQ(d.nexpired, 0u);
  EXPECT_EQ(c.held(), 1u);

  d = drain(c, 110 + FragmentCache::kHoldMs);  // exactly kHoldMs: still waits
  EXPECT_EQ(d.nexpired, 0u);
  d = drain(c, 111 + FragmentCache::kHoldMs);
  EXPECT_EQ(d.nready, 0u);
  ASSERT_EQ(d.nexpired, 1u);
  EXPECT_EQ(d.expired[0], pkt(2));
  EXPECT_EQ(c.held(), 0u);
}

TEST(FragmentCache, DrainKeepsTheOrderOfThoseStillWaiting) {
  FragmentCache c;
  for (uintptr_t i = 0; i < 10; ++i) c.hold(frag_key(uint16_t(i % 3)), pkt(i + 1), i);
  c.record(frag_key(1), Rewrite{}, 20);
  Drained d = drain(c, 20);
  EXPECT_EQ(d.nready, 3u);  // 2, 5, 8 (ids 1)
  EXPECT_EQ(d.ready[0].pkt, pkt(2));
  EXPECT_EQ(d.ready[1].pkt, pkt(5));
  EXPECT_EQ(d.ready[2].pkt, pkt(8));
  EXPECT_EQ(c.held(), 7u);

  d = drain(c, 6 + FragmentCache::kHoldMs);  // held at 0, 2, 3, 5 expire; 6, 8, 9 wait
  ASSERT_EQ(d.nexpired, 4u);
  EXPECT_EQ(d.expired[0], pkt(1));
  EXPECT_EQ(d.expired[1], pkt(3));
  EXPECT_EQ(d.expired[2], pkt(4));
  EXPECT_EQ(d.expired[3], pkt(6));

  c.record(frag_key(0), Rewrite{}, 30);
  c.record(frag_key(2), Rewrite{}, 30);
  d = drain(c, 31);
  ASSERT_EQ(d.nready, 3u);
  EXPECT_EQ(d.ready[0].pkt, pkt(7));
  EXPECT_EQ(d.ready[1].pkt, pkt(9));
  EXPECT_EQ(d.ready[2].pkt, pkt(10));
  EXPECT_EQ(c.held(), 0u);
}

TEST(FragmentCache, ReadyWinsOverExpiredAndExpiredRecordsDoNot) {
  FragmentCache c;
  c.hold(frag_key(1), pkt(1), 0);
  c.hold(frag_key(2), pkt(2), 0);
  c.record(frag_key(1), Rewrite{}, 500);
  c.record(frag_key(2), Rewrite{}, 0);  // too old by the time we drain
  Drained d = drain(c, FragmentCache::kRecordMs + 1);
  ASSERT_EQ(d.nready, 1u);
  EXPECT_EQ(d.ready[0].pkt, pkt(1));
  ASSERT_EQ(d.nexpired, 1u);
  EXPECT_EQ(d.expired[0], pkt(2));
}

TEST(FragmentCache, Full) {
  FragmentCache c;
  for (uint32_t i = 0; i < FragmentCache::kHeld; ++i)
    EXPECT_TRUE(c.hold(frag_key(uint16_t(i)), pkt(i + 1), 0));
  EXPECT_FALSE(c.hold(frag_key(999), pkt(999), 0));
  EXPECT_EQ(c.held(), FragmentCache::kHeld);

  Drained d = drain(c, FragmentCache::kHoldMs + 1);
  EXPECT_EQ(d.nexpired, FragmentCache::kHeld);
  EXPECT_EQ(c.held(), 0u);
  EXPECT_TRUE(c.hold(frag_key(999), pkt(999), 0));
}

}  // namespace
}  // namespace tether::nat
