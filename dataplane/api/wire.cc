#include "dataplane/api/wire.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
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

// 1 = ok, 0 = clean EOF before any byte, -1 = error / short read / deadline.
int read_all(int fd, char* p, size_t n, std::chrono::steady_clock::time_point deadline) {
  using Clock = std::chrono::steady_clock;
  size_t got = 0;
  while (got < n) {
    if (deadline != Clock::time_point{}) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return -1;
      pollfd pfd{fd, POLLIN, 0};
      int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return -1;
    }
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

// Deepest nesting of brackets outside strings; stops counting past `limit`.
int nesting_depth(const std::string& text, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char ch : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (ch == '\\') {
        escaped = true;
      } else if (ch == '"') {
        in_string = false;
      }
      continue;
    }
    if (ch == '"') {
      in_string = true;
    } else if (ch == '[' || ch == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if (ch == ']' || ch == '}') {
      --depth;
    }
  }
  return deepest;
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

std::optional<nlohmann::json> read_message(int fd, std::string* error, int deadline_ms) {
  std::chrono::steady_clock::time_point deadline{};
  if (deadline_ms > 0)
    deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(deadline_ms);
  auto fail = [&](const char* why) -> std::optional<nlohmann::json> {
    if (error) *error = why;
    return std::nullopt;
  };
  unsigned char hdr[4];
  int r = read_all(fd, reinterpret_cast<char*>(hdr), 4, deadline);
  if (r == 0) return fail("connection closed");
  if (r < 0) return fail("read error");
  uint32_t n = uint32_t{hdr[0]} << 24 | uint32_t{hdr[1]} << 16 | uint32_t{hdr[2]} << 8 | hdr[3];
  if (n > kMaxMessage) return fail("message larger than 16 MiB");
  std::string body(n, '\0');
  if (read_all(fd, body.data(), n, deadline) != 1) return fail("truncated or too slow message");
  // Deep nesting would recurse through the parser and every copy of the value.
  if (nesting_depth(body, kMaxDepth) > kMaxDepth) return fail("JSON nested deeper than 64 levels");
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
