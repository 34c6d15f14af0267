#include "common/net.h"

#include <charconv>
#include <cstdio>

namespace tether {

std::optional<Ipv4> parse_ipv4(std::string_view text) {
  Ipv4 out = 0;
  for (int i = 0; i < 4; ++i) {
    if (i > 0) {
      if (text.empty() || text.front() != '.') return std::nullopt;
      text.remove_prefix(1);
    }
    // Octets are 1-3 decimal digits; no signs, no leading zeros beyond "0".
    size_t n = 0;
    while (n < text.size() && n < 4 && text[n] >= '0' && text[n] <= '9') ++n;
    if (n == 0 || n > 3 || (n > 1 && text[0] == '0')) return std::nullopt;
    unsigned v = 0;
    std::from_chars(text.data(), text.data() + n, v);
    if (v > 255) return std::nullopt;
    out = (out << 8) | v;
    text.remove_prefix(n);
  }
  if (!text.empty()) return std::nullopt;
  return out;
}

std::string format_ipv4(Ipv4 a) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff,
                a & 0xff);
  return buf;
}

std::optional<Ipv4Prefix> parse_prefix(std::string_view text, bool allow_host_bits) {
  Ipv4Prefix p;
  auto slash = text.find('/');
  auto addr = parse_ipv4(text.substr(0, slash));
  if (!addr) return std::nullopt;
  p.addr = *addr;
  p.len = 32;
  if (slash != std::string_view::npos) {
    auto len_text = text.substr(slash + 1);
    unsigned len = 0;
    auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
    if (ec != std::errc{} || end != len_text.data() + len_text.size() || len_text.empty() ||
        len > 32)
      return std::nullopt;
    p.len = static_cast<uint8_t>(len);
  }
  if (!allow_host_bits && p.addr != p.network()) return std::nullopt;
  return p;
}

std::string format_prefix(const Ipv4Prefix& p) {
  return format_ipv4(p.addr) + "/" + std::to_string(p.len);
}

std::optional<MacAddr> parse_mac(std::string_view text) {
  MacAddr m;
  if (text.size() != 17) return std::nullopt;
  for (int i = 0; i < 6; ++i) {
    if (i > 0 && text[i * 3 - 1] != ':') return std::nullopt;
    unsigned v = 0;
    auto [end, ec] = std::from_chars(text.data() + i * 3, text.data() + i * 3 + 2, v, 16);
    if (ec != std::errc{} || end != text.data() + i * 3 + 2) return std::nullopt;
    m.bytes[i] = static_cast<uint8_t>(v);
  }
  return m;
}

std::string format_mac(const MacAddr& m) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m.bytes[0], m.bytes[1],
                m.bytes[2], m.bytes[3], m.bytes[4], m.bytes[5]);
  return buf;
}

}  // namespace tether
