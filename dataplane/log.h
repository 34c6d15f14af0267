// Dataplane logging through rte_log, one log type for the process
// ("tether.dataplane"). Near the fast path use TLOG_RL (rate limited).
#pragma once

#include <rte_cycles.h>
#include <rte_log.h>

namespace tether::dp {
extern int g_logtype;
void register_logtype();
}  // namespace tether::dp

#define TLOG(level, fmt, ...) \
  rte_log(RTE_LOG_##level, ::tether::dp::g_logtype, "tether: " fmt "\n", ##__VA_ARGS__)

// At most one line per second per call site.
#define TLOG_RL(level, fmt, ...)                       \
  do {                                                 \
    static uint64_t tlog_last_ = 0;                    \
    uint64_t tlog_now_ = rte_get_timer_cycles();       \
    if (tlog_now_ - tlog_last_ > rte_get_timer_hz()) { \
      tlog_last_ = tlog_now_;                          \
      TLOG(level, fmt, ##__VA_ARGS__);                 \
    }                                                  \
  } while (0)
