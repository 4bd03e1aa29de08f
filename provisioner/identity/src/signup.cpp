#include "signup.h"

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <vector>

#include "billing/common/customer_id.h"

namespace billing::provisioner {
namespace {

using nlohmann::json;

// A signup body is well under 1 KiB; the bound keeps parsing cost and error output small.
constexpr std::size_t kMaxBodyBytes = 64 * 1024;
constexpr std::size_t kMinPasswordLength = 12;
constexpr std::size_t kMaxPasswordLength = 128;
constexpr std::size_t kMaxCompanyNameLength = 200;
// RFC 5321 section 4.5.3.1: local part 64 octets, a path 256 including "<>" (so 254 for the
// address), domain labels 63 octets (RFC 1035).
constexpr std::size_t kMaxLocalPartBytes = 64;
constexpr std::size_t kMaxEmailBytes = 254;
constexpr std::size_t kMaxLabelBytes = 63;
// Below this the "contains the email's name" rule would forbid ordinary passwords ("jo").
constexpr std::size_t kMinLocalPartToMatch = 3;
constexpr std::size_t kMaxIdNameLength = 16;
constexpr std::array<const char*, 3> kFields = {"email", "password", "company_name"};

// One code point: its value and where its bytes are.
struct CodePoint {
  char32_t value;
  std::size_t offset;
  std::size_t length;
};

// Decodes the UTF-8 sequence at `offset` strictly (Unicode table 3-7: no overlong forms, no
// surrogates, nothing above U+10FFFF); nullopt if it is not valid.
std::optional<CodePoint> DecodeAt(std::string_view text, std::size_t offset) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[offset + i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return CodePoint{lead, offset, 1};
  std::size_t length = 0;
  char32_t value = 0;
  unsigned char min_second = 0x80;
  unsigned char max_second = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    value = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    value = lead & 0x0F;
    if (lead == 0xE0) min_second = 0xA0;  // overlong
    if (lead == 0xED) max_second = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    value = lead & 0x07;
    if (lead == 0xF0) min_second = 0x90;  // overlong
    if (lead == 0xF4) max_second = 0x8F;  // above U+10FFFF
  } else {
    return std::nullopt;
  }
  if (offset + length > text.size()) return std::nullopt;
  for (std::size_t i = 1; i < length; ++i) {
    const unsigned char next = byte(i);
    const unsigned char low = i == 1 ? min_second : 0x80;
    const unsigned char high = i == 1 ? max_second : 0xBF;
    if (next < low || next > high) return std::nullopt;
    value = (value << 6) | (next & 0x3F);
  }
  return CodePoint{value, offset, length};
}

// The code points of valid UTF-8, or nullopt.
std::optional<std::vector<CodePoint>> DecodeUtf8(std::string_view text) {
  std::vector<CodePoint> out;
  out.reserve(text.size());
  for (std::size_t offset = 0; offset < text.size();) {
    const auto code_point = DecodeAt(text, offset);
    if (!code_point) return std::nullopt;
    out.push_back(*code_point);
    offset += code_point->length;
  }
  return out;
}

bool IsControl(char32_t c) { return c < 0x20 || (c >= 0x7F && c <= 0x9F); }

// ASCII whitespace and Unicode's space separators (and the line/paragraph separators and BOM),
// which look like nothing and so are trimmed or refused where they would mislead.
bool IsSpace(char32_t c) {
  return c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000 || c == 0xFEFF;
}

// `text` (valid UTF-8) without leading and trailing spaces; `code_points` is updated to match.
std::string Trim(std::string_view text, std::vector<CodePoint>& code_points) {
  std::size_t first = 0;
  std::size_t last = code_points.size();
  while (first < last && IsSpace(code_points[first].value)) ++first;
  while (last > first && IsSpace(code_points[last - 1].value)) --last;
  if (first == last) {
    code_points.clear();
    return {};
  }
  const std::size_t begin = code_points[first].offset;
  const std::size_t end = code_points[last - 1].offset + code_points[last - 1].length;
  code_points = std::vector<CodePoint>(code_points.begin() + static_cast<std::ptrdiff_t>(first),
                                       code_points.begin() + static_cast<std::ptrdiff_t>(last));
  for (auto& code_point : code_points) code_point.offset -= begin;
  return std::string(text.substr(begin, end - begin));
}

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Case-insensitive for ASCII, exact for everything else; no lowered copy of the password.
bool ContainsIgnoringCase(std::string_view haystack, std::string_view needle) {
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(),
                     [](char a, char b) { return AsciiLower(a) == AsciiLower(b); }) !=
         haystack.end();
}

