// The session table (nat/session.h): one rte_hash (lock-free readers,
// multi-writer add) maps both keys of a session to index << 1 | side; records
// live in one array; free indices in an rte_ring that each worker reaches
// through a small private cache; deleted keys and indices come back only
// after an rte_rcu_qsbr grace period.
//
// Threads and rte_hash's per-lcore caches: with MULTI_WRITER_ADD, rte_hash
// keeps a cache of free key slots per lcore and indexes it with
// rte_lcore_id() without a check (lib/hash/rte_cuckoo_hash.c, alloc_slot()
// and free_slot()), so adding a key or freeing a key position from a thread
// without an lcore id (LCORE_ID_ANY) writes out of bounds. insert() (workers),
// rekey_reply() and reclaim() (and sweep() without RCU, which reclaims at
// once) therefore run on EAL lcores or on threads registered with
// rte_thread_register(); the table checks and refuses otherwise. Lookups and
// deletes do not touch the caches (in RW_CONCURRENCY_LF mode a delete leaves
// the key slot for rte_hash_free_key_with_position()).
#include "nat/session.h"

#include <rte_debug.h>
#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <new>

#include "nat/translate.h"  // TCP flag bits

namespace tether::nat {
namespace {

int g_logtype = RTE_LOGTYPE_EAL;
RTE_INIT(register_session_logtype) {
  int t = rte_log_register_type_and_pick_level("tether.nat", RTE_LOG_INFO);
  if (t >= 0) g_logtype = t;
}

constexpr uint32_t kNoIndex = UINT32_MAX;
constexpr uint32_t kCacheSize = 32;  // free indices a worker keeps to itself
constexpr uint32_t kOrphanSlots = 1024;
// rte_hash names its free-slot ring "HT_<name>" and rings hold 29 characters.
constexpr size_t kMaxName = 26;
// index << 1 | 1 must stay below kMiss; rte_hash takes at most 2^30 entries.
constexpr uint32_t kMaxSessions = 1u << 28;

uint32_t value_of(uint32_t index, uint32_t side) { return index << 1 | side; }
void* as_data(uint32_t v) { return reinterpret_cast<void*>(static_cast<uintptr_t>(v)); }
uint32_t from_data(void* d) { return static_cast<uint32_t>(reinterpret_cast<uintptr_t>(d)); }

// A record's reply key is read by workers while rekey_reply() replaces it:
// two 8-byte atomic stores, so a reader sees each half old or new, never a
// half-written word (a reader may mix old addresses with new ports for the
// moment between the two stores).
void store_key(FlowKey* dst, const FlowKey& k) {
  using Word = uint64_t __attribute__((may_alias));
  Word w[2];
  std::memcpy(w, &k, sizeof(w));
  auto* d = reinterpret_cast<Word*>(dst);
  __atomic_store_n(&d[0], w[0], __ATOMIC_RELAXED);
  __atomic_store_n(&d[1], w[1], __ATOMIC_RELAXED);
}

bool has_lcore_id(const char* what) {
  if (rte_lcore_id() != LCORE_ID_ANY) return true;
  static std::atomic<bool> said{false};
  if (!said.exchange(true))
    rte_log(RTE_LOG_ERR, g_logtype,
            "tether: session table: %s from a thread without an lcore id; run it on an EAL "
            "lcore or call rte_thread_register() first (refused)\n",
            what);
  return false;
}

struct alignas(RTE_CACHE_LINE_SIZE) WorkerCache {
  uint32_t n;
  uint32_t idx[kCacheSize];
};

// A worker's insert that failed after its first key went in (rte_hash full):
// the record index and that key's position, freed after a grace period.
struct Orphan {
  uint32_t index;
  int32_t pos;
};

// Key positions (-1: none) and a record index (kNoIndex: none) that readers
// may still hold until every worker passes `token`.
struct Deferred {
  uint64_t token;
  uint32_t index;
  int32_t pos[2];
};

}  // namespace

struct SessionTable::Impl {
  rte_hash* hash = nullptr;
  rte_ring* free_ring = nullptr;  // free record indices, MP/MC
  rte_ring* orphans = nullptr;    // workers' failed inserts, MP/SC (reclaim())
  rte_rcu_qsbr* qsbr = nullptr;
  uint8_t* in_use = nullptr;  // 1 from the moment both keys are in until the sweep takes them
  WorkerCache* caches = nullptr;
  unsigned workers = 0;
  uint32_t max = 0;

