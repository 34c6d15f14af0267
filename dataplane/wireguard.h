// WireGuard inside the dataplane: the runtime state of interfaces, peers and
// keypairs that lives across generations, and the worker-side encapsulation
// and decapsulation. The protocol itself (handshake, cookies, replay window,
// timers) is tunnel/; this file composes it with mbufs, RCU and lcores.
//
// Who touches what:
// - Workers read peers and keypairs lock-free: a keypair is found by its
//   receiver index in WgIndexTable (an array slot checked against the full
//   32-bit index) or through a peer's `current` pointer; they bump the
//   keypair's send counter atomically, update its replay window under a
//   per-keypair spinlock (uncontended unless two workers receive the same
//   peer), and record timestamps and the roaming endpoint in atomics.
// - The service thread runs handshakes and timers and is the only writer of
//   keypair pointers and handshake state (under WgRuntime::mutex()).
// - The API thread creates and retires interfaces and peers when a
//   generation adds or drops them (under the same mutex).
// Retired keypairs and peers are zeroed and freed only after an RCU grace
// period, so no worker can be holding them.
#pragma once

#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_spinlock.h>

#include <array>
#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/net.h"
#include "dataplane/counters.h"
#include "dataplane/tables.h"
#include "tunnel/cookie.h"
#include "tunnel/noise.h"
#include "tunnel/replay.h"
#include "tunnel/timers.h"

namespace tether::dp {

inline constexpr unsigned kMaxWorkers = 16;
inline constexpr uint32_t kNoPeer = UINT32_MAX;
// Packets held for WireGuard handshakes, over all peers (each peer holds at
// most wg::kMaxStagedPackets): bounded so that peers that never answer
// cannot pin the mbuf pool.
inline constexpr unsigned kMaxStagedTotal = 4096;

struct WgPeer;

struct WgKeypair {
  wg::Key send{};
  wg::Key receive{};
  uint32_t local_index = 0;
  uint32_t remote_index = 0;
  bool initiator = false;
  uint64_t born_ms = 0;
  WgPeer* peer = nullptr;
  alignas(64) std::atomic<uint64_t> send_counter{0};
  alignas(64) rte_spinlock_t replay_lock = RTE_SPINLOCK_INITIALIZER;
  wg::ReplayWindow replay;
  std::atomic<bool> received{false};  // a data message authenticated under it
};

// Per-peer drop reasons (also counted in the lcore's drops).
enum class WgPeerDrop : uint8_t { kReplay, kAuthFailed, kBadInnerSource, kKeysExpired, kCount };
inline constexpr std::array<const char*, 4> kWgPeerDropNames = {
    "wg_replay", "wg_auth_failed", "wg_bad_inner_source", "wg_keys_expired"};

struct alignas(64) WgPeerCounters {
  uint64_t rx_packets = 0;
  uint64_t rx_bytes = 0;
  uint64_t tx_packets = 0;
  uint64_t tx_bytes = 0;
  std::array<uint64_t, static_cast<size_t>(WgPeerDrop::kCount)> drops{};
};

struct WgInterface {
  uint16_t id = 0;
  std::string name;
  wg::Identity identity;
  std::unique_ptr<wg::CookieChecker> cookies;  // service thread only
  Ipv4 address = 0;
  uint16_t listen_port = 0;
  uint16_t port = 0;    // the data port owning `address`
  uint16_t domain = 0;  // the outer routing domain (the port's)
  uint16_t mtu = 1420;  // inner MTU
};

struct WgPeer {
  uint32_t id = kNoPeer;
  WgInterface* iface = nullptr;
  uint16_t domain = 0;  // inner routing domain
  wg::PeerKeys keys;
  bool has_psk = false;

  // Endpoint as (ip << 16 | port), host order; 0 = unknown. Workers store
  // the source of authenticated packets here (roaming).
  std::atomic<uint64_t> endpoint{0};
  std::atomic<uint32_t> persistent_keepalive_s{0};
  uint64_t configured_endpoint = 0;  // the API's last endpoint (API thread)