bool EqualsIgnoringCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ContainsIgnoringCase(a, b);
}

bool LessIgnoringCase(std::string_view a, std::string_view b) {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                      [](char x, char y) { return AsciiLower(x) < AsciiLower(y); });
}

// data/common-passwords.txt, compiled in: sorted, without comments and blank lines.
const std::vector<std::string_view>& CommonPasswords() {
  static const std::vector<std::string_view> list = [] {
    static constexpr std::string_view kText =
#include "common_passwords.inc"
        ;
    std::vector<std::string_view> entries;
    for (std::size_t start = 0; start < kText.size();) {
      const std::size_t end = std::min(kText.find('\n', start), kText.size());
      const std::string_view line = kText.substr(start, end - start);
      if (!line.empty() && line.front() != '#') entries.push_back(line);
      start = end + 1;
    }
    std::sort(entries.begin(), entries.end(), LessIgnoringCase);
    return entries;
  }();
  return list;
}

// Overwrites a string that held a password before it is freed. Volatile so the stores are not
// dropped as dead (this library is pure, without OPENSSL_cleanse).
void Wipe(std::string& secret) {
  volatile char* data = secret.data();
  for (std::size_t i = 0; i < secret.size(); ++i) data[i] = '\0';
}

// A field name from the request, to be shown in an error only if it is short, printable ASCII
// (it ends up in logs and JSON responses).
std::optional<std::string> ShownFieldName(const std::string& name) {
  const bool printable = std::all_of(name.begin(), name.end(), [](char c) {
    return c > 0x20 && c < 0x7F && c != '"' && c != '\\';
  });
  if (name.empty() || name.size() > 40 || !printable) return std::nullopt;
  return name;
}

bool IsKnownField(const std::string& name) {
  return std::find(kFields.begin(), kFields.end(), name) != kFields.end();
}

// Where an invalid UTF-8 byte sits in the (sanitised, valid JSON) body: in a top-level field's
// name, or somewhere in its value (nested values belong to the top-level field).
struct Location {
  std::string field;  // decoded name; empty if the byte is inside a name
  bool in_name = false;
};

std::optional<Location> FieldAt(std::string_view body, std::size_t bad_offset) {
  int depth = 0;
  std::string current_field;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == '"') {
      const std::size_t start = i;
      for (++i; i < body.size() && body[i] != '"'; ++i) {
        if (body[i] == '\\') ++i;  // skips the escaped character, '"' included
      }
      const std::size_t end = i;  // the closing quote
      std::size_t next = end + 1;
      while (next < body.size() && (body[next] == ' ' || body[next] == '\t' || body[next] == '\n' ||
                                    body[next] == '\r')) {
        ++next;
      }
      const bool is_name = depth == 1 && next < body.size() && body[next] == ':';
      if (is_name) {
        if (bad_offset > start && bad_offset < end) return Location{"", true};
        const json name = json::parse(body.substr(start, end - start + 1), nullptr, false);
        current_field = name.is_string() ? name.get<std::string>() : std::string();
      } else if (bad_offset > start && bad_offset < end) {
        return Location{current_field, false};
      }
    }
  }
  return std::nullopt;
}

// nlohmann's parse errors end with "; last read: '...'", which would echo the body (a password)
// into logs; keep only the position and the kind of error.
std::string DescribeParseError(const json::exception& error) {
  std::string text = error.what();
  if (const auto pos = text.find("] ");
      text.rfind("[json.exception.", 0) == 0 && pos != text.npos) {
    text.erase(0, pos + 2);
  }
  if (const auto pos = text.find("; last read:"); pos != text.npos) text.erase(pos);
  return text;
}

