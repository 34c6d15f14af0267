// The WireGuard tools' formats, so a site or a user is set up with standard
// tools: keys as `wg genkey` / `wg pubkey` print them (base64 of 32 bytes,
// 44 characters), and the other side's configuration in the `wg-quick`
// format (wg-quick(8); `wg setconf` takes the same file without the
// Address/DNS/MTU lines, see strip_wg_quick).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tunnel/crypto.h"

namespace tether::wg {

std::string key_to_base64(const Key& k);
// nullopt unless `s` is exactly 44 base64 characters encoding 32 bytes.
std::optional<Key> key_from_base64(std::string_view s);

// The remote side's view: it is the [Interface]; the gateway is its [Peer].
struct RemoteConfig {
  std::string private_key;       // base64, or a placeholder the user fills in
  std::vector<std::string> addresses;  // the remote's inner addresses, CIDR
  uint16_t listen_port = 0;      // 0: omitted
  uint16_t mtu = 0;              // 0: omitted
  std::string gateway_public_key;  // base64
  std::string preshared_key;       // base64 or empty
  std::string gateway_endpoint;    // "host:port"
  std::vector<std::string> allowed_ips;  // what the remote routes to the gateway
  uint16_t persistent_keepalive = 0;     // seconds; 0: omitted
};

// wg-quick configuration text for the remote side.
std::string wg_quick_config(const RemoteConfig& c);
// The same without wg-quick's own keys (Address, MTU, DNS): for `wg setconf`.
std::string wg_setconf_config(const RemoteConfig& c);

}  // namespace tether::wg
