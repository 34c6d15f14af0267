// The workers' NAT stage (docs/decisions/006-nat.md): between the source
// check and routing, every IPv4 packet of a burst is looked up in the
// session table in bulk, translated when it belongs to a session or starts
// one, and told which routing domain to be routed in.
#pragma once

#include <rte_mbuf.h>

#include <cstdint>

#include "dataplane/drop_reasons.h"
#include "nat/flow.h"

namespace tether::dp {

class Dataplane;
struct Worker;
struct Generation;

enum class NatVerdict : uint8_t {
  kRoute,  // route in `domain` (translated or not)
  kDrop,   // count `drop` and free
  kHeld,   // a later fragment the worker's fragment cache keeps for now
};

struct NatResult {
  NatVerdict verdict;
  bool translated;
  uint16_t domain;
  Drop drop;
};

// Translates n validated IPv4 packets (Ethernet at offset 0) that arrived in
// `domain`; dst/src (host order) are updated for translated packets.
void nat_burst(Dataplane& dp, Worker& w, const Generation& g, uint16_t domain, rte_mbuf** pkts,
               uint32_t* dst, uint32_t* src, uint16_t n, NatResult* res, uint64_t now_ms);

// Takes out of the worker's fragment cache the held fragments whose first
// fragment has come (rewritten, with their domain and destination) and
// those that waited too long (to drop). Arrays hold kBurst... up to
// nat::FragmentCache::kHeld entries.
void nat_drain(Worker& w, uint64_t now_ms, rte_mbuf** ready, uint16_t* domain, uint32_t* dst,
               uint16_t* nready, rte_mbuf** expired, uint16_t* nexpired);

}  // namespace tether::dp