std::optional<std::string> CheckEmail(const std::string& email) {
  const auto code_points = DecodeUtf8(email);
  if (email.empty()) return "email: must not be empty";
  if (std::any_of(code_points->begin(), code_points->end(),
                  [](const CodePoint& c) { return IsSpace(c.value) || IsControl(c.value); })) {
    return "email: must not contain spaces or control characters";
  }
  const std::size_t at = email.find('@');
  if (at == std::string::npos || email.find('@', at + 1) != std::string::npos) {
    return "email: must contain exactly one '@', like name@example.com";
  }
  const std::string_view local = std::string_view(email).substr(0, at);
  const std::string_view domain = std::string_view(email).substr(at + 1);
  if (local.empty()) return "email: the part before '@' must not be empty";
  if (local.size() > kMaxLocalPartBytes) {
    return "email: the part before '@' must be at most 64 characters";
  }
  if (email.size() > kMaxEmailBytes) return "email: must be at most 254 characters";
  if (domain.find('.') == std::string_view::npos) {
    return "email: the domain must contain a dot, like example.com";
  }
  std::size_t start = 0;
  while (start <= domain.size()) {
    std::size_t dot = domain.find('.', start);
    if (dot == std::string_view::npos) dot = domain.size();
    const std::string_view label = domain.substr(start, dot - start);
    if (label.empty())
      return "email: the domain must not have an empty label ('..' or a '.' at an end)";
    if (label.size() > kMaxLabelBytes) {
      return "email: each part of the domain must be at most 63 characters";
    }
    const bool allowed = std::all_of(label.begin(), label.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    });
    if (!allowed) {
      return "email: the domain may contain only letters, digits, '-' and '.' (write "
             "internationalised domains in their xn-- form)";
    }
    if (label.front() == '-' || label.back() == '-') {
      return "email: a part of the domain must not start or end with '-'";
    }
    start = dot + 1;
  }
  return std::nullopt;
}

}  // namespace

bool IsCommonPassword(std::string_view password) {
  const auto& list = CommonPasswords();
  return std::binary_search(list.begin(), list.end(), password, LessIgnoringCase);
}

std::size_t CommonPasswordCount() { return CommonPasswords().size(); }

// Messages state the rule and never repeat the password. Works on the password in place (no
// decoded or lowered copy that would outlive the request unwiped).
std::optional<std::string> CheckNewPassword(const std::string& password, const std::string& email,
                                            std::string_view field) {
  const std::string name(field);
  std::size_t length = 0;
  for (std::size_t i = 0; i < password.size(); ++length) {
    const auto code_point = DecodeAt(password, i);
    if (!code_point) return name + ": must be valid UTF-8";
    i += code_point->length;
  }
  if (length < kMinPasswordLength) return name + ": must be at least 12 characters long";
  if (length > kMaxPasswordLength) return name + ": must be at most 128 characters long";
  // Quadratic, but over at most 128 characters.
  std::size_t most = 0;
  for (std::size_t i = 0; i < password.size();) {
    const CodePoint a = *DecodeAt(password, i);
    std::size_t count = 0;
    for (std::size_t j = 0; j < password.size();) {
      const CodePoint b = *DecodeAt(password, j);
      if (b.value == a.value) ++count;
      j += b.length;
    }
    most = std::max(most, count);
    i += a.length;
  }
  if (most * 2 > length) return name + ": must not consist mostly of one repeated character";
  if (EqualsIgnoringCase(password, email)) return name + ": must not be the email address";
  const std::string_view local = std::string_view(email).substr(0, email.find('@'));
  if (DecodeUtf8(local)->size() >= kMinLocalPartToMatch && ContainsIgnoringCase(password, local)) {
    return name + ": must not contain the part of the email address before '@'";
  }
  if (IsCommonPassword(password)) {
    return name + ": is one of the most common passwords, which are tried first; choose another";
  }
  return std::nullopt;
}

namespace {

Result<std::string> CheckCompanyName(const std::string& raw) {
  auto code_points = *DecodeUtf8(raw);
  std::string name = Trim(raw, code_points);
  if (code_points.empty()) return Error{"company_name: must not be empty"};
  if (code_points.size() > kMaxCompanyNameLength) {
    return Error{"company_name: must be at most 200 characters"};
  }
  if (std::any_of(code_points.begin(), code_points.end(),
                  [](const CodePoint& c) { return IsControl(c.value); })) {
    return Error{"company_name: must not contain control characters (line breaks, tabs)"};
  }
  return name;
}

}  // namespace