  uint32_t cursor = 0;            // sweep(), under writer_mutex()
  std::vector<Deferred> batch;    // sweep()'s scratch, under writer_mutex()
  std::mutex defer_mu;            // after writer_mutex() when both are held
  std::deque<Deferred> deferred;  // under defer_mu, oldest first

  bool live(uint32_t i) const {
    return std::atomic_ref<uint8_t>(in_use[i]).load(std::memory_order_acquire) != 0;
  }
  void set_live(uint32_t i, bool v) {
    std::atomic_ref<uint8_t>(in_use[i]).store(v ? 1 : 0, std::memory_order_release);
  }

  uint32_t take_index(unsigned w) {
    WorkerCache& c = caches[w];
    if (c.n == 0) {
      uint32_t got[kCacheSize];
      unsigned n =
          rte_ring_dequeue_burst_elem(free_ring, got, sizeof(uint32_t), kCacheSize, nullptr);
      if (n == 0) return kNoIndex;
      for (unsigned i = 0; i < n; ++i) c.idx[i] = got[n - 1 - i];  // handed out in ring order
      c.n = n;
    }
    return c.idx[--c.n];
  }

  void give_back(unsigned w, uint32_t index) {
    WorkerCache& c = caches[w];
    if (c.n < kCacheSize) {
      c.idx[c.n++] = index;
      return;
    }
    // Never full: the ring has room for every index.
    rte_ring_enqueue_elem(free_ring, &index, sizeof(index));
  }

  // Deletes `k` if it still maps to `expect` and returns its position (or
  // -1). A key that maps elsewhere belongs to another record: two workers
  // that made the same flow at once (see insert()) overwrote each other.
  int32_t erase_key(const FlowKey& k, uint32_t expect) {
    void* data = nullptr;
    if (rte_hash_lookup_data(hash, &k, &data) < 0 || from_data(data) != expect) return -1;
    return rte_hash_del_key(hash, &k);
  }

  // After the keys in `d` were deleted: the grace period starts now.
  void defer(Deferred* d, size_t n) {
    if (n == 0) return;
    uint64_t token = qsbr != nullptr ? rte_rcu_qsbr_start(qsbr) : 0;
    std::lock_guard lock(defer_mu);
    for (size_t i = 0; i < n; ++i) {
      d[i].token = token;
      deferred.push_back(d[i]);
    }
  }

