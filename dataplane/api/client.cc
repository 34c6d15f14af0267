#include "dataplane/api/client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "dataplane/api/wire.h"

namespace tether::dpapi {

Client::~Client() { close(); }

void Client::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<bool> Client::connect(const std::string& path, const std::string& client_name) {
  close();
  Result<bool> res;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    res.error = Error{"io", "socket path too long: " + path};
    return res;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    res.error = Error{"io", "cannot connect to " + path + ": " + std::strerror(errno)};
    close();
    return res;
  }
  // A dataplane that hangs must not hang its client: fail the call instead.
  timeval tv{10, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  auto hello = call("hello", {{"version", kVersion}, {"client", client_name}});
  if (!hello) {
    res.error = hello.error;
    close();
    return res;
  }
  generation_ = hello.value.value("generation", uint64_t{0});
  res.value = true;
  return res;
}

Result<nlohmann::json> Client::call(const std::string& method, const nlohmann::json& params) {
  Result<nlohmann::json> res;
  if (fd_ < 0) {
    res.error = Error{"io", "not connected"};
    return res;
  }
  uint64_t id = next_id_++;
  if (!write_message(fd_, {{"id", id}, {"method", method}, {"params", params}})) {
    res.error = Error{"io", std::string("write failed: ") + std::strerror(errno)};
    close();
    return res;
  }
  std::string why;
  auto reply = read_message(fd_, &why);
  if (!reply) {
    res.error = Error{"io", why};
    close();
    return res;
  }
  if (reply->value("id", uint64_t{0}) != id) {
    res.error = Error{"io", "reply id does not match request"};
    close();
    return res;
  }
  if (!reply->value("ok", false)) {
    const auto& e = (*reply)["error"];
    res.error = Error{e.value("code", "internal"), e.value("message", "")};
    return res;
  }
  res.value = (*reply)["result"];
  if (res.value.is_object() && res.value.contains("generation") &&
      res.value["generation"].is_number_unsigned())
    generation_ = res.value["generation"].get<uint64_t>();
  return res;
}

}  // namespace tether::dpapi
