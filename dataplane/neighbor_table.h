// IPv4 neighbors (ARP) per port. Workers read it lock-free: an rte_hash with
// lock-free reader/writer concurrency maps (port, ip) to a slot, and each slot
// publishes its MAC and state in one atomic 64-bit word and the key it serves
// in another. Writers (the API thread when it builds a generation, the service
// thread when it learns, ages and forgets) serialise on a mutex; the
// bookkeeping beside the words (timers, waiting packets) belongs to the
// service thread.
//
// Forgetting: an address that never answered is retired (its key deleted,
// its key word cleared) and its slot reused only after an RCU grace period,
// so a reader that found the slot before never sees it serve another key.
// Readers that remember slots (the workers' caches) check the key word.
#pragma once

#include <rte_ether.h>
#include <rte_hash.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "common/net.h"

namespace tether::dp {

enum class NeighborState : uint8_t { kIncomplete = 0, kReachable = 1, kStale = 2, kPermanent = 3 };
const char* neighbor_state_name(NeighborState s);

struct NeighborKey {
  uint32_t ip;  // host order
  uint16_t port;
  uint16_t pad = 0;
};

// Service-thread bookkeeping of one slot.
struct NeighborMeta {
  bool in_use = false;
  uint64_t created_ms = 0;
  uint16_t port = 0;
  Ipv4 ip = 0;
  NeighborState state = NeighborState::kIncomplete;
  uint64_t confirmed_ms = 0;  // last time the neighbor proved it is there
  uint64_t probe_ms = 0;      // last request sent
  uint32_t probes = 0;        // requests sent since the last confirmation
  std::vector<rte_mbuf*> waiting;
};

class NeighborTable {
 public:
  static constexpr uint32_t kNoSlot = UINT32_MAX;

  NeighborTable() = default;
  ~NeighborTable();
  NeighborTable(const NeighborTable&) = delete;
  NeighborTable& operator=(const NeighborTable&) = delete;

  bool init(uint32_t capacity, int socket, std::string* error);

  // --- fast path, any lcore ---
  uint32_t lookup(uint16_t port, Ipv4 ip) const {
    NeighborKey k{ip, port};
    void* data = nullptr;
    if (rte_hash_lookup_data(hash_, &k, &data) < 0) return kNoSlot;
    return static_cast<uint32_t>(reinterpret_cast<uintptr_t>(data));
  }
  // Up to 64 lookups at once; kNoSlot where absent.
  void lookup_bulk(const NeighborKey* keys, uint32_t n, uint32_t* slots) const {
    const void* kp[64];
    void* data[64];
    uint64_t hits = 0;
    for (uint32_t i = 0; i < n; ++i) kp[i] = &keys[i];
    rte_hash_lookup_bulk_data(hash_, kp, n, &hits, data);
    for (uint32_t i = 0; i < n; ++i)
      slots[i] =
          (hits >> i) & 1 ? static_cast<uint32_t>(reinterpret_cast<uintptr_t>(data[i])) : kNoSlot;
  }
  // MAC and state of a slot; false when the slot has no usable MAC.
  bool resolve(uint32_t slot, rte_ether_addr* mac) const {
    return resolve(words_.get(), slot, mac);
  }
  // The same with the word array hoisted by the caller (a burst loop).
  const std::atomic<uint64_t>* words() const { return words_.get(); }
  static bool resolve(const std::atomic<uint64_t>* words, uint32_t slot, rte_ether_addr* mac) {
    uint64_t w = words[slot].load(std::memory_order_acquire);
    if ((w >> 56) == static_cast<uint64_t>(NeighborState::kIncomplete)) return false;
    std::memcpy(mac->addr_bytes, &w, RTE_ETHER_ADDR_LEN);  // x86-64: byte i is bits 8i..8i+7
    return true;
  }

  // The key a slot serves, as a word: compare with key_word(ip, port).
  static uint64_t key_word(Ipv4 ip, uint16_t port) {
    return uint64_t{ip} << 16 | port | uint64_t{1} << 48;
  }
  bool serves(uint32_t slot, Ipv4 ip, uint16_t port) const {
    return keys_[slot].load(std::memory_order_acquire) == key_word(ip, port);
  }

  // --- writers ---
  std::mutex& mutex() { return mutex_; }
  // Slot for (port, ip), created incomplete when absent; kNoSlot when full.
  // Caller holds mutex().
  uint32_t ensure_locked(uint16_t port, Ipv4 ip);
  // Publishes a MAC (or clears it with kIncomplete). Caller holds mutex().
  void publish_locked(uint32_t slot, const MacAddr& mac, NeighborState state);
  NeighborMeta& meta_locked(uint32_t slot) { return meta_[slot]; }
  // Slots ever handed out; iterate [0, used()) and skip !meta.in_use.
  uint32_t used() const { return used_; }
  // Forgets a slot (caller holds mutex()); it is reused after every reader
  // of `qsbr` has passed a quiescent state, see collect_locked().
  void retire_locked(uint32_t slot, rte_rcu_qsbr* qsbr);
  // Frees retired slots whose grace period is over. Caller holds mutex().
  void collect_locked(rte_rcu_qsbr* qsbr);
  size_t retired() const { return retired_.size(); }
  MacAddr mac_of(uint32_t slot) const;

 private:
  rte_hash* hash_ = nullptr;
  std::unique_ptr<std::atomic<uint64_t>[]> words_;
  std::unique_ptr<std::atomic<uint64_t>[]> keys_;  // key_word() of the slot, 0 when free
  struct Retired {
    uint32_t slot;
    int32_t position;  // rte_hash key position to free after the grace period
    uint64_t token;
  };
  std::vector<Retired> retired_;
  std::vector<uint32_t> free_;
  std::vector<NeighborMeta> meta_;
  uint32_t capacity_ = 0;
  uint32_t used_ = 0;
  std::mutex mutex_;
};

}  // namespace tether::dp
