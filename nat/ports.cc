#include "nat/ports.h"

#include <bit>
#include <utility>

namespace tether::nat {

namespace {
uint64_t bit(uint16_t port) { return uint64_t{1} << (port % 64); }
}  // namespace

PortPool::PortPool(uint16_t lo, uint16_t hi) {
  if (lo > hi) std::swap(lo, hi);
  // Port 0 is allocate()'s "exhausted", so it is never in range.
  lo_ = lo == 0 ? 1 : lo;
  hi_ = hi < lo_ ? lo_ : hi;
  // Ports outside the range start claimed: the search never sees them free.
  const uint32_t first = lo_ / 64, last = hi_ / 64;
  for (uint32_t w = 0; w < words_.size(); ++w)
    words_[w].store(w < first || w > last ? ~uint64_t{0} : 0, std::memory_order_relaxed);
  words_[first].fetch_or(bit(lo_) - 1, std::memory_order_relaxed);
  if (hi_ % 64 != 63)
    words_[last].fetch_or(~uint64_t{0} << (hi_ % 64 + 1), std::memory_order_relaxed);
}

uint16_t PortPool::allocate(uint64_t random) {
  const uint32_t first = lo_ / 64, nwords = hi_ / 64 - first + 1;
  const uint32_t start = uint32_t(random % nwords);
  const int rot = int((random >> 32) % 64);  // also start inside a word
  for (uint32_t i = 0; i < nwords; ++i) {
    const uint32_t w = first + (start + i) % nwords;
    uint64_t v = words_[w].load(std::memory_order_relaxed);
    while (~v != 0) {
      const int b = (std::countr_zero(std::rotr(~v, rot)) + rot) % 64;
      const uint64_t mask = uint64_t{1} << b;
      if (words_[w].compare_exchange_weak(v, v | mask, std::memory_order_acquire,
                                          std::memory_order_relaxed)) {
        used_.fetch_add(1, std::memory_order_relaxed);
        return uint16_t(w * 64 + b);
      }
      // Another thread changed the word: v holds its new value, look again.
    }
  }
  return 0;
}

bool PortPool::claim(uint16_t port) {
  if (port < lo_ || port > hi_) return false;
  const uint64_t old = words_[port / 64].fetch_or(bit(port), std::memory_order_acquire);
  if (old & bit(port)) return false;
  used_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void PortPool::release(uint16_t port) {
  if (port < lo_ || port > hi_) return;  // the bits out of range must stay set
  const uint64_t old = words_[port / 64].fetch_and(~bit(port), std::memory_order_release);
  if (old & bit(port)) used_.fetch_sub(1, std::memory_order_relaxed);
}

bool PortPool::is_claimed(uint16_t port) const {
  if (port < lo_ || port > hi_) return false;
  return words_[port / 64].load(std::memory_order_relaxed) & bit(port);
}

uint32_t PortPools::get_or_make(uint16_t domain, uint32_t addr, uint8_t proto) {
  std::lock_guard lock(mu_);
  const auto key = std::make_tuple(domain, addr, proto);
  if (auto it = ids_.find(key); it != ids_.end()) return it->second;
  if (n_ == kMaxPools) return kNone;
  pools_[n_] = std::make_unique<PortPool>();
  ids_.emplace(key, n_);
  return n_++;
}

}  // namespace tether::nat
