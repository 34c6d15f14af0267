#include "controlplane/input.h"

#include <algorithm>

namespace tether::cp {
namespace {

bool valid_port_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

}  // namespace

Status check_port(std::string_view port) {
  if (port.empty()) return invalid("a port name is required, e.g. uplink");
  if (port.size() > 64 || !std::all_of(port.begin(), port.end(), valid_port_char))
    return invalid("'" + std::string(port) +
                   "' is not a valid port name: use up to 64 letters, digits, '-', '_' or '.'");
  return Done{};
}

Result<Ipv4Prefix> parse_address(std::string_view text) {
  auto p = parse_prefix(text, /*allow_host_bits=*/true);
  if (!p || text.find('/') == std::string_view::npos)
    return invalid("'" + std::string(text) +
                   "' is not an interface address: write it as address/length, e.g. 10.0.1.1/24");
  if (p->len == 0) return invalid("an interface address needs a prefix length of 1 to 32");
  if (p->len <= 30) {
    const Ipv4 host = p->addr & ~p->mask();
    if (host == 0)
      return invalid(std::string(text) +
                     " is the network address of its subnet; use a host address such as " +
                     format_ipv4(p->network() + 1) + "/" + std::to_string(p->len));
    if (host == ~p->mask())
      return invalid(std::string(text) + " is the broadcast address of its subnet; use a host " +
                     "address such as " + format_ipv4(p->network() + 1) + "/" +
                     std::to_string(p->len));
  }
  return *p;
}

Result<Ipv4Prefix> parse_route_prefix(std::string_view text) {
  if (auto p = parse_prefix(text)) return *p;
  if (auto p = parse_prefix(text, /*allow_host_bits=*/true))
    return invalid(std::string(text) + " has host bits set; did you mean " +
                   format_prefix({p->network(), p->len}) + "?");
  return invalid("'" + std::string(text) + "' is not an IPv4 prefix, e.g. 10.2.0.0/24");
}

Status check_domain(int64_t domain) {
  if (domain < 0 || domain > 65535)
    return invalid("routing domain " + std::to_string(domain) + " is out of range 0..65535");
  return Done{};
}

}  // namespace tether::cp
