// Reading the fields of the JSON objects the boot configuration and the API
// share (nat_json, fw_json, host_fw_json): every refusal throws
// std::invalid_argument with a message that names `where` and the field.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

namespace tether::dp::jsonf {

[[noreturn]] inline void bad(const std::string& msg) { throw std::invalid_argument(msg); }

// An object with no keys but `keys` (and a change's own: kind, op, $comment).
inline void only_keys(const nlohmann::json& j, const std::string& where,
                      std::initializer_list<const char*> keys) {
  if (!j.is_object()) bad(where + ": must be an object");
  for (auto& [k, _] : j.items()) {
    bool ok = k == "kind" || k == "op" || k == "$comment";
    for (const char* x : keys) ok = ok || k == x;
    if (!ok) bad(where + ": unknown key \"" + k + "\"");
  }
}

// An integer min-max; `def` when absent (or refused when `required`).
inline uint64_t uint_of(const nlohmann::json& j, const char* key, const std::string& where,
                        uint64_t def, uint64_t min, uint64_t max, bool required = false) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) bad(where + ": missing \"" + key + "\"");
    return def;
  }
  if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<uint64_t>() < min ||
      it->get<uint64_t>() > max)
    bad(where + ": " + key + " must be an integer " + std::to_string(min) + "-" +
        std::to_string(max));
  return it->get<uint64_t>();
}

// A list of strings (also a lone string when `lone_ok`); empty when absent.
inline std::vector<std::string> strings_of(const nlohmann::json& j, const char* key,
                                           const std::string& where, bool lone_ok = false) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (lone_ok && it->is_string()) {
    out.push_back(it->get<std::string>());
    return out;
  }
  if (!it->is_array())
    bad(where + ": \"" + key + "\" must be " + (lone_ok ? "a string or " : "") +
        "a list of strings");
  for (auto& x : *it) {
    if (!x.is_string()) bad(where + ": \"" + key + "\" must be a list of strings");
    out.push_back(x.get<std::string>());
  }
  return out;
}

}  // namespace tether::dp::jsonf
