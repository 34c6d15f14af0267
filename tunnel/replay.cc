// RFC 6479 anti-replay window, in the shape of WireGuard's own (the Linux
// driver's counter_validate): the ring is indexed by counter + 1, which is
// what highest_ holds for the newest counter, so "nothing seen yet"
// (highest_ == 0) needs no special case. Bit b of the ring is word
// (b / 64) % kWords, bit b % 64.
#include "tunnel/replay.h"

#include <limits>

namespace tether::wg {

namespace {
constexpr uint64_t kBitsPerWord = 64;
constexpr uint64_t kRingBits = ReplayWindow::kWords * kBitsPerWord;
static_assert((ReplayWindow::kWords & (ReplayWindow::kWords - 1)) == 0, "ring indexing uses masks");
// RFC 6479 §2: the window must leave one word of the ring free so that moving
// forward clears whole words without touching bits still inside the window.
static_assert(ReplayWindow::kWindow <= kRingBits - kBitsPerWord);

inline uint64_t word_of(uint64_t b) { return (b / kBitsPerWord) & (ReplayWindow::kWords - 1); }
inline uint64_t mask_of(uint64_t b) { return uint64_t{1} << (b & (kBitsPerWord - 1)); }
}  // namespace

bool ReplayWindow::may_accept(uint64_t counter) const {
  // counter + 1 must be representable; UINT64_MAX is far beyond
  // REJECT_AFTER_MESSAGES in any case.
  if (counter == std::numeric_limits<uint64_t>::max()) return false;
  const uint64_t b = counter + 1;
  if (b > highest_) return true;             // ahead of everything seen
  if (highest_ - b > kWindow) return false;  // behind the window
  return (bits_[word_of(b)] & mask_of(b)) == 0;
}

bool ReplayWindow::accept(uint64_t counter) {
  if (counter == std::numeric_limits<uint64_t>::max()) return false;
  const uint64_t b = counter + 1;
  if (b > highest_) {
    // Slide forward: clear the words after the old top word up to and
    // including the new one; a jump of a whole ring or more clears it all
    // (RFC 6479 §2, "the bits in the new blocks are cleared").
    const uint64_t old_top = highest_ / kBitsPerWord;
    const uint64_t new_top = b / kBitsPerWord;
    uint64_t n = new_top - old_top;
    if (n > kWords) n = kWords;
    for (uint64_t i = 1; i <= n; ++i) bits_[(old_top + i) & (kWords - 1)] = 0;
    highest_ = b;
  } else if (highest_ - b > kWindow) {
    return false;  // too old to tell whether it was seen
  }
  uint64_t& w = bits_[word_of(b)];
  const uint64_t m = mask_of(b);
  if (w & m) return false;  // replay
  w |= m;
  return true;
}

void ReplayWindow::reset() {
  highest_ = 0;
  bits_.fill(0);
}

}  // namespace tether::wg
