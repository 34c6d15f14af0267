// The session table on a real EAL (--no-huge, lcores 0-1; see eal_main.cc):
// keys and lookups, capacity and reuse, the sweep's cursor, rekeying, RCU
// deferral, a worker on lcore 1 racing the sweeper, and the TCP tracker.
#include "nat/session.h"

#include <rte_hash.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include <gtest/gtest.h>
#include <atomic>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "nat/translate.h"

namespace tether::nat {
namespace {

// Unique per i for i < 2^24: a client behind the NAT and the port the NAT
// gave it on 203.0.113.x.
FlowKey orig_key(uint32_t i) {
  return {0x0a000000u + i, 0xc6336401u, 40000, 443, 1, kTcp, FlowKey::kFlow};
}
FlowKey reply_key(uint32_t i) {
  return {0xc6336401u, 0xcb007100u + (i >> 16), 443, static_cast<uint16_t>(i & 0xffff), 2,
          kTcp,        FlowKey::kFlow};
}

std::string unique_name() {
  static int n = 0;
  return "st" + std::to_string(n++);
}

std::unique_ptr<SessionTable> make_table(uint32_t max, rte_rcu_qsbr* qsbr = nullptr,
                                         unsigned workers = 2) {
  SessionTable::Config c;
  c.name = unique_name();
  c.max_sessions = max;
  c.max_workers = workers;
  std::string error;
  auto t = SessionTable::create(c, qsbr, &error);
  EXPECT_NE(t, nullptr) << error;
  return t;
}

rte_hash* hash_of(const std::string& name) { return rte_hash_find_existing(name.c_str()); }

const auto kNoFill = [](Session&) {};
const auto kAll = [](const Session&) { return true; };
const auto kNone = [](const Session&) { return false; };
const auto kNothing = [](const Session&) {};

SessionTable::Insert insert(SessionTable& t, uint32_t i, uint32_t* index, unsigned worker = 0) {
  return t.insert(worker, orig_key(i), reply_key(i), kNoFill, index);
}

// An RCU variable with `threads` reader slots, freed with the test.
struct Qsbr {
  explicit Qsbr(uint32_t threads) {
    v = static_cast<rte_rcu_qsbr*>(
        rte_zmalloc("test_qsbr", rte_rcu_qsbr_get_memsize(threads), RTE_CACHE_LINE_SIZE));
    rte_rcu_qsbr_init(v, threads);
  }
  ~Qsbr() { rte_free(v); }
  rte_rcu_qsbr* v;
};

TEST(SessionTable, InsertFindsBothSidesAndMissesOthers) {
  auto t = make_table(1024);
  ASSERT_TRUE(t);
  std::vector<uint32_t> idx(100);
  for (uint32_t i = 0; i < 100; ++i) {
    auto r = t->insert(
        0, orig_key(i), reply_key(i),
        [&](Session& s) {
          s.mapping = i;
          s.created_s = 1000 + i;
          s.last_seen_s = 1000 + i;
        },
        &idx[i]);
    ASSERT_EQ(r, SessionTable::Insert::kOk);
  }
  EXPECT_EQ(t->live(), 100u);
  std::set<uint32_t> distinct(idx.begin(), idx.end());
  EXPECT_EQ(distinct.size(), 100u);
  for (uint32_t i = 0; i < 100; ++i) {
    EXPECT_EQ(t->lookup(orig_key(i)), idx[i] << 1);
    EXPECT_EQ(t->lookup(reply_key(i)), idx[i] << 1 | 1);
    const Session& s = t->at(idx[i]);
    EXPECT_EQ(s.orig, orig_key(i));
    EXPECT_EQ(s.reply, reply_key(i));
    EXPECT_EQ(s.mapping, i);
    EXPECT_EQ(s.created_s.load(), 1000 + i);
    EXPECT_EQ(s.tcp.load(), 0);
    EXPECT_EQ(s.flags, 0);
  }
  EXPECT_EQ(t->lookup(orig_key(100)), SessionTable::kMiss);
  EXPECT_EQ(t->lookup(orig_key(5).mirrored()), SessionTable::kMiss);
  FlowKey other_domain = orig_key(5);
  other_domain.domain = 9;
  EXPECT_EQ(t->lookup(other_domain), SessionTable::kMiss);
  FlowKey fragment = orig_key(5);
  fragment.kind = FlowKey::kFragment;
  EXPECT_EQ(t->lookup(fragment), SessionTable::kMiss);
}

TEST(SessionTable, LookupBulkOf64MixesHitsAndMisses) {
  auto t = make_table(1024);
  ASSERT_TRUE(t);
  std::vector<uint32_t> idx(32);
  for (uint32_t i = 0; i < 32; ++i) ASSERT_EQ(insert(*t, i, &idx[i]), SessionTable::Insert::kOk);
  std::vector<FlowKey> keys(64);
  std::vector<uint32_t> want(64);
  for (uint32_t i = 0; i < 64; ++i) {
    switch (i % 3) {
      case 0:
        keys[i] = orig_key(i / 2);
        want[i] = i / 2 < 32 ? idx[i / 2] << 1 : SessionTable::kMiss;
        break;
      case 1:
        keys[i] = reply_key(i / 2);
        want[i] = i / 2 < 32 ? idx[i / 2] << 1 | 1 : SessionTable::kMiss;
        break;
      default:
        keys[i] = orig_key(1000 + i);
        want[i] = SessionTable::kMiss;
    }
  }
  std::vector<const FlowKey*> ptrs;
  for (auto& k : keys) ptrs.push_back(&k);
  std::vector<uint32_t> out(64, 12345);
  t->lookup_bulk(ptrs.data(), 64, out.data());
  for (uint32_t i = 0; i < 64; ++i) {
    EXPECT_EQ(out[i], want[i]) << i;
    EXPECT_EQ(out[i], t->lookup(keys[i])) << i;
  }
  t->lookup_bulk(ptrs.data(), 1, out.data());
  EXPECT_EQ(out[0], want[0]);
}

TEST(SessionTable, ExistsWhenEitherKeyIsTaken) {
  auto t = make_table(64);
  ASSERT_TRUE(t);
  uint32_t a = 0, b = 0;
  ASSERT_EQ(insert(*t, 1, &a), SessionTable::Insert::kOk);
  EXPECT_EQ(t->insert(0, orig_key(1), reply_key(2), kNoFill, &b), SessionTable::Insert::kExists);
  EXPECT_EQ(t->insert(1, orig_key(2), reply_key(1), kNoFill, &b), SessionTable::Insert::kExists);
  EXPECT_EQ(t->insert(0, orig_key(3), orig_key(3), kNoFill, &b), SessionTable::Insert::kExists);
  EXPECT_EQ(t->live(), 1u);
  EXPECT_EQ(t->lookup(orig_key(1)), a << 1);
  EXPECT_EQ(t->lookup(reply_key(1)), a << 1 | 1);
  EXPECT_EQ(t->lookup(reply_key(2)), SessionTable::kMiss);
  // Nothing leaked: the other 63 records are still there.
  uint32_t made = 0;
  for (uint32_t i = 100; i < 200; ++i)
    if (insert(*t, i, &b) == SessionTable::Insert::kOk) ++made;
  EXPECT_EQ(made, 63u);
}

// Fills a table to its last record: `max` sessions with distinct indices,
// each found by both keys, then kFull.
void fill_completely(SessionTable& t, uint32_t first_flow) {
  const uint32_t max = t.capacity();
  std::vector<bool> seen(max, false);
  for (uint32_t i = 0; i < max; ++i) {
    uint32_t idx = UINT32_MAX;
    ASSERT_EQ(insert(t, first_flow + i, &idx), SessionTable::Insert::kOk) << "session " << i;
    ASSERT_LT(idx, max);
    ASSERT_FALSE(seen[idx]) << "index handed out twice: " << idx;
    seen[idx] = true;
  }
  uint32_t idx = 0;
  EXPECT_EQ(insert(t, first_flow + max, &idx), SessionTable::Insert::kFull);
  EXPECT_EQ(t.live(), max);
  for (uint32_t i = 0; i < max; i += 97) {
    EXPECT_NE(t.lookup(orig_key(first_flow + i)), SessionTable::kMiss);
    EXPECT_NE(t.lookup(reply_key(first_flow + i)), SessionTable::kMiss);
  }
}

// 3276 sessions: 8190 hash entries, a cuckoo table of 8192 slots holding
// 6552 keys, the fullest (80%) this sizing ever makes it.
TEST(SessionTable, CapacityFullThenSweptThenReusedWithoutRcu) {
  auto t = make_table(3276);
  ASSERT_TRUE(t);
  fill_completely(*t, 0);
  uint32_t expired = 0;
  EXPECT_EQ(t->sweep(t->capacity(), kAll, [&](const Session&) { ++expired; }), t->capacity());
  EXPECT_EQ(expired, t->capacity());
  EXPECT_EQ(t->live(), 0u);
  EXPECT_EQ(t->lookup(orig_key(0)), SessionTable::kMiss);
  t->reclaim();  // without RCU the sweep has freed everything already
  fill_completely(*t, 100000);
  t->sweep(t->capacity(), kAll, kNothing);
  fill_completely(*t, 0);  // the first flows again: their old keys are gone
}

TEST(SessionTable, CapacityReturnsOnlyAfterTheGracePeriod) {
  Qsbr q(1);
  ASSERT_EQ(rte_rcu_qsbr_thread_register(q.v, 0), 0);
  rte_rcu_qsbr_thread_online(q.v, 0);
  auto t = make_table(4096, q.v);
  ASSERT_TRUE(t);
  fill_completely(*t, 0);
  EXPECT_EQ(t->sweep(4096, kAll, kNothing), 4096u);
  EXPECT_EQ(t->live(), 0u);
  t->reclaim();
  uint32_t idx = 0;
  // The reader has not reported a quiescent state: nothing is reused yet.
  EXPECT_EQ(insert(*t, 5000, &idx), SessionTable::Insert::kFull);
  rte_rcu_qsbr_quiescent(q.v, 0);
  t->reclaim();
  fill_completely(*t, 10000);
  rte_rcu_qsbr_thread_offline(q.v, 0);
  rte_rcu_qsbr_thread_unregister(q.v, 0);
}

uint32_t index_of(const SessionTable& t, const Session& s) {
  return static_cast<uint32_t>(&s - &t.at(0));
}

TEST(SessionTable, SweepVisitsBudgetRecordsFromItsCursorAndWraps) {
  auto t = make_table(64);
  ASSERT_TRUE(t);
  uint32_t idx = 0;
  for (uint32_t i = 0; i < 64; ++i) ASSERT_EQ(insert(*t, i, &idx), SessionTable::Insert::kOk);
  std::vector<uint32_t> gone;
  auto record = [&](const Session& s) { gone.push_back(index_of(*t, s)); };

  EXPECT_EQ(t->sweep(10, kAll, record), 10u);  // records 0..9
  std::vector<uint32_t> want;
  for (uint32_t i = 0; i < 10; ++i) want.push_back(i);
  EXPECT_EQ(gone, want);

  uint32_t asked = 0;
  auto count_asked = [&](const Session&) {
    ++asked;
    return false;
  };
  EXPECT_EQ(t->sweep(10, count_asked, record), 0u);  // records 10..19 stay
  EXPECT_EQ(asked, 10u);

  gone.clear();
  EXPECT_EQ(t->sweep(10, kAll, record), 10u);  // 20..29
  want.clear();
  for (uint32_t i = 20; i < 30; ++i) want.push_back(i);
  EXPECT_EQ(gone, want);

  // A budget past the capacity visits each record once: 30..63, then wraps
  // to 0..29 where only 10..19 are still live.
  gone.clear();
  asked = 0;
  EXPECT_EQ(t->sweep(
                1000, [&](const Session& s) { return ++asked, index_of(*t, s) >= 30; }, record),
            34u);
  EXPECT_EQ(asked, 44u);  // the non-live records are skipped, not asked about
  EXPECT_EQ(t->live(), 10u);
  gone.clear();
  EXPECT_EQ(t->sweep(64, kAll, record), 10u);
  EXPECT_EQ(t->live(), 0u);
}

TEST(SessionTable, RekeyReplyMovesTheReplyKeyOnly) {
  auto t = make_table(64);
  ASSERT_TRUE(t);
  uint32_t a = 0, b = 0;
  ASSERT_EQ(insert(*t, 1, &a), SessionTable::Insert::kOk);
  ASSERT_EQ(insert(*t, 2, &b), SessionTable::Insert::kOk);
  const FlowKey moved = reply_key(77);
  {
    std::lock_guard lock(t->writer_mutex());
    EXPECT_TRUE(t->rekey_reply(a, moved));
    EXPECT_FALSE(t->rekey_reply(a, reply_key(2)));   // b's
    EXPECT_FALSE(t->rekey_reply(a, orig_key(1)));    // its own other side
    EXPECT_TRUE(t->rekey_reply(a, moved));           // already so
    EXPECT_FALSE(t->rekey_reply(40, reply_key(3)));  // not live
  }
  EXPECT_EQ(t->lookup(reply_key(1)), SessionTable::kMiss);
  EXPECT_EQ(t->lookup(moved), a << 1 | 1);
  EXPECT_EQ(t->lookup(orig_key(1)), a << 1);
  EXPECT_EQ(t->at(a).reply, moved);
  EXPECT_EQ(t->at(a).orig, orig_key(1));
  EXPECT_NE(t->at(a).flags & Session::kRekeyed, 0);
  EXPECT_EQ(t->at(b).flags & Session::kRekeyed, 0);
  EXPECT_EQ(t->lookup(reply_key(2)), b << 1 | 1);

  // The sweep removes the keys the record has now.
  t->sweep(
      64, [&](const Session& s) { return &s == &t->at(a); }, kNothing);
  EXPECT_EQ(t->lookup(moved), SessionTable::kMiss);
  EXPECT_EQ(t->lookup(orig_key(1)), SessionTable::kMiss);
  EXPECT_EQ(t->lookup(orig_key(2)), b << 1);
}

// The old reply key's slot in rte_hash is freed only after the grace period.
TEST(SessionTable, RekeyFreesTheOldKeySlotAfterTheGracePeriod) {
  Qsbr q(1);
  ASSERT_EQ(rte_rcu_qsbr_thread_register(q.v, 0), 0);
  rte_rcu_qsbr_thread_online(q.v, 0);
  SessionTable::Config c;
  c.name = unique_name();
  c.max_sessions = 64;
  std::string error;
  auto t = SessionTable::create(c, q.v, &error);
  ASSERT_TRUE(t) << error;
  rte_hash* h = hash_of(c.name);
  ASSERT_NE(h, nullptr);
  uint32_t a = 0;
  ASSERT_EQ(insert(*t, 1, &a), SessionTable::Insert::kOk);
  EXPECT_EQ(rte_hash_count(h), 2);
  {
    std::lock_guard lock(t->writer_mutex());
    ASSERT_TRUE(t->rekey_reply(a, reply_key(9)));
  }
  t->reclaim();
  EXPECT_EQ(rte_hash_count(h), 3);  // the old key is deleted, its slot held
  EXPECT_EQ(t->lookup(reply_key(1)), SessionTable::kMiss);
  rte_rcu_qsbr_quiescent(q.v, 0);
  t->reclaim();
  EXPECT_EQ(rte_hash_count(h), 2);
  rte_rcu_qsbr_thread_offline(q.v, 0);
  rte_rcu_qsbr_thread_unregister(q.v, 0);
}

TEST(SessionTable, ForEachVisitsLiveRecordsOnly) {
  auto t = make_table(128);
  ASSERT_TRUE(t);
  uint32_t idx = 0;
  for (uint32_t i = 0; i < 20; ++i) ASSERT_EQ(insert(*t, i, &idx), SessionTable::Insert::kOk);
  t->sweep(
      128, [](const Session& s) { return (s.orig.src & 1) != 0; }, kNothing);
  std::set<uint32_t> flows;
  t->for_each([&](uint32_t index, const Session& s) {
    EXPECT_EQ(&s, &t->at(index));
    flows.insert(s.orig.src - 0x0a000000u);
  });
  EXPECT_EQ(flows.size(), 10u);
  for (uint32_t f : flows) EXPECT_EQ(f % 2, 0u);
}

TEST(SessionTable, CreateRejectsBadConfigs) {
  std::string error;
  SessionTable::Config c;
  c.name = "a-name-that-is-far-too-long-for-dpdk";
  EXPECT_EQ(SessionTable::create(c, nullptr, &error), nullptr);
  EXPECT_NE(error.find("name"), std::string::npos) << error;
  c.name = unique_name();
  c.max_sessions = 0;
  EXPECT_EQ(SessionTable::create(c, nullptr, &error), nullptr);
  EXPECT_NE(error.find("max_sessions"), std::string::npos) << error;
  c.max_sessions = 16;
  auto first = SessionTable::create(c, nullptr, &error);
  ASSERT_TRUE(first) << error;
  EXPECT_EQ(SessionTable::create(c, nullptr, &error), nullptr);
  EXPECT_NE(error.find("taken"), std::string::npos) << error;
  first.reset();
  EXPECT_TRUE(SessionTable::create(c, nullptr, &error)) << error;  // and free again
}

// rte_hash's per-lcore slot caches: a thread without an lcore id is refused
// instead of writing out of bounds.
TEST(SessionTable, RefusesRekeyAndReclaimFromThreadsWithoutLcoreId) {
  auto t = make_table(64);
  ASSERT_TRUE(t);
  uint32_t a = 0;
  ASSERT_EQ(insert(*t, 1, &a), SessionTable::Insert::kOk);
  bool rekeyed = true;
  std::thread([&] {
    t->reclaim();
    std::lock_guard lock(t->writer_mutex());
    rekeyed = t->rekey_reply(a, reply_key(5));
  }).join();
  EXPECT_FALSE(rekeyed);
  EXPECT_EQ(t->lookup(reply_key(1)), a << 1 | 1);
}

// A worker on lcore 1 makes and looks up sessions while this thread (the
// main lcore) sweeps at random and reclaims. Afterwards every index is
// accounted for: all of them can be handed out once more, none twice.
struct Race {
  SessionTable* t = nullptr;
  rte_rcu_qsbr* v = nullptr;
  uint32_t flows = 0;
  uint32_t iterations = 0;
  std::atomic<bool> done{false};
  uint64_t made = 0, exists = 0, full = 0, errors = 0;
};

int race_worker(void* arg) {
  auto& r = *static_cast<Race*>(arg);
  SessionTable& t = *r.t;
  rte_rcu_qsbr_thread_register(r.v, 1);
  rte_rcu_qsbr_thread_online(r.v, 1);
  std::mt19937 rng(7);
  std::vector<FlowKey> keys(64);
  std::vector<const FlowKey*> ptrs;
  for (auto& k : keys) ptrs.push_back(&k);
  uint32_t out[64];
  for (uint32_t it = 0; it < r.iterations; ++it) {
    const uint32_t f = rng() % r.flows;
    uint32_t idx = 0;
    auto res = t.insert(
        0, orig_key(f), reply_key(f), [&](Session& s) { s.rule = f; }, &idx);
    if (res == SessionTable::Insert::kOk) {
      ++r.made;
      // Not quiescent since the insert: the record cannot have been reused,
      // though it may have been swept already.
      uint32_t o = t.lookup(orig_key(f)), p = t.lookup(reply_key(f));
      if ((o != idx << 1 && o != SessionTable::kMiss) ||
          (p != (idx << 1 | 1) && p != SessionTable::kMiss) || t.at(idx).rule != f)
        ++r.errors;
    } else if (res == SessionTable::Insert::kExists) {
      ++r.exists;
    } else {
      ++r.full;
    }
    if (it % 16 == 0) {
      for (auto& k : keys) {
        uint32_t g = rng() % r.flows;
        k = rng() & 1 ? orig_key(g) : reply_key(g);
      }
      t.lookup_bulk(ptrs.data(), 64, out);
      for (int i = 0; i < 64; ++i) {
        if (out[i] == SessionTable::kMiss) continue;
        const Session& s = t.at(out[i] >> 1);
        if (!((out[i] & 1) != 0 ? s.reply == keys[i] : s.orig == keys[i])) ++r.errors;
      }
    }
    if (it % 8 == 0) rte_rcu_qsbr_quiescent(r.v, 1);
  }
  rte_rcu_qsbr_thread_offline(r.v, 1);
  rte_rcu_qsbr_thread_unregister(r.v, 1);
  r.done = true;
  return 0;
}

TEST(SessionTable, WorkerAndSweeperRaceWithoutLosingIndices) {
  ASSERT_GE(rte_lcore_count(), 2u) << "the EAL runs with -l 0-1";
  const unsigned worker_lcore = rte_get_next_lcore(rte_get_main_lcore(), 1, 0);
  ASSERT_LT(worker_lcore, RTE_MAX_LCORE);
  Qsbr q(2);
  SessionTable::Config c;
  c.name = unique_name();
  c.max_sessions = 4096;
  c.max_workers = 1;
  std::string error;
  auto t = SessionTable::create(c, q.v, &error);
  ASSERT_TRUE(t) << error;

  Race r;
  r.t = t.get();
  r.v = q.v;
  r.flows = 3 * 4096;  // some kExists, some kFull
  r.iterations = 400000;
  ASSERT_EQ(rte_eal_remote_launch(race_worker, &r, worker_lcore), 0);
  std::mt19937 rng(11);
  uint64_t expired = 0, sweeps = 0;
  uint32_t inconsistent = 0;
  while (!r.done.load()) {
    expired += t->sweep(
        4096, [&](const Session&) { return rng() % 2 == 0; },
        [&](const Session& s) {
          if (s.orig != orig_key(s.rule) || s.reply != reply_key(s.rule)) ++inconsistent;
        });
    t->reclaim();
    ++sweeps;
  }
  rte_eal_wait_lcore(worker_lcore);
  std::printf("[          ] race: %lu made, %lu exists, %lu full, %lu expired in %lu sweeps\n",
              static_cast<unsigned long>(r.made), static_cast<unsigned long>(r.exists),
              static_cast<unsigned long>(r.full), static_cast<unsigned long>(expired),
              static_cast<unsigned long>(sweeps));
  EXPECT_EQ(r.errors, 0u);
  EXPECT_EQ(inconsistent, 0u);
  EXPECT_GT(r.made, 10000u);
  EXPECT_GT(r.exists, 0u);

  expired += t->sweep(4096, kAll, kNothing);
  t->reclaim();  // no reader is online: every grace period is over
  EXPECT_EQ(t->live(), 0u);
  EXPECT_EQ(expired, r.made);
  EXPECT_EQ(rte_hash_count(hash_of(c.name)), 0);  // every key slot came back
  fill_completely(*t, 0);
}

// Reports the memory a table of 2^20 sessions takes under --no-huge.
TEST(SessionTable, MillionSessionTableFitsAndItsFootprint) {
  rte_malloc_socket_stats before{}, after{};
  int socket = static_cast<int>(rte_socket_id());
  if (socket < 0) socket = 0;
  rte_malloc_get_socket_stats(socket, &before);
  auto t = make_table(1u << 20, nullptr, 17);
  ASSERT_TRUE(t);
  rte_malloc_get_socket_stats(socket, &after);
  const double per =
      static_cast<double>(after.heap_allocsz_bytes - before.heap_allocsz_bytes) / (1u << 20);
  std::printf("[          ] 2^20 sessions: %.1f MiB, %.1f bytes per session\n",
              per * (1u << 20) / (1 << 20), per);
  // A 128-byte record (the firewall's TCP windows take its second line),
  // two keys of rte_hash's, the free-index ring and the liveness flags.
  EXPECT_LT(per, 288.0);
  uint32_t idx = 0;
  EXPECT_EQ(insert(*t, 1, &idx), SessionTable::Insert::kOk);
}

// The fullest the cuckoo table gets at scale: 838860 sessions make 2097150
// entries, so 1677720 keys in 2^21 slots (80%), reached without
// extendable buckets.
TEST(SessionTable, CapacityAtScaleWithoutExtendableBuckets) {
  auto t = make_table(838860);
  ASSERT_TRUE(t);
  fill_completely(*t, 0);
}

// --- TCP tracking ---

struct Seg {
  bool from_orig;
  uint8_t flags;
  TcpState want;
};

void walk(std::initializer_list<Seg> segs, TcpState from = TcpState::kNone) {
  TcpState s = from;
  int n = 0;
  for (const Seg& g : segs) {
    s = tcp_next(s, g.from_orig, g.flags);
    EXPECT_EQ(tcp_state_name(s), std::string(tcp_state_name(g.want))) << "segment " << n;
    ++n;
  }
}

constexpr bool O = true, R = false;

TEST(TcpTracker, OpenAndCloseFromTheOriginalSide) {
  walk({{O, kSyn, TcpState::kSynSent},
        {R, kSyn | kAck, TcpState::kSynReceived},
        {O, kAck, TcpState::kEstablished},
        {O, kAck | kPsh, TcpState::kEstablished},
        {R, kAck, TcpState::kEstablished},
        {O, kFin | kAck, TcpState::kFinWait},
        {R, kAck, TcpState::kFinWait},
        {O, kAck, TcpState::kFinWait},
        {R, kFin | kAck, TcpState::kClosing},
        {O, kAck, TcpState::kClosing}});
}

TEST(TcpTracker, CloseFromTheReplySide) {
  walk({{R, kFin | kAck, TcpState::kFinWaitReply},
        {R, kFin | kAck, TcpState::kFinWaitReply},  // retransmitted
        {O, kAck, TcpState::kFinWaitReply},
        {O, kFin | kAck, TcpState::kClosing}},
       TcpState::kEstablished);
}

TEST(TcpTracker, RetransmittedSynsKeepTheHandshakeWhereItIs) {
  walk({{O, kSyn, TcpState::kSynSent},
        {O, kSyn, TcpState::kSynSent},
        {R, kAck, TcpState::kSynSent},
        {R, kSyn | kAck, TcpState::kSynReceived},
        {O, kSyn, TcpState::kSynReceived},
        {R, kSyn | kAck, TcpState::kSynReceived},
        {O, kAck, TcpState::kEstablished}});
}

TEST(TcpTracker, SimultaneousOpen) {
  walk({{O, kSyn, TcpState::kSynSent},
        {R, kSyn, TcpState::kSynReceived},
        {O, kSyn | kAck, TcpState::kEstablished},
        {R, kSyn | kAck, TcpState::kEstablished}});
}

TEST(TcpTracker, FinWithTheHandshakeAck) {
  walk({{O, kFin | kAck, TcpState::kFinWait}}, TcpState::kSynReceived);
}

TEST(TcpTracker, RstClosesFromEveryState) {
  for (auto s :
       {TcpState::kNone, TcpState::kSynSent, TcpState::kSynReceived, TcpState::kEstablished,
        TcpState::kFinWait, TcpState::kFinWaitReply, TcpState::kClosing, TcpState::kClosed}) {
    EXPECT_EQ(tcp_next(s, true, kRst), TcpState::kClosed) << tcp_state_name(s);
    EXPECT_EQ(tcp_next(s, false, kRst | kAck), TcpState::kClosed) << tcp_state_name(s);
  }
}

TEST(TcpTracker, AfterRstTrafficRevivesAndSynRestarts) {
  // RFC 6146 §3.5.2.2: a RST that did not end the connection.
  walk({{R, kRst, TcpState::kClosed}, {O, kAck, TcpState::kEstablished}}, TcpState::kEstablished);
  // Connection refused, then the port reused.
  walk({{O, kSyn, TcpState::kSynSent},
        {R, kRst | kAck, TcpState::kClosed},
        {R, kSyn | kAck, TcpState::kClosed},
        {O, kSyn, TcpState::kSynSent}});
}

TEST(TcpTracker, SynAfterCloseStartsOver) {
  walk({{R, kSyn, TcpState::kClosing},
        {O, kSyn | kAck, TcpState::kClosing},
        {O, kSyn, TcpState::kSynSent},
        {R, kSyn | kAck, TcpState::kSynReceived}},
       TcpState::kClosing);
}

TEST(TcpTracker, MidStreamPickup) {
  walk({{O, kAck, TcpState::kNone}, {R, kAck, TcpState::kEstablished}});
  walk({{R, kSyn | kAck, TcpState::kNone}});
}

TEST(TcpTracker, NamesAreDistinct) {
  std::set<std::string> names;
  for (int i = 0; i <= static_cast<int>(TcpState::kFinWaitReply); ++i)
    names.insert(tcp_state_name(static_cast<TcpState>(i)));
  EXPECT_EQ(names.size(), 8u);
  EXPECT_EQ(std::string(tcp_state_name(TcpState::kEstablished)), "established");
}

TEST(Timeouts, PerProtocolAndState) {
  Timeouts t;
  t.tcp_closed_s = 30;  // distinct from transitory to tell them apart
  EXPECT_EQ(idle_timeout(kTcp, TcpState::kEstablished, t), 7440u);
  for (auto s : {TcpState::kNone, TcpState::kSynSent, TcpState::kSynReceived, TcpState::kFinWait,
                 TcpState::kFinWaitReply, TcpState::kClosing})
    EXPECT_EQ(idle_timeout(kTcp, s, t), 240u) << tcp_state_name(s);
  EXPECT_EQ(idle_timeout(kTcp, TcpState::kClosed, t), 30u);
  EXPECT_EQ(idle_timeout(kUdp, TcpState::kNone, t), 300u);
  EXPECT_EQ(idle_timeout(kIcmp, TcpState::kNone, t), 60u);
  EXPECT_EQ(idle_timeout(47, TcpState::kNone, t), 60u);  // GRE
  Timeouts d;
  EXPECT_GE(d.tcp_established_s, 2 * 3600u + 4 * 60u);  // RFC 5382 REQ-5
  EXPECT_GE(d.tcp_transitory_s, 4 * 60u);
  EXPECT_GE(d.udp_s, 2 * 60u);  // RFC 4787 REQ-5
  EXPECT_GE(d.icmp_s, 60u);     // RFC 5508 REQ-1
}

}  // namespace
}  // namespace tether::nat
