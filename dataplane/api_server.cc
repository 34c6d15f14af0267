#include "dataplane/api_server.h"

#include <poll.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mempool.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "dataplane/api/wire.h"
#include "dataplane/dataplane.h"
#include "dataplane/fw_json.h"
#include "dataplane/host_fw_json.h"
#include "dataplane/log.h"
#include "dataplane/nat_json.h"
#include "dataplane/wireguard.h"
#include "firewall/host_firewall.h"
#include "tunnel/format.h"

namespace tether::dp {

using nlohmann::json;

namespace {

constexpr size_t kMaxConnections = 64;
constexpr int kMessageDeadlineMs = 5000;  // a whole request, not each read

struct ApiError {
  std::string code;
  std::string message;
};

[[noreturn]] void refuse(const std::string& code, const std::string& msg) {
  throw ApiError{code, msg};
}

std::string str_field(const json& o, const char* key, const std::string& where, bool required) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) {
    if (required) refuse("invalid_argument", where + ": missing \"" + key + "\"");
    return {};
  }
  if (!it->is_string()) refuse("invalid_argument", where + ": \"" + key + "\" must be a string");
  return it->get<std::string>();
}

wg::Key key_field(const json& o, const char* key, const std::string& where) {
  std::string v = str_field(o, key, where, true);
  auto k = wg::key_from_base64(v);
  if (!k)
    refuse("invalid_argument", where + ": " + key + " is not a base64 key as `wg genkey` prints");
  return *k;
}

uint64_t uint_field(const json& o, const char* key, const std::string& where, uint64_t def,
                    uint64_t min, uint64_t max) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return def;
  if (!it->is_number_unsigned() || it->get<uint64_t>() < min || it->get<uint64_t>() > max)
    refuse("invalid_argument", where + ": " + key + " must be an integer " + std::to_string(min) +
                                   "-" + std::to_string(max));
  return it->get<uint64_t>();
}

void parse_wg_interface(const json& j, const std::string& where, Change& c) {
  WgInterfaceEntry& e = c.wg_interface;
  e.name = str_field(j, "name", where, true);
  if (!c.add) return;
  e.private_key = key_field(j, "private_key", where);
  e.listen_port = static_cast<uint16_t>(uint_field(j, "listen_port", where, 0, 1, 65535));
  if (!e.listen_port) refuse("invalid_argument", where + ": missing \"listen_port\"");
  std::string a = str_field(j, "address", where, true);
  auto ip = parse_ipv4(a);
  if (!ip) refuse("invalid_argument", where + ": address \"" + a + "\" is not like 10.0.1.1");
  e.address = *ip;
  e.mtu = static_cast<uint16_t>(uint_field(j, "mtu", where, 1420, 576, 9000));
}

void parse_wg_peer(const json& j, const std::string& where, Change& c) {
  WgPeerEntry& e = c.wg_peer;
  e.interface = str_field(j, "interface", where, true);
  e.public_key = key_field(j, "public_key", where);
  if (!c.add) return;
  if (j.contains("preshared_key") && !j["preshared_key"].is_null()) {
    e.preshared_key = key_field(j, "preshared_key", where);
    e.has_psk = true;
  }
  std::string ep = str_field(j, "endpoint", where, false);
  if (!ep.empty()) {
    auto colon = ep.rfind(':');
    std::optional<Ipv4> ip =
        colon == std::string::npos ? std::nullopt : parse_ipv4(ep.substr(0, colon));
    unsigned long port = 0;
    if (ip) {
      try {
        size_t used = 0;
        port = std::stoul(ep.substr(colon + 1), &used);
        if (used != ep.size() - colon - 1) port = 0;
      } catch (const std::exception&) {
        port = 0;
      }
    }
    if (!ip || port == 0 || port > 65535)
      refuse("invalid_argument", where + ": endpoint \"" + ep + "\" is not like 192.0.2.1:51820");
    e.endpoint = WgPeer::pack_endpoint(*ip, static_cast<uint16_t>(port));
  }
  auto al = j.find("allowed");
  if (al != j.end() && !al->is_null()) {
    if (!al->is_array()) refuse("invalid_argument", where + ": allowed must be a list of prefixes");
    for (auto& x : *al) {
      auto pre = x.is_string() ? parse_prefix(x.get<std::string>(), true) : std::nullopt;
      if (!pre || x.get<std::string>().find('/') == std::string::npos)
        refuse("invalid_argument",
               where + ": allowed entry " + x.dump() + " is not like 10.0.0.0/24");
      e.allowed.push_back(*pre);
    }
  }
  e.domain = static_cast<uint16_t>(uint_field(j, "domain", where, 0, 0, 4095));
  e.persistent_keepalive =
      static_cast<uint16_t>(uint_field(j, "persistent_keepalive", where, 0, 0, 65535));
}

