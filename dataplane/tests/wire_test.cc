// The API's framing refuses what could hurt the server: nesting deep enough
// to exhaust the stack, and clients that trickle a message in forever.
#include "dataplane/api/wire.h"

#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <string>
#include <thread>

namespace tether::dpapi {
namespace {

struct Pair {
  int fd[2];
  Pair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0); }
  ~Pair() {
    ::close(fd[0]);
    ::close(fd[1]);
  }
};

void send_raw(int fd, const std::string& body) {
  uint32_t n = static_cast<uint32_t>(body.size());
  unsigned char hdr[4] = {static_cast<unsigned char>(n >> 24), static_cast<unsigned char>(n >> 16),
                          static_cast<unsigned char>(n >> 8), static_cast<unsigned char>(n)};
  ASSERT_EQ(::write(fd, hdr, 4), 4);
  ASSERT_EQ(::write(fd, body.data(), body.size()), static_cast<ssize_t>(body.size()));
}

TEST(Wire, RoundTripsAMessage) {
  Pair p;
  ASSERT_TRUE(write_message(p.fd[0], {{"id", 1}, {"method", "hello"}, {"s", "a]\"{"}}));
  std::string why;
  auto m = read_message(p.fd[1], &why, 1000);
  ASSERT_TRUE(m) << why;
  EXPECT_EQ((*m)["s"], "a]\"{");
}

TEST(Wire, RefusesDeepNestingBeforeParsing) {
  Pair p;
  std::string deep = "{\"id\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  std::thread writer([&] { send_raw(p.fd[0], deep); });
  std::string why;
  EXPECT_FALSE(read_message(p.fd[1], &why, 5000));
  writer.join();
  EXPECT_EQ(why, "JSON nested deeper than 64 levels");
  // Brackets inside strings do not count.
  Pair q;
  send_raw(q.fd[0], "{\"s\":\"" + std::string(1000, '[') + "\"}");
  EXPECT_TRUE(read_message(q.fd[1], &why, 1000)) << why;
}

TEST(Wire, ADeadlineCoversTheWholeMessage) {
  Pair p;
  unsigned char hdr[4] = {0, 0, 0, 100};
  ASSERT_EQ(::write(p.fd[0], hdr, 4), 4);
  ASSERT_EQ(::write(p.fd[0], "{", 1), 1);  // and then nothing more
  std::string why;
  EXPECT_FALSE(read_message(p.fd[1], &why, 200));
  EXPECT_EQ(why, "truncated or too slow message");
}

TEST(Wire, RefusesOversizeLengths) {
  Pair p;
  unsigned char hdr[4] = {0xff, 0xff, 0xff, 0xff};
  ASSERT_EQ(::write(p.fd[0], hdr, 4), 4);
  std::string why;
  EXPECT_FALSE(read_message(p.fd[1], &why, 200));
  EXPECT_EQ(why, "message larger than 16 MiB");
}

}  // namespace
}  // namespace tether::dpapi
