// common: Result<T>, a value or an error message meant for a person, the error shape of
// fallible functions that do not throw (GCC 12 has no std::expected in C++20). Header-only.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace billing::common {

/// An error meant for a person: names the value at fault ("customer.id: ...").
struct Error {
  std::string message;
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
  const std::string& error() const { return std::get<Error>(data_).message; }

 private:
  std::variant<T, Error> data_;
};

}  // namespace billing::common