Change parse_change(const json& j, size_t i) {
  std::string where = "change " + std::to_string(i);
  if (!j.is_object()) refuse("invalid_argument", where + ": must be an object");
  Change c;
  std::string op = str_field(j, "op", where, true);
  std::string kind = str_field(j, "kind", where, true);
  bool updatable = kind == "wg_interface" || kind == "wg_peer" || kind == "nat_mapping" ||
                   kind == "fw_zone" || kind == "fw_policy";
  if (kind == "nat_rewrite") {
    if (op != "update") refuse("invalid_argument", where + ": op of nat_rewrite must be update");
  } else if (op != "add" && op != "del" && !(updatable && op == "update")) {
    refuse("invalid_argument",
           where + (updatable ? ": op must be add, update or del" : ": op must be add or del"));
  }
  c.add = op != "del";
  c.update = op == "update";
  if (kind == "address") {
    c.kind = Change::Kind::kAddress;
    c.port = str_field(j, "port", where, true);
    std::string a = str_field(j, "address", where, true);
    auto p = parse_prefix(a, true);
    if (!p || a.find('/') == std::string::npos)
      refuse("invalid_argument", where + ": address \"" + a + "\" is not like 10.0.1.1/24");
    c.prefix = *p;
  } else if (kind == "route") {
    c.kind = Change::Kind::kRoute;
    if (j.contains("domain")) {
      if (!j["domain"].is_number_unsigned() || j["domain"].get<uint64_t>() > 4095)
        refuse("invalid_argument", where + ": domain must be 0-4095");
      c.domain = j["domain"].get<uint16_t>();
    }
    std::string pfx = str_field(j, "prefix", where, true);
    auto p = parse_prefix(pfx, true);
    if (!p) refuse("invalid_argument", where + ": prefix \"" + pfx + "\" is not like 10.2.0.0/16");
    c.prefix = *p;
    std::string via = str_field(j, "via", where, false);
    if (!via.empty()) {
      c.via = parse_ipv4(via);
      if (!c.via) refuse("invalid_argument", where + ": via \"" + via + "\" is not an address");
    }
    c.port = str_field(j, "port", where, false);
  } else if (kind == "neighbor") {
    c.kind = Change::Kind::kNeighbor;
    c.port = str_field(j, "port", where, true);
    std::string ip = str_field(j, "ip", where, true);
    auto a = parse_ipv4(ip);
    if (!a) refuse("invalid_argument", where + ": ip \"" + ip + "\" is not an address");
    c.ip = *a;
    if (c.add) {
      std::string mac = str_field(j, "mac", where, true);
      auto m = parse_mac(mac);
      if (!m)
        refuse("invalid_argument", where + ": mac \"" + mac + "\" is not like 02:00:00:00:00:01");
      c.mac = *m;
    }
  } else if (kind == "wg_interface") {
    c.kind = Change::Kind::kWgInterface;
    parse_wg_interface(j, where, c);
  } else if (kind == "wg_peer") {
    c.kind = Change::Kind::kWgPeer;
    parse_wg_peer(j, where, c);
  } else if (kind.rfind("nat_", 0) == 0) {
    try {
      if (kind == "nat_mapping") {
        c.kind = Change::Kind::kNatMapping;
        c.nat_mapping = parse_nat_mapping(j, where, !c.add);
      } else if (kind == "nat_gateway") {
        c.kind = Change::Kind::kNatGateway;
        c.nat_gateway = parse_nat_gateway(j, where, !c.add);
      } else if (kind == "nat_snat") {
        c.kind = Change::Kind::kNatSnat;
        c.nat_snat = parse_nat_snat(j, where, !c.add);
      } else if (kind == "nat_rewrite") {
        c.kind = Change::Kind::kNatRewrite;
        parse_nat_rewrite(j, where, &c.nat_rewrite.domain, &c.nat_rewrite.from, &c.nat_rewrite.to);
      } else {
        refuse("invalid_argument",
               where + ": kind must be nat_mapping, nat_gateway, nat_snat or nat_rewrite");
      }
    } catch (const std::invalid_argument& e) {
      refuse("invalid_argument", e.what());
    }
  } else if (kind == "fw_zone" || kind == "fw_policy") {
    try {
      if (kind == "fw_zone") {
        c.kind = Change::Kind::kFwZone;
        c.fw_zone = parse_fw_zone(j, where, !c.add);
      } else {
        c.kind = Change::Kind::kFwPolicy;
        c.fw_policy = parse_fw_policy(j, where, !c.add);
      }
    } catch (const std::invalid_argument& e) {
      refuse("invalid_argument", e.what());
    }
  } else {
    refuse("invalid_argument",
           where +
               ": kind must be address, route, neighbor, wg_interface, wg_peer, nat_mapping, "
               "nat_gateway, nat_snat, nat_rewrite, fw_zone or fw_policy");
  }
  return c;
}

