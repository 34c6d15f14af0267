#include "dataplane/kernel_link.h"

#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>
#include <sys/socket.h>

#include <fstream>
#include <set>

#include "dataplane/log.h"

namespace tether::dp {
namespace {

// RAII for libnl objects.
template <typename T, void (*Free)(T*)>
struct NlPtr {
  T* p = nullptr;
  NlPtr() = default;
  explicit NlPtr(T* x) : p(x) {}
  ~NlPtr() {
    if (p) Free(p);
  }
  NlPtr(const NlPtr&) = delete;
  NlPtr& operator=(const NlPtr&) = delete;
  NlPtr(NlPtr&& o) noexcept : p(o.p) { o.p = nullptr; }
  T* get() const { return p; }
  T** out() { return &p; }
};
void free_cache(nl_cache* c) { nl_cache_free(c); }
void free_addr(rtnl_addr* a) { rtnl_addr_put(a); }
void free_link(rtnl_link* l) { rtnl_link_put(l); }
void free_route(rtnl_route* r) { rtnl_route_put(r); }
void free_nladdr(nl_addr* a) { nl_addr_put(a); }
using Cache = NlPtr<nl_cache, free_cache>;
using Addr = NlPtr<rtnl_addr, free_addr>;
using Link = NlPtr<rtnl_link, free_link>;
using Route = NlPtr<rtnl_route, free_route>;
using NlAddr = NlPtr<nl_addr, free_nladdr>;

NlAddr make_addr(Ipv4 a, unsigned len) {
  uint32_t be = htonl(a);
  NlAddr out(nl_addr_build(AF_INET, &be, 4));
  nl_addr_set_prefixlen(out.get(), static_cast<int>(len));
  return out;
}

void write_sysctl(const std::string& path, const char* value) {
  std::ofstream f(path);
  if (f) f << value;
}

}  // namespace

KernelLink::~KernelLink() {
  if (sock_) nl_socket_free(sock_);
}

bool KernelLink::open(const std::string& ifname, unsigned mtu, std::string* error) {
  ifname_ = ifname;
  sock_ = nl_socket_alloc();
  if (!sock_ || nl_connect(sock_, NETLINK_ROUTE) != 0) {
    *error = "netlink: cannot connect";
    return false;
  }
  Link link;
  int rc = rtnl_link_get_kernel(sock_, 0, ifname.c_str(), link.out());
  if (rc < 0) {
    *error = "netlink: no interface " + ifname + ": " + nl_geterror(rc);
    return false;
  }
  ifindex_ = rtnl_link_get_ifindex(link.get());
  // The dataplane answers for every address behind the TAP: no ARP, no IPv6
  // (not forwarded yet), and no reverse-path filter on the kernel's side.
  write_sysctl("/proc/sys/net/ipv6/conf/" + ifname + "/disable_ipv6", "1");
  write_sysctl("/proc/sys/net/ipv4/conf/" + ifname + "/rp_filter", "0");
  Link change(rtnl_link_alloc());
  rtnl_link_set_flags(change.get(), IFF_UP | IFF_NOARP);
  rtnl_link_set_mtu(change.get(), mtu);
  rc = rtnl_link_change(sock_, link.get(), change.get(), 0);
  if (rc < 0) {
    *error = "netlink: cannot bring up " + ifname + ": " + nl_geterror(rc);
    return false;
  }
  return true;
}

bool KernelLink::sync(const Generation& g) {
  if (!sock_) return false;
  // Desired state.
  std::set<std::pair<Ipv4, unsigned>> want_addrs;
  for (auto& a : g.state.addresses()) {
    const PortInfo* p = g.state.port_by_id(a.port);
    if (p && p->domain == 0) want_addrs.insert({a.addr.addr, a.addr.len});
  }
  std::set<std::pair<Ipv4, unsigned>> want_routes;
  for (auto& r : g.state.routes())
    if (r.domain == 0) want_routes.insert({r.prefix.addr, r.prefix.len});

  // Addresses.
  Cache addrs;
  if (int rc = rtnl_addr_alloc_cache(sock_, addrs.out()); rc < 0) {
    TLOG(ERR, "netlink: cannot list addresses: %s", nl_geterror(rc));
    return false;
  }
  std::set<std::pair<Ipv4, unsigned>> have_addrs;
  for (nl_object* o = nl_cache_get_first(addrs.get()); o; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_ifindex(a) != ifindex_ || rtnl_addr_get_family(a) != AF_INET) continue;
    nl_addr* local = rtnl_addr_get_local(a);
    Ipv4 ip = ntohl(*static_cast<uint32_t*>(nl_addr_get_binary_addr(local)));
    unsigned len = static_cast<unsigned>(rtnl_addr_get_prefixlen(a));
    if (!want_addrs.count({ip, len})) {
      int rc = rtnl_addr_delete(sock_, a, 0);
      TLOG(INFO, "kernel: remove %s/%u from %s%s", format_ipv4(ip).c_str(), len, ifname_.c_str(),
           rc < 0 ? " failed" : "");
    } else {
      have_addrs.insert({ip, len});
    }
  }
  bool ok = true;
  for (auto& [ip, len] : want_addrs) {
    if (have_addrs.count({ip, len})) continue;
    Addr a(rtnl_addr_alloc());
    rtnl_addr_set_ifindex(a.get(), ifindex_);
    NlAddr local = make_addr(ip, len);
    rtnl_addr_set_local(a.get(), local.get());
    int rc = rtnl_addr_add(sock_, a.get(), 0);
    if (rc < 0) {
      TLOG(ERR, "kernel: cannot add %s/%u to %s: %s", format_ipv4(ip).c_str(), len, ifname_.c_str(),
           nl_geterror(rc));
      ok = false;
    }
  }

