// What the in-process benchmarks (wg_bench, nat_bench) share: formatting,
// the thread's CPU clock, and the measuring loop that adds up only the timed
// part of each step. Header-only; any thread.
#pragma once

#include <rte_cycles.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace tether::bench {

constexpr uint32_t ip4(unsigned a, unsigned b, unsigned c, unsigned d) {
  return a << 24 | b << 16 | c << 8 | d;
}

template <class... A>
std::string fmt(const char* f, A... args) {
  int n = std::snprintf(nullptr, 0, f, args...);
  std::string s(static_cast<size_t>(std::max(n, 0)), '\0');
  std::snprintf(s.data(), s.size() + 1, f, args...);
  return s;
}

inline double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

inline std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string x; std::getline(in, x, sep);)
    if (!x.empty()) out.push_back(x);
  return out;
}

struct Timed {
  uint64_t cycles;  // TSC cycles inside the timed part of one step
  double units;     // packets, bits, handshakes... done in them
};

struct Sample {
  double rate;       // units per timed second
  double cpu_share;  // the thread's CPU time over the wall time of the sample
};

// Steps until their timed parts add up to `seconds`.
inline Sample measure(double seconds, const std::function<Timed()>& step) {
  const double hz = static_cast<double>(rte_get_tsc_hz());
  const auto want = static_cast<uint64_t>(seconds * hz);
  uint64_t timed = 0;
  double units = 0;
  uint64_t w0 = rte_rdtsc();
  double c0 = thread_cpu_seconds();
  while (timed < want || timed == 0) {
    Timed t = step();
    timed += t.cycles;
    units += t.units;
  }
  double wall = static_cast<double>(rte_rdtsc() - w0) / hz;
  double cpu = thread_cpu_seconds() - c0;
  return {units * hz / static_cast<double>(timed), std::min(1.0, cpu / wall)};
}

}  // namespace tether::bench