json counters_json(Dataplane& dp) {
  json out;
  out["generation"] = dp.generation_id();
  json ports = json::array();
  for (auto& p : dp.ports()) {
    rte_eth_stats s{};
    rte_eth_stats_get(p.port_id, &s);
    ports.push_back({{"name", p.name},
                     {"rx_packets", s.ipackets},
                     {"rx_bytes", s.ibytes},
                     {"tx_packets", s.opackets},
                     {"tx_bytes", s.obytes},
                     {"rx_missed", s.imissed},
                     {"rx_errors", s.ierrors},
                     {"tx_errors", s.oerrors}});
  }
  out["ports"] = ports;
  std::array<uint64_t, kNumDrops> drops{};
  std::array<uint64_t, kNumEvents> events{};
  json lcores = json::array();
  auto add_lcore = [&](unsigned lcore, const char* role) {
    const LcoreCounters& c = dp.counters()[lcore];
    json d = json::object();
    for (size_t i = 0; i < kNumDrops; ++i) {
      uint64_t v = c.drops[i];
      drops[i] += v;
      if (v) d[std::string(kDropNames[i])] = v;
    }
    for (size_t i = 0; i < kNumEvents; ++i) events[i] += c.events[i];
    lcores.push_back({{"lcore", lcore},
                      {"role", role},
                      {"rx_packets", c.rx_packets},
                      {"tx_packets", c.tx_packets},
                      {"drops", d}});
  };
  add_lcore(dp.service_lcore(), "service");
  for (auto& w : dp.workers()) add_lcore(w->lcore, "worker");
  out["lcores"] = lcores;
  json d = json::object(), e = json::object();
  for (size_t i = 0; i < kNumDrops; ++i) d[std::string(kDropNames[i])] = drops[i];
  for (size_t i = 0; i < kNumEvents; ++i) e[std::string(kEventNames[i])] = events[i];
  out["drops"] = d;
  out["events"] = e;
  out["mbufs"] = {{"size", dp.pool()->size}, {"available", rte_mempool_avail_count(dp.pool())}};
  return out;
}

}  // namespace

ApiServer::~ApiServer() { stop(); }

bool ApiServer::start(std::string* error) {
  std::error_code ec;
  auto dir = std::filesystem::path(path_).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path_.size() >= sizeof addr.sun_path) {
    *error = "API socket path too long: " + path_;
    return false;
  }
  std::strcpy(addr.sun_path, path_.c_str());
  ::unlink(path_.c_str());
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 16) != 0) {
    *error = "cannot listen on " + path_ + ": " + std::strerror(errno);
    return false;
  }
  ::chmod(path_.c_str(), 0660);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    *error = std::string("eventfd: ") + std::strerror(errno);
    return false;
  }
  thread_ = std::thread([this] {
    // An lcore id for this thread: rte_hash's multi-writer adds (NAT
    // rekeys) index per-lcore caches by it. We run --in-memory, so this
    // costs no multi-process support.
    bool registered = rte_thread_register() == 0;
    if (!registered)
      TLOG(WARNING, "API thread has no lcore id (%s): NAT rewrites will not rekey sessions",
           rte_strerror(rte_errno));
    loop();
    if (registered) rte_thread_unregister();
  });
  return true;
}

