#include "dataplane/neighbor_table.h"

#include <rte_errno.h>
#include <rte_jhash.h>

#include <atomic>
#include <string>

namespace tether::dp {

const char* neighbor_state_name(NeighborState s) {
  switch (s) {
    case NeighborState::kIncomplete:
      return "incomplete";
    case NeighborState::kReachable:
      return "reachable";
    case NeighborState::kStale:
      return "stale";
    case NeighborState::kPermanent:
      return "permanent";
  }
  return "?";
}

NeighborTable::~NeighborTable() {
  for (auto& m : meta_)
    for (auto* pkt : m.waiting) rte_pktmbuf_free(pkt);
  if (hash_) rte_hash_free(hash_);
}

bool NeighborTable::init(uint32_t capacity, int socket, std::string* error) {
  static std::atomic<unsigned> seq{0};
  std::string name = "neigh" + std::to_string(seq++);
  rte_hash_parameters p{};
  p.name = name.c_str();
  p.entries = capacity;
  p.key_len = sizeof(NeighborKey);
  p.hash_func = rte_jhash;
  p.socket_id = socket;
  // Readers never lock; the single writer at a time is guaranteed by mutex_.
  p.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF;
  hash_ = rte_hash_create(&p);
  if (!hash_) {
    if (error) *error = std::string("neighbor table: ") + rte_strerror(rte_errno);
    return false;
  }
  capacity_ = capacity;
  words_ = std::make_unique<std::atomic<uint64_t>[]>(capacity);
  for (uint32_t i = 0; i < capacity; ++i) words_[i].store(0, std::memory_order_relaxed);
  meta_.resize(capacity);
  return true;
}

uint32_t NeighborTable::ensure_locked(uint16_t port, Ipv4 ip) {
  uint32_t slot = lookup(port, ip);
  if (slot != kNoSlot) return slot;
  if (used_ >= capacity_) return kNoSlot;
  slot = used_;
  NeighborKey k{ip, port};
  if (rte_hash_add_key_data(hash_, &k, reinterpret_cast<void*>(uintptr_t{slot})) != 0)
    return kNoSlot;
  ++used_;
  meta_[slot] = NeighborMeta{};
  meta_[slot].port = port;
  meta_[slot].ip = ip;
  return slot;
}

void NeighborTable::publish_locked(uint32_t slot, const MacAddr& mac, NeighborState state) {
  uint64_t w = 0;
  if (state != NeighborState::kIncomplete)
    for (int i = 0; i < 6; ++i) w |= uint64_t{mac.bytes[i]} << (8 * i);
  w |= uint64_t{static_cast<uint8_t>(state)} << 56;
  words_[slot].store(w, std::memory_order_release);
  meta_[slot].state = state;
}

MacAddr NeighborTable::mac_of(uint32_t slot) const {
  uint64_t w = words_[slot].load(std::memory_order_acquire);
  MacAddr m;
  for (int i = 0; i < 6; ++i) m.bytes[i] = static_cast<uint8_t>(w >> (8 * i));
  return m;
}

}  // namespace tether::dp
