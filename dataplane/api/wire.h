// Framing of the dataplane API (docs/dataplane-api.md): a 4-byte big-endian
// length, then that many bytes of JSON. Shared by the server in
// tether-dataplane and every client. Blocking I/O on a file descriptor;
// callers own the descriptor and its thread.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

namespace tether::dpapi {

inline constexpr int kVersion = 1;
inline constexpr size_t kMaxMessage = 16u << 20;
inline constexpr const char* kDefaultSocket = "/run/tether/dataplane.sock";

// Writes one message; false on an I/O error (errno is set).
bool write_message(int fd, const nlohmann::json& msg);

inline constexpr int kMaxDepth = 64;  // JSON nesting; deeper is refused unparsed

// Reads one message. nullopt on EOF, I/O error, an oversize length, nesting
// deeper than kMaxDepth or invalid JSON; `error` (if given) says which. With
// `deadline_ms` > 0 the whole message must arrive within that time, however
// slowly its bytes trickle in.
std::optional<nlohmann::json> read_message(int fd, std::string* error = nullptr,
                                           int deadline_ms = 0);

// Helpers for building responses.
nlohmann::json ok_response(const nlohmann::json& id, nlohmann::json result);
nlohmann::json error_response(const nlohmann::json& id, std::string_view code,
                              std::string_view message);

}  // namespace tether::dpapi
