#include "nat/fragments.h"

#include <cstring>

namespace tether::nat {

static_assert((FragmentCache::kRecords & (FragmentCache::kRecords - 1)) == 0);

// Multiply-xor over the key's two 64-bit halves, then a murmur3 finalizer so
// every key bit reaches the low bits the slot is taken from.
uint32_t FragmentCache::slot(const FlowKey& k) {
  uint64_t a, b;
  std::memcpy(&a, &k, 8);
  std::memcpy(&b, reinterpret_cast<const uint8_t*>(&k) + 8, 8);
  uint64_t h = a * 0x9e3779b97f4a7c15ull ^ b * 0xc2b2ae3d27d4eb4full;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return uint32_t(h) & (kRecords - 1);
}

void FragmentCache::record(const FlowKey& key, const Rewrite& rw, uint64_t now_ms) {
  // A collision evicts the older datagram: its remaining fragments are
  // dropped, which a sender's retransmission repairs.
  records_[slot(key)] = Record{key, rw, now_ms, true};
}

const Rewrite* FragmentCache::find(const FlowKey& key, uint64_t now_ms) const {
  const Record& r = records_[slot(key)];
  if (!r.used || !(r.key == key) || now_ms - r.at_ms >= kRecordMs) return nullptr;
  return &r.rw;
}

bool FragmentCache::hold(const FlowKey& key, void* pkt, uint64_t now_ms) {
  if (nheld_ == kHeld) return false;
  held_[nheld_++] = Held{key, pkt, now_ms};
  return true;
}

void FragmentCache::drain(uint64_t now_ms, Ready* ready, uint32_t* nready, void** expired,
                          uint32_t* nexpired) {
  // Compacts in place so the fragments still waiting keep their order.
  uint32_t kept = 0;
  *nready = 0;
  *nexpired = 0;
  for (uint32_t i = 0; i < nheld_; ++i) {
    const Held& h = held_[i];
    if (const Rewrite* rw = find(h.key, now_ms)) {
      ready[(*nready)++] = Ready{h.pkt, *rw};
    } else if (now_ms - h.at_ms > kHoldMs) {
      expired[(*nexpired)++] = h.pkt;
    } else {
      held_[kept++] = h;
    }
  }
  for (uint32_t i = kept; i < nheld_; ++i) held_[i] = Held{};
  nheld_ = kept;
}

}  // namespace tether::nat
