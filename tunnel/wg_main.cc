// tether-wg: WireGuard keys and the remote side's configuration, in the
// formats of the standard tools, so a site or a user needs only wg(8).
//   tether-wg genkey                 private key, as `wg genkey`
//   tether-wg pubkey < private       its public key, as `wg pubkey`
//   tether-wg genpsk                 preshared key, as `wg genpsk`
//   tether-wg peer-config --gateway-public-key K --endpoint H:P --allowed CIDR...
//                                    the remote's wg-quick (or `wg setconf`) file
// Exit 2 on a malformed key.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "tunnel/crypto.h"
#include "tunnel/format.h"

namespace {

using namespace tether::wg;

// Surrounding whitespace is the trailing newline of `wg genkey > file`; the
// key itself is checked strictly.
std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\n";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

bool parse_key(const char* what, std::string_view text, Key* out) {
  auto k = key_from_base64(trim(text));
  if (!k) {
    std::fprintf(stderr, "tether-wg: %s: not a WireGuard key (44 base64 characters)\n", what);
    return false;
  }
  *out = *k;
  secure_zero(*k);
  return true;
}

void print_key(const Key& k) { std::printf("%s\n", key_to_base64(k).c_str()); }

int cmd_pubkey() {
  std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  Key priv, pub;
  bool ok = parse_key("private key on stdin", in, &priv);
  secure_zero(in.data(), in.size());
  if (!ok) return 2;
  ok = x25519_public(priv, &pub);
  secure_zero(priv);
  if (!ok) {
    std::fprintf(stderr, "tether-wg: cannot compute the public key\n");
    return 1;
  }
  print_key(pub);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"WireGuard keys and peer configuration for tether"};
  app.require_subcommand(1);

  app.add_subcommand("genkey", "Print a new private key (base64), as `wg genkey`");
  app.add_subcommand("pubkey", "Read a private key on stdin, print its public key");
  app.add_subcommand("genpsk", "Print a new preshared key (base64), as `wg genpsk`");

  auto* pc = app.add_subcommand(
      "peer-config", "Print the remote side's configuration, with the gateway as its [Peer]");
  RemoteConfig rc;
  std::string format = "wg-quick";
  pc->add_option("--private-key", rc.private_key,
                 "The remote's private key (base64); default: generate one and print its "
                 "public key on stderr");
  pc->add_option("--address", rc.addresses, "The remote's inner address, CIDR (repeatable)");
  pc->add_option("--listen-port", rc.listen_port, "The remote's UDP port");
  pc->add_option("--mtu", rc.mtu, "The remote's tunnel MTU");
  pc->add_option("--gateway-public-key", rc.gateway_public_key, "The gateway's public key")
      ->required();
  pc->add_option("--preshared-key", rc.preshared_key, "Preshared key (base64)");
  pc->add_option("--endpoint", rc.gateway_endpoint, "The gateway's host:port")->required();
  pc->add_option("--allowed", rc.allowed_ips, "Prefix routed to the gateway (repeatable)")
      ->required();
  pc->add_option("--keepalive", rc.persistent_keepalive, "PersistentKeepalive, seconds");
  pc->add_option("--format", format, "wg-quick (default) or wg (for `wg setconf`)")
      ->check(CLI::IsMember({"wg-quick", "wg"}));

  CLI11_PARSE(app, argc, argv);

  if (app.got_subcommand("genkey")) {
    Key k = x25519_generate();
    print_key(k);
    secure_zero(k);
    return 0;
  }
  if (app.got_subcommand("genpsk")) {
    Key k;
    random_bytes(k.data(), k.size());
    print_key(k);
    secure_zero(k);
    return 0;
  }
  if (app.got_subcommand("pubkey")) return cmd_pubkey();

  // peer-config: every key is checked here, so the file the user installs
  // cannot fail later in wg-quick with a less helpful message.
  Key k;
  if (!parse_key("--gateway-public-key", rc.gateway_public_key, &k)) return 2;
  rc.gateway_public_key = key_to_base64(k);
  if (!rc.preshared_key.empty()) {
    if (!parse_key("--preshared-key", rc.preshared_key, &k)) return 2;
    rc.preshared_key = key_to_base64(k);
  }
  if (rc.private_key.empty()) {
    k = x25519_generate();
    rc.private_key = key_to_base64(k);
  } else if (!parse_key("--private-key", rc.private_key, &k)) {
    return 2;
  } else {
    rc.private_key = key_to_base64(k);
  }
  // The gateway needs the remote's public key for its own peer entry.
  Key pub;
  if (!x25519_public(k, &pub)) {
    std::fprintf(stderr, "tether-wg: cannot compute the public key\n");
    return 1;
  }
  secure_zero(k);
  std::fprintf(stderr, "tether-wg: the remote's public key (for the gateway's peer entry): %s\n",
               key_to_base64(pub).c_str());
  std::string text = format == "wg" ? wg_setconf_config(rc) : wg_quick_config(rc);
  std::fputs(text.c_str(), stdout);
  secure_zero(text.data(), text.size());
  secure_zero(rc.private_key.data(), rc.private_key.size());
  return 0;
}
