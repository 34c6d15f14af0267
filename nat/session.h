// The session table shared by NAT and the firewall (design idea 7): every
// session is one 128-byte record found under two keys, its original and its
// reply direction (nat/flow.h), in one rte_hash. The first cache line holds
// what every packet of the session reads; the second what only TCP segments
// (the firewall's window state) and the sweeper read.
//
// Concurrency (docs/decisions/006-nat.md):
// - Workers look up in bulk without locks (RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF).
// - Workers create sessions: a record index from a lock-free ring of free
//   indices (cached per worker), then both keys (MULTI_WRITER_ADD: rte_hash
//   serialises writers for the few instructions of a bucket update).
// - Expiry is incremental: the service thread sweeps a slice of the records
//   per call, deletes the keys of expired ones, and gives their index back
//   only after every worker has passed a quiescent state (rte_rcu_qsbr), so a
//   worker that found the record a moment ago never reads a reused one.
//   Nothing ever stops the workers.
// - Other non-worker writers (rekey by the API thread) and the sweeper share
//   `writer_mutex()`; workers never take it.
// - rte_hash keeps per-lcore caches of free key slots that it indexes with
//   rte_lcore_id(): insert(), rekey_reply() and reclaim() must run on an EAL
//   lcore or a thread registered with rte_thread_register() (checked).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "nat/flow.h"

struct rte_hash;
struct rte_ring;
struct rte_rcu_qsbr;

namespace tether::nat {

// TCP connection state as a NAT tracks it (RFC 5382 §5, RFC 7857 §2.2):
// only the transitions that change a timeout.
enum class TcpState : uint8_t {
  kNone = 0,      // not TCP
  kSynSent,       // SYN seen from the original side
  kSynReceived,   // SYN-ACK seen from the reply side
  kEstablished,   // the handshake completed (a SYN from each side, then data or ACK)
  kFinWait,       // a FIN from the original side
  kClosing,       // FINs from both sides
  kClosed,        // RST seen (transitory: traffic other than a SYN revives the connection)
  kFinWaitReply,  // a FIN from the reply side
};
const char* tcp_state_name(TcpState s);
// The next state after a segment with `flags` from the original side
// (from_orig) or the reply side. Pure.
TcpState tcp_next(TcpState s, bool from_orig, uint8_t flags);

struct Timeouts {
  uint32_t tcp_established_s = 7440;  // RFC 5382 REQ-5: at least 2 h 4 min
  uint32_t tcp_transitory_s = 240;    // RFC 5382 REQ-5: 4 min (partial open, closing)
  uint32_t tcp_closed_s = 240;        // after a RST (RFC 7857 §2.2: transitory timeout)
  uint32_t udp_s = 300;               // RFC 4787 REQ-5: at least 2 min, 5 min recommended
  uint32_t icmp_s = 60;               // RFC 5508 REQ-1: at least 60 s
};
// Idle seconds after which a session in `s` (proto `proto`) expires.
uint32_t idle_timeout(uint8_t proto, TcpState s, const Timeouts& t);

struct alignas(64) Session {
  static constexpr uint32_t kNoMapping = UINT32_MAX;
  static constexpr uint32_t kNoPool = UINT32_MAX;

  // --- first cache line: read by every packet ---
  FlowKey orig;                          // the first packet's key, as it arrived
  FlowKey reply;                         // the replies' key, as they arrive
  uint32_t mapping = kNoMapping;         // static mapping that made it (counters, liveness)
  uint32_t mapping_tag = 0;              // that mapping's tag when the session was made
  std::atomic<uint32_t> last_seen_s{0};  // session clock (seconds), stored by workers
  uint32_t rule = 0;                     // firewall: the stable id of the rule that accepted it
  std::atomic<uint32_t> rule_tag{0};     // firewall: the policy tag that verdict was made under
  uint16_t from_zone = 0;                // firewall: the zones it was classified between
  uint16_t to_zone = 0;
  std::atomic<uint8_t> tcp{0};  // TcpState
  uint8_t flags = 0;            // kDynamic...
  std::atomic<uint8_t> fw{0};   // firewall flags: kFwTrack...
  uint8_t pad0 = 0;
  uint32_t pool = kNoPool;  // PortPools id the reply side's port came from

  // --- second cache line: TCP segments and the sweeper ---
  // The firewall's TCP window state (firewall/tcp_track.h's TcpWindow, made
  // there with placement new): opaque to the session table.
  alignas(8) unsigned char tcp_window[32] = {};
  std::atomic<uint32_t> created_s{0};
  uint16_t pool_port = 0;  // the port claimed from `pool`

