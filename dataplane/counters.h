// Per-lcore counters. Each lcore writes only its own cache-line aligned block
// (no atomics, no sharing); the API thread sums them when asked, reading
// 64-bit words that x86-64 stores atomically.
#pragma once

#include <rte_lcore.h>

#include <array>
#include <cstdint>

#include "dataplane/drop_reasons.h"

namespace tether::dp {

struct alignas(64) LcoreCounters {
  uint64_t rx_packets = 0;
  uint64_t tx_packets = 0;
  std::array<uint64_t, kNumDrops> drops{};
  std::array<uint64_t, kNumEvents> events{};

  void drop(Drop d, uint64_t n = 1) { drops[static_cast<size_t>(d)] += n; }
  void event(Event e, uint64_t n = 1) { events[static_cast<size_t>(e)] += n; }
};

// Indexed by rte_lcore_id(); entries for lcores that do not run stay zero.
using CounterBlock = std::array<LcoreCounters, RTE_MAX_LCORE>;

}  // namespace tether::dp
