// HostFirewall against the kernel's nftables. Every test that touches
// nftables first moves this process into a network namespace of its own
// (unshare(CLONE_NEWNET) in the fixture's SetUp): nftables state is per
// namespace, so the host's ruleset is never seen nor changed, and each test
// starts from an empty ruleset. Unsharing in-process rather than in a forked
// child keeps gtest's assertions working as usual; the binary never needs
// its original namespace back. Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN).
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "firewall/host_firewall.h"

namespace tether::fw {
namespace {

Ipv4Prefix prefix(const char* text) {
  auto p = parse_prefix(text);
  EXPECT_TRUE(p) << text;
  return p.value_or(Ipv4Prefix{});
}

HostPolicy sample() {
  HostPolicy p;
  p.interfaces = {"tether0", "mgmt0"};
  p.admin = {prefix("10.9.0.0/24"), prefix("192.0.2.7")};
  p.services = {{6, 22}, {6, 8443}, {17, 161}};
  p.new_per_second = 20;
  p.burst = 40;
  p.allow_ping = true;
  p.extra = {"udp dport 51820 accept"};
  return p;
}

// A libnftables context of the test's own, to look at the kernel's state
// without going through the object under test.
std::string nft(const std::string& cmd, bool* ok = nullptr) {
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  int rc = nft_run_cmd_from_buffer(ctx, cmd.c_str());
  std::string out = rc == 0 ? nft_ctx_get_output_buffer(ctx) : nft_ctx_get_error_buffer(ctx);
  nft_ctx_free(ctx);
  if (ok) *ok = rc == 0;
  return out;
}

class HostFirewallTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: nftables in a network namespace";
    ASSERT_EQ(unshare(CLONE_NEWNET), 0) << "unshare(CLONE_NEWNET): " << strerror(errno);
    // A new namespace has only lo, and it is down.
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT_GE(fd, 0);
    ifreq ifr{};
    strcpy(ifr.ifr_name, "lo");
    ASSERT_EQ(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP;
    ASSERT_EQ(ioctl(fd, SIOCSIFFLAGS, &ifr), 0) << strerror(errno);
    close(fd);
    ASSERT_EQ(nft("list tables"), "") << "the new namespace should have no tables";
  }
};

TEST(HostFirewallScript, IsTheWholeTableInOneScript) {
  HostFirewall fw("tether_host");
  EXPECT_EQ(fw.script(sample()),
            "add table inet tether_host\n"
            "delete table inet tether_host\n"
            "table inet tether_host {\n"
            "  set guarded {\n"
            "    type ifname\n"
            "    elements = { \"tether0\", \"mgmt0\" }\n"
            "  }\n"
            "  set admin {\n"
            "    type ipv4_addr\n"
            "    flags interval\n"
            "    auto-merge\n"
            "    elements = { 10.9.0.0/24, 192.0.2.7/32 }\n"
            "  }\n"
            "  set services {\n"
            "    type inet_proto . inet_service\n"
            "    elements = { tcp . 22, tcp . 8443, udp . 161 }\n"
            "  }\n"
            "  chain input {\n"
            "    type filter hook input priority filter; policy accept;\n"
            "    iifname @guarded jump guard\n"
            "  }\n"
            "  chain guard {\n"
            "    ct state established,related accept\n"
            "    ct state invalid drop\n"
            "    ip saddr @admin icmp type echo-request limit rate 20/second burst 40 packets "
            "accept\n"
            "    ip saddr @admin meta l4proto . th dport @services ct state new limit rate "
            "20/second burst 40 packets accept\n"
            "    udp dport 51820 accept\n"
            "    counter drop\n"
            "  }\n"
            "}\n");
}

TEST(HostFirewallScript, VariantsAndPolicyOff) {
  HostFirewall fw("t");
  HostPolicy p = sample();
  p.allow_ping = false;
  p.admin.clear();
  p.services.clear();
  p.extra.clear();
  std::string s = fw.script(p);
  EXPECT_EQ(s.find("icmp"), std::string::npos) << s;
  // Empty sets carry no "elements = { }" (nftables refuses an empty list).
  EXPECT_EQ(s.find("elements = { }"), std::string::npos) << s;
  EXPECT_NE(s.find("  set admin {\n    type ipv4_addr\n    flags interval\n    auto-merge\n  }\n"),
            std::string::npos)
      << s;
  // Without interfaces the script only removes the table.
  EXPECT_EQ(fw.script(HostPolicy{}), "add table inet t\ndelete table inet t\n");
}

TEST(HostFirewallValidate, RefusesWhatLibnftablesShouldNotSee) {
  EXPECT_EQ(validate(sample()), std::nullopt);
  EXPECT_EQ(validate(HostPolicy{}), std::nullopt);
  struct Case {
    const char* what;
    void (*change)(HostPolicy&);
    const char* message;  // a part of the message
  };
  const Case cases[] = {
      {"empty ifname", [](HostPolicy& p) { p.interfaces = {""}; }, "interface \"\""},
      {"long ifname", [](HostPolicy& p) { p.interfaces = {"abcdefghijklmnop"}; },
       "abcdefghijklmnop"},
      {"quote in ifname", [](HostPolicy& p) { p.interfaces = {"a\"b"}; }, "not an interface"},
      {"space in ifname", [](HostPolicy& p) { p.interfaces = {"a b"}; }, "not an interface"},
      {"host bits",
       [](HostPolicy& p) {
         p.admin = {{0x0a090005, 24}};
       },
       "10.9.0.0/24"},
      {"length 33",
       [](HostPolicy& p) {
         p.admin = {{0x0a090005, 33}};
       },
       "over 32"},
      {"port 0",
       [](HostPolicy& p) {
         p.services = {{6, 0}};
       },
       "tcp/0"},
      {"icmp service",
       [](HostPolicy& p) {
         p.services = {{1, 7}};
       },
       "protocol 1"},
      {"rate 0", [](HostPolicy& p) { p.new_per_second = 0; }, "new_per_second"},
      {"burst 0", [](HostPolicy& p) { p.burst = 0; }, "burst"},
      {"empty extra", [](HostPolicy& p) { p.extra = {"  "}; }, "is empty"},
      {"newline", [](HostPolicy& p) { p.extra = {"accept\nflush ruleset"}; }, "newline"},
      {"semicolon", [](HostPolicy& p) { p.extra = {"accept; flush ruleset"}; }, "';'"},
      {"comment", [](HostPolicy& p) { p.extra = {"accept # x"}; }, "'#'"},
      {"escape", [](HostPolicy& p) { p.extra = {"accept } chain x {"}; }, "closes"},
      {"open", [](HostPolicy& p) { p.extra = {"tcp dport { 1, 2 accept"}; }, "open"},
      {"include", [](HostPolicy& p) { p.extra = {"include \"/etc/x\""}; }, "include"},
      {"define", [](HostPolicy& p) { p.extra = {" define x = 1"}; }, "define"},
  };
  for (auto& c : cases) {
    HostPolicy p = sample();
    c.change(p);
    auto m = validate(p);
    ASSERT_TRUE(m) << c.what;
    EXPECT_NE(m->find(c.message), std::string::npos) << c.what << ": " << *m;
  }
  // Braces that stay balanced are nft's anonymous sets: allowed.
  HostPolicy p = sample();
  p.extra = {"udp dport { 51820, 51821 } accept"};
  EXPECT_EQ(validate(p), std::nullopt);
}

TEST_F(HostFirewallTest, AppliedPolicyIsReportedBack) {
  HostFirewall fw("tether_host");
  EXPECT_EQ(fw.ruleset(nullptr), "");
  std::string error;
  ASSERT_TRUE(fw.apply(sample(), &error)) << error;
  EXPECT_EQ(fw.policy(), sample());
  std::string rs = fw.ruleset(&error);
  ASSERT_FALSE(rs.empty()) << error;
  for (const char* want :
       {"table inet tether_host {", "\"tether0\"", "\"mgmt0\"", "10.9.0.0/24", "192.0.2.7",
        "tcp . 22", "tcp . 8443", "udp . 161", "iifname @guarded jump guard",
        "type filter hook input priority filter; policy accept;",
        "ct state established,related accept", "ct state invalid drop",
        "ip saddr @admin icmp type echo-request limit rate 20/second burst 40 packets accept",
        "ct state new limit rate 20/second burst 40 packets accept", "udp dport 51820 accept",
        "counter packets 0 bytes 0 drop"})
    EXPECT_NE(rs.find(want), std::string::npos) << want << " not in:\n" << rs;
  EXPECT_NE(nft("list tables").find("table inet tether_host"), std::string::npos);
}

TEST_F(HostFirewallTest, ReapplyReplacesTheWholeTable) {
  HostFirewall fw;
  std::string error;
  ASSERT_TRUE(fw.apply(sample(), &error)) << error;
  HostPolicy p = sample();
  p.admin = {prefix("172.16.0.0/12")};
  p.services = {{6, 2222}};
  p.new_per_second = 5;
  p.burst = 7;
  p.extra.clear();
  ASSERT_TRUE(fw.apply(p, &error)) << error;
  std::string rs = fw.ruleset(&error);
  EXPECT_NE(rs.find("172.16.0.0/12"), std::string::npos) << rs;
  EXPECT_NE(rs.find("tcp . 2222"), std::string::npos) << rs;
  EXPECT_NE(rs.find("limit rate 5/second burst 7 packets"), std::string::npos) << rs;
  for (const char* gone : {"10.9.0.0/24", "192.0.2.7", "tcp . 22,", "51820", "20/second"})
    EXPECT_EQ(rs.find(gone), std::string::npos) << gone << " still in:\n" << rs;
  EXPECT_EQ(fw.policy(), p);
}

TEST_F(HostFirewallTest, OverlappingAdminRangesAreMerged) {
  HostFirewall fw;
  HostPolicy p = sample();
  p.admin = {prefix("10.0.0.0/8"), prefix("10.1.0.0/16"), prefix("192.0.2.7")};
  std::string error;
  ASSERT_TRUE(fw.apply(p, &error)) << error;
  EXPECT_EQ(fw.policy(), p);
  std::string rs = fw.ruleset(&error);
  EXPECT_NE(rs.find("elements = { 10.0.0.0/8, 192.0.2.7 }"), std::string::npos) << rs;
}

TEST_F(HostFirewallTest, RefusedPolicyLeavesThePreviousInForce) {
  HostFirewall fw;
  std::string error;
  ASSERT_TRUE(fw.apply(sample(), &error)) << error;
  const std::string before = fw.ruleset(&error);
  ASSERT_FALSE(before.empty()) << error;

  // Refused by libnftables while parsing: nothing reaches the kernel.
  HostPolicy bad = sample();
  bad.admin = {prefix("10.99.0.0/16")};
  bad.extra = {"udp dport 53 accept", "tcp dport nonsense accept"};
  error.clear();
  EXPECT_FALSE(fw.apply(bad, &error));
  EXPECT_NE(error.find("nftables: "), std::string::npos) << error;
  EXPECT_NE(error.find("Could not resolve service"), std::string::npos) << error;
  EXPECT_NE(error.find("tcp dport nonsense accept"), std::string::npos) << error;
  EXPECT_EQ(fw.ruleset(&error), before);
  EXPECT_EQ(fw.policy(), sample());

  // Refused by the kernel, after the delete and most of the new table were
  // already in the batch: the transaction is aborted whole.
  bad.extra = {"udp dport 53 accept", "jump nowhere"};
  error.clear();
  EXPECT_FALSE(fw.apply(bad, &error));
  EXPECT_NE(error.find("No such file or directory"), std::string::npos) << error;
  EXPECT_EQ(fw.ruleset(&error), before);
  EXPECT_EQ(fw.policy(), sample());

  // Refused by validate(): libnftables never sees it.
  bad.extra = {"accept; flush ruleset"};
  error.clear();
  EXPECT_FALSE(fw.apply(bad, &error));
  EXPECT_NE(error.find("extra rule 1"), std::string::npos) << error;
  EXPECT_EQ(fw.ruleset(&error), before);
  EXPECT_EQ(fw.policy(), sample());
}

TEST_F(HostFirewallTest, RemoveAndDestructorLeaveNoTable) {
  std::string error;
  {
    HostFirewall fw;
    ASSERT_TRUE(fw.apply(sample(), &error)) << error;
    fw.remove();
    EXPECT_EQ(nft("list tables"), "");
    EXPECT_EQ(fw.ruleset(&error), "");
    EXPECT_EQ(fw.policy(), HostPolicy{});
    fw.remove();  // twice is fine
    ASSERT_TRUE(fw.apply(sample(), &error)) << error;
    EXPECT_NE(nft("list tables"), "");
  }
  EXPECT_EQ(nft("list tables"), "");
}

TEST_F(HostFirewallTest, NoInterfacesMeansNoTable) {
  std::string error;
  HostFirewall fw("guard_t");
  ASSERT_TRUE(fw.apply(sample(), &error)) << error;
  HostPolicy off = sample();
  off.interfaces.clear();
  ASSERT_TRUE(fw.apply(off, &error)) << error;
  EXPECT_EQ(nft("list tables"), "");
  EXPECT_EQ(fw.ruleset(&error), "");
  EXPECT_EQ(fw.policy(), off);
  // Also when the table was left by an earlier process (a crash): the
  // first apply() takes it over, whatever it held.
  bool ok = false;
  nft("add table inet guard_t\nadd chain inet guard_t stale { type filter hook input priority 0; "
      "policy drop; }",
      &ok);
  ASSERT_TRUE(ok);
  HostFirewall next("guard_t");
  ASSERT_TRUE(next.apply(HostPolicy{}, &error)) << error;
  EXPECT_EQ(nft("list tables"), "");
}

// TCP over lo, with lo guarded: the rules do what they say to real packets.
class Listener {
 public:
  explicit Listener(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ok_ = bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && listen(fd_, 128) == 0;
  }
  ~Listener() { close(fd_); }
  bool ok() const { return ok_; }