  // Routes we own (by protocol number) on the TAP.
  Cache routes;
  if (int rc = rtnl_route_alloc_cache(sock_, AF_INET, 0, routes.out()); rc < 0) {
    TLOG(ERR, "netlink: cannot list routes: %s", nl_geterror(rc));
    return false;
  }
  std::set<std::pair<Ipv4, unsigned>> have_routes;
  for (nl_object* o = nl_cache_get_first(routes.get()); o; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_protocol(r) != kRouteProtocol || rtnl_route_get_table(r) != RT_TABLE_MAIN)
      continue;
    nl_addr* dst = rtnl_route_get_dst(r);
    Ipv4 ip = nl_addr_get_len(dst) == 4
                  ? ntohl(*static_cast<uint32_t*>(nl_addr_get_binary_addr(dst)))
                  : 0;
    unsigned len = nl_addr_get_prefixlen(dst);
    if (!want_routes.count({ip, len})) {
      rtnl_route_delete(sock_, r, 0);
      TLOG(INFO, "kernel: remove route %s/%u", format_ipv4(ip).c_str(), len);
    } else {
      have_routes.insert({ip, len});
    }
  }
  for (auto& [ip, len] : want_routes) {
    if (have_routes.count({ip, len})) continue;
    Route r(rtnl_route_alloc());
    NlAddr dst = make_addr(ip, len);
    rtnl_route_set_family(r.get(), AF_INET);
    rtnl_route_set_dst(r.get(), dst.get());
    rtnl_route_set_table(r.get(), RT_TABLE_MAIN);
    rtnl_route_set_protocol(r.get(), kRouteProtocol);
    rtnl_route_set_scope(r.get(), RT_SCOPE_LINK);
    rtnl_route_set_type(r.get(), RTN_UNICAST);
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    rtnl_route_nh_set_ifindex(nh, ifindex_);
    rtnl_route_add_nexthop(r.get(), nh);  // the route owns nh now
    // Beside the host's own routes, never over them: our metric is high and
    // EXCL refuses to replace anything.
    rtnl_route_set_priority(r.get(), kRouteMetric);
    int rc = rtnl_route_add(sock_, r.get(), NLM_F_CREATE | NLM_F_EXCL);
    if (rc < 0) {
      TLOG(ERR, "kernel: cannot add route %s/%u via %s: %s", format_ipv4(ip).c_str(), len,
           ifname_.c_str(), nl_geterror(rc));
      ok = false;
    }
  }
  return ok;
}

}  // namespace tether::dp
