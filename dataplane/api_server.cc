#include "dataplane/api_server.h"

#include <poll.h>
#include <rte_ethdev.h>
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

#include "dataplane/api/wire.h"
#include "dataplane/dataplane.h"
#include "dataplane/log.h"

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

Change parse_change(const json& j, size_t i) {
  std::string where = "change " + std::to_string(i);
  if (!j.is_object()) refuse("invalid_argument", where + ": must be an object");
  Change c;
  std::string op = str_field(j, "op", where, true);
  if (op != "add" && op != "del") refuse("invalid_argument", where + ": op must be add or del");
  c.add = op == "add";
  std::string kind = str_field(j, "kind", where, true);
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
  } else {
    refuse("invalid_argument", where + ": kind must be address, route or neighbor");
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
  thread_ = std::thread([this] { loop(); });
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
    return {{"generation", g.id}, {"routes", routes}};
  }
  if (method == "neighbors.list") {
    json out = json::array();
    auto& nt = dp_.neighbors();
    uint64_t now = rte_get_timer_cycles() / (rte_get_timer_hz() / 1000);
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
    return {{"generation", r.generation}};
  }
  refuse("unknown_method", "no method \"" + method + "\"");
}

}  // namespace tether::dp
