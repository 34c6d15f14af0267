#include "dataplane/api/wire.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

namespace tether::dpapi {
namespace {

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    // A peer that went away is an error to report, not a SIGPIPE to die of.
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// 1 = ok, 0 = clean EOF before any byte, -1 = error / short read.
int read_all(int fd, char* p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::read(fd, p + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) return got == 0 ? 0 : -1;
    got += static_cast<size_t>(r);
  }
  return 1;
}

}  // namespace

bool write_message(int fd, const nlohmann::json& msg) {
  std::string body = msg.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (body.size() > kMaxMessage) {
    errno = EMSGSIZE;
    return false;
  }
  uint32_t n = static_cast<uint32_t>(body.size());
  char hdr[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                 static_cast<char>(n)};
  return write_all(fd, hdr, 4) && write_all(fd, body.data(), body.size());
}

std::optional<nlohmann::json> read_message(int fd, std::string* error) {
  auto fail = [&](const char* why) -> std::optional<nlohmann::json> {
    if (error) *error = why;
    return std::nullopt;
  };
  unsigned char hdr[4];
  int r = read_all(fd, reinterpret_cast<char*>(hdr), 4);
  if (r == 0) return fail("connection closed");
  if (r < 0) return fail("read error");
  uint32_t n = uint32_t{hdr[0]} << 24 | uint32_t{hdr[1]} << 16 | uint32_t{hdr[2]} << 8 | hdr[3];
  if (n > kMaxMessage) return fail("message larger than 16 MiB");
  std::string body(n, '\0');
  if (read_all(fd, body.data(), n) != 1) return fail("truncated message");
  auto msg = nlohmann::json::parse(body, nullptr, false);
  if (msg.is_discarded() || !msg.is_object()) return fail("message is not a JSON object");
  return msg;
}

nlohmann::json ok_response(const nlohmann::json& id, nlohmann::json result) {
  return {{"id", id}, {"ok", true}, {"result", std::move(result)}};
}

nlohmann::json error_response(const nlohmann::json& id, std::string_view code,
                              std::string_view message) {
  return {{"id", id}, {"ok", false}, {"error", {{"code", code}, {"message", message}}}};
}

}  // namespace tether::dpapi
