#include "controlplane/tests/fake_dataplane.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "dataplane/api/wire.h"

namespace tether::cp::testing {

FakeDataplane::FakeDataplane(std::string socket_path, std::vector<std::string> ports)
    : path_(std::move(socket_path)), ports_(std::move(ports)) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ::unlink(path_.c_str());
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 4) != 0 || ::pipe(stop_pipe_) != 0)
    throw std::runtime_error("fake dataplane: cannot listen on " + path_);
  thread_ = std::thread([this] { serve(); });
}

FakeDataplane::~FakeDataplane() {
  char c = 0;
  (void)!::write(stop_pipe_[1], &c, 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(stop_pipe_[0]);
  ::close(stop_pipe_[1]);
  ::unlink(path_.c_str());
}

void FakeDataplane::serve() {
  std::vector<int> conns;  // several clients, like the real dataplane
  for (;;) {
    std::vector<pollfd> fds = {{stop_pipe_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    for (int c : conns) fds.push_back({c, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) continue;
    if (fds[0].revents) break;
    if (fds[1].revents) {
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) conns.push_back(c);
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      auto req = dpapi::read_message(fds[i].fd);
      if (!req) {
        ::close(fds[i].fd);
        std::erase(conns, fds[i].fd);
        continue;
      }
      dpapi::write_message(fds[i].fd, handle(*req));
    }
  }
  for (int c : conns) ::close(c);
}

void FakeDataplane::add_address(const std::string& port, const std::string& addr,
                                const std::string& origin) {
  std::lock_guard lock(mu_);
  state_.addresses.push_back({port, *parse_prefix(addr, true), origin});
}

void FakeDataplane::add_route(uint16_t domain, const std::string& prefix, const std::string& via,
                              const std::string& port, const std::string& origin) {
  std::lock_guard lock(mu_);
  Route r{domain, *parse_prefix(prefix), std::nullopt, port, origin};
  if (!via.empty()) r.via = parse_ipv4(via);
  state_.routes.push_back(r);
}

void FakeDataplane::conflict_next_applies(int n) {
  std::lock_guard lock(mu_);
  conflicts_ = n;
}

void FakeDataplane::refuse_prefix(const std::string& prefix) {
  std::lock_guard lock(mu_);
  refused_.push_back(*parse_prefix(prefix));
}

uint64_t FakeDataplane::generation() {
  std::lock_guard lock(mu_);
  return generation_;
}

int FakeDataplane::calls(const std::string& method) {
  std::lock_guard lock(mu_);
  return calls_[method];
}

std::vector<FakeDataplane::Address> FakeDataplane::addresses() {
  std::lock_guard lock(mu_);
  return state_.addresses;
}

std::vector<FakeDataplane::Route> FakeDataplane::routes() {
  std::lock_guard lock(mu_);
  return state_.routes;
}

bool FakeDataplane::has_route(uint16_t domain, const std::string& prefix,
                              const std::string& origin) {
  auto p = parse_prefix(prefix);
  auto all = routes();
  return std::any_of(all.begin(), all.end(), [&](const Route& r) {
    return r.domain == domain && r.prefix == *p && r.origin == origin;
  });
}

bool FakeDataplane::has_address(const std::string& port, const std::string& addr,
                                const std::string& origin) {
  auto a = parse_prefix(addr, true);
  auto all = addresses();
  return std::any_of(all.begin(), all.end(), [&](const Address& x) {
    return x.port == port && x.addr == *a && x.origin == origin;
  });
}

nlohmann::json FakeDataplane::handle(const nlohmann::json& req) {
  std::lock_guard lock(mu_);
  const auto id = req.value("id", nlohmann::json(nullptr));
  const std::string method = req.value("method", "");
  const auto params = req.value("params", nlohmann::json::object());
  ++calls_[method];
  if (method == "hello")
    return dpapi::ok_response(id,
                              {{"version", 1}, {"generation", generation_}, {"dataplane", "fake"}});
  if (method == "generation.get") return dpapi::ok_response(id, {{"generation", generation_}});
  if (method == "ports.list") {
    nlohmann::json ports = nlohmann::json::array();
    for (const auto& p : ports_) {
      nlohmann::json addrs = nlohmann::json::array();
      for (const auto& a : state_.addresses)
        if (a.port == p)
          addrs.push_back({{"address", format_prefix(a.addr)}, {"origin", a.origin}});
      ports.push_back({{"name", p}, {"kind", "data"}, {"domain", 0}, {"addresses", addrs}});
    }
    return dpapi::ok_response(id, {{"ports", ports}});
  }
  if (method == "routes.list") {
    nlohmann::json routes = nlohmann::json::array();
    for (const auto& a : state_.addresses)  // connected subnets, as the dataplane reports them
      routes.push_back({{"domain", 0},
                        {"prefix", format_prefix({a.addr.network(), a.addr.len})},
                        {"via", nullptr},
                        {"port", a.port},
                        {"kind", "connected"},
                        {"origin", "connected"}});
    for (const auto& r : state_.routes)
      routes.push_back({{"domain", r.domain},
                        {"prefix", format_prefix(r.prefix)},
                        {"via", r.via ? nlohmann::json(format_ipv4(*r.via)) : nullptr},
                        {"port", r.port},
                        {"kind", "static"},
                        {"origin", r.origin}});
    return dpapi::ok_response(id, {{"generation", generation_}, {"routes", routes}});
  }
  if (method == "config.apply") {
    if (conflicts_ > 0) {
      --conflicts_;
      ++generation_;
    }
    if (params.contains("expect_generation") &&
        params["expect_generation"].get<uint64_t>() != generation_)
      return dpapi::error_response(id, "conflict", "generation is " + std::to_string(generation_));
    const auto& changes = params.value("changes", nlohmann::json::array());
    State next = state_;
    const std::string origin = params.value("origin", "api");
    for (size_t i = 0; i < changes.size(); ++i)
      if (auto why = apply_one(next, changes[i], origin))
        return dpapi::error_response(id, "invalid_argument",
                                     "change " + std::to_string(i) + ": " + *why);
    if (!changes.empty()) {
      state_ = std::move(next);
      ++generation_;
    }
    return dpapi::ok_response(id, {{"generation", generation_}});
  }
  return dpapi::error_response(id, "unknown_method", method);
}

std::optional<std::string> FakeDataplane::apply_one(State& s, const nlohmann::json& c,
                                                    const std::string& origin) {
  const bool add = c.value("op", "") == "add";
  const std::string port = c.value("port", "");
  if (!port.empty() && std::find(ports_.begin(), ports_.end(), port) == ports_.end())
    return "no port " + port;
  auto connected = [&](Ipv4 ip, const std::string& on) -> const Address* {
    for (const auto& a : s.addresses)
      if ((on.empty() || a.port == on) && a.addr.contains(ip)) return &a;
    return nullptr;
  };
  if (c.value("kind", "") == "address") {
    auto a = parse_prefix(c.value("address", ""), true);
    if (!a) return "bad address";
    auto it = std::find_if(s.addresses.begin(), s.addresses.end(),
                           [&](const Address& x) { return x.port == port && x.addr == *a; });
    if (add) {
      if (it != s.addresses.end()) return "address exists";
      s.addresses.push_back({port, *a, origin});
      return std::nullopt;
    }
    if (it == s.addresses.end() || it->origin != origin) return "no such address";
    Address gone = *it;
    s.addresses.erase(it);
    for (const auto& r : s.routes)
      if (r.via && r.port == gone.port && gone.addr.contains(*r.via) && !connected(*r.via, r.port))
        return "route " + format_prefix(r.prefix) + " depends on " + format_prefix(gone.addr);
    return std::nullopt;
  }
  auto p = parse_prefix(c.value("prefix", ""));
  if (!p) return "bad prefix";
  if (std::find(refused_.begin(), refused_.end(), *p) != refused_.end())
    return "route " + format_prefix(*p) + " refused by the test";
  const uint16_t domain = c.value("domain", uint16_t{0});
  auto it = std::find_if(s.routes.begin(), s.routes.end(),
                         [&](const Route& r) { return r.domain == domain && r.prefix == *p; });
  if (!add) {
    if (it == s.routes.end() || it->origin != origin) return "no such route";
    s.routes.erase(it);
    return std::nullopt;
  }
  if (it != s.routes.end()) return "route exists";
  Route r{domain, *p, std::nullopt, port, origin};
  if (c.contains("via")) {
    r.via = parse_ipv4(c.value("via", ""));
    const Address* a = r.via ? connected(*r.via, port) : nullptr;
    if (!a) return "gateway not in a connected subnet";
    r.port = a->port;
  } else if (port.empty()) {
    return "route needs via or port";
  }
  s.routes.push_back(r);
  return std::nullopt;
}

}  // namespace tether::cp::testing
