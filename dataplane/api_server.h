// The dataplane API server (docs/dataplane-api.md): a Unix stream socket
// served by one thread of its own, outside DPDK's lcores. It is the only
// writer of generations (through Dataplane::apply_changes) and reads
// counters and tables for the listings. Several clients may be connected;
// their requests are handled one at a time.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <thread>

namespace tether::fw {
class HostFirewall;
}

namespace tether::dp {

class Dataplane;
struct Generation;

class ApiServer {
 public:
  // `host` (may be nullptr) is the appliance's host firewall the
  // host_firewall.* methods drive.
  ApiServer(Dataplane& dp, std::string path, fw::HostFirewall* host = nullptr)
      : dp_(dp), path_(std::move(path)), host_(host) {}
  ~ApiServer();
  bool start(std::string* error);
  void stop();

  // One request → one response; exposed for unit tests.
  nlohmann::json handle(const nlohmann::json& request, bool& hello_done);

 private:
  void loop();
  nlohmann::json dispatch(const std::string& method, const nlohmann::json& params);
  nlohmann::json wg_interfaces_json(const Generation& g);
  nlohmann::json wg_peers_json(const Generation& g, const std::string& only_interface);
  nlohmann::json nat_method(const std::string& method, const nlohmann::json& params,
                            const Generation& g);
  nlohmann::json fw_method(const std::string& method, const nlohmann::json& params,
                           const Generation& g);

  Dataplane& dp_;
  std::string path_;
  fw::HostFirewall* host_ = nullptr;
  int listen_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
};

}  // namespace tether::dp