namespace {

// nlohmann rejects invalid UTF-8 as a syntax error that cannot name the field. So a copy is
// parsed with each offending byte replaced by '?' (same offsets) and the field named afterwards:
// the offset of the first bad byte, with `sanitised` the copy (left empty when all is valid).
std::optional<std::size_t> SanitiseUtf8(std::string_view body, std::string& sanitised) {
  std::optional<std::size_t> first_bad;
  for (std::size_t offset = 0; offset < body.size();) {
    if (const auto code_point = DecodeAt(body, offset)) {
      offset += code_point->length;
      continue;
    }
    if (!first_bad) {
      first_bad = offset;
      sanitised.assign(body);
    }
    sanitised[offset] = '?';
    ++offset;
  }
  return first_bad;
}

// Parses `text` into `parsed`, noting the first top-level field given twice.
Status ParseNotingDuplicates(std::string_view text, json& parsed,
                             std::optional<std::string>& duplicate) {
  std::vector<std::string> names;
  const json::parser_callback_t note_duplicates = [&](int depth, json::parse_event_t event,
                                                      json& node) {
    if (event == json::parse_event_t::key && depth == 1) {
      const auto& name = node.get_ref<const std::string&>();
      if (std::find(names.begin(), names.end(), name) != names.end()) {
        if (!duplicate) duplicate = name;
      } else {
        names.push_back(name);
      }
    }
    return true;
  };
  try {
    parsed = json::parse(text.begin(), text.end(), note_duplicates);
  } catch (const json::parse_error& error) {
    return Error{"body: not valid JSON: " + DescribeParseError(error)};
  } catch (const json::exception&) {
    return Error{"body: not valid JSON: a number is out of range"};
  }
  return Ok();
}

// An object of exactly the known fields, each once, each a string of valid UTF-8.
Status CheckSignupShape(const json& parsed, const std::optional<std::string>& duplicate,
                        std::string_view text, std::optional<std::size_t> first_bad) {
  if (!parsed.is_object()) return Error{"body: must be a JSON object"};
  if (duplicate) {
    const auto shown = ShownFieldName(*duplicate);
    return Error{shown ? *shown + ": must be given only once" : "body: a field is given twice"};
  }
  if (first_bad) {
    const auto location = FieldAt(text, *first_bad);
    if (!location || location->in_name) return Error{"body: a field name is not valid UTF-8"};
    if (IsKnownField(location->field)) return Error{location->field + ": must be valid UTF-8"};
  }
  for (const auto& item : parsed.items()) {
    if (!IsKnownField(item.key())) {
      const auto shown = ShownFieldName(item.key());
      return Error{(shown ? *shown + ": unknown field" : "body: unknown field") +
                   " (expected only email, password and company_name)"};
    }
  }
  // Unreachable in practice (the bad byte lies in some field, reported above); kept so invalid
  // UTF-8 can never reach nlohmann's dump(), which throws on it.
  if (first_bad) return Error{"body: not valid UTF-8"};
  for (const char* field : kFields) {
    const auto it = parsed.find(field);
    if (it == parsed.end()) return Error{std::string(field) + ": is required"};
    if (!it->is_string()) return Error{std::string(field) + ": must be a string"};
  }
  return Ok();
}

// The checked fields; every string decodes (invalid UTF-8 was refused by CheckSignupShape).
Result<SignupRequest> SignupFields(const json& parsed) {
  SignupRequest request;
  {
    auto email_points = *DecodeUtf8(parsed["email"].get_ref<const std::string&>());
    request.email = Trim(parsed["email"].get_ref<const std::string&>(), email_points);
  }
  if (auto problem = CheckEmail(request.email)) return Error{std::move(*problem)};
  // Passwords are used as given: trimming would silently change what the user typed.
  const auto& password = parsed["password"].get_ref<const std::string&>();
  if (auto problem = CheckNewPassword(password, request.email)) return Error{std::move(*problem)};
  auto company_name = CheckCompanyName(parsed["company_name"].get_ref<const std::string&>());
  if (!company_name.ok()) return Error{company_name.error()};
  request.company_name = std::move(company_name).value();
  request.password = password;
  return request;
}

}  // namespace

Result<SignupRequest> ParseSignupRequest(std::string_view body) {
  if (body.size() > kMaxBodyBytes) return Error{"body: must be at most 65536 bytes"};
  std::string sanitised;
  struct WipeOnExit {
    std::string& text;
    ~WipeOnExit() { Wipe(text); }
  } wipe_sanitised{sanitised};
  const auto first_bad = SanitiseUtf8(body, sanitised);
  const std::string_view text = first_bad ? std::string_view(sanitised) : body;

  json parsed;
  // The parsed tree holds a copy of the password; wipe it however this function returns.
  struct WipePassword {
    json& tree;
    ~WipePassword() {
      if (tree.is_object()) {
        const auto it = tree.find("password");
        if (it != tree.end() && it->is_string()) Wipe(it->get_ref<std::string&>());
      }
    }
  } wipe_password{parsed};
  std::optional<std::string> duplicate;
  if (auto status = ParseNotingDuplicates(text, parsed, duplicate); !status.ok())
    return status.failure();
  if (auto status = CheckSignupShape(parsed, duplicate, text, first_bad); !status.ok())
    return status.failure();
  return SignupFields(parsed);
}

