// IPv4 neighbors (ARP) per port. Workers read it lock-free: an rte_hash with
// lock-free reader/writer concurrency maps (port, ip) to a slot, and each slot
// publishes its MAC and state in one atomic 64-bit word. Keys are never
// deleted (a slot that stops answering goes back to kIncomplete), so readers
// never see a slot reused under them. Writers (the API thread when it builds
// a generation, the service thread when it learns or ages) serialise on a
// mutex; the bookkeeping beside the word (timers, waiting packets) belongs to
// the service thread.
#pragma once

#include <rte_ether.h>
#include <rte_hash.h>
#include <rte_mbuf.h>

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

  // --- writers ---
  std::mutex& mutex() { return mutex_; }
  // Slot for (port, ip), created incomplete when absent; kNoSlot when full.
  // Caller holds mutex().
  uint32_t ensure_locked(uint16_t port, Ipv4 ip);
  // Publishes a MAC (or clears it with kIncomplete). Caller holds mutex().
  void publish_locked(uint32_t slot, const MacAddr& mac, NeighborState state);
  NeighborMeta& meta_locked(uint32_t slot) { return meta_[slot]; }
  uint32_t used() const { return used_; }
  MacAddr mac_of(uint32_t slot) const;

 private:
  rte_hash* hash_ = nullptr;
  std::unique_ptr<std::atomic<uint64_t>[]> words_;
  std::vector<NeighborMeta> meta_;
  uint32_t capacity_ = 0;
  uint32_t used_ = 0;
  std::mutex mutex_;
};

}  // namespace tether::dp
