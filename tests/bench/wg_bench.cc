// WireGuard benchmarks of the dataplane (tests/bench/README.md, "wg"), each
// beside a reference measured in the same process, alternating in rounds:
//
//   wg-encap-SIZE   Gbps of inner IPv4 packets of SIZE bytes encrypted by the
//                   worker pipeline (forward_burst: parse, route to the peer's
//                   allowed prefix, wg_encap, outer neighbor, TX) beside raw
//                   OpenSSL ChaCha20-Poly1305 sealing SIZE bytes.
//   wg-decap-SIZE   the same for data messages decrypted by the pipeline
//                   (wg_decap, cryptokey routing, inner route, TX) beside raw
//                   OpenSSL opening SIZE bytes.
//   wg-handshake    handshakes completed per second (initiation through the
//                   pipeline into the handshake ring, Service::poll_once
//                   consuming it, response out through the inject ring) beside
//                   raw X25519 (EVP_PKEY_derive with a fixed peer key).
//
// One real Dataplane with two net_null ports (uplink 10.1.0.1/24, lan
// 10.2.0.1/24, static neighbors), a WireGuard interface on 10.1.0.1:51820,
// a peer (allowed 192.168.50.0/24, endpoint 10.1.0.2:51820) and PEERS more
// for handshakes. No worker lcore is launched: the main lcore plays worker 0
// (forward_burst on bursts it builds, then what worker_main does after RX)
// and the service thread (Service::poll_once), and is both RCU readers. The
// remote peers are played with tunnel/ (noise, cookie, crypto). Packets are
// built before each timed batch (the device's part); only the pipeline,
// including TX into net_null (which frees), is timed.
//
// Usage: wg_bench --figures a,b --warmup S --seconds S --rounds 1,1,1
//                 --main-lcore M --other-lcore O [--peers N] -- EAL-ARGS...
// Prints one JSON line per figure with every sample of both sides, and a
// last line {"exit": ...}; tests/bench/benchmarks/wg.py makes the figures.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <rte_byteorder.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_udp.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "dataplane/config.h"
#include "dataplane/dataplane.h"
#include "dataplane/packet.h"
#include "dataplane/service.h"
#include "dataplane/worker.h"
#include "tests/bench/harness.h"
#include "tunnel/cookie.h"
#include "tunnel/crypto.h"
#include "tunnel/messages.h"
#include "tunnel/noise.h"

namespace {

using namespace tether;
using namespace tether::bench;
using namespace tether::dp;

constexpr Ipv4 kUplinkAddr = ip4(10, 1, 0, 1);
constexpr Ipv4 kEndpoint = ip4(10, 1, 0, 2);  // the remote peers' outer address
constexpr Ipv4 kHost = ip4(10, 2, 0, 2);      // inner host behind the lan port
constexpr Ipv4 kRemoteHost = ip4(192, 168, 50, 2);
constexpr uint16_t kWgPort = 51820;
constexpr rte_ether_addr kUplinkMac = {{2, 0, 0, 0, 1, 1}};
constexpr rte_ether_addr kEndpointMac = {{2, 0, 0, 0, 1, 2}};
constexpr rte_ether_addr kLanMac = {{2, 0, 0, 0, 2, 1}};
constexpr rte_ether_addr kHostMac = {{2, 0, 0, 0, 2, 2}};
constexpr uint16_t kEth = sizeof(rte_ether_hdr);
constexpr uint16_t kIpUdp = sizeof(rte_ipv4_hdr) + sizeof(rte_udp_hdr);
constexpr uint16_t kInnerMtu = 1420;
constexpr unsigned kMaxBatch = 4096;
constexpr unsigned kVerify = 16;  // packets decrypted and compared per check (< kBurst)
constexpr unsigned kHandshakeBurst = 32;
constexpr unsigned kX25519Batch = 64;

struct Options {
  std::vector<std::string> figures;
  double warmup = 1.0;
  double seconds = 2.0;
  std::vector<unsigned> rounds{1};
  unsigned main_lcore = 1;
  unsigned other_lcore = 0;
  unsigned peers = 1024;
  // Packets built, then timed, per step (a multiple of kBurst); the reference
  // cycles through as many buffers. 256 = the pool's per-lcore cache, so the
  // same mbufs come back, as they do to a worker that receives and sends.
  unsigned batch = 256;
  std::vector<std::string> eal;
};

// --- packets ---

// Ethernet + IPv4 + UDP headers carrying `payload_len` bytes, checksum set
// (UDP checksum 0, as WireGuard sends).
void write_headers(uint8_t* frame, const rte_ether_addr& dst, const rte_ether_addr& src, Ipv4 sip,
                   Ipv4 dip, uint16_t sport, uint16_t dport, uint16_t payload_len,
                   bool df = false) {
  auto* eth = reinterpret_cast<rte_ether_hdr*>(frame);
  eth->dst_addr = dst;
  eth->src_addr = src;
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  ip->version_ihl = 0x45;
  ip->type_of_service = 0;
  ip->total_length = rte_cpu_to_be_16(static_cast<uint16_t>(kIpUdp + payload_len));
  ip->packet_id = 0;
  ip->fragment_offset = df ? rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG) : 0;
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_UDP;
  ip->src_addr = rte_cpu_to_be_32(sip);
  ip->dst_addr = rte_cpu_to_be_32(dip);
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  udp->src_port = rte_cpu_to_be_16(sport);
  udp->dst_port = rte_cpu_to_be_16(dport);
  udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(sizeof(rte_udp_hdr) + payload_len));
  udp->dgram_cksum = 0;
}