std::string MakeCustomerId(std::string_view company_name, std::string_view suffix) {
  // ASCII letters and digits are kept (lowercased), other ASCII becomes a '-' separator, and
  // every non-ASCII byte is dropped: no transliteration table to keep in sync.
  std::string name;
  for (const char c : company_name) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x80) continue;
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      name += c;
    } else if (c >= 'A' && c <= 'Z') {
      name += AsciiLower(c);
    } else if (!name.empty() && name.back() != '-') {
      name += '-';  // runs collapse; none at the start
    }
  }
  if (name.size() > kMaxIdNameLength) name.resize(kMaxIdNameLength);
  while (!name.empty() && name.back() == '-') name.pop_back();
  if (name.empty()) name = "customer";

  // The suffix is the caller's, but the result must stay a label whatever it passes.
  std::string clean_suffix;
  for (const char c : suffix) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      clean_suffix += c;
    } else if (c >= 'A' && c <= 'Z') {
      clean_suffix += AsciiLower(c);
    }
  }
  if (clean_suffix.empty()) return name;
  const std::size_t room = common::kMaxCustomerIdLength - name.size() - 1;
  if (clean_suffix.size() > room) clean_suffix.resize(room);
  return name + "-" + clean_suffix;
}

namespace {

// Each step of ParseUpgradeRequest: the field's value, or the error naming it.
Result<nlohmann::json> UpgradeBody(std::string_view body) {
  auto parsed = nlohmann::json::parse(body, nullptr, false);
  if (parsed.is_discarded()) return Error{"body: not valid JSON"};
  if (!parsed.is_object()) return Error{"body: must be a JSON object"};
  for (const auto& [key, value] : parsed.items()) {
    if (key != "values" && key != "license" && key != "license_key") {
      return Error{key + ": unknown field (use values, license or license_key)"};
    }
  }
  if (parsed.empty()) return Error{"body: give values, license or license_key"};
  if (parsed.contains("license") && parsed.contains("license_key")) {
    return Error{"license: give either license (to issue a new key) or license_key, not both"};
  }
  return parsed;
}

Result<UpgradeRequest::License> UpgradeLicense(const nlohmann::json& license) {
  if (!license.is_object()) return Error{"license: must be an object like {\"plan\": \"pro\"}"};
  for (const auto& [key, value] : license.items()) {
    if (key != "plan" && key != "validity_days") {
      return Error{"license." + key + ": unknown field (use plan, validity_days)"};
    }
  }
  UpgradeRequest::License out;
  if (license.contains("plan")) {
    static const std::regex plan_pattern("[a-z0-9][-a-z0-9]{0,31}");
    if (!license["plan"].is_string() ||
        !std::regex_match(license["plan"].get<std::string>(), plan_pattern)) {
      return Error{"license.plan: must be a plan name like \"pro\" ([a-z0-9-], at most 32)"};
    }
    out.plan = license["plan"].get<std::string>();
  }
  if (license.contains("validity_days")) {
    const auto& days = license["validity_days"];
    if (!days.is_number_integer() || days.get<std::int64_t>() < 1 ||
        days.get<std::int64_t>() > 3660) {
      return Error{"license.validity_days: must be a whole number of days, 1 to 3660"};
    }
    out.validity_days = days.get<std::int64_t>();
  }
  return out;
}

}  // namespace

Result<UpgradeRequest> ParseUpgradeRequest(std::string_view body) {
  auto parsed = UpgradeBody(body);
  if (!parsed.ok()) return Error{parsed.error()};
  const nlohmann::json& json = parsed.value();
  UpgradeRequest request;
  if (json.contains("values")) {
    if (!json["values"].is_object()) return Error{"values: must be an object of chart values"};
    request.values = json["values"];
  }
  if (json.contains("license")) {
    auto license = UpgradeLicense(json["license"]);
    if (!license.ok()) return Error{license.error()};
    request.license = std::move(license).value();
  }
  if (json.contains("license_key")) {
    if (!json["license_key"].is_string()) return Error{"license_key: must be a string (a JWT)"};
    request.license_key = json["license_key"].get<std::string>();
  }
  return request;
}

}  // namespace billing::provisioner
