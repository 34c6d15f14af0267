// The service thread's share of NAT: incremental expiry. Every 10 ms it
// visits 1/100 of the session records, so a full pass takes about a second
// whatever the table size; an expired session loses its keys at once and
// its record after the workers' next quiescent state.
#include <algorithm>

#include "dataplane/dataplane.h"
#include "dataplane/service.h"
#include "nat/translate.h"

namespace tether::dp {

void Service::nat_poll(const Generation&) {
  // The newest generation: sessions of a mapping published since this
  // iteration began are not stale (and mapping_stale ignores tags newer
  // than the view's anyway).
  const Generation& now = *dp_.current();
  NatRuntime& nr = dp_.nat();
  nat::SessionTable& table = nr.sessions();
  if (!table.live()) return;
  uint32_t now_s = static_cast<uint32_t>(now_ms() / 1000);
  const nat::Timeouts& t = nr.config().timeouts;
  uint32_t budget = std::max<uint32_t>(1024, table.capacity() / 100);
  uint64_t sessions = 0;
  table.sweep(
      budget,
      [&](const nat::Session& s) {
        if (s.flags & nat::Session::kBinding) {
          // A binding ends when its last session has (and no worker took it
          // again since): 0 -> kDead, which workers never take.
          uint32_t zero = 0;
          return nr.binding_refs(static_cast<uint32_t>(&s - &table.at(0)))
              .compare_exchange_strong(zero, NatRuntime::kDead, std::memory_order_acq_rel);
        }
        if (now.nat.mapping_stale(s.mapping, s.mapping_tag)) return true;
        if (s.fw.load(std::memory_order_relaxed) & nat::Session::kFwRevoked) return true;
        uint32_t seen = s.last_seen_s.load(std::memory_order_relaxed);
        auto st = static_cast<nat::TcpState>(s.tcp.load(std::memory_order_relaxed));
        return now_s > seen && now_s - seen > nat::idle_timeout(s.orig.proto, st, t);
      },
      [&](const nat::Session& s) {
        if (s.pool != nat::Session::kNoPool) nr.pools().at(s.pool).release(s.pool_port);
        if (s.flags & nat::Session::kBound)
          nr.binding_refs(s.mapping_tag).fetch_sub(1, std::memory_order_acq_rel);
        if (!(s.flags & nat::Session::kBinding)) ++sessions;
      });
  if (sessions) c_.event(Event::nat_sessions_expired, sessions);
}

std::optional<uint16_t> Service::nat_translate_error(const Generation& g, rte_mbuf* e,
                                                     uint16_t domain) {
  auto* ip = rte_pktmbuf_mtod_offset(e, uint8_t*, sizeof(rte_ether_hdr));
  uint32_t len = rte_pktmbuf_data_len(e) - sizeof(rte_ether_hdr);
  nat::Classified k = nat::classify(ip, len, domain);
  if (k.what != nat::Class::kIcmpError) return std::nullopt;
  nat::SessionTable& table = dp_.nat().sessions();
  uint32_t h = table.lookup(k.key);
  if (h == nat::SessionTable::kMiss) return std::nullopt;
  const nat::Session& s = table.at(h >> 1);
  if (g.nat.mapping_stale(s.mapping, s.mapping_tag)) return std::nullopt;
  nat::Rewrite rw = nat::Rewrite::toward((h & 1) == 0 ? s.reply : s.orig);
  nat::rewrite_icmp_error(ip, len, rw);
  c_.event(Event::nat_icmp_errors_translated);
  return rw.domain;
}

}  // namespace tether::dp