// An inner IPv4/UDP packet of exactly `len` bytes (total length), behind an
// Ethernet header addressed to `dst`; UDP checksum real.
std::vector<uint8_t> inner_frame(const rte_ether_addr& dst, const rte_ether_addr& src, Ipv4 sip,
                                 Ipv4 dip, uint16_t len) {
  std::vector<uint8_t> f(kEth + len);
  uint16_t payload = static_cast<uint16_t>(len - kIpUdp);
  for (uint16_t i = 0; i < payload; ++i) f[kEth + kIpUdp + i] = static_cast<uint8_t>(i * 7 + 1);
  write_headers(f.data(), dst, src, sip, dip, 1024, 9, payload, /*df=*/true);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(f.data() + kEth);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
  return f;
}

// What a router makes of `ip_packet` (IPv4 bytes): TTL one less, checksum redone.
std::vector<uint8_t> forwarded(const uint8_t* ip_packet, size_t len) {
  std::vector<uint8_t> v(ip_packet, ip_packet + len);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(v.data());
  ip->time_to_live--;
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  return v;
}

// WireGuard pads the plaintext to 16, but not beyond the interface MTU (§5.4.6).
uint16_t padded_len(uint16_t inner) {
  uint16_t p = static_cast<uint16_t>((inner + 15u) & ~15u);
  return p > kInnerMtu ? std::max(inner, kInnerMtu) : p;
}

// --- raw OpenSSL: the references ---

class RawChaCha {
 public:
  RawChaCha() {
    cipher_ = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
    ctx_ = EVP_CIPHER_CTX_new();
    if (!cipher_ || !ctx_ || EVP_CipherInit_ex2(ctx_, cipher_, nullptr, nullptr, 1, nullptr) != 1)
      throw std::runtime_error("OpenSSL ChaCha20-Poly1305 unavailable");
    wg::random_bytes(key_.data(), key_.size());
  }
  ~RawChaCha() {
    EVP_CIPHER_CTX_free(ctx_);
    EVP_CIPHER_free(cipher_);
  }
  // In place: buf holds len bytes, gets ciphertext then the 16-byte tag.
  bool seal(uint64_t counter, uint8_t* buf, int len) {
    uint8_t nonce[12] = {};
    std::memcpy(nonce + 4, &counter, 8);
    int n = 0;
    uint8_t none[16];
    return EVP_CipherInit_ex2(ctx_, nullptr, key_.data(), nonce, 1, nullptr) == 1 &&
           EVP_CipherUpdate(ctx_, buf, &n, buf, len) == 1 &&
           EVP_CipherFinal_ex(ctx_, none, &n) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, 16, buf + len) == 1;
  }
  bool open(uint64_t counter, uint8_t* buf, int len) {
    uint8_t nonce[12] = {};
    std::memcpy(nonce + 4, &counter, 8);
    int n = 0;
    uint8_t none[16];
    return EVP_CipherInit_ex2(ctx_, nullptr, key_.data(), nonce, 0, nullptr) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, 16, buf + len) == 1 &&
           EVP_CipherUpdate(ctx_, buf, &n, buf, len) == 1 &&
           EVP_CipherFinal_ex(ctx_, none, &n) == 1;
  }

 private:
  EVP_CIPHER* cipher_ = nullptr;
  EVP_CIPHER_CTX* ctx_ = nullptr;
  wg::Key key_{};
};

class RawX25519 {
 public:
  RawX25519() {
    wg::Key priv = wg::x25519_generate(), other = wg::x25519_generate(), pub;
    if (!wg::x25519_public(other, &pub)) throw std::runtime_error("x25519_public");
    mine_ = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, priv.data(), priv.size());
    peer_ = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, pub.data(), pub.size());
    ctx_ = mine_ ? EVP_PKEY_CTX_new_from_pkey(nullptr, mine_, nullptr) : nullptr;
    if (!peer_ || !ctx_ || EVP_PKEY_derive_init(ctx_) != 1 ||
        EVP_PKEY_derive_set_peer_ex(ctx_, peer_, 0) != 1)
      throw std::runtime_error("OpenSSL X25519 unavailable");
  }
  ~RawX25519() {
    EVP_PKEY_CTX_free(ctx_);
    EVP_PKEY_free(peer_);
    EVP_PKEY_free(mine_);
  }
  bool derive(uint8_t out[32]) {
    size_t n = 32;
    return EVP_PKEY_derive(ctx_, out, &n) == 1 && n == 32;
  }

 private:
  EVP_PKEY* mine_ = nullptr;
  EVP_PKEY* peer_ = nullptr;
  EVP_PKEY_CTX* ctx_ = nullptr;
};

// --- measuring ---

// A remote WireGuard peer we play.
struct Remote {
  wg::Identity id;
  wg::PeerKeys keys;  // its view of our interface
  std::unique_ptr<wg::CookieMaker> cookies;
};

// A session from the remote's side after a handshake.
struct Session {
  wg::SessionKeys keys;  // send = what the dataplane receives with
  uint64_t next_counter = 0;
};

struct CounterDelta {
  std::vector<std::string> problems;
};

class Bench {
 public:
  explicit Bench(const Options& o) : opt_(o) {}
  ~Bench() = default;

  void setup();
  std::string run_figure(const std::string& name);
  int64_t teardown();

