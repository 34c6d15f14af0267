// tether-dataplane: reads its configuration, starts DPDK, ports, workers, the
// service thread and the API server, and runs until SIGTERM/SIGINT. Exit 0
// after a clean shutdown with every mbuf back in its pool, 3 if mbufs leaked,
// 1 on a start-up error.
#include <rte_eal.h>
#include <rte_lcore.h>
#include <sched.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <sstream>

#include "dataplane/api_server.h"
#include "dataplane/config.h"
#include "dataplane/dataplane.h"
#include "dataplane/kernel_link.h"
#include "dataplane/log.h"
#include "firewall/host_firewall.h"

namespace {

std::atomic<tether::dp::Dataplane*> g_dp{nullptr};
std::atomic<bool> g_stop{false};

// Installed before anything starts, so a SIGTERM during start-up still ends
// in a clean shutdown instead of killing the process.
void on_signal(int) {
  g_stop.store(true);
  if (auto* dp = g_dp.load()) dp->stop();
}

std::vector<unsigned> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<unsigned> out;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (unsigned i = 0; i < CPU_SETSIZE; ++i)
      if (CPU_ISSET(i, &set)) out.push_back(i);
  return out;
}

std::string devarg(const std::string& device, const std::string& key) {
  std::stringstream ss(device);
  std::string part;
  while (std::getline(ss, part, ','))
    if (part.rfind(key + "=", 0) == 0) return part.substr(key.size() + 1);
  return {};
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "tether-dataplane: %s\n", msg.c_str());
  return 1;
}

// Runs the dataplane until SIGTERM/SIGINT. Every DPDK object it creates is
// gone when it returns, on error paths too, so main can clean up EAL after.
int serve(const tether::dp::DataplaneConfig& cfg) {
  tether::dp::Dataplane dp(cfg);
  g_dp.store(&dp);
  struct ForgetDataplane {
    ~ForgetDataplane() { g_dp.store(nullptr); }
  } forget;
  if (g_stop.load()) dp.stop();
  std::string error;
  auto give_up = [&](const std::string& msg) {
    dp.stop();
    dp.shutdown();
    return fail(msg);
  };
  if (!dp.setup(&error)) return give_up(error);
  // The kernel must not answer on interfaces the dataplane drives.
  tether::fw::InterfaceClaim claim;
  std::vector<std::string> claimed;
  for (auto& p : cfg.ports)
    if (p.device.rfind("net_af_packet", 0) == 0 && !devarg(p.device, "iface").empty())
      claimed.push_back(devarg(p.device, "iface"));
  if (!claimed.empty() && !claim.claim("tether_dataplane", claimed, &error)) return give_up(error);
  tether::dp::KernelLink kernel;
  if (cfg.exception_device) {
    std::string ifname = devarg(*cfg.exception_device, "iface");
    if (ifname.empty()) ifname = "dtap0";  // net_tap's default name
    uint16_t mtu = 1500;
    for (auto& p : cfg.ports) mtu = std::min(mtu, p.mtu);
    if (!kernel.open(ifname, mtu, &error)) return give_up(error);
    kernel.sync(*dp.current());
    dp.on_publish([&kernel](const tether::dp::Generation& g) { kernel.sync(g); });
  }
  // The appliance's own kernel side (docs/decisions/007-firewall.md).
  tether::fw::HostFirewall host_firewall;
  if (cfg.host_firewall && !host_firewall.apply(*cfg.host_firewall, &error))
    return give_up("config host_firewall: " + error);
  tether::dp::ApiServer api(dp, cfg.api_socket, &host_firewall);
  if (!api.start(&error)) return give_up(error);
  TLOG(INFO, "running: %zu port(s), %zu worker(s), API on %s", cfg.ports.size(),
       cfg.worker_lcores.size(), cfg.api_socket.c_str());
  std::printf("tether-dataplane: ready (generation %lu, API %s)\n",
              static_cast<unsigned long>(dp.generation_id()), cfg.api_socket.c_str());
  std::fflush(stdout);
  dp.run();
  api.stop();
  int64_t leaked = dp.shutdown();
  if (leaked != 0) {
    std::fprintf(stderr, "tether-dataplane: %ld mbuf(s) leaked\n", static_cast<long>(leaked));
    return 3;
  }
  std::printf("tether-dataplane: stopped, all mbufs returned\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Tether data plane"};
  std::string config_path, api_socket, extra_eal, log_level;
  app.add_option("-c,--config", config_path, "configuration file (JSON)")->required();
  app.add_option("--api-socket", api_socket, "dataplane API socket (overrides the config)");
  app.add_option("--eal", extra_eal, "extra EAL arguments, space separated");
  app.add_option("--log-level", log_level, "DPDK log level (e.g. 'info', 'tether.*:debug')");
  CLI11_PARSE(app, argc, argv);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);

  std::string error;
  auto cfg = tether::dp::load_config(config_path, &error);
  if (!cfg) return fail(error);
  if (!api_socket.empty()) cfg->api_socket = api_socket;

  // Lcores: service = DPDK's main lcore, workers on the others.
  auto cpus = allowed_cpus();
  if (!cfg->service_lcore) {
    if (cpus.empty()) return fail("no CPU available");
    cfg->service_lcore = cpus[0];
  }
  if (cfg->worker_lcores.empty()) {
    for (unsigned c : cpus)
      if (c != *cfg->service_lcore) {
        cfg->worker_lcores.push_back(c);
        break;
      }
    if (cfg->worker_lcores.empty())
      return fail("need at least two CPUs: one for the service thread, one for a worker");
  }
  std::string lcores = std::to_string(*cfg->service_lcore);
  for (unsigned w : cfg->worker_lcores) lcores += "," + std::to_string(w);

  std::vector<std::string> eal = {"tether-dataplane", "-l", lcores, "--main-lcore",
                                  std::to_string(*cfg->service_lcore)};
  for (auto& a : cfg->eal_args) eal.push_back(a);
  for (auto& p : cfg->ports) {
    eal.push_back(p.is_vdev() ? "--vdev" : "-a");
    eal.push_back(p.device);
  }
  if (cfg->exception_device) {
    eal.push_back("--vdev");
    eal.push_back(*cfg->exception_device);
  }
  if (!log_level.empty()) eal.push_back("--log-level=" + log_level);
  std::stringstream extra(extra_eal);
  for (std::string a; extra >> a;) eal.push_back(a);
  std::vector<char*> eal_argv;
  for (auto& a : eal) eal_argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0)
    return fail("EAL initialisation failed (see the EAL's messages above)");

  int rc = serve(*cfg);
  rte_eal_cleanup();
  return rc;
}
