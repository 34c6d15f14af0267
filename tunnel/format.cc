// Keys and configuration text in the WireGuard tools' formats (see format.h).
#include "tunnel/format.h"

#include <openssl/evp.h>

#include <cstring>

namespace tether::wg {

namespace {

constexpr size_t kBase64Len = 44;  // 4 * ceil(32 / 3): 43 characters and one '='

// The 64 characters of RFC 4648 §4 base64, nothing else (no whitespace, no
// URL-safe alphabet).
inline int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

void join(std::string* out, const std::vector<std::string>& items) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) *out += ", ";
    *out += items[i];
  }
}

void line(std::string* out, const char* key, std::string_view value) {
  *out += key;
  *out += " = ";
  *out += value;
  *out += '\n';
}

// wg-quick(8) and `wg setconf` (wg(8), CONFIGURATION FILE FORMAT) share the
// [Interface]/[Peer] layout; wg-quick adds Address, DNS, MTU and friends to
// [Interface], which `wg setconf` rejects.
std::string render(const RemoteConfig& c, bool wg_quick) {
  std::string s = "[Interface]\n";
  line(&s, "PrivateKey", c.private_key);
  if (wg_quick && !c.addresses.empty()) {
    s += "Address = ";
    join(&s, c.addresses);
    s += '\n';
  }
  if (c.listen_port != 0) line(&s, "ListenPort", std::to_string(c.listen_port));
  if (wg_quick && c.mtu != 0) line(&s, "MTU", std::to_string(c.mtu));
  s += "\n[Peer]\n";
  line(&s, "PublicKey", c.gateway_public_key);
  if (!c.preshared_key.empty()) line(&s, "PresharedKey", c.preshared_key);
  if (!c.gateway_endpoint.empty()) line(&s, "Endpoint", c.gateway_endpoint);
  if (!c.allowed_ips.empty()) {
    s += "AllowedIPs = ";
    join(&s, c.allowed_ips);
    s += '\n';
  }
  if (c.persistent_keepalive != 0) {
    line(&s, "PersistentKeepalive", std::to_string(c.persistent_keepalive));
  }
  return s;
}

}  // namespace

std::string key_to_base64(const Key& k) {
  unsigned char buf[kBase64Len + 1];  // EVP_EncodeBlock NUL-terminates
  int n = EVP_EncodeBlock(buf, k.data(), int(k.size()));
  std::string s(reinterpret_cast<const char*>(buf), size_t(n));
  secure_zero(buf, sizeof buf);  // may be a private key
  return s;
}

std::optional<Key> key_from_base64(std::string_view s) {
  // What `wg` accepts (wireguard-tools key_from_base64): exactly 43 base64
  // characters and one '='. EVP_DecodeBlock alone is laxer: it trims
  // surrounding whitespace and ignores padding, so check first.
  if (s.size() != kBase64Len || s[kBase64Len - 1] != '=') return std::nullopt;
  for (size_t i = 0; i + 1 < kBase64Len; ++i) {
    if (b64_value(s[i]) < 0) return std::nullopt;
  }
  // 43 characters carry 258 bits for 256 bits of key: the last character's
  // two low bits must be zero, or two spellings would decode to one key (wg
  // rejects the non-canonical one too).
  if (b64_value(s[kBase64Len - 2]) & 0x3) return std::nullopt;
  unsigned char buf[kBase64Len];  // 3 bytes per 4 characters, the '=' as zero bits
  int n = EVP_DecodeBlock(buf, reinterpret_cast<const unsigned char*>(s.data()), int(s.size()));
  std::optional<Key> k;
  if (n == 33) {  // EVP_DecodeBlock counts the padding as a decoded byte
    k.emplace();
    std::memcpy(k->data(), buf, kKeyLen);
  }
  secure_zero(buf, sizeof buf);
  return k;
}

std::string wg_quick_config(const RemoteConfig& c) { return render(c, true); }

std::string wg_setconf_config(const RemoteConfig& c) { return render(c, false); }

}  // namespace tether::wg