 private:
  // What worker_main does with one received burst, and after it.
  void push(uint16_t port, rte_mbuf** pkts, uint16_t n) {
    w_->counters->rx_packets += n;
    forward_burst(*dp_, *w_, *dp_->current(), port, pkts, n);
  }
  void worker_tail() {  // the rest of worker_main's loop
    worker_after_rx(*dp_, *w_, *dp_->current());
    rte_rcu_qsbr_quiescent(qsbr_, w_->index);
  }
  void service_poll() {
    svc_->poll_once();
    rte_rcu_qsbr_quiescent(qsbr_, dp_->service_rcu_id());
  }
  rte_mbuf* alloc() {
    rte_mbuf* m = rte_pktmbuf_alloc(dp_->pool());
    if (!m) throw std::runtime_error("mbuf pool empty");
    return m;
  }
  // A UDP datagram from the remote peers' endpoint to our listen port.
  void to_listen(rte_mbuf* m, const void* msg, uint16_t len) {
    auto* f = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, kEth + kIpUdp + len));
    write_headers(f, kUplinkMac, kEndpointMac, kEndpoint, kUplinkAddr, kWgPort, kWgPort, len);
    std::memcpy(f + kEth + kIpUdp, msg, len);
  }
  void make_remote(Remote* r);
  WgPeer* live_peer(const wg::Key& public_key);
  Session establish(Remote& r);
  // The remote's data message carrying `plain` (already padded), counter s.next_counter++.
  void data_message(rte_mbuf* m, Session& s, const uint8_t* plain, uint16_t len);
  std::vector<std::string> counter_problems(const LcoreCounters& w0, const LcoreCounters& s0,
                                            uint64_t pushed, bool expect_tx_equal) const;
  std::string encap_figure(const std::string& name, uint16_t size);
  std::string decap_figure(const std::string& name, uint16_t size);
  std::string data_figure(const std::string& name, uint16_t size, uint16_t port,
                          const std::function<void(rte_mbuf*)>& fill,
                          const std::function<Timed()>& ref_step,
                          const std::function<void()>& check, const LcoreCounters& w0,
                          const LcoreCounters& s0, std::vector<std::string> warnings);
  std::string handshake_figure(const std::string& name);
  std::string report(const std::string& name, const std::vector<Sample>& ours,
                     const std::vector<Sample>& ref, const std::vector<std::string>& warnings,
                     const std::string& extra);
  void rounds(const std::function<Timed()>& ref_step, const std::function<Timed()>& our_step,
              std::vector<Sample>* ref, std::vector<Sample>* ours,
              const std::function<void()>& after_sample);

  Options opt_;
  std::unique_ptr<Dataplane> dp_;
  std::unique_ptr<Service> svc_;
  Worker* w_ = nullptr;
  rte_rcu_qsbr* qsbr_ = nullptr;
  uint16_t uplink_ = 0, lan_ = 0;
  wg::Identity iface_;
  Remote remote_;                 // the peer with allowed 192.168.50.0/24
  std::vector<Remote> hs_peers_;  // handshake figure: one initiation each per pass
  uint32_t next_index_ = 1;       // the remotes' sender indices
  uint64_t ts_base_ns_ = 0;       // TAI64N of initiations: base + a counter, always growing
  uint64_t ts_seq_ = 0;
};

void Bench::make_remote(Remote* r) {
  if (!wg::Identity::from_private(wg::x25519_generate(), &r->id) ||
      !wg::PeerKeys::make(r->id, iface_.public_key, wg::Key{}, &r->keys))
    throw std::runtime_error("cannot make a remote identity");
  r->cookies = std::make_unique<wg::CookieMaker>(r->keys);
}

void Bench::setup() {
  std::string json = fmt(
      R"({"lcores": {"service": %u, "workers": [%u]},
  "ports": [
    {"name": "uplink", "device": "net_null_wgb0", "addresses": ["10.1.0.1/24"],
     "mac": "02:00:00:00:01:01"},
    {"name": "lan", "device": "net_null_wgb1", "addresses": ["10.2.0.1/24"],
     "mac": "02:00:00:00:02:01"}],
  "neighbors": [{"port": "uplink", "ip": "10.1.0.2", "mac": "02:00:00:00:01:02"},
                {"port": "lan", "ip": "10.2.0.2", "mac": "02:00:00:00:02:02"}],
  "wireguard": {"under_load_per_sec": 10000000}})",
      opt_.main_lcore, opt_.other_lcore);
  std::string err;
  auto cfg = parse_config(json, &err);
  if (!cfg) throw std::runtime_error("config: " + err);
  dp_ = std::make_unique<Dataplane>(*cfg);
  if (!dp_->setup(&err)) throw std::runtime_error("setup: " + err);
  uplink_ = dp_->ports()[0].port_id;
  lan_ = dp_->ports()[1].port_id;
  w_ = dp_->workers()[0].get();
  qsbr_ = dp_->qsbr();

  // Our interface, the data peer and the handshake peers, in one generation.
  wg::Key priv = wg::x25519_generate();
  if (!wg::Identity::from_private(priv, &iface_)) throw std::runtime_error("interface key");
  make_remote(&remote_);
  hs_peers_.resize(opt_.peers);
  for (auto& r : hs_peers_) make_remote(&r);
  std::vector<Change> changes;
  Change ci;
  ci.kind = Change::Kind::kWgInterface;
  ci.wg_interface.name = "wg0";
  ci.wg_interface.private_key = priv;
  ci.wg_interface.address = kUplinkAddr;
  ci.wg_interface.listen_port = kWgPort;
  ci.wg_interface.mtu = kInnerMtu;
  changes.push_back(ci);
  auto peer_change = [](const Remote& r) {
    Change c;
    c.kind = Change::Kind::kWgPeer;
    c.wg_peer.interface = "wg0";
    c.wg_peer.public_key = r.id.public_key;
    return c;
  };
  Change cp = peer_change(remote_);
  cp.wg_peer.endpoint = WgPeer::pack_endpoint(kEndpoint, kWgPort);
  cp.wg_peer.allowed = {Ipv4Prefix{ip4(192, 168, 50, 0), 24}};
  changes.push_back(cp);
  for (auto& r : hs_peers_) changes.push_back(peer_change(r));
  auto res = dp_->apply_changes(changes, Origin::kApi, std::nullopt);
  if (!res.error.empty()) throw std::runtime_error("apply_changes: " + res.error);

  // From here this thread is worker 0 and the service: both RCU readers
  // (apply_changes above waited for readers, so it had to come first).
  svc_ = std::make_unique<Service>(*dp_);
  for (unsigned id : {w_->index, dp_->service_rcu_id()}) {
    rte_rcu_qsbr_thread_register(qsbr_, id);
    rte_rcu_qsbr_thread_online(qsbr_, id);
  }
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  ts_base_ns_ = uint64_t(ts.tv_sec) * 1000000000ULL + uint64_t(ts.tv_nsec);
}

