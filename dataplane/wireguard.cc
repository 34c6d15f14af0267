#include "dataplane/wireguard.h"

#include <algorithm>

#include "dataplane/tables.h"
#include "tunnel/format.h"

namespace tether::dp {

// --- WgIndexTable ---

WgIndexTable::WgIndexTable() : slots_(new Slot[kSlots]) {
  free_.reserve(kSlots - 1);
  for (uint32_t s = kSlots - 1; s >= 1; --s) free_.push_back(s);  // slot 0 unused: index 0 = none
}

WgPeer* WgIndexTable::peer(uint32_t index) const {
  const Slot& s = slots_[index & (kSlots - 1)];
  return s.index.load(std::memory_order_relaxed) == index ? s.peer : nullptr;
}

uint32_t WgIndexTable::allocate(WgPeer* peer) {
  if (free_.empty()) return 0;
  // Random high bits, as WireGuard's random indices: a stale or guessed
  // index rarely matches a reused slot.
  uint32_t high;
  wg::random_bytes(&high, sizeof high);
  uint32_t slot = free_.back();
  free_.pop_back();
  uint32_t index = (high << kSlotBits) | slot;
  Slot& s = slots_[slot];
  s.peer = peer;
  s.keypair.store(nullptr, std::memory_order_relaxed);
  s.index.store(index, std::memory_order_release);
  return index;
}

void WgIndexTable::attach(uint32_t index, WgKeypair* kp) {
  Slot& s = slots_[index & (kSlots - 1)];
  if (s.index.load(std::memory_order_relaxed) == index)
    s.keypair.store(kp, std::memory_order_release);
}

void WgIndexTable::release(uint32_t index) {
  uint32_t slot = index & (kSlots - 1);
  Slot& s = slots_[slot];
  if (index == 0 || s.index.load(std::memory_order_relaxed) != index) return;
  s.index.store(0, std::memory_order_release);
  s.keypair.store(nullptr, std::memory_order_release);
  s.peer = nullptr;
  free_.push_back(slot);
}

// --- WgRuntime ---

WgRuntime::WgRuntime() = default;
WgRuntime::~WgRuntime() { clear(); }

namespace {

std::string iface_key(const WgInterfaceEntry& e, uint16_t port) {
  return e.name + "|" + wg::key_to_base64(e.private_key) + "|" + std::to_string(e.address) + "|" +
         std::to_string(e.listen_port) + "|" + std::to_string(e.mtu) + "|" + std::to_string(port);
}

std::string peer_key(const WgPeerEntry& e, const WgInterface* iface) {
  return std::to_string(reinterpret_cast<uintptr_t>(iface)) + "|" +
         wg::key_to_base64(e.public_key) + "|" +
         (e.has_psk ? wg::key_to_base64(e.preshared_key) : std::string{}) + "|" +
         std::to_string(e.domain);
}

void free_keypair(WgKeypair* kp) {
  wg::secure_zero(kp->send);
  wg::secure_zero(kp->receive);
  delete kp;
}

void free_peer(WgPeer* p) {
  wg::secure_zero(p->keys);
  p->handshake.clear();
  if (p->cookie_maker) p->cookie_maker->clear();
  delete p;
}

void free_iface(WgInterface* w) {
  wg::secure_zero(w->identity);
  delete w;
}

}  // namespace

WgInterface* WgRuntime::interface_for(const WgInterfaceEntry& e, uint16_t port, uint16_t domain,
                                      std::string* error) {
  std::string key = iface_key(e, port);
  auto it = ifaces_.find(key);
  if (it != ifaces_.end()) return it->second.get();
  auto w = std::make_unique<WgInterface>();
  if (!wg::Identity::from_private(e.private_key, &w->identity)) {
    *error = "wg_interface " + e.name + ": unusable private key";
    return nullptr;
  }
  w->id = next_iface_id_++;
  w->name = e.name;
  w->cookies = std::make_unique<wg::CookieChecker>(w->identity);
  w->address = e.address;
  w->listen_port = e.listen_port;
  w->port = port;
  w->domain = domain;
  w->mtu = e.mtu;
  WgInterface* raw = w.get();
  ifaces_[key] = std::move(w);
  return raw;
}

WgPeer* WgRuntime::peer_for(const WgPeerEntry& e, WgInterface* iface, std::string* error) {
  std::string key = peer_key(e, iface);
  auto it = peers_.find(key);
  WgPeer* p;
  if (it != peers_.end()) {
    p = it->second.get();
  } else {
    auto np = std::make_unique<WgPeer>();
    if (!wg::PeerKeys::make(iface->identity, e.public_key, e.preshared_key, &np->keys)) {
      *error = "wg_peer " + wg::key_to_base64(e.public_key) + ": unusable public key";
      return nullptr;
    }
    if (free_ids_.empty()) {
      np->id = static_cast<uint32_t>(peers_by_id_.size());
      peers_by_id_.push_back(nullptr);
    } else {
      np->id = free_ids_.back();
      free_ids_.pop_back();
    }
    np->iface = iface;
    np->domain = e.domain;
    np->has_psk = e.has_psk;
    np->cookie_maker = std::make_unique<wg::CookieMaker>(np->keys);
    uint32_t seed;
    wg::random_bytes(&seed, sizeof seed);
    np->timers = std::make_unique<wg::PeerTimers>(&timer_cfg_, seed);
    p = np.get();
    peers_by_id_[p->id] = p;
    peers_[key] = std::move(np);
  }
  // What the API may change without touching the session.
  if (e.endpoint && e.endpoint != p->configured_endpoint) {
    p->endpoint.store(e.endpoint, std::memory_order_relaxed);
    p->configured_endpoint = e.endpoint;
  }
  p->persistent_keepalive_s.store(e.persistent_keepalive, std::memory_order_relaxed);
  p->timers->set_persistent_keepalive(e.persistent_keepalive);
  return p;
}

void WgRuntime::drop_peer_keys(WgPeer* p, std::vector<WgKeypair*>& out) {
  for (auto* slot : {&p->current, &p->previous, &p->next}) {
    WgKeypair* kp = slot->exchange(nullptr, std::memory_order_acq_rel);
    if (!kp) continue;
    indices_.release(kp->local_index);
    out.push_back(kp);
  }
  if (p->handshake_pending) indices_.release(p->handshake.local_index);
  p->handshake_pending = false;
  p->handshake.clear();
}

void WgRuntime::collect(const Generation& live, rte_rcu_qsbr* qsbr) {
  std::vector<WgKeypair*> kps;
  std::vector<WgPeer*> dead_peers;
  std::vector<WgInterface*> dead_ifaces;
  for (auto it = peers_.begin(); it != peers_.end();) {
    WgPeer* p = it->second.get();
    if (live.wg_peer_live(p, p->id)) {
      ++it;
      continue;
    }
    p->dead = true;
    drop_peer_keys(p, kps);
    for (rte_mbuf* m : p->staged) orphans_.push_back(m);
    staged_total -= static_cast<unsigned>(p->staged.size());
    p->staged.clear();
    peers_by_id_[p->id] = nullptr;
    free_ids_.push_back(p->id);
    dead_peers.push_back(it->second.release());
    it = peers_.erase(it);
  }
  for (auto it = ifaces_.begin(); it != ifaces_.end();) {
    WgInterface* w = it->second.get();
    bool used = w->id < live.wg_interfaces.size() && live.wg_interfaces[w->id] == w;
    if (used) {
      ++it;
      continue;
    }
    dead_ifaces.push_back(it->second.release());
    it = ifaces_.erase(it);
  }
  if (!kps.empty() || !dead_peers.empty() || !dead_ifaces.empty())
    defer(qsbr, std::move(kps), std::move(dead_peers), std::move(dead_ifaces));
  reclaim(qsbr);
}

void WgRuntime::retire(WgKeypair* kp, rte_rcu_qsbr* qsbr) {
  if (!kp) return;
  indices_.release(kp->local_index);
  defer(qsbr, {kp}, {}, {});
}

void WgRuntime::defer(rte_rcu_qsbr* qsbr, std::vector<WgKeypair*> kps, std::vector<WgPeer*> peers,
                      std::vector<WgInterface*> ifaces) {
  deferred_.push_back(
      {rte_rcu_qsbr_start(qsbr), std::move(kps), std::move(peers), std::move(ifaces)});
}

void WgRuntime::reclaim(rte_rcu_qsbr* qsbr) {
  auto done = [&](Deferred& d) {
    if (rte_rcu_qsbr_check(qsbr, d.token, false) != 1) return false;
    for (auto* kp : d.keypairs) free_keypair(kp);
    for (auto* p : d.peers) free_peer(p);
    for (auto* w : d.ifaces) free_iface(w);
    return true;
  };
  deferred_.erase(std::remove_if(deferred_.begin(), deferred_.end(), done), deferred_.end());
}

std::vector<rte_mbuf*> WgRuntime::take_orphans() {
  std::vector<rte_mbuf*> out;
  out.swap(orphans_);
  return out;
}

unsigned WgRuntime::clear() {
  unsigned freed = 0;
  for (auto& d : deferred_) {
    for (auto* kp : d.keypairs) free_keypair(kp);
    for (auto* p : d.peers) free_peer(p);
    for (auto* w : d.ifaces) free_iface(w);
  }
  deferred_.clear();
  for (auto& [key, p] : peers_) {
    std::vector<WgKeypair*> kps;
    drop_peer_keys(p.get(), kps);
    for (auto* kp : kps) free_keypair(kp);
    for (rte_mbuf* m : p->staged) {
      rte_pktmbuf_free(m);
      ++freed;
    }
    p->staged.clear();
    free_peer(p.release());
  }
  peers_.clear();
  peers_by_id_.clear();
  free_ids_.clear();
  for (auto& [key, w] : ifaces_) free_iface(w.release());
  ifaces_.clear();
  for (rte_mbuf* m : orphans_) {
    rte_pktmbuf_free(m);
    ++freed;
  }
  orphans_.clear();
  staged_total = 0;
  return freed;
}

}  // namespace tether::dp
