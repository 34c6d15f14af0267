// Port (and ICMP identifier) allocation for one (routing domain, address,
// protocol): a bitmap of 65536 bits whose words are claimed with atomic
// operations, so workers allocate concurrently without a lock. A search
// starts at a random word (RFC 6056 §3.3.1's spirit: not guessable, not
// sequential) and takes the first free port in range from there.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

namespace tether::nat {

class PortPool {
 public:
  // Ports lo..hi inclusive can be handed out (1024..65535 by default:
  // RFC 4787 REQ-3 keeps allocations out of the well-known range).
  explicit PortPool(uint16_t lo = 1024, uint16_t hi = 65535);

  // A free port, claimed; 0 when the pool is exhausted. `random` chooses
  // where the search starts. Any thread.
  uint16_t allocate(uint64_t random);
  // Claims this port; false when it is in use or out of range. Any thread.
  bool claim(uint16_t port);
  // Gives a claimed port back. Any thread.
  void release(uint16_t port);

  uint32_t in_use() const { return used_.load(std::memory_order_relaxed); }
  uint32_t capacity() const { return uint32_t{hi_} - lo_ + 1; }
  uint16_t lo() const { return lo_; }
  uint16_t hi() const { return hi_; }
  bool is_claimed(uint16_t port) const;

 private:
  uint16_t lo_, hi_;
  std::atomic<uint32_t> used_{0};
  std::array<std::atomic<uint64_t>, 1024> words_{};
};

// Every pool the dataplane has made, by (domain, address, protocol). Pools
// are made by the API thread and live as long as the registry (sessions
// hold a pool id, not a pointer that a config change could free).
class PortPools {
 public:
  static constexpr uint32_t kMaxPools = 4096;
  static constexpr uint32_t kNone = UINT32_MAX;

  // The pool's id, making it if needed; kNone when kMaxPools exist. API thread.
  uint32_t get_or_make(uint16_t domain, uint32_t addr, uint8_t proto);
  // Any thread; the id must come from get_or_make.
  PortPool& at(uint32_t id) { return *pools_[id]; }
  const PortPool& at(uint32_t id) const { return *pools_[id]; }

  struct Info {
    uint16_t domain;
    uint32_t addr;
    uint8_t proto;
    uint32_t id;
  };
  // For listing (API thread).
  template <typename F>
  void for_each(F&& f) const {
    std::lock_guard lock(mu_);
    for (auto& [k, id] : ids_) f(Info{std::get<0>(k), std::get<1>(k), std::get<2>(k), id});
  }

 private:
  mutable std::mutex mu_;
  std::map<std::tuple<uint16_t, uint32_t, uint8_t>, uint32_t> ids_;
  std::array<std::unique_ptr<PortPool>, kMaxPools> pools_;
  uint32_t n_ = 0;
};

}  // namespace tether::nat
