// Later fragments follow the first (docs/decisions/006-nat.md): the first
// fragment of a datagram carries the ports, finds or makes the session and
// records here how the datagram is rewritten; later fragments are rewritten
// from that record. Later fragments that arrive before their first fragment
// wait here (bounded, briefly) and leave when it arrives or are dropped.
//
// One cache per worker: all fragments of a datagram hash to the same RSS
// queue (NICs hash fragments by addresses only), so no sharing and no locks.
// No DPDK: the held packets are opaque handles. Not thread-safe.
#pragma once

#include <array>
#include <cstdint>

#include "nat/flow.h"

namespace tether::nat {

class FragmentCache {
 public:
  static constexpr uint32_t kRecords = 1024;   // direct-mapped by key hash
  static constexpr uint32_t kHeld = 64;        // later fragments waiting for their first
  static constexpr uint64_t kRecordMs = 2000;  // a datagram's fragments arrive within this
  static constexpr uint64_t kHoldMs = 100;     // a held fragment waits at most this
  // A record whose rewrite has this domain says the first fragment was
  // dropped (by the firewall): later fragments go too.
  static constexpr uint16_t kDropped = UINT16_MAX;

  // A first fragment was rewritten with `rw`: later fragments with `key`
  // (fragment_key() of the first, before rewriting) get the same addresses.
  void record(const FlowKey& key, const Rewrite& rw, uint64_t now_ms);
  // The rewrite for a later fragment, or nullptr (expired or never seen).
  const Rewrite* find(const FlowKey& key, uint64_t now_ms) const;

  // Holds a later fragment with no record yet; false when full (caller drops).
  bool hold(const FlowKey& key, void* pkt, uint64_t now_ms);
  // Takes out the held fragments whose key now has a record (into `ready`,
  // with their rewrite) and those held longer than kHoldMs (into `expired`).
  // Both arrays hold kHeld entries; the counts are returned through n*.
  struct Ready {
    void* pkt;
    Rewrite rw;
  };
  void drain(uint64_t now_ms, Ready* ready, uint32_t* nready, void** expired, uint32_t* nexpired);
  uint32_t held() const { return nheld_; }

 private:
  struct Record {
    FlowKey key;
    Rewrite rw;
    uint64_t at_ms = 0;
    bool used = false;
  };
  struct Held {
    FlowKey key;
    void* pkt = nullptr;
    uint64_t at_ms = 0;
  };
  static uint32_t slot(const FlowKey& k);
  std::array<Record, kRecords> records_{};
  std::array<Held, kHeld> held_{};
  uint32_t nheld_ = 0;
};

}  // namespace tether::nat
