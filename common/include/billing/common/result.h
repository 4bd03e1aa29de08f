// common: Result<T> and Status, a value (or nothing) or an error meant for a person: the one error
// shape of fallible functions that do not throw, in both programs (GCC 12 has no std::expected in
// C++20). Header-only; may not depend on anything but the standard library.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace billing::common {

/// An error meant for a person: what is wrong and how to fix it, naming the value at fault either
/// inside `message` ("customer.id: ...") or, where callers check it, in `field`.
struct Error {
  std::string message;
  std::string field = {};  // "postgres.statement_timeout", "DATABASE_URL"; empty: in `message`
  std::string ToString() const { return field.empty() ? message : field + ": " + message; }
};

template <typename T>
class Result {
 public:
  Result(T value) : data_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : data_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T& value() & { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  /// The error as one line ("field: message"); only when !ok().
  std::string error() const { return failure().ToString(); }
  const Error& failure() const { return std::get<Error>(data_); }

 private:
  std::variant<T, Error> data_;
};

/// Success or an error, for checks that produce no value.
using Status = Result<std::monostate>;
inline Status Ok() { return std::monostate{}; }

}  // namespace billing::common
