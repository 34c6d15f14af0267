// One worker lcore: polls its RX queues, runs the pipeline on each burst and
// transmits on its own TX queue of every port. Run-to-completion: no locks,
// no allocation, no system calls. Created by Dataplane on the main thread,
// then touched only by its own lcore (counters are read by the API thread).
#pragma once

#include <rte_ethdev.h>
#include <rte_ring.h>

#include <array>
#include <cstdint>
#include <vector>

#include <memory>

#include "dataplane/counters.h"
#include "dataplane/tables.h"
#include "nat/fragments.h"
#include "tunnel/crypto.h"

namespace tether::dp {

inline constexpr uint16_t kBurst = 32;

class Dataplane;

struct TxBuffer {
  uint16_t n = 0;
  rte_mbuf* pkts[kBurst];
};

// Per-worker cache of the neighbor slots of on-link next hops, in front of
// the shared hash. It is never invalidated: a hit is checked against the
// slot's key word (NeighborTable::serves), which changes when the table
// forgets an address and reuses its slot.
class NeighborSlotCache {
 public:
  static constexpr uint32_t kSize = 1024;  // 8 KiB: stays in L1; index() takes 10 bits
  uint32_t find(uint32_t ip, uint16_t port) const {
    const Entry& e = entries_[index(ip, port)];
    return e.ip == ip && e.port_slot >> 22 == port && (e.port_slot & kSlotMask) != 0
               ? (e.port_slot & kSlotMask) - 1
               : UINT32_MAX;
  }
  void put(uint32_t ip, uint16_t port, uint32_t slot) {
    if (port >= 1024 || slot + 1 > kSlotMask) return;  // not representable: just not cached
    entries_[index(ip, port)] = {ip, uint32_t{port} << 22 | (slot + 1)};
  }

 private:
  static constexpr uint32_t kSlotMask = (1u << 22) - 1;  // slot + 1; 0 = empty
  struct Entry {
    uint32_t ip;
    uint32_t port_slot;
  };
  static uint32_t index(uint32_t ip, uint16_t port) {  // Fibonacci hashing
    return ((ip ^ (uint32_t{port} << 24)) * 2654435761u) >> (32 - 10);
  }
  std::array<Entry, kSize> entries_{};
};

struct alignas(64) Worker {
  Dataplane* dp = nullptr;
  unsigned lcore = 0;
  unsigned index = 0;                                    // RCU thread id and TX queue id
  std::vector<std::pair<uint16_t, uint16_t>> rx_queues;  // (port, queue)
  rte_ring* inject = nullptr;  // service → this worker: ready-to-send frames
  LcoreCounters* counters = nullptr;
  uint64_t tx_dirty = 0;  // bit per port with buffered packets
  NeighborSlotCache neighbor_cache;
  std::unique_ptr<wg::Aead> aead = std::make_unique<wg::Aead>();  // WireGuard encap/decap
  std::unique_ptr<nat::FragmentCache> frags = std::make_unique<nat::FragmentCache>();
  std::array<TxBuffer, RTE_MAX_ETHPORTS> tx;
};

// The worker's lcore entry point (rte_eal_remote_launch); arg is the Worker.
int worker_main(void* arg);

// Runs the pipeline on one received burst. Exposed for tests and benchmarks
// that drive the pipeline without a port.
void forward_burst(Dataplane& dp, Worker& w, const Generation& g, uint16_t in_port, rte_mbuf** pkts,
                   uint16_t n);

// What a worker does after the RX bursts of one loop: release later
// fragments whose first came, send what the service injected, flush TX.
// Exposed for benchmarks that play the worker.
void worker_after_rx(Dataplane& dp, Worker& w, const Generation& g);

// Sends what the worker buffered for `port`; counts and frees what it refused.
inline void tx_send(Worker& w, uint16_t port) {
  TxBuffer& b = w.tx[port];
  uint16_t sent = rte_eth_tx_burst(port, static_cast<uint16_t>(w.index), b.pkts, b.n);
  w.counters->tx_packets += sent;
  if (sent < b.n) {
    rte_pktmbuf_free_bulk(b.pkts + sent, b.n - sent);
    w.counters->drop(Drop::tx_full, b.n - sent);
  }
  b.n = 0;
}

// Buffers one ready frame for `port`, sending the buffer when it fills.
inline void tx_enqueue(Worker& w, uint16_t port, rte_mbuf* m) {
  TxBuffer& b = w.tx[port];
  b.pkts[b.n++] = m;
  w.tx_dirty |= uint64_t{1} << port;
  if (b.n == kBurst) tx_send(w, port);
}

// Sends whatever the worker buffered; counts what the ports refused.
void flush_tx(Worker& w);

}  // namespace tether::dp
