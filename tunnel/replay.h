// Sliding window against replayed data messages, RFC 6479 style: a ring of
// 64-bit words; moving the window forward clears whole words, never shifts.
// With kWords = 64 the window accepts any counter within 4032 of the highest
// seen (WireGuard requires at least 2000). Not thread-safe: the dataplane
// serialises updates per keypair.
#pragma once

#include <array>
#include <cstdint>

namespace tether::wg {

class ReplayWindow {
 public:
  static constexpr uint32_t kWords = 64;
  static constexpr uint64_t kWindow = (kWords - 1) * 64;  // 4032

  // True when `counter` may still be new: ahead of the window or inside it
  // and unseen. Cheap pre-check before decryption; changes nothing.
  bool may_accept(uint64_t counter) const;
  // Records an authenticated counter; false when it is a replay or too old.
  bool accept(uint64_t counter);
  void reset();
  uint64_t highest() const { return highest_; }

 private:
  uint64_t highest_ = 0;  // highest counter accepted + 1; 0 = none yet
  std::array<uint64_t, kWords> bits_{};
};

}  // namespace tether::wg