  static constexpr uint8_t kDynamic = 1;  // made by a source-NAT rule, not a mapping
  static constexpr uint8_t kRekeyed = 2;  // its reply key was rewritten (a workload moved)
  // Source-NAT bindings (endpoint-independent mapping, RFC 4787 REQ-1): a
  // kBinding record holds an inside endpoint's public port in pool/pool_port;
  // a kBound session uses that port and names its binding's index in
  // mapping_tag (it has no mapping), so it gives back a reference, not a port.
  static constexpr uint8_t kBinding = 4;
  static constexpr uint8_t kBound = 8;
  static constexpr uint8_t kTranslated = 16;  // NAT rewrites its packets (else it only filters)

  // Firewall flags (`fw`).
  static constexpr uint8_t kFwTrack =
      1;  // TCP window tracking on (both directions pass the pipeline)
  static constexpr uint8_t kFwRevoked =
      2;  // a policy change refused it: dropped, ended by the sweeper
};
static_assert(sizeof(Session) == 128);
static_assert(offsetof(Session, tcp_window) == 64);

class SessionTable {
 public:
  static constexpr uint32_t kMiss = UINT32_MAX;

  struct Config {
    std::string name = "sessions";  // rte_hash names must be unique in the process
    uint32_t max_sessions = 1u << 20;
    unsigned max_workers = 17;  // per-worker index caches (worker index < this)
    int socket = -1;            // SOCKET_ID_ANY
  };
  // nullptr and a message when DPDK memory runs out or the config is invalid.
  static std::unique_ptr<SessionTable> create(const Config& c, rte_rcu_qsbr* qsbr,
                                              std::string* error);
  ~SessionTable();

  // --- workers ---
  // Looks up n keys (n <= 64); out[i] is index << 1 | side (0: orig matched,
  // 1: reply matched), or kMiss.
  void lookup_bulk(const FlowKey** keys, uint32_t n, uint32_t* out) const;
  uint32_t lookup(const FlowKey& k) const;  // same encoding
  Session& at(uint32_t index) { return sessions_[index]; }
  const Session& at(uint32_t index) const { return sessions_[index]; }

  enum class Insert : uint8_t { kOk, kFull, kExists };
  // Makes a session with both keys; `fill` sets the record's other fields
  // before the keys are published. kFull: no free record (counted by the
  // caller); kExists: a key is already in the table (another worker made
  // the same flow a moment ago). Worker `worker` only (its index cache).
  Insert insert(unsigned worker, const FlowKey& orig, const FlowKey& reply,
                const std::function<void(Session&)>& fill, uint32_t* index);

  // --- service thread ---
  // Visits up to `budget` records from where the last call stopped; a live
  // record for which expired(s) is true loses its keys, `on_expire` runs
  // (release ports, count) and its index is freed after a grace period.
  // Returns how many expired. Takes writer_mutex().
  uint32_t sweep(uint32_t budget, const std::function<bool(const Session&)>& expired,
                 const std::function<void(const Session&)>& on_expire);
  // Gives back the indices whose grace period has passed. Cheap; call often.
  void reclaim();

  // --- API thread (under writer_mutex()) ---
  // Replaces a live session's reply key: the new key is added first, the
  // record switched, the old key removed (make before break: a worker sees
  // the old key or the new one, never neither). false if the new key is taken
  // (or the record is not live). The caller holds writer_mutex().
  bool rekey_reply(uint32_t index, const FlowKey& reply);
  std::mutex& writer_mutex() { return *writer_mu_; }

  // Visits every live record (API thread, for listing; racy but safe reads:
  // takes no lock, so a record may be swept or reused while it is visited).
  void for_each(const std::function<void(uint32_t index, const Session&)>& f) const;

  uint32_t capacity() const { return max_; }
  uint32_t live() const { return live_.load(std::memory_order_relaxed); }

 private:
  SessionTable() = default;
  // session.cc: the rte_hash, the free-index ring and per-worker caches, the
  // deferred-free queue with RCU tokens, the sweep cursor, the liveness flags.
  struct Impl;
  std::unique_ptr<Impl> impl_;
  Session* sessions_ = nullptr;
  uint32_t max_ = 0;
  std::atomic<uint32_t> live_{0};
  std::unique_ptr<std::mutex> writer_mu_;
};

}  // namespace tether::nat
