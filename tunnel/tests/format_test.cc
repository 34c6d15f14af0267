// Keys and configuration text in the WireGuard tools' formats
// (tunnel/format.h), including interop with the real `wg` when installed.
#include "tunnel/format.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

namespace tether::wg {
namespace {

// RFC 7748 §6.1 Alice's keys, base64 as `wg pubkey` prints them (computed
// with python3 -c "import base64; print(base64.b64encode(bytes.fromhex('...')).decode())").
constexpr const char* kAlicePrivHex =
    "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
constexpr const char* kAlicePriv64 = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
constexpr const char* kAlicePub64 = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";

Key key_from_hex(const char* h) {
  Key k{};
  for (size_t i = 0; i < k.size(); ++i)
    k[i] = uint8_t(std::stoi(std::string(h + 2 * i, 2), nullptr, 16));
  return k;
}

TEST(FormatKey, KnownEncoding) {
  Key priv = key_from_hex(kAlicePrivHex);
  EXPECT_EQ(key_to_base64(priv), kAlicePriv64);
  auto back = key_from_base64(kAlicePriv64);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, priv);
  Key pub;
  ASSERT_TRUE(x25519_public(*back, &pub));
  EXPECT_EQ(key_to_base64(pub), kAlicePub64);
  EXPECT_EQ(key_to_base64(Key{}), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
}

TEST(FormatKey, RoundTripRandom) {
  for (int i = 0; i < 1000; ++i) {
    Key k;
    random_bytes(k.data(), k.size());
    std::string s = key_to_base64(k);
    ASSERT_EQ(s.size(), 44u);
    ASSERT_EQ(s.back(), '=');
    auto back = key_from_base64(s);
    ASSERT_TRUE(back.has_value()) << s;
    ASSERT_EQ(*back, k) << s;
  }
}

TEST(FormatKey, RejectsMalformed) {
  const std::string good = kAlicePriv64;
  EXPECT_FALSE(key_from_base64(""));
  EXPECT_FALSE(key_from_base64(good.substr(0, 43)));         // no padding
  EXPECT_FALSE(key_from_base64(good + "="));                 // too long
  EXPECT_FALSE(key_from_base64(good + "\n"));                // trailing newline
  EXPECT_FALSE(key_from_base64(" " + good.substr(1)));       // leading space
  EXPECT_FALSE(key_from_base64(good.substr(0, 43) + "A"));   // last char not '='
  EXPECT_FALSE(key_from_base64(good.substr(0, 42) + "=="));  // 31 bytes
  std::string bad = good;
  bad[10] = '-';  // URL-safe alphabet
  EXPECT_FALSE(key_from_base64(bad));
  bad[10] = '*';
  EXPECT_FALSE(key_from_base64(bad));
  bad[10] = '\0';
  EXPECT_FALSE(key_from_base64(bad));
  // Non-canonical: the 43rd character carries two bits beyond the key.
  // 'AAAA...AAB=' decodes to the same bytes as 'AAAA...AAA=' in lax decoders.
  EXPECT_TRUE(key_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
  EXPECT_FALSE(key_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB="));
  EXPECT_FALSE(key_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAD="));
  EXPECT_TRUE(key_from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE="));
}

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[256];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// wireguard-tools interop: keys from `wg genkey` parse, and our public key
// is the one `wg pubkey` derives; and `wg pubkey` accepts ours.
TEST(FormatKey, InteropWithWgTools) {
  if (access("/usr/bin/wg", X_OK) != 0) GTEST_SKIP() << "/usr/bin/wg not installed";
  for (int i = 0; i < 5; ++i) {
    std::string priv64 = run("/usr/bin/wg genkey");
    ASSERT_EQ(priv64.size(), 44u) << priv64;
    std::string pub64 = run("echo '" + priv64 + "' | /usr/bin/wg pubkey");
    auto priv = key_from_base64(priv64);
    ASSERT_TRUE(priv.has_value()) << priv64;
    Key pub;
    ASSERT_TRUE(x25519_public(*priv, &pub));
    EXPECT_EQ(key_to_base64(pub), pub64);
  }
  Key ours = x25519_generate(), pub;
  ASSERT_TRUE(x25519_public(ours, &pub));
  EXPECT_EQ(run("echo '" + key_to_base64(ours) + "' | /usr/bin/wg pubkey"), key_to_base64(pub));
  // `wg genpsk` output is a valid key too.
  EXPECT_TRUE(key_from_base64(run("/usr/bin/wg genpsk")).has_value());
}

RemoteConfig sample() {
  RemoteConfig c;
  c.private_key = kAlicePriv64;
  c.addresses = {"10.8.0.2/32", "fd00:8::2/128"};
  c.listen_port = 51820;
  c.mtu = 1420;
  c.gateway_public_key = kAlicePub64;
  c.preshared_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  c.gateway_endpoint = "gw.example.net:51820";
  c.allowed_ips = {"10.0.0.0/8", "192.168.1.0/24"};
  c.persistent_keepalive = 25;
  return c;
}

TEST(FormatConfig, WgQuickGolden) {
  EXPECT_EQ(wg_quick_config(sample()),
            "[Interface]\n"
            "PrivateKey = dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\n"
            "Address = 10.8.0.2/32, fd00:8::2/128\n"
            "ListenPort = 51820\n"
            "MTU = 1420\n"
            "\n"
            "[Peer]\n"
            "PublicKey = hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\n"
            "PresharedKey = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
            "Endpoint = gw.example.net:51820\n"
            "AllowedIPs = 10.0.0.0/8, 192.168.1.0/24\n"
            "PersistentKeepalive = 25\n");
}

TEST(FormatConfig, WgSetconfGolden) {
  EXPECT_EQ(wg_setconf_config(sample()),
            "[Interface]\n"
            "PrivateKey = dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\n"
            "ListenPort = 51820\n"
            "\n"
            "[Peer]\n"
            "PublicKey = hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\n"
            "PresharedKey = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
            "Endpoint = gw.example.net:51820\n"
            "AllowedIPs = 10.0.0.0/8, 192.168.1.0/24\n"
            "PersistentKeepalive = 25\n");
}

TEST(FormatConfig, OptionalLinesOmitted) {
  RemoteConfig c;
  c.private_key = kAlicePriv64;
  c.gateway_public_key = kAlicePub64;
  c.gateway_endpoint = "192.0.2.1:51820";
  c.allowed_ips = {"0.0.0.0/0"};
  const char* expect =
      "[Interface]\n"
      "PrivateKey = dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\n"
      "\n"
      "[Peer]\n"
      "PublicKey = hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=\n"
      "Endpoint = 192.0.2.1:51820\n"
      "AllowedIPs = 0.0.0.0/0\n";
  EXPECT_EQ(wg_quick_config(c), expect);
  EXPECT_EQ(wg_setconf_config(c), expect);
}

// The real tools read our text: `wg-quick strip` (wg-quick's own parser,
// which drops the wg-quick-only keys) turns the wg-quick file into exactly
// the setconf file, and `wg setconf` parses the setconf file. There is no
// parse-only mode, so setconf is pointed at an interface that does not
// exist: a parse error is reported before the interface is looked up.
TEST(FormatConfig, InteropWithWgTools) {
  if (access("/usr/bin/wg", X_OK) != 0 || access("/usr/bin/wg-quick", X_OK) != 0) {
    GTEST_SKIP() << "wireguard-tools not installed";
  }
  char dir[] = "/tmp/tether-format-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  RemoteConfig c = sample();
  c.gateway_endpoint = "192.0.2.1:51820";  // wg resolves names while parsing
  const std::string quick = std::string(dir) + "/tether0.conf";
  const std::string setconf = std::string(dir) + "/setconf.conf";
  auto write = [](const std::string& path, const std::string& text) {
    FILE* f = fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs(text.c_str(), f);
    fclose(f);
    chmod(path.c_str(), 0600);  // wg-quick warns about world-readable keys
  };
  write(quick, wg_quick_config(c));
  write(setconf, wg_setconf_config(c));

  std::string stripped = run("/usr/bin/wg-quick strip " + quick + " 2>&1");
  std::string expect = wg_setconf_config(c);
  while (!expect.empty() && expect.back() == '\n') expect.pop_back();
  EXPECT_EQ(stripped, expect);

  std::string err = run("/usr/bin/wg setconf tether-nonexist " + setconf + " 2>&1");
  EXPECT_EQ(err.find("parsing error"), std::string::npos) << err;
  EXPECT_EQ(err.find("unrecognized"), std::string::npos) << err;
  // Control: the wg-quick file is not setconf input, and wg says so.
  err = run("/usr/bin/wg setconf tether-nonexist " + quick + " 2>&1");
  EXPECT_NE(err.find("Address"), std::string::npos) << err;

  unlink(quick.c_str());
  unlink(setconf.c_str());
  rmdir(dir);
}

}  // namespace
}  // namespace tether::wg