void ApiServer::stop() {
  if (thread_.joinable()) {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    ::unlink(path_.c_str());
    listen_fd_ = -1;
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
  wake_fd_ = -1;
}

void ApiServer::loop() {
  struct Conn {
    int fd;
    bool hello = false;
  };
  std::vector<Conn> conns;
  for (;;) {
    std::vector<pollfd> fds = {{wake_fd_, POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    for (auto& c : conns) fds.push_back({c.fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents) break;
    if (fds[1].revents & POLLIN) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0 && conns.size() >= kMaxConnections) {
        TLOG_RL(WARNING, "API: %zu clients connected; refusing another", conns.size());
        ::close(fd);
      } else if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
        TLOG_RL(ERR, "API: out of file descriptors");
        ::usleep(10000);  // do not spin on a listening socket we cannot serve
      } else if (fd >= 0) {
        timeval tv{5, 0};  // a stalled client must not hold the API
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        conns.push_back({fd});
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      Conn& c = conns[i - 2];
      std::string why;
      auto req = dpapi::read_message(c.fd, &why, kMessageDeadlineMs);
      bool keep = false;
      if (req) {
        keep = dpapi::write_message(c.fd, handle(*req, c.hello));
      } else if (why != "connection closed") {
        dpapi::write_message(c.fd, dpapi::error_response(nullptr, "bad_request", why));
      }
      if (!keep) {
        ::close(c.fd);
        c.fd = -1;
      }
    }
    std::erase_if(conns, [](const Conn& c) { return c.fd < 0; });
  }
  for (auto& c : conns) ::close(c.fd);
}

json ApiServer::handle(const json& req, bool& hello_done) {
  json id = req.contains("id") ? req["id"] : json(nullptr);
  try {
    if (!req.contains("method") || !req["method"].is_string())
      refuse("bad_request", "request needs a string \"method\"");
    std::string method = req["method"];
    json params = req.value("params", json::object());
    if (!params.is_object()) refuse("bad_request", "\"params\" must be an object");
    if (method == "hello") {
      if (!params.contains("version") || !params["version"].is_number_integer())
        refuse("bad_request", "hello needs an integer \"version\"");
      int v = params["version"];
      if (v < 1)
        refuse("unsupported_version", "version " + std::to_string(v) + " is not supported");
      hello_done = true;
      return dpapi::ok_response(id, {{"version", std::min(v, dpapi::kVersion)},
                                     {"generation", dp_.generation_id()},
                                     {"dataplane", "tether-dataplane 0.1.0"}});
    }
    if (!hello_done) refuse("hello_required", "send hello first");
    return dpapi::ok_response(id, dispatch(method, params));
  } catch (const ApiError& e) {
    return dpapi::error_response(id, e.code, e.message);
  } catch (const std::exception& e) {
    return dpapi::error_response(id, "bad_request", e.what());
  }
}

json ApiServer::wg_interfaces_json(const Generation& g) {
  json out = json::array();
  for (auto& e : g.state.wg_interfaces()) {
    wg::Identity id;
    wg::Identity::from_private(e.private_key, &id);
    size_t peers = 0;
    for (auto& p : g.state.wg_peers()) peers += p.interface == e.name;
    out.push_back({{"name", e.name},
                   {"public_key", wg::key_to_base64(id.public_key)},
                   {"listen_port", e.listen_port},
                   {"address", format_ipv4(e.address)},
                   {"mtu", e.mtu},
                   {"peers", peers},
                   {"origin", origin_name(e.origin)}});
    wg::secure_zero(id);
  }
  return {{"interfaces", out}};
}

json ApiServer::wg_peers_json(const Generation& g, const std::string& only) {
  json out = json::array();
  uint64_t now = dp_.now_ms();
  std::map<std::pair<std::string, wg::Key>, const WgPeerEntry*> entries;
  for (auto& pe : g.state.wg_peers()) entries[{pe.interface, pe.public_key}] = &pe;
  std::lock_guard lock(dp_.wg().mutex());
  for (size_t i = 0; i < g.wg_peers.size(); ++i) {
    const WgPeer* p = g.wg_peers[i];
    if (!p || (!only.empty() && p->iface->name != only)) continue;
    auto found = entries.find({p->iface->name, p->keys.public_key});
    if (found == entries.end()) continue;
    const WgPeerEntry* e = found->second;
    WgPeerCounters sum;
    for (auto& c : p->counters) {
      sum.rx_packets += c.rx_packets;
      sum.rx_bytes += c.rx_bytes;
      sum.tx_packets += c.tx_packets;
      sum.tx_bytes += c.tx_bytes;
      for (size_t d = 0; d < sum.drops.size(); ++d) sum.drops[d] += c.drops[d];
    }
    json drops = json::object();
    for (size_t d = 0; d < sum.drops.size(); ++d) drops[kWgPeerDropNames[d]] = sum.drops[d];
    json allowed = json::array();
    for (auto& a : e->allowed) allowed.push_back(format_prefix(a));
    uint64_t ep = p->endpoint.load(std::memory_order_relaxed);
    json endpoint = nullptr;
    if (ep)
      endpoint =
          format_ipv4(WgPeer::endpoint_ip(ep)) + ":" + std::to_string(WgPeer::endpoint_port(ep));
    out.push_back(
        {{"interface", p->iface->name},
         {"public_key", wg::key_to_base64(p->keys.public_key)},
         {"endpoint", endpoint},
         {"allowed", allowed},
         {"domain", p->domain},
         {"persistent_keepalive", e->persistent_keepalive},
         {"preshared_key", p->has_psk},
         {"last_handshake_ms_ago", p->handshakes ? json(now - p->session_born_ms) : json(nullptr)},
         {"last_handshake_unix_ms",
          p->handshakes ? json(p->last_handshake_wall_ms) : json(nullptr)},
         {"handshakes", p->handshakes},
         {"rx_packets", sum.rx_packets},
         {"rx_bytes", sum.rx_bytes},
         {"tx_packets", sum.tx_packets},
         {"tx_bytes", sum.tx_bytes},
         {"staged", p->staged.size()},
         {"drops", drops},
         {"keypairs",
          {{"current", p->current.load() != nullptr},
           {"previous", p->previous.load() != nullptr},
           {"next", p->next.load() != nullptr}}},
         {"origin", origin_name(e->origin)}});
  }
  return {{"peers", out}};
}

json ApiServer::dispatch(const std::string& method, const json& params) {
  const Generation& g = *dp_.current();  // the API thread is the writer: stable here
  if (method == "generation.get") return {{"generation", g.id}};
  if (method == "ports.list") {
    json ports = json::array();
    for (auto& p : g.state.ports()) {
      rte_eth_link link{};
      rte_eth_link_get_nowait(p.port_id, &link);
      json addrs = json::array();
      for (auto& a : g.state.addresses())
        if (a.port == p.port_id)
          addrs.push_back({{"address", format_prefix(a.addr)}, {"origin", origin_name(a.origin)}});
      ports.push_back({{"name", p.name},
                       {"index", p.port_id},
                       {"device", p.device},
                       {"kind", p.exception ? "exception" : "data"},
                       {"mac", format_mac(p.mac)},
                       {"domain", p.domain},
                       {"mtu", p.mtu},
                       {"link_up", link.link_status == 1},
                       {"addresses", addrs}});
    }
    return {{"ports", ports}};
  }
  if (method == "routes.list") {
    std::optional<uint16_t> only;
    if (params.contains("domain")) only = params["domain"].get<uint16_t>();
    json routes = json::array();
    for (auto& a : g.state.addresses()) {
      const PortInfo* p = g.state.port_by_id(a.port);
      if (only && p->domain != *only) continue;
      routes.push_back({{"domain", p->domain},
                        {"prefix", format_prefix({a.addr.network(), a.addr.len})},
                        {"via", nullptr},
                        {"port", p->name},
                        {"kind", "connected"},
                        {"origin", "connected"}});
    }
    for (auto& r : g.state.routes()) {
      if (only && r.domain != *only) continue;
      routes.push_back({{"domain", r.domain},
                        {"prefix", format_prefix(r.prefix)},
                        {"via", r.via ? json(format_ipv4(r.via)) : json(nullptr)},
                        {"port", g.state.port_by_id(r.port)->name},
                        {"kind", "static"},
                        {"origin", origin_name(r.origin)}});
    }
    for (auto& p : g.state.wg_peers()) {
      if (only && p.domain != *only) continue;
      for (auto& pre : p.allowed)
        routes.push_back({{"domain", p.domain},
                          {"prefix", format_prefix(pre)},
                          {"via", nullptr},
                          {"port", nullptr},
                          {"peer", wg::key_to_base64(p.public_key)},
                          {"interface", p.interface},
                          {"kind", "tunnel"},
                          {"origin", origin_name(p.origin)}});
    }
    return {{"generation", g.id}, {"routes", routes}};
  }
  if (method == "wg.interfaces.list") return wg_interfaces_json(g);
  if (method == "wg.peers.list") {
    std::string only;
    if (params.contains("interface")) {
      if (!params["interface"].is_string()) refuse("invalid_argument", "interface must be a name");
      only = params["interface"].get<std::string>();
    }
    return wg_peers_json(g, only);
  }
  if (method == "clock.advance") {
    if (!dp_.config().testing.clock_control)
      refuse("invalid_argument", "clock.advance needs \"testing\": {\"clock_control\": true}");
    if (!params.contains("ms") || !params["ms"].is_number_unsigned())
      refuse("invalid_argument", "clock.advance needs \"ms\"");
    return {{"now_ms", dp_.advance_clock(params["ms"].get<uint64_t>())}};
  }
  if (method == "neighbors.list") {
    json out = json::array();
    auto& nt = dp_.neighbors();
    uint64_t now = dp_.now_ms();
    std::lock_guard lock(nt.mutex());
    for (uint32_t s = 0; s < nt.used(); ++s) {
      NeighborMeta& m = nt.meta_locked(s);
      if (!m.in_use) continue;
      const PortInfo* p = g.state.port_by_id(m.port);
      bool has_mac = m.state != NeighborState::kIncomplete;
      out.push_back({{"port", p ? p->name : std::to_string(m.port)},
                     {"ip", format_ipv4(m.ip)},
                     {"mac", has_mac ? json(format_mac(nt.mac_of(s))) : json(nullptr)},
                     {"state", neighbor_state_name(m.state)},
                     {"age_ms", m.confirmed_ms ? now - m.confirmed_ms : 0},
                     {"queued", m.waiting.size()}});
    }
    return {{"neighbors", out}};
  }
  if (method == "counters.get") return counters_json(dp_);
  if (method == "config.apply") {
    Origin origin = Origin::kApi;
    if (params.contains("origin")) {
      auto o = params["origin"].is_string() ? parse_origin(params["origin"].get<std::string>())
                                            : std::nullopt;
      if (!o) refuse("invalid_argument", "origin must be \"api\" or \"config\"");
      origin = *o;
    }
    std::optional<uint64_t> expect;
    if (params.contains("expect_generation")) {
      if (!params["expect_generation"].is_number_unsigned())
        refuse("invalid_argument", "expect_generation must be a generation number");
      expect = params["expect_generation"].get<uint64_t>();
    }
    if (!params.contains("changes") || !params["changes"].is_array())
      refuse("invalid_argument", "config.apply needs a \"changes\" array");
    std::vector<Change> changes;
    for (size_t i = 0; i < params["changes"].size(); ++i)
      changes.push_back(parse_change(params["changes"][i], i));
    auto r = dp_.apply_changes(changes, origin, expect);
    if (!r.error.empty()) {
      TLOG(WARNING, "config.apply refused at generation %lu: %s",
           static_cast<unsigned long>(r.generation), r.error.c_str());
      refuse(r.code, r.error);
    }
    json out = {{"generation", r.generation}};
    if (r.rekeyed) out["sessions_rekeyed"] = r.rekeyed;
    return out;
  }
  if (method.rfind("nat.", 0) == 0) return nat_method(method, params, g);
  if (method == "sessions.list") return nat_method("nat.sessions.list", params, g);
  if (method.rfind("fw.", 0) == 0) return fw_method(method, params, g);
  if (method == "host_firewall.get" || method == "host_firewall.set") {
    if (!host_) refuse("internal", "this dataplane has no host firewall");
    if (method == "host_firewall.set") {
      fw::HostPolicy p;
      try {
        p = parse_host_policy(params, "params");
      } catch (const std::invalid_argument& e) {
        refuse("invalid_argument", e.what());
      }
      std::string err;
      if (!host_->apply(p, &err)) {
        TLOG(WARNING, "host_firewall.set refused: %s", err.c_str());
        refuse("invalid_argument", err);
      }
      TLOG(INFO, "host firewall applied (%zu interface(s), %zu admin range(s))",
           p.interfaces.size(), p.admin.size());
    }
    std::string err;
    std::string ruleset = host_->ruleset(&err);
    if (!err.empty()) refuse("internal", err);
    return {{"policy", host_policy_json(host_->policy())}, {"ruleset", ruleset}};
  }
  refuse("unknown_method", "no method \"" + method + "\"");
}

}  // namespace tether::dp

namespace tether::dp {

// nat.* methods (docs/dataplane-api.md, "NAT").
json ApiServer::nat_method(const std::string& method, const json& params, const Generation& g) {
  NatRuntime& nr = dp_.nat();
  FwRuntime& fr = dp_.fw();
  if (method == "nat.mappings.list") {
    std::string only = str_field(params, "name", "params", false);
    json out = json::array();
    for (auto& m : g.state.nat_mappings()) {
      if (!only.empty() && m.e.name != only) continue;
      json j = nat_mapping_json(m.e);
      j["origin"] = origin_name(m.origin);
      auto id = nr.find_id(m.e.name);
      MappingCounters c = id ? nr.sum(id->id) : MappingCounters{};
      j["counters"] = {{"packets_in", c.packets_in}, {"packets_out", c.packets_out},
                       {"bytes_in", c.bytes_in},     {"bytes_out", c.bytes_out},
                       {"sessions", c.sessions},     {"refused", c.refused}};
      out.push_back(j);
    }
    if (!only.empty() && out.empty()) refuse("not_found", "no nat_mapping \"" + only + "\"");
    json gws = json::array(), snats = json::array();
    for (auto& x : g.state.nat_gateways())
      gws.push_back({{"domain", x.e.domain},
                     {"address", format_ipv4(x.e.address)},
                     {"origin", origin_name(x.origin)}});
    for (auto& x : g.state.nat_snats())
      snats.push_back({{"domain", x.e.domain},
                       {"public", format_ipv4(x.e.public_addr)},
                       {"public_domain", x.e.public_domain},
                       {"origin", origin_name(x.origin)}});
    return {{"mappings", out}, {"gateways", gws}, {"snat", snats}};
  }
  if (method == "nat.sessions.list") {
    std::optional<uint16_t> domain;
    if (params.contains("domain"))
      domain = static_cast<uint16_t>(uint_field(params, "domain", "params", 0, 0, 4095));
    std::optional<uint32_t> addr;
    std::string a = str_field(params, "address", "params", false);
    if (!a.empty()) {
      addr = parse_ipv4(a);
      if (!addr) refuse("invalid_argument", "params: address \"" + a + "\" is not like 10.0.0.5");
    }
    std::optional<uint16_t> port;
    if (params.contains("port"))
      port = static_cast<uint16_t>(uint_field(params, "port", "params", 0, 0, 65535));
    std::optional<uint8_t> proto;
    std::string p = str_field(params, "protocol", "params", false);
    if (!p.empty()) {
      if (p == "tcp")
        proto = nat::kTcp;
      else if (p == "udp")
        proto = nat::kUdp;
      else if (p == "icmp")
        proto = nat::kIcmp;
      else
        refuse("invalid_argument", "params: protocol must be tcp, udp or icmp");
    }
    std::optional<uint32_t> mapping;
    std::string mname = str_field(params, "mapping", "params", false);
    if (!mname.empty()) {
      if (!g.state.nat_mapping(mname)) refuse("not_found", "no nat_mapping \"" + mname + "\"");
      auto id = nr.find_id(mname);
      mapping = id ? id->id : UINT32_MAX - 1;  // no id yet: matches no session
    }
    // The firewall's view: sessions a rule (by name or canonical text)
    // accepted, sessions from or to a zone.
    std::string rule = str_field(params, "rule", "params", false);
    std::string zone = str_field(params, "zone", "params", false);
    std::optional<bool> only_translated;
    if (params.contains("translated")) {
      if (!params["translated"].is_boolean())
        refuse("invalid_argument", "params: translated must be true or false");
      only_translated = params["translated"].get<bool>();
    }
    uint64_t limit = uint_field(params, "limit", "params", 1000, 1, 1000000);
    uint32_t now_s = static_cast<uint32_t>(dp_.now_ms() / 1000);
    json out = json::array();
    uint64_t matched = 0;
    auto side_has = [](const nat::FlowKey& k, auto pred) { return pred(k); };
    nr.sessions().for_each([&](uint32_t, const nat::Session& s) {
      if (s.flags & nat::Session::kBinding) return;  // listed through its sessions
      if (domain && s.orig.domain != *domain && s.reply.domain != *domain) return;
      if (proto && s.orig.proto != *proto) return;
      if (mapping && s.mapping != *mapping) return;
      if (only_translated && ((s.flags & nat::Session::kTranslated) != 0) != *only_translated)
        return;
      if (!rule.empty() && fr.rule_name(s.rule) != rule) return;
      if (!zone.empty() && g.fw.zone_name(s.from_zone) != zone && g.fw.zone_name(s.to_zone) != zone)
        return;
      if (addr &&
          !side_has(s.orig,
                    [&](const nat::FlowKey& k) { return k.src == *addr || k.dst == *addr; }) &&
          !(s.reply.src == *addr || s.reply.dst == *addr))
        return;
      if (port && s.orig.sport != *port && s.orig.dport != *port && s.reply.sport != *port &&
          s.reply.dport != *port)
        return;
      if (++matched > limit) return;
      json j = {{"orig", flow_key_json(s.orig)}, {"reply", flow_key_json(s.reply)}};
      if (s.mapping != nat::Session::kNoMapping) {
        auto n = nr.name_of(s.mapping);
        j["mapping"] = n ? json(*n) : json(nullptr);
      } else {
        j["mapping"] = nullptr;
      }
      j["dynamic"] = (s.flags & nat::Session::kDynamic) != 0;
      j["translated"] = (s.flags & nat::Session::kTranslated) != 0;
      uint8_t fwf = s.fw.load(std::memory_order_relaxed);
      // The rule that accepted it, as of the policy tag it was last checked
      // under: a session older than the live tag is re-checked on its next
      // packet and may then name another rule.
      std::string rule_text = fr.rule_name(s.rule).value_or("#");
      if (rule_text == "#") rule_text += std::to_string(s.rule);  // deleted since
      j["firewall"] = {{"from", g.fw.zone_name(s.from_zone)},
                       {"to", g.fw.zone_name(s.to_zone)},
                       {"rule", rule_text},
                       {"rule_id", s.rule},
                       {"checked", s.rule_tag.load(std::memory_order_relaxed) == g.fw.tag()},
                       {"revoked", (fwf & nat::Session::kFwRevoked) != 0},
                       {"tcp_tracked", (fwf & nat::Session::kFwTrack) != 0}};
      if (s.orig.proto == nat::kTcp)
        j["tcp_state"] = nat::tcp_state_name(static_cast<nat::TcpState>(s.tcp.load()));
      uint32_t seen = s.last_seen_s.load(std::memory_order_relaxed);
      uint32_t made = s.created_s.load(std::memory_order_relaxed);
      j["idle_s"] = now_s > seen ? now_s - seen : 0;
      j["age_s"] = now_s > made ? now_s - made : 0;
      j["timeout_s"] = nat::idle_timeout(s.orig.proto, static_cast<nat::TcpState>(s.tcp.load()),
                                         nr.config().timeouts);
      out.push_back(std::move(j));
    });
    return {{"sessions", out},
            {"matched", matched},
            {"truncated", matched > limit},
            {"live", nr.sessions().live()},
            {"capacity", nr.sessions().capacity()}};
  }
  if (method == "nat.pools.list") {
    json out = json::array();
    nr.pools().for_each([&](const nat::PortPools::Info& i) {
      const nat::PortPool& p = nr.pools().at(i.id);
      out.push_back({{"domain", i.domain},
                     {"address", format_ipv4(i.addr)},
                     {"protocol", nat_proto_name(i.proto)},
                     {"in_use", p.in_use()},
                     {"capacity", p.capacity()}});
    });
    return {{"pools", out}};
  }
  refuse("unknown_method", "no method \"" + method + "\"");
}

// fw.* methods (docs/dataplane-api.md, "Firewall").
json ApiServer::fw_method(const std::string& method, const json& params, const Generation& g) {
  FwRuntime& fr = dp_.fw();
  auto counters = [&](uint32_t id) {
    RuleCounters c = fr.sum(id);
    return json{{"packets", c.packets}, {"bytes", c.bytes}, {"sessions", c.sessions}};
  };
  if (method == "fw.zones.list") {
    json zones = json::array();
    zones.push_back({{"name", "management"}, {"kind", "management"}, {"implicit", true}});
    // Implicit zones of the domains in use that no zone claims.
    std::set<uint16_t> domains;
    for (auto& p : g.state.ports())
      if (!p.exception) domains.insert(p.domain);
    for (auto& p : g.state.wg_peers()) domains.insert(p.domain);
    for (auto& m : g.state.nat_mappings()) domains.insert(m.e.domain);
    for (uint16_t d : domains)
      if (g.fw.zone_live(implicit_zone(d)))
        zones.push_back({{"name", implicit_zone_name(d)},
                         {"kind", d == 0 ? "uplink" : "vdc"},
                         {"implicit", true},
                         {"domains", {d}}});
    for (auto& z : g.state.fw_zones()) {
      json j = fw_zone_json(z.e);
      j["implicit"] = false;
      j["origin"] = origin_name(z.origin);
      zones.push_back(j);
    }
    return {{"zones", zones}, {"tag", g.fw.tag()}};
  }
  if (method == "fw.policies.list") {
    std::string from = str_field(params, "from", "params", false);
    std::string to = str_field(params, "to", "params", false);
    json out = json::array();
    for (auto& pe : g.state.fw_policies()) {
      if ((!from.empty() && pe.e.from != from) || (!to.empty() && pe.e.to != to)) continue;
      const FwPolicyView* pv = nullptr;
      for (auto& [key, v] : g.fw.policies())
        if (v.policy.from == pe.e.from && v.policy.to == pe.e.to) pv = &v;
      json j = fw_policy_json(pe.e);
      j["origin"] = origin_name(pe.origin);
      if (pv) {
        for (size_t i = 0; i < pv->rules.size(); ++i) {
          j["rules"][i]["id"] = pv->rules[i].id;
          j["rules"][i]["counters"] = counters(pv->rules[i].id);
        }
        j["default_counters"] = counters(pv->fallback.id);
        j["acl_rules"] = pv->acl->acl_rules();
        j["changed_tag"] = pv->changed_tag;
      }
      out.push_back(j);
    }
    if ((!from.empty() || !to.empty()) && out.empty())
      refuse("not_found", "no fw_policy " + from + "->" + to);
    return {{"policies", out},
            {"builtin",
             {{"accept", counters(kRuleBuiltinAccept)},
              {"isolation", counters(kRuleBuiltinIsolation)}}},
            {"tag", g.fw.tag()}};
  }
  if (method == "fw.log.list") {
    uint64_t limit = uint_field(params, "limit", "params", 100, 1, 1000);
    return {{"lines", fr.recent_log(limit)}};
  }
  refuse("unknown_method", "no method \"" + method + "\"");
}

}  // namespace tether::dp