  // Under defer_mu, on a thread with an lcore id.
  void reclaim_locked() {
    Orphan o[32];
    unsigned n;
    while ((n = rte_ring_sc_dequeue_burst_elem(orphans, o, sizeof(Orphan), 32, nullptr)) > 0) {
      uint64_t token = qsbr != nullptr ? rte_rcu_qsbr_start(qsbr) : 0;
      for (unsigned i = 0; i < n; ++i) deferred.push_back({token, o[i].index, {o[i].pos, -1}});
    }
    uint32_t freed[64];
    unsigned nfreed = 0;
    while (!deferred.empty()) {
      const Deferred& d = deferred.front();
      if (qsbr != nullptr && rte_rcu_qsbr_check(qsbr, d.token, false) != 1) break;
      for (int32_t pos : d.pos)
        if (pos >= 0) rte_hash_free_key_with_position(hash, pos);
      if (d.index != kNoIndex) {
        freed[nfreed++] = d.index;
        if (nfreed == std::size(freed)) {
          rte_ring_enqueue_bulk_elem(free_ring, freed, sizeof(uint32_t), nfreed, nullptr);
          nfreed = 0;
        }
      }
      deferred.pop_front();
    }
    if (nfreed > 0) rte_ring_enqueue_bulk_elem(free_ring, freed, sizeof(uint32_t), nfreed, nullptr);
  }
};

std::unique_ptr<SessionTable> SessionTable::create(const Config& c, rte_rcu_qsbr* qsbr,
                                                   std::string* error) {
  auto fail = [&](const std::string& why) -> std::unique_ptr<SessionTable> {
    if (error != nullptr) *error = "session table \"" + c.name + "\": " + why;
    return nullptr;
  };
  if (c.name.empty() || c.name.size() > kMaxName)
    return fail("name must have 1 to " + std::to_string(kMaxName) + " characters");
  if (c.max_sessions == 0 || c.max_sessions > kMaxSessions)
    return fail("max_sessions must be 1 to " + std::to_string(kMaxSessions));
  if (c.max_workers == 0) return fail("max_workers must be at least 1");
  if (rte_hash_find_existing(c.name.c_str()) != nullptr)
    return fail("the name is taken by another table in this process");

  std::unique_ptr<SessionTable> t(new SessionTable());
  t->impl_ = std::make_unique<Impl>();
  t->writer_mu_ = std::make_unique<std::mutex>();
  t->max_ = c.max_sessions;
  Impl& m = *t->impl_;
  m.max = c.max_sessions;
  m.qsbr = qsbr;
  m.workers = c.max_workers;
  const int socket = c.socket < 0 ? SOCKET_ID_ANY : c.socket;
  auto no_memory = [&](const char* what, size_t bytes) {
    return fail(std::string("no DPDK memory for ") + what + " (" + std::to_string(bytes >> 20) +
                " MiB)");
  };

  size_t bytes = size_t{m.max} * sizeof(Session);
  void* mem = rte_zmalloc_socket("tether_sessions", bytes, RTE_CACHE_LINE_SIZE, socket);
  if (mem == nullptr) return no_memory("the session records", bytes);
  t->sessions_ = static_cast<Session*>(mem);
  for (uint32_t i = 0; i < m.max; ++i) new (&t->sessions_[i]) Session();

  m.in_use = static_cast<uint8_t*>(rte_zmalloc_socket("tether_sessions_live", m.max, 0, socket));
  if (m.in_use == nullptr) return no_memory("the liveness flags", m.max);
  bytes = sizeof(WorkerCache) * m.workers;
  m.caches = static_cast<WorkerCache*>(
      rte_zmalloc_socket("tether_sessions_caches", bytes, RTE_CACHE_LINE_SIZE, socket));
  if (m.caches == nullptr) return no_memory("the worker caches", bytes);

  std::string ring = "SF_" + c.name;
  m.free_ring =
      rte_ring_create_elem(ring.c_str(), sizeof(uint32_t), m.max, socket, RING_F_EXACT_SZ);
  if (m.free_ring == nullptr)
    return fail("free-index ring: " + std::string(rte_strerror(rte_errno)));
  uint32_t chunk[256];
  for (uint32_t i = 0; i < m.max;) {
    uint32_t n = std::min<uint32_t>(std::size(chunk), m.max - i);
    for (uint32_t j = 0; j < n; ++j) chunk[j] = i + j;
    rte_ring_enqueue_bulk_elem(m.free_ring, chunk, sizeof(uint32_t), n, nullptr);
    i += n;
  }
  ring = "SO_" + c.name;
  m.orphans = rte_ring_create_elem(ring.c_str(), sizeof(Orphan), kOrphanSlots, socket,
                                   RING_F_SC_DEQ | RING_F_EXACT_SZ);
  if (m.orphans == nullptr) return fail("orphan ring: " + std::string(rte_strerror(rte_errno)));

  // Two keys per session and a quarter more: the cuckoo table (sized to the
  // next power of two of `entries`) is then at most 80% full, which it
  // reaches without extendable buckets (tests: Capacity*), and the key slots
  // left over absorb keys deleted but not yet freed (rekeys, grace periods).
  rte_hash_parameters hp{};
  hp.name = c.name.c_str();
  hp.entries = std::max<uint32_t>(64, static_cast<uint32_t>((uint64_t{m.max} * 5 + 1) / 2));
  hp.key_len = sizeof(FlowKey);
  // CRC32-C (two SSE4.2 crc32q for 16 bytes): ~3-5 ns a key here against
  // ~12 ns for rte_jhash; a hand-unrolled version measured the same.
  hp.hash_func = rte_hash_crc;
  hp.hash_func_init_val = 0;
  hp.socket_id = socket;
  hp.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF | RTE_HASH_EXTRA_FLAGS_MULTI_WRITER_ADD;
  m.hash = rte_hash_create(&hp);
  if (m.hash == nullptr) return fail("rte_hash: " + std::string(rte_strerror(rte_errno)));
  m.batch.reserve(256);
  return t;
}

SessionTable::~SessionTable() {
  if (impl_) {
    rte_hash_free(impl_->hash);
    rte_ring_free(impl_->free_ring);
    rte_ring_free(impl_->orphans);
    rte_free(impl_->in_use);
    rte_free(impl_->caches);
  }
  rte_free(sessions_);
}

void SessionTable::lookup_bulk(const FlowKey** keys, uint32_t n, uint32_t* out) const {
  if (n == 0) return;
  uint64_t hits = 0;
  void* data[RTE_HASH_LOOKUP_BULK_MAX];
  rte_hash_lookup_bulk_data(impl_->hash, reinterpret_cast<const void**>(keys), n, &hits, data);
  for (uint32_t i = 0; i < n; ++i) out[i] = (hits >> i & 1) != 0 ? from_data(data[i]) : kMiss;
}

uint32_t SessionTable::lookup(const FlowKey& k) const {
  void* data = nullptr;
  return rte_hash_lookup_data(impl_->hash, &k, &data) >= 0 ? from_data(data) : kMiss;
}

// Races: the pre-check and the adds are not one step. Two workers making the
// same flow at the same moment both pass the check and rte_hash_add (which
// overwrites) leaves the key to the later one; the earlier record keeps a
// key that maps elsewhere and the sweeper leaves such a key alone
// (erase_key). With RSS hashing a flow to one worker (both keys' packets
// arrive at the worker that owns the flow, or the reply key is a fresh port
// from a pool) this does not happen.
SessionTable::Insert SessionTable::insert(unsigned worker, const FlowKey& orig,
                                          const FlowKey& reply,
                                          const std::function<void(Session&)>& fill,
                                          uint32_t* index) {
  Impl& m = *impl_;
  // A worker index out of range or a thread without an lcore id (rte_hash's
  // per-lcore cache) is a wiring bug: stop at the first session it makes.
  RTE_VERIFY(worker < m.workers && rte_lcore_id() != LCORE_ID_ANY);
  if (orig == reply) return Insert::kExists;  // one key cannot name both sides
  if (rte_hash_lookup(m.hash, &orig) >= 0 || rte_hash_lookup(m.hash, &reply) >= 0)
    return Insert::kExists;
  const uint32_t idx = m.take_index(worker);
  if (idx == kNoIndex) return Insert::kFull;

  // Nobody reads the record: its index came back after a grace period and
  // neither key points to it yet.
  Session& s = sessions_[idx];
  new (&s) Session();
  s.orig = orig;
  s.reply = reply;
  if (fill) fill(s);

  // rte_hash publishes the record with each key (release on the key slot).
  if (rte_hash_add_key_data(m.hash, &reply, as_data(value_of(idx, 1))) < 0) {
    m.give_back(worker, idx);
    return Insert::kFull;
  }
  if (rte_hash_add_key_data(m.hash, &orig, as_data(value_of(idx, 0))) < 0) {
    // Another worker may have found the reply key already: the index and the
    // key's position wait for a grace period like a swept session's.
    Orphan o{idx, rte_hash_del_key(m.hash, &reply)};
    // Ring full (1024 failures within one reclaim): the index and the key
    // slot are lost, which the table's headroom absorbs.
    rte_ring_mp_enqueue_elem(m.orphans, &o, sizeof(o));
    return Insert::kFull;
  }
  m.set_live(idx, true);
  live_.fetch_add(1, std::memory_order_relaxed);
  if (index != nullptr) *index = idx;
  return Insert::kOk;
}

uint32_t SessionTable::sweep(uint32_t budget, const std::function<bool(const Session&)>& expired,
                             const std::function<void(const Session&)>& on_expire) {
  std::lock_guard lock(*writer_mu_);
  Impl& m = *impl_;
  m.batch.clear();
  budget = std::min(budget, max_);
  for (uint32_t i = 0; i < budget; ++i) {
    const uint32_t idx = m.cursor;
    m.cursor = idx + 1 == max_ ? 0 : idx + 1;
    if (!m.live(idx)) continue;  // free, or a worker is still adding its keys
    Session& s = sessions_[idx];
    if (!expired(s)) continue;
    m.set_live(idx, false);
    m.batch.push_back(
        {0, idx, {m.erase_key(s.reply, value_of(idx, 1)), m.erase_key(s.orig, value_of(idx, 0))}});
    if (on_expire) on_expire(s);
    live_.fetch_sub(1, std::memory_order_relaxed);
  }
  m.defer(m.batch.data(), m.batch.size());
  if (m.qsbr == nullptr) reclaim();  // no readers to wait for
  return static_cast<uint32_t>(m.batch.size());
}

void SessionTable::reclaim() {
  if (!has_lcore_id("reclaim()")) return;
  std::lock_guard lock(impl_->defer_mu);
  impl_->reclaim_locked();
}

// Make before break: from the add to the delete both keys find the record.
bool SessionTable::rekey_reply(uint32_t index, const FlowKey& reply) {
  Impl& m = *impl_;
  if (index >= max_ || !m.live(index)) return false;
  Session& s = sessions_[index];
  if (reply == s.reply) return true;
  if (!has_lcore_id("rekey_reply()")) return false;
  if (rte_hash_lookup(m.hash, &reply) >= 0) return false;
  if (rte_hash_add_key_data(m.hash, &reply, as_data(value_of(index, 1))) < 0) return false;
  const FlowKey old = s.reply;
  store_key(&s.reply, reply);
  std::atomic_ref<uint8_t>(s.flags).fetch_or(Session::kRekeyed, std::memory_order_relaxed);
  Deferred d{0, kNoIndex, {m.erase_key(old, value_of(index, 1)), -1}};
  m.defer(&d, 1);
  if (m.qsbr == nullptr) reclaim();
  return true;
}

void SessionTable::for_each(const std::function<void(uint32_t, const Session&)>& f) const {
  for (uint32_t i = 0; i < max_; ++i)
    if (impl_->live(i)) f(i, sessions_[i]);
}

// --- TCP tracking (RFC 5382 §5, RFC 7857 §2.2 which takes RFC 6146's state
// machine for NAT44) ---

const char* tcp_state_name(TcpState s) {
  switch (s) {
    case TcpState::kNone:
      return "none";
    case TcpState::kSynSent:
      return "syn-sent";
    case TcpState::kSynReceived:
      return "syn-received";
    case TcpState::kEstablished:
      return "established";
    case TcpState::kFinWait:
      return "fin-wait";
    case TcpState::kFinWaitReply:
      return "fin-wait-reply";
    case TcpState::kClosing:
      return "closing";
    case TcpState::kClosed:
      return "closed";
  }
  return "unknown";
}

TcpState tcp_next(TcpState s, bool from_orig, uint8_t flags) {
  const bool syn = (flags & kSyn) != 0, ack = (flags & kAck) != 0, fin = (flags & kFin) != 0;
  const bool bare_syn = syn && !ack;
  // RFC 7857 §2.2 (RFC 6146 §3.5.2.2): a RST leaves the session in a
  // transitory state rather than removing it, since the RST may be spoofed
  // or refused by the endpoint.
  if ((flags & kRst) != 0) return TcpState::kClosed;
  switch (s) {
    case TcpState::kNone:
      if (bare_syn && from_orig) return TcpState::kSynSent;
      // Picked up mid-stream (a session made by a non-SYN segment): traffic
      // from the reply side shows the connection is alive.
      if (!from_orig && !syn) return TcpState::kEstablished;
      return s;
    case TcpState::kSynSent:
      // SYN-ACK, or a bare SYN in a simultaneous open (RFC 9293 §3.5).
      if (!from_orig && syn) return TcpState::kSynReceived;
      return s;  // a retransmitted SYN included
    case TcpState::kSynReceived:
      if (from_orig && ack) return fin ? TcpState::kFinWait : TcpState::kEstablished;
      return s;
    case TcpState::kEstablished:
      if (fin) return from_orig ? TcpState::kFinWait : TcpState::kFinWaitReply;
      return s;
    case TcpState::kFinWait:
      return fin && !from_orig ? TcpState::kClosing : s;
    case TcpState::kFinWaitReply:
      return fin && from_orig ? TcpState::kClosing : s;
    case TcpState::kClosing:
      // The original side reuses the port for a new connection (RFC 7857
      // §2.2: a SYN after the close starts over).
      return bare_syn && from_orig ? TcpState::kSynSent : s;
    case TcpState::kClosed:
      if (bare_syn && from_orig) return TcpState::kSynSent;
      // RFC 6146 §3.5.2.2: anything but a RST after a RST means the
      // connection lives on.
      if (!syn) return TcpState::kEstablished;
      return s;
  }
  return s;
}

uint32_t idle_timeout(uint8_t proto, TcpState s, const Timeouts& t) {
  switch (proto) {
    case kTcp:
      switch (s) {
        case TcpState::kEstablished:
          return t.tcp_established_s;
        case TcpState::kClosed:
          return t.tcp_closed_s;
        default:  // partly open or partly closed (RFC 5382 REQ-5 "transitory")
          return t.tcp_transitory_s;
      }
    case kUdp:
      return t.udp_s;
    case kIcmp:
      return t.icmp_s;
    default:
      return 60;
  }
}

}  // namespace tether::nat