int64_t Bench::teardown() {
  flush_tx(*w_);
  svc_.reset();
  for (unsigned id : {w_->index, dp_->service_rcu_id()}) {
    rte_rcu_qsbr_thread_offline(qsbr_, id);
    rte_rcu_qsbr_thread_unregister(qsbr_, id);
  }
  int64_t missing = dp_->shutdown();
  dp_.reset();
  return missing;
}

WgPeer* Bench::live_peer(const wg::Key& public_key) {
  for (WgPeer* p : dp_->current()->wg_peers)
    if (p && p->keys.public_key == public_key) return p;
  throw std::runtime_error("peer not in the generation");
}

void Bench::data_message(rte_mbuf* m, Session& s, const uint8_t* plain, uint16_t len) {
  uint16_t msg = static_cast<uint16_t>(wg::kDataOverhead + len);
  auto* f = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, kEth + kIpUdp + msg));
  write_headers(f, kUplinkMac, kEndpointMac, kEndpoint, kUplinkAddr, kWgPort, kWgPort, msg);
  auto* hdr = reinterpret_cast<wg::MessageDataHeader*>(f + kEth + kIpUdp);
  uint64_t ctr = s.next_counter++;
  uint32_t word = rte_cpu_to_le_32(wg::kData);
  std::memcpy(hdr, &word, 4);
  hdr->receiver_index = rte_cpu_to_le_32(s.keys.remote_index);
  hdr->counter = rte_cpu_to_le_64(ctr);
  if (!wg::aead_seal(s.keys.send, ctr, {}, plain, len, reinterpret_cast<uint8_t*>(hdr + 1)))
    throw std::runtime_error("remote seal failed");
}

Session Bench::establish(Remote& r) {
  const double hz = static_cast<double>(rte_get_tsc_hz());
  uint32_t index = next_index_++;
  wg::MessageInitiation init;
  wg::HandshakeState hs;
  if (!wg::create_initiation(r.id, r.keys, index, wg::tai64n(ts_base_ns_ + ++ts_seq_), &init, &hs))
    throw std::runtime_error("create_initiation");
  r.cookies->add_macs(reinterpret_cast<uint8_t*>(&init), sizeof init, dp_->now_ms());
  rte_mbuf* m = alloc();
  to_listen(m, &init, sizeof init);
  push(uplink_, &m, 1);
  worker_tail();

  // The response comes out of the service into the worker's inject ring.
  wg::MessageResponse resp{};
  bool got = false;
  for (uint64_t end = rte_rdtsc() + uint64_t(2 * hz); !got && rte_rdtsc() < end;) {
    service_poll();
    void* p;
    while (rte_ring_sc_dequeue(w_->inject, &p) == 0) {
      auto* o = static_cast<rte_mbuf*>(p);
      const uint8_t* msg = rte_pktmbuf_mtod_offset(o, const uint8_t*, kEth + kIpUdp);
      if (!got && rte_pktmbuf_data_len(o) == kEth + kIpUdp + sizeof resp &&
          msg[0] == wg::kResponse) {
        std::memcpy(&resp, msg, sizeof resp);
        got = rte_le_to_cpu_32(resp.receiver_index) == index;
      }
      rte_pktmbuf_free(o);  // also whatever else the service sent (keepalives, initiations)
    }
  }
  if (!got) throw std::runtime_error("no handshake response");
  if (!wg::consume_response(r.id, r.keys, resp, &hs))
    throw std::runtime_error("the dataplane's handshake response does not authenticate");
  Session s;
  s.keys = wg::derive_keys(&hs, /*initiator=*/true);

  // The responder's keys become current once the initiator used them (§6.5
  // rotation): confirm with a keepalive, then let the service's timers run.
  m = alloc();
  data_message(m, s, nullptr, 0);
  push(uplink_, &m, 1);
  worker_tail();
  WgPeer* p = live_peer(r.id.public_key);
  for (uint64_t end = rte_rdtsc() + uint64_t(2 * hz);;) {
    service_poll();
    void* x;
    while (rte_ring_sc_dequeue(w_->inject, &x) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(x));
    WgKeypair* kp = p->current.load(std::memory_order_acquire);
    if (kp && kp->local_index == s.keys.remote_index) {
      if (kp->receive != s.keys.send || kp->send != s.keys.receive)
        throw std::runtime_error("session keys differ between the two sides");
      break;
    }
    if (rte_rdtsc() > end) throw std::runtime_error("the new session did not become current");
  }
  return s;
}

