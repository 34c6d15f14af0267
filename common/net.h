// Value types for addresses and prefixes shared by every module.
// Pure functions, callable from any thread. Addresses are kept in host byte
// order; conversion to network order happens at the packet boundary.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tether {

using Ipv4 = uint32_t;  // host byte order

std::optional<Ipv4> parse_ipv4(std::string_view text);
std::string format_ipv4(Ipv4 addr);

struct Ipv4Prefix {
  Ipv4 addr = 0;  // host order; network part only unless it is an interface address
  uint8_t len = 0;

  Ipv4 mask() const { return len == 0 ? 0 : ~uint32_t{0} << (32 - len); }
  Ipv4 network() const { return addr & mask(); }
  bool contains(Ipv4 a) const { return (a & mask()) == network(); }
  bool operator==(const Ipv4Prefix&) const = default;
  auto operator<=>(const Ipv4Prefix&) const = default;
};

// "10.0.0.0/8". A bare address parses as /32. With allow_host_bits=false a
// prefix such as 10.0.0.1/8 is rejected (an interface address keeps them).
std::optional<Ipv4Prefix> parse_prefix(std::string_view text, bool allow_host_bits = false);
std::string format_prefix(const Ipv4Prefix& p);

struct MacAddr {
  std::array<uint8_t, 6> bytes{};
  bool operator==(const MacAddr&) const = default;
  bool is_zero() const { return bytes == std::array<uint8_t, 6>{}; }
};

std::optional<MacAddr> parse_mac(std::string_view text);
std::string format_mac(const MacAddr& mac);

}  // namespace tether
