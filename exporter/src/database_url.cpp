#include "database_url.h"

#include <libpq-fe.h>

#include <initializer_list>
#include <memory>

namespace billing::exporter {

using common::Error;
using common::Result;

namespace {

struct ConninfoFree {
  void operator()(PQconninfoOption* options) const { PQconninfoFree(options); }
};
struct PqFree {
  void operator()(char* p) const { PQfreemem(p); }
};

// libpq key=value quoting: single quotes around the value, backslash before '
// and \.
std::string QuoteConninfoValue(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  out += '\'';
  return out;
}

std::string DropQuoted(const std::string& text) {
  std::string out;
  bool quoted = false;
  for (char c : text) {
    if (c == '"') {
      if (!quoted) out += "\"...\"";
      quoted = !quoted;
    } else if (!quoted) {
      out += c;
    }
  }
  return out;
}

// "5432" or, for several hosts, "5432,5433".
bool IsPortList(const std::string& ports) {
  std::size_t start = 0;
  while (true) {
    const auto end = ports.find(',', start);
    const auto port =
        ports.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos)
      return false;
    const int number = std::stoi(port);
    if (number < 1 || number > 65535) return false;
    if (end == std::string::npos) return true;
    start = end + 1;
  }
}

bool IsOneOf(const std::string& value, std::initializer_list<const char*> allowed) {
  for (const char* a : allowed) {
    if (value == a) return true;
  }
  return false;
}

}  // namespace

Result<DatabaseUrl> DatabaseUrl::Parse(const std::string& text) {
  // An unencoded '@', '/', '?' or '#' in the password splits a URI in the wrong place, and libpq
  // would then take part of the password for the host or port (and echo it in its errors). Such
  // URIs are refused before libpq sees them, without quoting any part of them.
  if (auto scheme = text.find("://"); scheme != std::string::npos) {
    const std::string rest = text.substr(scheme + 3);
    const auto at = rest.rfind('@');
    if (at != std::string::npos && (rest.find('@') != at || rest.find_first_of("/?#") < at)) {
      return Error{
          "has an unencoded '@', '/', '?' or '#' in its user name or password; percent-encode them "
          "(@ as %40, / as %2F, ? as %3F, # as %23)"};
    }
  }
  if (text.empty())
    return Error{
        "is empty; expected a libpq URI such as "
        "postgresql://user:password@host:5432/dbname"};
  char* raw_error = nullptr;
  std::unique_ptr<PQconninfoOption, ConninfoFree> options(
      PQconninfoParse(text.c_str(), &raw_error));
  std::unique_ptr<char, PqFree> error(raw_error);
  if (!options) {
    // libpq's message names the problem and quotes the offending part of the
    // input, which may be the password: keep the first line and drop every
    // quoted part.
    std::string message = error ? error.get() : "out of memory";
    if (auto newline = message.find('\n'); newline != std::string::npos) message.resize(newline);
    // libpq quotes parts of the input in double quotes; an input with a '"' of its own makes the
    // quotes unpairable, so then none of libpq's message is shown.
    if (text.find('"') != std::string::npos) {
      return Error{
          "is not a valid libpq connection string (and contains a '\"', so the parser's message, "
          "which would quote it, is not shown); expected "
          "postgresql://user:password@host:5432/dbname"};
    }
    message = DropQuoted(message);
    return Error{"is not a valid libpq connection string (" + message +
                 "); expected postgresql://user:password@host:5432/dbname"};
  }
  DatabaseUrl url;
  for (const PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
    if (option->val == nullptr || option->val[0] == '\0') continue;
    const std::string keyword = option->keyword;
    const std::string value = option->val;
    // libpq only checks these when it connects; a typo should fail at start-up
    // instead.
    if (keyword == "port" && !IsPortList(value)) {
      // The value is not echoed: a malformed URI can put part of a password here.
      return Error{"has a port that is not a number between 1 and 65535"};
    }
    if (keyword == "sslmode" &&
        !IsOneOf(value, {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})) {
      return Error{"has sslmode '" + value +
                   "'; use disable, allow, prefer, require, verify-ca or verify-full"};
    }
    url.options_.emplace_back(keyword, value);
    if (keyword == "password") url.password_ = value;
  }
  return url;
}

std::string DatabaseUrl::Get(const std::string& key) const {
  for (const auto& [k, v] : options_) {
    if (k == key) return v;
  }
  return "";
}

std::string DatabaseUrl::ConnectionString(
    const std::vector<std::pair<std::string, std::string>>& extra) const {
  std::string out;
  auto append = [&out](const std::string& key, const std::string& value) {
    if (!out.empty()) out += ' ';
    out += key;
    out += '=';
    out += QuoteConninfoValue(value);
  };
  for (const auto& [key, value] : options_) {
    bool overridden = false;
    for (const auto& e : extra) overridden = overridden || e.first == key;
    if (!overridden) append(key, value);
  }
  for (const auto& [key, value] : extra) append(key, value);
  return out;
}

std::string DatabaseUrl::DatabaseName() const {
  std::string db = Get("dbname");
  if (db.empty()) db = Get("user");
  return db;
}

std::string DatabaseUrl::Redacted() const {
  std::string host = Get("host");
  if (host.empty()) host = Get("hostaddr");
  if (host.empty()) host = "localhost";
  std::string port = Get("port");
  std::string user = Get("user");
  return (user.empty() ? "" : user + "@") + host + (port.empty() ? "" : ":" + port) + "/" +
         DatabaseName();
}

std::string Scrub(std::string text, const std::string& secret) {
  if (secret.empty()) return text;
  for (std::size_t at = text.find(secret); at != std::string::npos;
       at = text.find(secret, at + 3)) {
    text.replace(at, secret.size(), "***");
  }
  return text;
}

}  // namespace billing::exporter
