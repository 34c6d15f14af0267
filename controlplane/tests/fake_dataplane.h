// A stand-in for tether-dataplane's API in unit tests: a Unix socket server
// on its own thread, speaking the real framing (dataplane/api/wire.h) and
// keeping a small model of ports, addresses and routes that enforces the
// rules of docs/dataplane-api.md that the reconciler relies on. Tests drive
// it from their own thread; every accessor takes the model's lock.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/net.h"

namespace tether::cp::testing {

class FakeDataplane {
 public:
  struct Address {
    std::string port;
    Ipv4Prefix addr;
    std::string origin;
  };
  struct Route {
    uint16_t domain = 0;
    Ipv4Prefix prefix;
    std::optional<Ipv4> via;
    std::string port;
    std::string origin;
  };

  FakeDataplane(std::string socket_path, std::vector<std::string> ports);
  ~FakeDataplane();

  // Boot configuration or earlier API state, set before the reconciler runs.
  void add_address(const std::string& port, const std::string& addr, const std::string& origin);
  void add_route(uint16_t domain, const std::string& prefix, const std::string& via,
                 const std::string& port, const std::string& origin);

  // The next `n` config.apply calls meet a generation bumped just before.
  void conflict_next_applies(int n);
  // Any change on this route prefix is refused as invalid_argument.
  void refuse_prefix(const std::string& prefix);

  uint64_t generation();
  int calls(const std::string& method);
  std::vector<Address> addresses();
  std::vector<Route> routes();
  bool has_route(uint16_t domain, const std::string& prefix, const std::string& origin);
  bool has_address(const std::string& port, const std::string& addr, const std::string& origin);

 private:
  struct State {
    std::vector<Address> addresses;
    std::vector<Route> routes;
  };
  void serve();
  nlohmann::json handle(const nlohmann::json& req);
  std::optional<std::string> apply_one(State& s, const nlohmann::json& c,
                                       const std::string& origin);

  std::string path_;
  std::vector<std::string> ports_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::thread thread_;

  std::mutex mu_;
  State state_;
  uint64_t generation_ = 1;
  int conflicts_ = 0;
  std::vector<Ipv4Prefix> refused_;
  std::map<std::string, int> calls_;
};

}  // namespace tether::cp::testing
