// DATABASE_URL: a libpq URI or key=value string. Every "PW" in the input becomes a long marker
// standing for a password. Properties:
//  - an error never quotes the marker (the input may hold a password), except for an sslmode
//    value, which is echoed on purpose and is no secret;
//  - an accepted string round-trips: ConnectionString() parses back to the same options;
//  - Redacted() does not depend on the password, and Scrub() removes it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>

#include "database_url.h"
#include "fuzz_check.h"

using billing::exporter::DatabaseUrl;

namespace {
constexpr const char* kMarker = "Zq7SecretMarker9";
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  if (text.find('\0') != std::string::npos) return 0;  // an environment variable cannot hold NUL
  for (auto at = text.find("PW"); at != std::string::npos; at = text.find("PW", at)) {
    text.replace(at, 2, kMarker);
    at += std::char_traits<char>::length(kMarker);
  }
  const auto parsed = DatabaseUrl::Parse(text);
  if (!parsed.ok()) {
    const std::string error = parsed.error();
    FUZZ_CHECK(!error.empty(), "an error says something");
    if (error.find(kMarker) != std::string::npos) {
      FUZZ_CHECK(error.find("sslmode '") != std::string::npos, "an error never quotes a secret");
    }
    return 0;
  }
  const auto& url = parsed.value();
  const std::string connection = url.ConnectionString({});
  // "host=" sets nothing (libpq's defaults apply), and an empty string does not parse again.
  if (connection.empty()) return 0;
  const auto again = DatabaseUrl::Parse(connection);
  FUZZ_CHECK(again.ok(), "ConnectionString() parses again");
  const auto& reparsed = again.value();
  FUZZ_CHECK(reparsed.ConnectionString({}) == connection, "the options round-trip exactly");
  FUZZ_CHECK(reparsed.password() == url.password(), "the password round-trips");

  const std::string& password = url.password();
  if (!password.empty()) {
    // Redacted() does not depend on the password at all: the same string with another password
    // redacts the same.
    const auto other = DatabaseUrl::Parse(url.ConnectionString({{"password", "x"}}));
    FUZZ_CHECK(other.ok(), "another password parses too");
    FUZZ_CHECK(other.value().Redacted() == url.Redacted(), "Redacted() never shows the password");
    if (password.find('*') == std::string::npos) {
      FUZZ_CHECK(billing::exporter::Scrub(text, password).find(password) == std::string::npos,
                 "Scrub() removes every occurrence");
      FUZZ_CHECK(billing::exporter::Scrub(connection, password).find(password) == std::string::npos,
                 "Scrub() removes every occurrence");
    }
  }
  return 0;
}
