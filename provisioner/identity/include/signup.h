// The signup and upgrade requests: parsing and validation of the JSON bodies, and the customer id
// derived from a signup. Pure (nlohmann::json only), except RandomIdSuffix, which draws from
// OpenSSL's CSPRNG and is defined in identity.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "billing/provisioner/result.h"

namespace billing::provisioner {

struct SignupRequest {
  std::string email;         // trimmed; local@domain, at most 254 characters
  std::string password;      // CheckNewPassword's rules; never trimmed
  std::string company_name;  // trimmed; 1..200 characters of any Unicode text except control
                             // characters, otherwise verbatim
};

/// The rules of every new password (signup, change, reset), a person can live with: 12..128
/// characters (code points) of valid UTF-8, any composition, but not mostly one repeated
/// character, not the e-mail address nor containing its local part, and not one of the common
/// passwords of data/common-passwords.txt (case-insensitive). nullopt when it is acceptable, else
/// the broken rule prefixed with `field` ("new_password: ..."), never the password.
std::optional<std::string> CheckNewPassword(const std::string& password, const std::string& email,
                                            std::string_view field = "password");
/// Whether the whole password is on the shipped list (ASCII case-insensitive).
bool IsCommonPassword(std::string_view password);
/// How many passwords the shipped list holds (for tests of the list itself).
std::size_t CommonPasswordCount();

/// Parses `{"email","password","company_name"}`. Errors name the field ("email: must be an
/// address like name@example.com"); malformed JSON, a non-object body, unknown or wrong-typed
/// fields are errors too. Invalid UTF-8 is an error naming the field. Errors never contain the
/// password. "Characters" are Unicode code points.
Result<SignupRequest> ParseSignupRequest(std::string_view body);

/// POST /api/customers/{id}/deployment/upgrade: `{"values": {...}}` and/or either
/// `{"license": {"plan", "validity_days"}}` (issue a new key) or `{"license_key": "<JWT>"}`.
struct UpgradeRequest {
  std::optional<nlohmann::json> values;  // an object of chart values (checked against the chart
                                         // and the provisioner's own keys by the caller)
  struct License {
    std::optional<std::string> plan;            // [a-z0-9][-a-z0-9]{0,31}
    std::optional<std::int64_t> validity_days;  // 1..3660
  };
  std::optional<License> license;
  std::optional<std::string> license_key;  // verified by the caller (signature, customer, expiry)
};

/// Parses the upgrade body strictly: malformed JSON, a non-object, an empty object, unknown or
/// wrong-typed fields, both license and license_key, a bad plan or validity are errors naming the
/// field ("license.plan: ...").
Result<UpgradeRequest> ParseUpgradeRequest(std::string_view body);

/// A short, lowercase, DNS-1123-label customer id: up to 16 characters of the company name
/// reduced to [a-z0-9-] (or "customer" when nothing is left), '-', and `suffix`
/// (lowercase alphanumeric; the caller draws it at random and retries on collision). ASCII
/// letters and digits are kept, other ASCII separates words ('-'), non-ASCII is dropped. Other
/// characters of `suffix` are dropped and it is cut so the id has at most kMaxCustomerIdLength
/// (34) characters; an empty suffix gives the name part alone.
std::string MakeCustomerId(std::string_view company_name, std::string_view suffix);

/// A random suffix of `length` characters from [a-z0-9], uniformly distributed. Throws
/// std::runtime_error if the CSPRNG fails.
std::string RandomIdSuffix(std::size_t length);

}  // namespace billing::provisioner