std::vector<std::string> Bench::counter_problems(const LcoreCounters& w0, const LcoreCounters& s0,
                                                 uint64_t pushed, bool expect_tx_equal) const {
  std::vector<std::string> out;
  const LcoreCounters& w1 = *w_->counters;
  const LcoreCounters& s1 = dp_->counters()[rte_lcore_id()];
  for (size_t d = 0; d < kNumDrops; ++d) {
    uint64_t n = (w1.drops[d] - w0.drops[d]) + (s1.drops[d] - s0.drops[d]);
    if (n) out.push_back(fmt("drops %s=%lu", std::string(kDropNames[d]).c_str(), n));
  }
  for (size_t e = 0; e < kNumEvents; ++e) {
    std::string_view name = kEventNames[e];
    uint64_t n = w1.events[e] - w0.events[e];
    if (n && (name.starts_with("punted") || name == "wg_staged"))
      out.push_back(fmt("events %s=%lu", std::string(name).c_str(), n));
  }
  uint64_t cookies = s1.events[size_t(Event::wg_cookie_replies_sent)] -
                     s0.events[size_t(Event::wg_cookie_replies_sent)];
  if (cookies) out.push_back(fmt("cookie replies %lu", cookies));
  uint64_t tx = w1.tx_packets - w0.tx_packets;
  if (expect_tx_equal && tx != pushed)
    out.push_back(fmt("pushed %lu packets, worker sent %lu", pushed, tx));
  return out;
}

void Bench::rounds(const std::function<Timed()>& ref_step, const std::function<Timed()>& our_step,
                   std::vector<Sample>* ref, std::vector<Sample>* ours,
                   const std::function<void()>& after_sample) {
  for (unsigned n : opt_.rounds) {
    measure(opt_.warmup, ref_step);
    for (unsigned i = 0; i < n; ++i) ref->push_back(measure(opt_.seconds, ref_step));
    measure(opt_.warmup, our_step);
    for (unsigned i = 0; i < n; ++i) {
      ours->push_back(measure(opt_.seconds, our_step));
      if (after_sample) after_sample();
    }
  }
}

std::string Bench::report(const std::string& name, const std::vector<Sample>& ours,
                          const std::vector<Sample>& ref, const std::vector<std::string>& warnings,
                          const std::string& extra) {
  auto list = [](const std::vector<Sample>& v, bool share) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i)
      s += (i ? ", " : "") + fmt("%.6g", share ? v[i].cpu_share : v[i].rate);
    return s + "]";
  };
  std::string w = "[";
  for (size_t i = 0; i < warnings.size(); ++i) {
    std::string esc;
    for (char c : warnings[i])
      esc += c == '"' || c == '\\' ? std::string("\\") + c : std::string(1, c);
    w += (i ? ", \"" : "\"") + esc + "\"";
  }
  w += "]";
  return "{\"figure\": \"" + name + "\", \"value_samples\": " + list(ours, false) +
         ", \"ref_samples\": " + list(ref, false) + ", \"cpu_shares\": " + list(ours, true) +
         ", \"ref_cpu_shares\": " + list(ref, true) + ", \"warnings\": " + w +
         ", \"lcore\": " + std::to_string(rte_lcore_id()) + ", \"openssl\": \"" +
         OpenSSL_version(OPENSSL_VERSION) + "\"" + extra + "}";
}

// The timed half of an encap or decap figure: batches of `fill`ed mbufs
// pushed through the pipeline on `port` beside `ref_step`, then the counters
// and the output checked again.
std::string Bench::data_figure(const std::string& name, uint16_t size, uint16_t port,
                               const std::function<void(rte_mbuf*)>& fill,
                               const std::function<Timed()>& ref_step,
                               const std::function<void()>& check, const LcoreCounters& w0,
                               const LcoreCounters& s0, std::vector<std::string> warnings) {
  uint64_t pushed = 0;
  auto our_step = [&]() -> Timed {
    const unsigned batch = opt_.batch;
    rte_mbuf* pkts[kMaxBatch];
    if (rte_pktmbuf_alloc_bulk(dp_->pool(), pkts, batch) != 0)
      throw std::runtime_error("mbuf pool empty");
    for (unsigned i = 0; i < batch; ++i) fill(pkts[i]);  // the device's part: not timed
    uint64_t t0 = rte_rdtsc();
    for (unsigned i = 0; i < batch; i += kBurst) {
      push(port, pkts + i, kBurst);
      worker_tail();
    }
    uint64_t t = rte_rdtsc() - t0;
    rte_rcu_qsbr_quiescent(qsbr_, dp_->service_rcu_id());
    pushed += batch;
    return {t, batch * size * 8.0};
  };
  std::vector<Sample> ref, ours;
  rounds(ref_step, our_step, &ref, &ours, nullptr);
  for (auto& p : counter_problems(w0, s0, pushed, true)) warnings.push_back(p);
  check();
  const uint16_t padded = padded_len(size);
  return report(name, ours, ref, warnings,
                fmt(", \"inner_size\": %u, \"padded\": %u, \"outer_frame\": %u, \"packets\": %lu, "
                    "\"batch\": %u, \"burst\": %u, \"verified\": %u",
                    size, padded, unsigned(kEth + kIpUdp + wg::kDataOverhead + padded), pushed,
                    opt_.batch, kBurst, 2 * kVerify));
}

