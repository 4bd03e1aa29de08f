// The signup request body. "PW" in the input becomes a long marker. Properties:
//  - ParseSignupRequest never throws; an error starts with the field at fault;
//  - an error never contains the password (when only the password holds the marker);
//  - an accepted request is what the documented rules allow, checked against an independent
//    reading of the JSON: the password exactly as sent (never trimmed) and 12..128 code points, the
//    email trimmed, with an '@', at most 254 characters, a company name of 1..200 code points
//    without control characters;
//  - the customer id made from the company name is a DNS-1123 label of at most 34 characters.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "signup.h"

namespace {
constexpr const char* kMarker = "Zq7SecretMarker9";

std::size_t CodePoints(std::string_view utf8) {
  std::size_t count = 0;
  for (const char c : utf8) count += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return count;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool IsDns1123Label(std::string_view id) {
  if (id.empty() || id.size() > 63) return false;
  for (const char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return id.front() != '-' && id.back() != '-';
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string body(reinterpret_cast<const char*>(data), size);
  for (auto at = body.find("PW"); at != std::string::npos; at = body.find("PW", at)) {
    body.replace(at, 2, kMarker);
  }
  const auto parsed = billing::provisioner::ParseSignupRequest(body);
  const auto json = nlohmann::json::parse(body, nullptr, false);

  if (!parsed.ok()) {
    const auto& error = parsed.error();
    const auto colon = error.find(": ");
    FUZZ_CHECK(colon != std::string::npos && colon > 0, "an error starts with the field");
    bool only_in_password = json.is_object() && json.contains("password") &&
                            json["password"].is_string() &&
                            json["password"].get<std::string>().find(kMarker) != std::string::npos;
    if (only_in_password) {
      for (const auto& [key, value] : json.items()) {
        if (key.find(kMarker) != std::string::npos) only_in_password = false;
        if (key != "password" && value.dump().find(kMarker) != std::string::npos)
          only_in_password = false;
      }
    }
    if (only_in_password) {
      FUZZ_CHECK(error.find(kMarker) == std::string::npos, "an error never shows the password");
    }
    return 0;
  }
  const auto& request = parsed.value();
  FUZZ_CHECK(json.is_object(), "only a JSON object is accepted");
  FUZZ_CHECK(json.size() == 3, "exactly the three fields");
  FUZZ_CHECK(request.password == json.at("password").get<std::string>(),
             "the password exactly as sent");
  const auto cp = CodePoints(request.password);
  FUZZ_CHECK(cp >= 12 && cp <= 128, "a password of 12 to 128 characters");
  FUZZ_CHECK(
      !request.email.empty() && !IsSpace(request.email.front()) && !IsSpace(request.email.back()),
      "the email is trimmed");
  FUZZ_CHECK(json.at("email").get<std::string>().find(request.email) != std::string::npos,
             "the email is the one sent");
  FUZZ_CHECK(request.email.size() <= 254 && request.email.find('@') != std::string::npos,
             "an address");
  const auto company = CodePoints(request.company_name);
  FUZZ_CHECK(company >= 1 && company <= 200, "a company name of 1 to 200 characters");
  for (const char c : request.company_name) {
    FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7F, "no control characters");
  }
  const auto id = billing::provisioner::MakeCustomerId(request.company_name, "a1b2c3");
  FUZZ_CHECK(IsDns1123Label(id) && id.size() <= 34, "a DNS-1123 customer id of at most 34");
  return 0;
}