  std::atomic<WgKeypair*> current{nullptr};
  std::atomic<WgKeypair*> previous{nullptr};
  std::atomic<WgKeypair*> next{nullptr};  // responder's, until the initiator's first data

  // Written by workers, read by the service's timers (ms of dp clock).
  alignas(64) std::atomic<uint64_t> last_data_sent{0};
  std::atomic<uint64_t> last_data_received{0};
  std::atomic<uint64_t> last_sent{0};
  std::atomic<uint64_t> last_received{0};
  std::atomic<bool> rekey_wanted{false};

  std::array<WgPeerCounters, kMaxWorkers + 1> counters{};  // [kMaxWorkers]: service

  // --- service thread only (under WgRuntime::mutex()) ---
  std::unique_ptr<wg::CookieMaker> cookie_maker;
  std::unique_ptr<wg::PeerTimers> timers;
  wg::HandshakeState handshake;
  bool handshake_pending = false;  // an initiation of ours awaits its response
  wg::Timestamp latest_timestamp{};
  uint64_t last_initiation_consumed_ms = 0;
  uint64_t session_born_ms = 0;
  uint64_t last_handshake_wall_ms = 0;  // for "last handshake" in listings
  uint64_t handshakes = 0;
  std::deque<rte_mbuf*> staged;
  bool dead = false;

  static uint64_t pack_endpoint(Ipv4 ip, uint16_t port) { return uint64_t{ip} << 16 | port; }
  static Ipv4 endpoint_ip(uint64_t e) { return static_cast<Ipv4>(e >> 16); }
  static uint16_t endpoint_port(uint64_t e) { return static_cast<uint16_t>(e); }
};

// Receiver index → keypair (workers) or pending handshake (service). The low
// kSlotBits of an index pick the slot; the high bits are random, and a slot
// answers only to the full index it was given.
class WgIndexTable {
 public:
  static constexpr uint32_t kSlotBits = 18;
  static constexpr uint32_t kSlots = 1u << kSlotBits;
  WgIndexTable();

  WgKeypair* keypair(uint32_t index) const {
    const Slot& s = slots_[index & (kSlots - 1)];
    if (s.index.load(std::memory_order_acquire) != index) return nullptr;
    WgKeypair* kp = s.keypair.load(std::memory_order_acquire);
    return kp && kp->local_index == index ? kp : nullptr;
  }
  // --- under WgRuntime::mutex() ---
  WgPeer* peer(uint32_t index) const;
  uint32_t allocate(WgPeer* peer);  // 0 when full
  void attach(uint32_t index, WgKeypair* kp);
  void release(uint32_t index);

 private:
  struct Slot {
    std::atomic<uint32_t> index{0};
    std::atomic<WgKeypair*> keypair{nullptr};
    WgPeer* peer = nullptr;
  };
  std::unique_ptr<Slot[]> slots_;
  std::vector<uint32_t> free_;
};

class WgRuntime {
 public:
  WgRuntime();
  ~WgRuntime();
  std::mutex& mutex() { return mutex_; }
  WgIndexTable& indices() { return indices_; }
  const wg::TimerConfig& timers() const { return timer_cfg_; }
  void set_timers(const wg::TimerConfig& t) { timer_cfg_ = t; }

  // --- API thread, under mutex(): runtime objects for a state being built.
  // Returns nullptr with `error` set when keys are unusable.
  WgInterface* interface_for(const WgInterfaceEntry& e, uint16_t port, uint16_t domain,
                             std::string* error);
  WgPeer* peer_for(const WgPeerEntry& e, WgInterface* iface, std::string* error);
  // After `live` is published: retires what it no longer references; their
  // memory is freed once every reader passed a quiescent state.
  void collect(const Generation& live, rte_rcu_qsbr* qsbr);

