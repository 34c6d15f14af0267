// The service thread's share of NAT: incremental expiry. Every 10 ms it
// visits 1/100 of the session records, so a full pass takes about a second
// whatever the table size; an expired session loses its keys at once and
// its record after the workers' next quiescent state.
#include <algorithm>

#include "dataplane/dataplane.h"
#include "dataplane/service.h"

namespace tether::dp {

void Service::nat_poll(const Generation& g) {
  NatRuntime& nr = dp_.nat();
  nat::SessionTable& table = nr.sessions();
  if (!table.live()) return;
  uint32_t now_s = static_cast<uint32_t>(now_ms() / 1000);
  const nat::Timeouts& t = nr.config().timeouts;
  uint32_t budget = std::max<uint32_t>(1024, table.capacity() / 100);
  uint32_t n = table.sweep(
      budget,
      [&](const nat::Session& s) {
        if (s.mapping != nat::Session::kNoMapping && !g.nat.mapping_live(s.mapping, s.mapping_tag))
          return true;
        uint32_t seen = s.last_seen_s.load(std::memory_order_relaxed);
        auto st = static_cast<nat::TcpState>(s.tcp.load(std::memory_order_relaxed));
        return now_s > seen && now_s - seen > nat::idle_timeout(s.orig.proto, st, t);
      },
      [&](const nat::Session& s) {
        if (s.pool != nat::Session::kNoPool) nr.pools().at(s.pool).release(s.pool_port);
      });
  if (n) c_.event(Event::nat_sessions_expired, n);
}

}  // namespace tether::dp