// --- encap: inner packets from the lan host to the peer's allowed prefix ---

std::string Bench::encap_figure(const std::string& name, uint16_t size) {
  Session s = establish(remote_);
  const std::vector<uint8_t> frame = inner_frame(kLanMac, kHostMac, kHost, kRemoteHost, size);
  const uint16_t flen = static_cast<uint16_t>(frame.size());
  const uint16_t padded = padded_len(size);
  std::vector<std::string> warnings;

  // Correctness first: what leaves the uplink decrypts to what went in.
  auto check = [&] {
    if (w_->tx[uplink_].n) flush_tx(*w_);
    rte_mbuf* pkts[kVerify];
    for (auto*& m : pkts) {
      m = alloc();
      std::memcpy(rte_pktmbuf_append(m, flen), frame.data(), flen);
    }
    push(lan_, pkts, kVerify);
    const TxBuffer& b = w_->tx[uplink_];
    if (b.n != kVerify)
      throw std::runtime_error(
          fmt("encap check: %u of %u packets queued on the uplink", b.n, kVerify));
    const std::vector<uint8_t> want = forwarded(frame.data() + kEth, size);
    std::vector<uint8_t> plain(padded);
    for (unsigned i = 0; i < b.n; ++i) {
      rte_mbuf* m = b.pkts[i];
      const auto* f = rte_pktmbuf_mtod(m, const uint8_t*);
      const auto* eth = reinterpret_cast<const rte_ether_hdr*>(f);
      const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(eth + 1);
      const auto* udp = reinterpret_cast<const rte_udp_hdr*>(ip + 1);
      const auto* hdr = reinterpret_cast<const wg::MessageDataHeader*>(udp + 1);
      size_t msg_len = wg::kDataOverhead + padded;
      if (rte_pktmbuf_data_len(m) != kEth + kIpUdp + msg_len ||
          !rte_is_same_ether_addr(&eth->dst_addr, &kEndpointMac) ||
          !rte_is_same_ether_addr(&eth->src_addr, &kUplinkMac) ||
          rte_be_to_cpu_32(ip->src_addr) != kUplinkAddr ||
          rte_be_to_cpu_32(ip->dst_addr) != kEndpoint || rte_ipv4_cksum(ip) != 0 ||
          rte_be_to_cpu_16(udp->dst_port) != kWgPort || hdr->type != wg::kData ||
          rte_le_to_cpu_32(hdr->receiver_index) != s.keys.local_index)
        throw std::runtime_error("encap check: unexpected outer packet");
      uint64_t ctr = rte_le_to_cpu_64(hdr->counter);
      if (!wg::aead_open(s.keys.receive, ctr, {}, reinterpret_cast<const uint8_t*>(hdr + 1), padded,
                         plain.data()))
        throw std::runtime_error("encap check: the peer cannot decrypt what the dataplane sent");
      if (!std::equal(want.begin(), want.end(), plain.begin()) ||
          std::any_of(plain.begin() + size, plain.end(), [](uint8_t x) { return x != 0; }))
        throw std::runtime_error("encap check: decrypted packet differs from the one sent");
    }
    flush_tx(*w_);
  };
  check();

  const LcoreCounters w0 = *w_->counters, s0 = dp_->counters()[rte_lcore_id()];
  RawChaCha raw;
  const unsigned nref = opt_.batch;
  std::vector<uint8_t> bufs(nref * (size + 16));
  for (size_t i = 0; i < bufs.size(); ++i) bufs[i] = static_cast<uint8_t>(i);
  uint64_t ref_ctr = 0;
  auto ref_step = [&]() -> Timed {
    uint64_t t0 = rte_rdtsc();
    for (unsigned i = 0; i < nref; ++i)
      if (!raw.seal(ref_ctr++, bufs.data() + i * (size + 16), size))
        throw std::runtime_error("reference seal failed");
    return {rte_rdtsc() - t0, nref * size * 8.0};
  };
  auto fill = [&](rte_mbuf* m) { std::memcpy(rte_pktmbuf_append(m, flen), frame.data(), flen); };
  return data_figure(name, size, lan_, fill, ref_step, check, w0, s0, std::move(warnings));
}

// --- decap: the peer's data messages to our listen port ---

