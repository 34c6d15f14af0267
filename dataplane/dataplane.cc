#include "dataplane/dataplane.h"

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include <algorithm>

#include "dataplane/log.h"
#include "dataplane/packet.h"
#include "dataplane/service.h"

namespace tether::dp {

int g_meta_offset = -1;
int g_logtype = RTE_LOGTYPE_USER1;

void register_logtype() {
  int t = rte_log_register_type_and_pick_level("tether.dataplane", RTE_LOG_INFO);
  if (t >= 0) g_logtype = t;
}

bool register_meta_field() {
  static const rte_mbuf_dynfield desc = {"tether_packet_meta", sizeof(PacketMeta),
                                         alignof(PacketMeta), 0};
  g_meta_offset = rte_mbuf_dynfield_register(&desc);
  return g_meta_offset >= 0;
}

namespace {
constexpr uint16_t kRxDesc = 512;
constexpr uint16_t kTxDesc = 512;
constexpr unsigned kPuntRing = 4096;
constexpr unsigned kHandshakeRing = 4096;
constexpr unsigned kInjectRing = 1024;
constexpr unsigned kPoolCache = 256;
}  // namespace

Dataplane::Dataplane(DataplaneConfig cfg) : cfg_(std::move(cfg)) {}

Dataplane::~Dataplane() {
  live_.reset();
  if (qsbr_) rte_free(qsbr_);
  for (auto& w : workers_)
    if (w->inject) rte_ring_free(w->inject);
  if (punt_) rte_ring_free(punt_);
  if (handshake_) rte_ring_free(handshake_);
}

bool Dataplane::setup(std::string* error) {
  register_logtype();
  if (!register_meta_field()) {
    *error = std::string("cannot register mbuf metadata: ") + rte_strerror(rte_errno);
    return false;
  }
  service_lcore_ = rte_get_main_lcore();
  cycles_per_ms_ = std::max<uint64_t>(1, rte_get_timer_hz() / 1000);
  wg_.set_timers(cfg_.wireguard.timers);
  counters_ = std::make_unique<CounterBlock>();
  int socket = static_cast<int>(rte_socket_id());

  unsigned idx = 0;
  for (unsigned lcore : cfg_.worker_lcores) {
    if (lcore == service_lcore_ || !rte_lcore_is_enabled(lcore)) {
      *error = "worker lcore " + std::to_string(lcore) + " is not an enabled worker lcore";
      return false;
    }
    auto w = std::make_unique<Worker>();
    w->dp = this;
    w->lcore = lcore;
    w->index = idx++;
    w->counters = &(*counters_)[lcore];
    std::string name = "inject" + std::to_string(w->index);
    w->inject =
        rte_ring_create(name.c_str(), kInjectRing, static_cast<int>(rte_lcore_to_socket_id(lcore)),
                        RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (!w->inject) {
      *error = "cannot create ring " + name + ": " + rte_strerror(rte_errno);
      return false;
    }
    workers_.push_back(std::move(w));
  }
  if (workers_.empty()) {
    *error = "no worker lcores";
    return false;
  }
  if (workers_.size() > kMaxWorkers) {
    *error = "at most " + std::to_string(kMaxWorkers) + " worker lcores";
    return false;
  }
  punt_ = rte_ring_create("punt", kPuntRing, socket, RING_F_SC_DEQ);
  if (!punt_) {
    *error = std::string("cannot create the service ring: ") + rte_strerror(rte_errno);
    return false;
  }
  // Handshake messages get their own ring: a flood of initiations cannot
  // crowd out ARP, and its depth is the load that turns cookies on.
  handshake_ = rte_ring_create("wg_handshake", kHandshakeRing, socket, RING_F_SC_DEQ);
  if (!handshake_) {
    *error = std::string("cannot create the handshake ring: ") + rte_strerror(rte_errno);
    return false;
  }
  unsigned readers = static_cast<unsigned>(workers_.size()) + 1;  // + service
  qsbr_ = static_cast<rte_rcu_qsbr*>(
      rte_zmalloc("qsbr", rte_rcu_qsbr_get_memsize(readers), RTE_CACHE_LINE_SIZE));
  if (!qsbr_ || rte_rcu_qsbr_init(qsbr_, readers) != 0) {
    *error = "cannot set up RCU";
    return false;
  }
  if (!nat_.setup(cfg_.nat, qsbr_, static_cast<unsigned>(workers_.size()), error)) return false;
  if (!fw_.setup({cfg_.firewall.max_rules, cfg_.firewall.log_per_sec},
                 static_cast<unsigned>(workers_.size()), error))
    return false;

  // Enough mbufs for every descriptor, ring and per-lcore cache, or what the
  // config asks for if that is more.
  size_t nports = cfg_.ports.size() + (cfg_.exception_device ? 1 : 0);
  size_t needed = nports * workers_.size() * (kRxDesc + kTxDesc) + kPuntRing + kHandshakeRing +
                  kMaxStagedTotal + workers_.size() * kInjectRing +
                  (workers_.size() + 2) * kPoolCache + size_t{cfg_.arp.queue_per_neighbor} * 1024 +
                  4096;
  uint32_t n = static_cast<uint32_t>(std::max<size_t>(cfg_.mbufs, needed));
  pool_ = rte_pktmbuf_pool_create("mbufs", n, kPoolCache, 0, RTE_MBUF_DEFAULT_BUF_SIZE, socket);
  if (!pool_) {
    *error = "cannot create a pool of " + std::to_string(n) + " mbufs: " + rte_strerror(rte_errno) +
             " (are hugepages reserved?)";
    return false;
  }
  if (!neighbors_.init(cfg_.arp.max_neighbors, socket, error)) return false;
  if (!setup_ports(error)) return false;

  // Generation 1: the boot configuration.
  ControlState state(ports_);
  std::vector<std::pair<Change, std::string>> boot;
  for (auto& pc : cfg_.ports)
    for (auto& a : pc.addresses) {
      Change c;
      c.kind = Change::Kind::kAddress;
      c.port = pc.name;
      c.prefix = a;
      boot.emplace_back(c, "ports[" + pc.name + "]");
    }
  for (size_t i = 0; i < cfg_.routes.size(); ++i) {
    auto& r = cfg_.routes[i];
    Change c;
    c.kind = Change::Kind::kRoute;
    c.domain = r.domain;
    c.prefix = r.prefix;
    c.via = r.via;
    c.port = r.port;
    boot.emplace_back(c, "routes[" + std::to_string(i) + "]");
  }
  for (size_t i = 0; i < cfg_.neighbors.size(); ++i) {
    auto& nb = cfg_.neighbors[i];
    Change c;
    c.kind = Change::Kind::kNeighbor;
    c.port = nb.port;
    c.ip = nb.ip;
    c.mac = nb.mac;
    boot.emplace_back(c, "neighbors[" + std::to_string(i) + "]");
  }
  for (size_t i = 0; i < cfg_.nat.gateways.size(); ++i) {
    Change c;
    c.kind = Change::Kind::kNatGateway;
    c.nat_gateway = cfg_.nat.gateways[i];
    boot.emplace_back(c, "nat.gateways[" + std::to_string(i) + "]");
  }
  for (size_t i = 0; i < cfg_.nat.mappings.size(); ++i) {
    Change c;
    c.kind = Change::Kind::kNatMapping;
    c.nat_mapping = cfg_.nat.mappings[i];
    boot.emplace_back(c, "nat.mappings[" + std::to_string(i) + "]");
  }
  for (size_t i = 0; i < cfg_.nat.snat.size(); ++i) {
    Change c;
    c.kind = Change::Kind::kNatSnat;
    c.nat_snat = cfg_.nat.snat[i];
    boot.emplace_back(c, "nat.snat[" + std::to_string(i) + "]");
  }
  for (size_t i = 0; i < cfg_.firewall.zones.size(); ++i) {
    Change c;
    c.kind = Change::Kind::kFwZone;
    c.fw_zone = cfg_.firewall.zones[i];
    boot.emplace_back(c, "firewall.zones[" + std::to_string(i) + "]");
  }
  for (size_t i = 0; i < cfg_.firewall.policies.size(); ++i) {
    Change c;
    c.kind = Change::Kind::kFwPolicy;
    c.fw_policy = cfg_.firewall.policies[i];
    boot.emplace_back(c, "firewall.policies[" + std::to_string(i) + "]");
  }
  for (auto& [c, where] : boot)
    if (auto err = state.apply(c, Origin::kConfig)) {
      *error = "config " + where + ": " + *err;
      return false;
    }
  std::unique_ptr<Generation> g;
  {
    std::lock_guard wl(wg_.mutex());
    g = build_generation(state, nullptr, 1, neighbors_, error, &wg_, &nat_, &fw_);
  }
  if (!g) return false;
  {
    std::lock_guard lock(neighbors_.mutex());
    for (auto& nb : state.neighbors()) {
      uint32_t slot = neighbors_.ensure_locked(nb.port, nb.ip);
      if (slot == NeighborTable::kNoSlot) {
        *error = "neighbor table full";
        return false;
      }
      neighbors_.publish_locked(slot, nb.mac, NeighborState::kPermanent);
    }
  }
  live_ = std::move(g);
  gen_.store(live_.get(), std::memory_order_release);
  return true;
}

bool Dataplane::setup_ports(std::string* error) {
  uint16_t nw = static_cast<uint16_t>(workers_.size());
  auto setup_one = [&](const std::string& name, const std::string& dev_name, uint16_t nrx_want,
                       uint16_t ntx, uint16_t mtu, const std::optional<MacAddr>& mac,
                       PortInfo& info) -> bool {
    uint16_t pid;
    if (rte_eth_dev_get_port_by_name(dev_name.c_str(), &pid) != 0) {
      *error = "port " + name + ": device " + dev_name + " was not created by DPDK";
      return false;
    }
    rte_eth_dev_info di{};
    if (rte_eth_dev_info_get(pid, &di) != 0) {
      *error = "port " + name + ": cannot read device info";
      return false;
    }
    if (di.max_tx_queues < ntx) {
      *error = "port " + name + ": device has " + std::to_string(di.max_tx_queues) +
               " TX queue(s), needs " + std::to_string(ntx) +
               " (one per worker; for net_af_packet set qpairs=" + std::to_string(ntx) + ")";
      return false;
    }
    uint16_t nrx = std::min<uint16_t>(nrx_want, di.max_rx_queues);
    rte_eth_conf conf{};
    // Let the NIC verify IPv4 header checksums where it can: the pipeline
    // trusts RTE_MBUF_F_RX_IP_CKSUM_GOOD/BAD and sums in software otherwise.
    if (di.rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM)
      conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
    int rc = rte_eth_dev_configure(pid, nrx, ntx, &conf);
    if (rc != 0) {
      *error = "port " + name + ": configure failed: " + rte_strerror(-rc);
      return false;
    }
    uint16_t rxd = kRxDesc, txd = kTxDesc;
    rte_eth_dev_adjust_nb_rx_tx_desc(pid, &rxd, &txd);
    int socket = rte_eth_dev_socket_id(pid);
    if (socket < 0) socket = static_cast<int>(rte_socket_id());
    for (uint16_t q = 0; q < nrx; ++q)
      if ((rc = rte_eth_rx_queue_setup(pid, q, rxd, socket, nullptr, pool_)) != 0) {
        *error = "port " + name + ": RX queue setup failed: " + rte_strerror(-rc);
        return false;
      }
    for (uint16_t q = 0; q < ntx; ++q)
      if ((rc = rte_eth_tx_queue_setup(pid, q, txd, socket, nullptr)) != 0) {
        *error = "port " + name + ": TX queue setup failed: " + rte_strerror(-rc);
        return false;
      }
    if (mac) {
      rte_ether_addr a;
      std::copy(mac->bytes.begin(), mac->bytes.end(), a.addr_bytes);
      if (rte_eth_dev_default_mac_addr_set(pid, &a) != 0)
        TLOG(WARNING, "port %s: device keeps its MAC; using %s in promiscuous mode", name.c_str(),
             format_mac(*mac).c_str());
      info.mac = *mac;
    } else {
      rte_ether_addr a;
      rte_eth_macaddr_get(pid, &a);
      std::copy(a.addr_bytes, a.addr_bytes + 6, info.mac.bytes.begin());
    }
    if (rte_eth_dev_set_mtu(pid, mtu) != 0)
      TLOG(INFO, "port %s: device does not take MTU %u; enforced in software", name.c_str(), mtu);
    if ((rc = rte_eth_dev_start(pid)) != 0) {
      *error = "port " + name + ": start failed: " + rte_strerror(-rc);
      return false;
    }
    rte_eth_promiscuous_enable(pid);
    info.port_id = pid;
    info.name = name;
    info.mtu = mtu;
    TLOG(INFO, "port %s = %s (id %u): %u rx queue(s), %u tx queue(s), mac %s", name.c_str(),
         dev_name.c_str(), pid, nrx, ntx, format_mac(info.mac).c_str());
    if (nrx < nrx_want)
      TLOG(WARNING, "port %s: %u RX queue(s) for %u workers; some workers will not poll it",
           name.c_str(), nrx, nrx_want);
    return true;
  };

  unsigned rr = 0;  // spread RX queues over workers
  for (auto& pc : cfg_.ports) {
    PortInfo info;
    info.device = pc.device_name();
    info.domain = pc.domain;
    if (!setup_one(pc.name, pc.device_name(), nw, nw, pc.mtu, pc.mac, info)) return false;
    rte_eth_dev_info di{};
    rte_eth_dev_info_get(info.port_id, &di);
    uint16_t nrx = std::min<uint16_t>(nw, di.max_rx_queues);
    for (uint16_t q = 0; q < nrx; ++q) workers_[rr++ % nw]->rx_queues.emplace_back(info.port_id, q);
    ports_.push_back(info);
  }
  if (cfg_.exception_device) {
    PortInfo info;
    std::string dev = cfg_.exception_device->substr(0, cfg_.exception_device->find(','));
    info.device = dev;
    info.exception = true;
    uint16_t mtu = 1500;
    for (auto& pc : cfg_.ports) mtu = std::min(mtu, pc.mtu);
    if (!setup_one("exception", dev, 1, 1, mtu, std::nullopt, info)) return false;
    exception_port_ = info.port_id;
    ports_.push_back(info);
  }
  return true;
}

void Dataplane::publish(std::unique_ptr<Generation> g) {
  std::unique_ptr<Generation> old = std::move(live_);
  live_ = std::move(g);
  gen_.store(live_.get(), std::memory_order_release);
  // Every reader that could hold `old` passes a quiescent state before it goes.
  rte_rcu_qsbr_synchronize(qsbr_, RTE_QSBR_THRID_INVALID);
  old.reset();
  TLOG(INFO, "generation %lu published", static_cast<unsigned long>(live_->id));
  if (on_publish_) on_publish_(*live_);
}

// Established sessions follow a rewritten mapping: their reply key gets the
// new inner address (added before the old one goes, so no packet finds
// neither). New sessions already use the published generation.
uint64_t Dataplane::rekey_sessions(const std::map<uint32_t, std::pair<Ipv4, Ipv4>>& moved) {
  nat::SessionTable& table = nat_.sessions();
  std::lock_guard lock(table.writer_mutex());
  std::vector<std::pair<uint32_t, nat::FlowKey>> todo;
  table.for_each([&](uint32_t index, const nat::Session& s) {
    auto it = moved.find(s.mapping);
    if (it == moved.end() || s.reply.src != it->second.first) return;
    nat::FlowKey k = s.reply;
    k.src = it->second.second;
    todo.emplace_back(index, k);
  });
  uint64_t n = 0;
  for (auto& [index, k] : todo)
    if (table.rekey_reply(index, k)) {
      ++n;
      // Rules match the destination after DNAT, which just changed: the
      // session re-checks itself on its next packet (tag 0 is older than
      // any view's).
      table.at(index).rule_tag.store(0, std::memory_order_relaxed);
    }
  // Only this thread counts this event; the service lcore's block holds it.
  (*counters_)[service_lcore_].event(Event::nat_sessions_rekeyed, n);
  return n;
}

Dataplane::ApplyResult Dataplane::apply_changes(const std::vector<Change>& changes, Origin origin,
                                                std::optional<uint64_t> expect_generation) {
  std::lock_guard lock(control_mutex_);
  ApplyResult r;
  r.generation = live_->id;
  if (expect_generation && *expect_generation != live_->id) {
    r.code = "conflict";
    r.error = "generation is " + std::to_string(live_->id) + ", not " +
              std::to_string(*expect_generation);
    return r;
  }
  if (changes.empty()) return r;
  ControlState next = live_->state;
  // nat_rewrite changes apply together, after the batch's other changes and
  // in one pass over the mappings (re-addressing a VDC is thousands of
  // them; together, {a->b, b->a} swaps and nothing chains).
  std::vector<Change> batch_rewrites;
  std::vector<size_t> rewrite_at;
  for (size_t i = 0; i < changes.size(); ++i) {
    if (changes[i].kind == Change::Kind::kNatRewrite) {
      batch_rewrites.push_back(changes[i]);
      rewrite_at.push_back(i);
      continue;
    }
    if (auto err = next.apply(changes[i], origin)) {
      r.code = "invalid_argument";
      r.error = "change " + std::to_string(i) + ": " + *err;
      return r;
    }
  }
  if (!batch_rewrites.empty()) {
    size_t bad = 0;
    if (auto err = next.apply_nat_rewrites(batch_rewrites.data(), batch_rewrites.size(), &bad)) {
      r.code = "invalid_argument";
      r.error = "change " + std::to_string(rewrite_at[bad]) + ": " + *err;
      return r;
    }
  }
  // Static neighbors: reserve slots first so that a full table refuses the
  // whole batch before anything is published.
  const auto& before = live_->state.neighbors();
  const auto& after = next.neighbors();
  std::vector<std::pair<uint32_t, MacAddr>> to_pin;
  {
    std::lock_guard nl(neighbors_.mutex());
    for (auto& nb : after)
      if (std::find(before.begin(), before.end(), nb) == before.end()) {
        uint32_t slot = neighbors_.ensure_locked(nb.port, nb.ip);
        if (slot == NeighborTable::kNoSlot) {
          r.code = "invalid_argument";
          r.error = "neighbor table is full (" + std::to_string(cfg_.arp.max_neighbors) + ")";
          return r;
        }
        to_pin.emplace_back(slot, nb.mac);
      }
  }
  std::string err;
  // Policies compile before the WireGuard lock is taken (see precompile).
  if (!fw_.precompile(next, &live_->fw, &err)) {
    r.code = "invalid_argument";
    r.error = err;
    return r;
  }
  std::unique_lock wl(wg_.mutex());
  auto g = build_generation(next, live_.get(), live_->id + 1, neighbors_, &err, &wg_, &nat_, &fw_);
  if (!g) {
    wg_.collect(*live_, qsbr_);  // whatever the failed build created
    // A policy rte_acl cannot compile, or rules or zones beyond the limits,
    // are the request's doing; running out of memory otherwise is ours.
    bool refused = err.rfind("fw_policy ", 0) == 0 || err.rfind("firewall: ", 0) == 0;
    r.code = refused ? "invalid_argument" : "internal";
    r.error = err;
    return r;
  }
  {
    std::lock_guard nl(neighbors_.mutex());
    for (auto& nb : before)
      if (std::find(after.begin(), after.end(), nb) == after.end()) {
        uint32_t slot = neighbors_.lookup(nb.port, nb.ip);
        if (slot != NeighborTable::kNoSlot)
          neighbors_.publish_locked(slot, {}, NeighborState::kIncomplete);
      }
    for (auto& [slot, mac] : to_pin)
      neighbors_.publish_locked(slot, mac, NeighborState::kPermanent);
  }
  // Sessions of mappings a nat_rewrite moves, found before the state changes.
  std::map<uint32_t, std::pair<Ipv4, Ipv4>> moved;     // mapping id -> (from, to)
  std::map<std::pair<uint16_t, Ipv4>, Ipv4> rewrites;  // (domain, from) -> to
  for (auto& c : changes)
    if (c.kind == Change::Kind::kNatRewrite)
      rewrites[{c.nat_rewrite.domain, c.nat_rewrite.from}] = c.nat_rewrite.to;
  if (!rewrites.empty())
    for (auto& m : live_->state.nat_mappings()) {
      auto it = rewrites.find({m.e.domain, m.e.inner_addr});
      if (it != rewrites.end()) moved[nat_.id_for(m.e.name).id] = {m.e.inner_addr, it->second};
    }
  publish(std::move(g));
  // Ids of mappings the new generation no longer has are free again (after
  // publish: a failed build must not have taken them from live mappings).
  std::vector<std::string> names;
  for (auto& m : live_->state.nat_mappings()) names.push_back(m.e.name);
  nat_.forget_except(names);
  fw_.forget_except(live_->fw);
  if (!moved.empty()) r.rekeyed = rekey_sessions(moved);
  // Peers and interfaces the new generation dropped stop now: their keys
  // leave the index table, and their memory goes after a grace period.
  wg_.collect(*live_, qsbr_);
  for (rte_mbuf* m : wg_.take_orphans()) rte_pktmbuf_free(m);
  r.generation = live_->id;
  return r;
}

int64_t Dataplane::run() {
  for (auto& w : workers_) {
    int rc = rte_eal_remote_launch(worker_main, w.get(), w->lcore);
    if (rc != 0) {
      TLOG(ERR, "cannot launch worker on lcore %u: %s", w->lcore, rte_strerror(-rc));
      stop();
    }
  }
  {
    Service service(*this);
    service.run();
  }
  rte_eal_mp_wait_lcore();
  return 0;
}

int64_t Dataplane::shutdown() {
  // Nothing runs any more but this thread: hand every held mbuf back. Also
  // called after a failed setup(), so anything may be missing; safe twice.
  if (shut_down_ || !counters_) return 0;
  shut_down_ = true;
  LcoreCounters& c = (*counters_)[service_lcore_];
  void* m;
  while (punt_ && rte_ring_dequeue(punt_, &m) == 0) {
    c.drop(Drop::shutdown);
    rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
  }
  while (handshake_ && rte_ring_dequeue(handshake_, &m) == 0) {
    c.drop(Drop::shutdown);
    rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
  }
  {
    std::lock_guard wl(wg_.mutex());
    c.drop(Drop::shutdown, wg_.clear());
  }
  for (auto& w : workers_)
    while (rte_ring_dequeue(w->inject, &m) == 0) {
      c.drop(Drop::shutdown);
      rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    }
  {
    std::lock_guard lock(neighbors_.mutex());
    for (uint32_t s = 0; s < neighbors_.used(); ++s) {
      auto& waiting = neighbors_.meta_locked(s).waiting;
      for (auto* pkt : waiting) {
        c.drop(Drop::shutdown);
        rte_pktmbuf_free(pkt);
      }
      waiting.clear();
    }
  }
  for (auto& p : ports_) {
    rte_eth_dev_stop(p.port_id);
    rte_eth_dev_close(p.port_id);
  }
  if (!pool_) return 0;
  unsigned avail = rte_mempool_avail_count(pool_);
  int64_t missing = static_cast<int64_t>(pool_->size) - avail;
  TLOG(INFO, "shutdown: %u of %u mbufs back in the pool", avail, pool_->size);
  return missing;
}

}  // namespace tether::dp