 private:
  int fd_ = -1;
  bool ok_ = false;
};

// Whether a connection from `src` to 127.0.0.1:port completes within
// `timeout_ms` (a dropped SYN is only retransmitted after a second).
bool tcp_connects(const char* src, uint16_t port, int timeout_ms = 300) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in s{};
  s.sin_family = AF_INET;
  inet_pton(AF_INET, src, &s.sin_addr);
  sockaddr_in d{};
  d.sin_family = AF_INET;
  d.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &d.sin_addr);
  bool ok = false;
  if (bind(fd, reinterpret_cast<sockaddr*>(&s), sizeof s) == 0) {
    int rc = connect(fd, reinterpret_cast<sockaddr*>(&d), sizeof d);
    if (rc == 0) {
      ok = true;
    } else if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      ok = poll(&p, 1, timeout_ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
           err == 0;
    }
  }
  // RST instead of FIN: no TIME_WAIT piling up between attempts.
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
  return ok;
}

TEST_F(HostFirewallTest, GuardsTrafficOnTheGuardedInterfaceOnly) {
  Listener service(8443), other(9000);
  ASSERT_TRUE(service.ok() && other.ok());
  ASSERT_TRUE(tcp_connects("127.0.0.2", 8443)) << "no policy yet: everyone connects";

  HostPolicy p;
  p.interfaces = {"tether0"};  // not lo: lo stays open
  p.admin = {prefix("127.0.0.1/32")};
  p.services = {{6, 8443}};
  HostFirewall fw;
  std::string error;
  ASSERT_TRUE(fw.apply(p, &error)) << error;
  EXPECT_TRUE(tcp_connects("127.0.0.2", 8443));
  EXPECT_TRUE(tcp_connects("127.0.0.2", 9000));

  p.interfaces = {"tether0", "lo"};
  ASSERT_TRUE(fw.apply(p, &error)) << error;
  EXPECT_TRUE(tcp_connects("127.0.0.1", 8443)) << "admin to a service";
  EXPECT_FALSE(tcp_connects("127.0.0.2", 8443)) << "not an admin";
  EXPECT_FALSE(tcp_connects("127.0.0.1", 9000)) << "admin, not a service";

  // An extra rule opens what the policy does not.
  p.extra = {"ip saddr 127.0.0.2 tcp dport 9000 accept"};
  ASSERT_TRUE(fw.apply(p, &error)) << error;
  EXPECT_TRUE(tcp_connects("127.0.0.2", 9000));
  EXPECT_FALSE(tcp_connects("127.0.0.2", 8443));

  fw.remove();
  EXPECT_TRUE(tcp_connects("127.0.0.2", 8443));
}

TEST_F(HostFirewallTest, NewConnectionsAreRateLimited) {
  Listener service(8443);
  ASSERT_TRUE(service.ok());
  HostPolicy p;
  p.interfaces = {"lo"};
  p.admin = {prefix("127.0.0.0/8")};
  p.services = {{6, 8443}};
  p.new_per_second = 1;
  p.burst = 2;
  HostFirewall fw;
  std::string error;
  ASSERT_TRUE(fw.apply(p, &error)) << error;
  int connected = 0;
  for (int i = 0; i < 12; ++i) connected += tcp_connects("127.0.0.1", 8443, 50);
  // The burst, plus a token or two refilled during the ~0.6 s of attempts
  // on a slow machine; never the dozen.
  EXPECT_GE(connected, 1);
  EXPECT_LE(connected, 5);
  // The bucket refills at the rate.
  usleep(2'500'000);
  EXPECT_TRUE(tcp_connects("127.0.0.1", 8443));
}

}  // namespace
}  // namespace tether::fw