std::string Bench::decap_figure(const std::string& name, uint16_t size) {
  Session s = establish(remote_);
  const std::vector<uint8_t> frame =
      inner_frame(kUplinkMac, kEndpointMac, kRemoteHost, kHost, size);
  const uint16_t padded = padded_len(size);
  std::vector<uint8_t> plain(padded, 0);
  std::memcpy(plain.data(), frame.data() + kEth, size);
  std::vector<std::string> warnings;

  auto check = [&] {
    if (w_->tx[lan_].n) flush_tx(*w_);
    rte_mbuf* pkts[kVerify];
    for (auto*& m : pkts) {
      m = alloc();
      data_message(m, s, plain.data(), padded);
    }
    push(uplink_, pkts, kVerify);
    const TxBuffer& b = w_->tx[lan_];
    if (b.n != kVerify)
      throw std::runtime_error(
          fmt("decap check: %u of %u packets queued on the lan", b.n, kVerify));
    const std::vector<uint8_t> want = forwarded(frame.data() + kEth, size);
    for (unsigned i = 0; i < b.n; ++i) {
      rte_mbuf* m = b.pkts[i];
      const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
      const auto* ip = reinterpret_cast<const uint8_t*>(eth + 1);
      if (rte_pktmbuf_pkt_len(m) != unsigned(kEth + size) ||
          !rte_is_same_ether_addr(&eth->dst_addr, &kHostMac) ||
          !rte_is_same_ether_addr(&eth->src_addr, &kLanMac) ||
          !std::equal(want.begin(), want.end(), ip))
        throw std::runtime_error("decap check: the inner packet sent on the lan differs");
    }
    flush_tx(*w_);
  };
  check();

  const LcoreCounters w0 = *w_->counters, s0 = dp_->counters()[rte_lcore_id()];
  RawChaCha raw;
  const unsigned nref = opt_.batch;
  std::vector<uint8_t> bufs(nref * (size + 16));
  for (size_t i = 0; i < bufs.size(); ++i) bufs[i] = static_cast<uint8_t>(i);
  uint64_t ref_ctr = 0;
  auto ref_step = [&]() -> Timed {
    uint64_t first = ref_ctr;
    for (unsigned i = 0; i < nref; ++i)  // what the sender did: not timed
      if (!raw.seal(ref_ctr++, bufs.data() + i * (size + 16), size))
        throw std::runtime_error("reference seal failed");
    uint64_t t0 = rte_rdtsc();
    for (unsigned i = 0; i < nref; ++i)
      if (!raw.open(first + i, bufs.data() + i * (size + 16), size))
        throw std::runtime_error("reference open failed");
    return {rte_rdtsc() - t0, nref * size * 8.0};
  };
  auto fill = [&](rte_mbuf* m) { data_message(m, s, plain.data(), padded); };
  return data_figure(name, size, uplink_, fill, ref_step, check, w0, s0, std::move(warnings));
}

// --- handshakes: initiations from many peers, responses out ---

std::string Bench::handshake_figure(const std::string& name) {
  struct Prebuilt {
    wg::MessageInitiation msg;
    wg::HandshakeState hs;
    unsigned peer;
  };
  std::vector<Prebuilt> ready;
  size_t next = 0;
  unsigned rr = 0;  // round robin over the peers: each initiates 1/peers of the time
  auto generate = [&](unsigned n) {  // the remotes' work: never timed
    ready.erase(ready.begin(), ready.begin() + static_cast<long>(next));
    next = 0;
    uint64_t now = dp_->now_ms();
    for (unsigned i = 0; i < n; ++i) {
      Prebuilt p;
      p.peer = rr++ % hs_peers_.size();
      Remote& r = hs_peers_[p.peer];
      if (!wg::create_initiation(r.id, r.keys, next_index_++, wg::tai64n(ts_base_ns_ + ++ts_seq_),
                                 &p.msg, &p.hs))
        throw std::runtime_error("create_initiation");
      r.cookies->add_macs(reinterpret_cast<uint8_t*>(&p.msg), sizeof p.msg, now);
      ready.push_back(p);
    }
  };
  const LcoreCounters w0 = *w_->counters, s0 = dp_->counters()[rte_lcore_id()];
  const double hz = static_cast<double>(rte_get_tsc_hz());
  uint64_t handshakes = 0, others = 0;
  wg::MessageResponse last[kHandshakeBurst];
  size_t last_first = 0;  // index in `ready` of last[0]'s initiation

  auto our_step = [&]() -> Timed {
    if (ready.size() - next < kHandshakeBurst) generate(8 * kHandshakeBurst);
    rte_mbuf* pkts[kHandshakeBurst];
    for (unsigned i = 0; i < kHandshakeBurst; ++i) {
      pkts[i] = alloc();
      to_listen(pkts[i], &ready[next + i].msg, sizeof(wg::MessageInitiation));
    }
    uint64_t t0 = rte_rdtsc();
    push(uplink_, pkts, kHandshakeBurst);
    worker_tail();
    unsigned got = 0;
    while (got < kHandshakeBurst) {
      svc_->poll_once();
      rte_rcu_qsbr_quiescent(qsbr_, dp_->service_rcu_id());
      rte_mbuf* out[kBurst];
      unsigned k =
          rte_ring_sc_dequeue_burst(w_->inject, reinterpret_cast<void**>(out), kBurst, nullptr);
      for (unsigned i = 0; i < k; ++i) {
        const uint8_t* msg = rte_pktmbuf_mtod_offset(out[i], const uint8_t*, kEth + kIpUdp);
        if (rte_pktmbuf_data_len(out[i]) == kEth + kIpUdp + sizeof(wg::MessageResponse) &&
            msg[0] == wg::kResponse && got < kHandshakeBurst) {
          std::memcpy(&last[got], msg, sizeof(wg::MessageResponse));
          if (rte_le_to_cpu_32(last[got].receiver_index) != ready[next + got].hs.local_index)
            throw std::runtime_error("handshake: a response out of order or for another peer");
          ++got;
        } else {
          ++others;
        }
        tx_enqueue(*w_, meta(out[i])->out_port, out[i]);
      }
      flush_tx(*w_);
      rte_rcu_qsbr_quiescent(qsbr_, w_->index);
      if (rte_rdtsc() - t0 > uint64_t(5 * hz))
        throw std::runtime_error(fmt("handshake: %u of %u responses in 5 s", got, kHandshakeBurst));
    }
    uint64_t t = rte_rdtsc() - t0;
    last_first = next;
    next += kHandshakeBurst;
    handshakes += kHandshakeBurst;
    return {t, double(kHandshakeBurst)};
  };
  // After each sample (not timed): the last burst's responses authenticate
  // and give the keys the dataplane holds.
  unsigned verified = 0;
  auto verify = [&] {
    for (unsigned i = 0; i < kHandshakeBurst; ++i) {
      Prebuilt& p = ready[last_first + i];
      Remote& r = hs_peers_[p.peer];
      if (!wg::consume_response(r.id, r.keys, last[i], &p.hs))
        throw std::runtime_error("handshake: a response does not authenticate");
      wg::SessionKeys k = wg::derive_keys(&p.hs, true);
      WgKeypair* kp = dp_->wg().indices().keypair(k.remote_index);
      if (!kp || kp->receive != k.send || kp->send != k.receive ||
          kp->peer->keys.public_key != r.id.public_key)
        throw std::runtime_error("handshake: the dataplane's keys differ from the initiator's");
      ++verified;
    }
  };
  RawX25519 raw;
  uint8_t shared[32];
  auto ref_step = [&]() -> Timed {
    uint64_t t0 = rte_rdtsc();
    for (unsigned i = 0; i < kX25519Batch; ++i)
      if (!raw.derive(shared)) throw std::runtime_error("reference X25519 failed");
    return {rte_rdtsc() - t0, double(kX25519Batch)};
  };
  std::vector<Sample> ref, ours;
  rounds(ref_step, our_step, &ref, &ours, verify);

  std::vector<std::string> warnings = counter_problems(w0, s0, 0, false);
  const LcoreCounters& s1 = dp_->counters()[rte_lcore_id()];
  uint64_t done = s1.events[size_t(Event::wg_handshakes_completed)] -
                  s0.events[size_t(Event::wg_handshakes_completed)];
  if (done != handshakes)
    warnings.push_back(fmt("%lu initiations, %lu handshakes completed", handshakes, done));
  // `others`: what the service's timers sent meanwhile (keepalives, initiations
  // to the data peer of the earlier figures); sent, not counted.
  return report(name, ours, ref, warnings,
                fmt(", \"peers\": %zu, \"handshakes\": %lu, \"burst\": %u, \"verified\": %u, "
                    "\"timer_messages\": %lu, \"x25519_per_handshake\": 3, "
                    "\"x25519_keygen_per_handshake\": 1",
                    hs_peers_.size(), handshakes, kHandshakeBurst, verified, others));
}

