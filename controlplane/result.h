// Errors as values for the control plane: a Result<T> holds either a T or an
// Error whose message says what is wrong in words a user can act on. Owned by
// controlplane/; returned across every module boundary instead of exceptions
// (the management API maps Error::Code to an HTTP status). Plain values, any
// thread.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace tether::cp {

struct Error {
  enum class Code {
    kInvalid,   // the request itself is wrong (bad prefix, host bits set, ...)
    kNotFound,  // it names something that does not exist
    kConflict,  // it clashes with what exists (duplicate, still in use)
    kInternal,  // storage or I/O failed; not the caller's fault
  };
  Code code = Code::kInternal;
  std::string message;
};

inline const char* code_name(Error::Code c) {
  switch (c) {
    case Error::Code::kInvalid:
      return "invalid";
    case Error::Code::kNotFound:
      return "not_found";
    case Error::Code::kConflict:
      return "conflict";
    case Error::Code::kInternal:
      return "internal";
  }
  return "internal";
}

inline Error invalid(std::string m) { return {Error::Code::kInvalid, std::move(m)}; }
inline Error not_found(std::string m) { return {Error::Code::kNotFound, std::move(m)}; }
inline Error conflict(std::string m) { return {Error::Code::kConflict, std::move(m)}; }
inline Error internal(std::string m) { return {Error::Code::kInternal, std::move(m)}; }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit on purpose
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit on purpose

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// For operations that return nothing but may fail.
struct Done {};
using Status = Result<Done>;

}  // namespace tether::cp
