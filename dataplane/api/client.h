// Synchronous client of the dataplane API. One connection, one caller thread
// at a time; a call that gets no answer within 10 s fails with code "io". Used by
// tether-controlplane, tether-dataplane-ctl and tests.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace tether::dpapi {

// A refused request or a broken connection. `code` is the API's error code
// ("invalid_argument", "conflict", ...) or "io" when the connection failed.
struct Error {
  std::string code;
  std::string message;
};

template <typename T>
struct Result {
  T value{};
  std::optional<Error> error;
  explicit operator bool() const { return !error.has_value(); }
};

class Client {
 public:
  Client() = default;
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects and says hello. On success, `generation()` holds the dataplane's.
  Result<bool> connect(const std::string& socket_path, const std::string& client_name);
  bool connected() const { return fd_ >= 0; }
  void close();
  uint64_t generation() const { return generation_; }

  // One request; the result object, or the error the dataplane gave.
  Result<nlohmann::json> call(const std::string& method,
                              const nlohmann::json& params = nlohmann::json::object());

 private:
  int fd_ = -1;
  uint64_t next_id_ = 1;
  uint64_t generation_ = 0;
};

}  // namespace tether::dpapi
