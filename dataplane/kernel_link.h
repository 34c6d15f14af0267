// Keeps the kernel's side of the exception path in step with the dataplane:
// the TAP interface is up, NOARP, at the smallest data-port MTU, and carries
// every domain-0 address of the data ports (so the kernel, and the control
// plane listening on it, owns the appliance's addresses) and a route through
// the TAP for every domain-0 static route. Done through libnl (rtnetlink),
// never by running `ip`. Called from the main thread at start and from the
// API thread after each generation is published.
#pragma once

#include <cstdint>
#include <string>

#include "dataplane/tables.h"

struct nl_sock;

namespace tether::dp {

class KernelLink {
 public:
  KernelLink() = default;
  ~KernelLink();
  KernelLink(const KernelLink&) = delete;
  KernelLink& operator=(const KernelLink&) = delete;

  bool open(const std::string& ifname, unsigned mtu, std::string* error);
  // Brings addresses and routes to what `g` says; logs and returns false on
  // the first netlink error (the next publish tries again).
  bool sync(const Generation& g);

  // Routes we install carry this protocol number so we find our own again.
  static constexpr unsigned char kRouteProtocol = 77;
  static constexpr uint32_t kRouteMetric = 1000;

 private:
  nl_sock* sock_ = nullptr;
  std::string ifname_;
  int ifindex_ = 0;
};

}  // namespace tether::dp