  // --- service thread, under mutex() ---
  // Removes a keypair from its peer and the index table; frees it after a grace period.
  void retire(WgKeypair* kp, rte_rcu_qsbr* qsbr);
  // Frees what the last grace period released.
  void reclaim(rte_rcu_qsbr* qsbr);
  // All live peers (service iteration), by id.
  const std::vector<WgPeer*>& peers() const { return peers_by_id_; }
  // Staged packets of dead peers, to be freed by the caller.
  std::vector<rte_mbuf*> take_orphans();
  // Frees everything (shutdown, after workers stopped); returns the staged mbufs freed.
  unsigned clear();

  unsigned staged_total = 0;  // packets staged over all peers (≤ kMaxStagedTotal)

 private:
  struct Deferred {
    uint64_t token;
    std::vector<WgKeypair*> keypairs;
    std::vector<WgPeer*> peers;
    std::vector<WgInterface*> ifaces;
  };
  void defer(rte_rcu_qsbr* qsbr, std::vector<WgKeypair*> kps, std::vector<WgPeer*> peers,
             std::vector<WgInterface*> ifaces);
  void drop_peer_keys(WgPeer* p, std::vector<WgKeypair*>& out);

  std::mutex mutex_;
  wg::TimerConfig timer_cfg_;
  WgIndexTable indices_;
  std::map<std::string, std::unique_ptr<WgInterface>> ifaces_;  // by name
  std::map<std::string, std::unique_ptr<WgPeer>> peers_;        // by identity key
  std::vector<WgPeer*> peers_by_id_;                            // index = id
  std::vector<uint32_t> free_ids_;
  uint16_t next_iface_id_ = 0;
  std::vector<Deferred> deferred_;
  std::vector<rte_mbuf*> orphans_;
};

}  // namespace tether::dp

namespace tether::dp {

// --- the data path, shared by workers and the service thread ---
// `cslot` is the caller's WgPeer::counters slot (worker index, or kMaxWorkers).

// Writes Ethernet type, IPv4 and UDP headers of a WireGuard datagram from
// `iface` to endpoint `to` (WgPeer::pack_endpoint) whose UDP payload is
// `payload_len` bytes; UDP checksum zero.
void wg_outer_headers(uint8_t* frame, const WgInterface& iface, uint64_t to, uint16_t payload_len,
                      uint8_t tos);

enum class EncapResult : uint8_t { kSent, kStage, kDrop };

// Turns `m` (Ethernet + inner IPv4 of `inner_len` bytes, one segment; an
// empty inner packet is a keepalive) into an encrypted WireGuard data
// message to `p`, and routes it in the interface's outer domain. kSent:
// out_port/hop/slot say where it goes (Ethernet addresses are the caller's);
// kStage: no usable session, the caller hands it to the service thread;
// kDrop: *why says why, the caller frees it.
EncapResult wg_encap(wg::Aead& aead, const Generation& g, WgPeer* p, const wg::TimerConfig& t,
                     uint64_t now, rte_mbuf* m, uint16_t inner_len, unsigned cslot, Drop* why,
                     uint16_t* out_port, uint32_t* hop, uint32_t* slot);

enum class DecapResult : uint8_t { kInner, kKeepalive, kDrop };

// Authenticates and decrypts the data message in `m` (Ethernet + IPv4 + UDP
// to `listen`, as the pipeline validated it). kInner: `m` is now Ethernet +
// the inner IPv4 packet, validated as a port's (check_ipv4), from *peer,
// with its addresses in *src and *dst; kKeepalive: the caller frees
// `m`; kDrop: *why says why, the caller frees it.
DecapResult wg_decap(wg::Aead& aead, const Generation& g, const WgIndexTable& indices,
                     const WgListen& listen, const wg::TimerConfig& t, uint64_t now, rte_mbuf* m,
                     unsigned cslot, LcoreCounters& c, WgPeer** peer, Drop* why, uint32_t* src,
                     uint32_t* dst);

}  // namespace tether::dp
