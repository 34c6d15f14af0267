// The appliance's host firewall, through libnftables. Today it does one
// thing: it claims the kernel interfaces that the dataplane drives through
// packet sockets (net_af_packet), with a netdev ingress chain that drops
// every frame before the kernel's IP stack sees it. Packet taps run before
// the ingress hook, so the dataplane still receives everything, while the
// kernel can no longer answer ARP or IP on the dataplane's behalf.
// Owned by the process that drives the interfaces; any thread, not the fast path.
#pragma once

#include <string>
#include <vector>

struct nft_ctx;

namespace tether::fw {

class InterfaceClaim {
 public:
  InterfaceClaim() = default;
  ~InterfaceClaim();
  InterfaceClaim(const InterfaceClaim&) = delete;
  InterfaceClaim& operator=(const InterfaceClaim&) = delete;

  // Installs table `netdev <table>` with one ingress drop chain per interface,
  // replacing a table of that name left by an earlier run.
  bool claim(const std::string& table, const std::vector<std::string>& ifnames, std::string* error);
  // Removes the table (also done by the destructor).
  void release();

 private:
  bool run(const std::string& cmd, std::string* error);
  nft_ctx* ctx_ = nullptr;
  std::string table_;
};

}  // namespace tether::fw