std::string Bench::run_figure(const std::string& name) {
  if (name == "wg-encap-1420") return encap_figure(name, 1420);
  if (name == "wg-encap-64") return encap_figure(name, 64);
  if (name == "wg-decap-1420") return decap_figure(name, 1420);
  if (name == "wg-decap-64") return decap_figure(name, 64);
  if (name == "wg-handshake") return handshake_figure(name);
  throw std::runtime_error("unknown figure " + name);
}

Options parse_args(int argc, char** argv) {
  Options o;
  FlagHandlers flags = {
      {"--figures", [&](const std::string& v) { o.figures = split(v, ','); }},
      {"--warmup", [&](const std::string& v) { o.warmup = std::stod(v); }},
      {"--seconds", [&](const std::string& v) { o.seconds = std::stod(v); }},
      {"--rounds",
       [&](const std::string& v) {
         o.rounds.clear();
         for (auto& r : split(v, ',')) o.rounds.push_back(std::stoul(r));
       }},
      {"--main-lcore", [&](const std::string& v) { o.main_lcore = std::stoul(v); }},
      {"--other-lcore", [&](const std::string& v) { o.other_lcore = std::stoul(v); }},
      {"--peers", [&](const std::string& v) { o.peers = std::stoul(v); }},
      {"--batch", [&](const std::string& v) { o.batch = std::stoul(v); }},
  };
  parse_flags(argc, argv, flags, &o.eal);
  if (o.figures.empty()) throw std::runtime_error("--figures is empty");
  if (o.batch == 0 || o.batch % kBurst || o.batch > kMaxBatch)
    throw std::runtime_error(fmt("--batch must be a multiple of %u up to %u", kBurst, kMaxBatch));
  if (o.main_lcore == o.other_lcore) throw std::runtime_error("two different lcores needed");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  try {
    opt = parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wg_bench: %s\n", e.what());
    return 2;
  }
  unsigned lo = std::min(opt.main_lcore, opt.other_lcore),
           hi = std::max(opt.main_lcore, opt.other_lcore);
  std::vector<std::string> eal = {"wg_bench", "-l", fmt("%u,%u", lo, hi), "--main-lcore",
                                  std::to_string(opt.main_lcore)};
  for (auto& a : opt.eal) eal.push_back(a);
  for (const char* dev : {"net_null_wgb0", "net_null_wgb1"}) {
    eal.push_back("--vdev");
    eal.push_back(dev);
  }
  std::vector<char*> av;
  for (auto& a : eal) av.push_back(a.data());
  if (rte_eal_init(static_cast<int>(av.size()), av.data()) < 0) {
    std::fprintf(stderr, "wg_bench: rte_eal_init failed (hugepages reserved?)\n");
    return 2;
  }
  int rc = 0;
  {
    Bench bench(opt);
    try {
      bench.setup();
      for (auto& f : opt.figures) {
        std::fprintf(stderr, "wg_bench: %s\n", f.c_str());
        std::string line = bench.run_figure(f);
        std::printf("%s\n", line.c_str());
        std::fflush(stdout);
      }
      int64_t missing = bench.teardown();
      std::printf("{\"exit\": {\"missing_mbufs\": %ld}}\n", static_cast<long>(missing));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "wg_bench: %s\n", e.what());
      rc = 1;
    }
  }
  rte_eal_cleanup();
  return rc;
}
