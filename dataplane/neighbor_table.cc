#include "dataplane/neighbor_table.h"

#include <rte_cycles.h>
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
  keys_ = std::make_unique<std::atomic<uint64_t>[]>(capacity);
  for (uint32_t i = 0; i < capacity; ++i) {
    words_[i].store(0, std::memory_order_relaxed);
    keys_[i].store(0, std::memory_order_relaxed);
  }
  meta_.resize(capacity);
  return true;
}

uint32_t NeighborTable::ensure_locked(uint16_t port, Ipv4 ip) {
  uint32_t slot = lookup(port, ip);
  if (slot != kNoSlot) return slot;
  bool fresh = free_.empty();
  if (fresh && used_ >= capacity_) return kNoSlot;
  slot = fresh ? used_ : free_.back();
  NeighborKey k{ip, port};
  if (rte_hash_add_key_data(hash_, &k, reinterpret_cast<void*>(uintptr_t{slot})) != 0)
    return kNoSlot;
  if (fresh) {
    ++used_;
  } else {
    free_.pop_back();
  }
  meta_[slot] = NeighborMeta{};
  meta_[slot].in_use = true;
  meta_[slot].created_ms = rte_get_timer_cycles() / (rte_get_timer_hz() / 1000);
  meta_[slot].port = port;
  meta_[slot].ip = ip;
  words_[slot].store(0, std::memory_order_release);
  keys_[slot].store(key_word(ip, port), std::memory_order_release);
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

void NeighborTable::retire_locked(uint32_t slot, rte_rcu_qsbr* qsbr) {
  NeighborMeta& m = meta_[slot];
  NeighborKey k{m.ip, m.port};
  int32_t pos = rte_hash_del_key(hash_, &k);
  keys_[slot].store(0, std::memory_order_release);
  words_[slot].store(0, std::memory_order_release);
  m.in_use = false;
  if (pos >= 0) retired_.push_back({slot, pos, rte_rcu_qsbr_start(qsbr)});
}

void NeighborTable::collect_locked(rte_rcu_qsbr* qsbr) {
  std::erase_if(retired_, [&](const Retired& r) {
    if (rte_rcu_qsbr_check(qsbr, r.token, false) != 1) return false;
    rte_hash_free_key_with_position(hash_, r.position);
    free_.push_back(r.slot);
    return true;
  });
}

MacAddr NeighborTable::mac_of(uint32_t slot) const {
  uint64_t w = words_[slot].load(std::memory_order_acquire);
  MacAddr m;
  for (int i = 0; i < 6; ++i) m.bytes[i] = static_cast<uint8_t>(w >> (8 * i));
  return m;
}

}  // namespace tether::dp
