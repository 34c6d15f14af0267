// The workers' session stage: NAT (docs/decisions/006-nat.md) and the
// stateful firewall (docs/decisions/007-firewall.md) on one session table.
// Between the source check and routing, every IPv4 packet of a burst is
// looked up in the session table in bulk. A packet of a session passes the
// session's checks (policy tag, TCP windows) and is translated when the
// session translates; a first packet is classified by the policy of its
// zone pair (in bulk, rte_acl) and, when accepted, starts a session. Each
// packet is told which routing domain to be routed in.
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
  kRoute,   // route in `domain` (translated or not)
  kDrop,    // count `drop` and free
  kHeld,    // a later fragment the worker's fragment cache keeps for now
  kReject,  // a firewall rule rejects it: the service answers (TCP RST or ICMP), count `drop`
};

struct NatResult {
  NatVerdict verdict;
  bool translated;
  uint16_t domain;
  Drop drop;
};

// Filters and translates n validated IPv4 packets (Ethernet at offset 0)
// that arrived in `domain` from firewall zone `from_zone` (decrypted from
// a tunnel: `from_tunnel`); dst/src (host order) are updated for translated
// packets.
void nat_burst(Dataplane& dp, Worker& w, const Generation& g, uint16_t domain, uint16_t from_zone,
               bool from_tunnel, rte_mbuf** pkts, uint32_t* dst, uint32_t* src, uint16_t n,
               NatResult* res, uint64_t now_ms);

// Takes out of the worker's fragment cache the held fragments whose first
// fragment has come (rewritten, with their domain and destination), those
// whose first fragment was dropped (`dropped`) and those that waited too
// long (`expired`). Arrays hold nat::FragmentCache::kHeld entries.
void nat_drain(Worker& w, uint64_t now_ms, rte_mbuf** ready, uint16_t* domain, uint32_t* dst,
               uint16_t* nready, rte_mbuf** expired, uint16_t* nexpired, rte_mbuf** dropped,
               uint16_t* ndropped);

}  // namespace tether::dp
