#include "database_url.h"

#include <libpq-fe.h>

#include <memory>

namespace billing::exporter {
namespace {

struct ConninfoFree {
  void operator()(PQconninfoOption* options) const { PQconninfoFree(options); }
};
struct PqFree {
  void operator()(char* p) const { PQfreemem(p); }
};

// libpq key=value quoting: single quotes around the value, backslash before ' and \.
std::string QuoteConninfoValue(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  out += '\'';
  return out;
}

}  // namespace

std::variant<DatabaseUrl, std::string> DatabaseUrl::Parse(const std::string& text) {
  if (text.empty()) return std::string("is empty; expected a libpq URI such as postgresql://user:password@host:5432/dbname");
  char* raw_error = nullptr;
  std::unique_ptr<PQconninfoOption, ConninfoFree> options(PQconninfoParse(text.c_str(), &raw_error));
  std::unique_ptr<char, PqFree> error(raw_error);
  if (!options) {
    // libpq's message describes the syntax problem; it can quote part of the input, so only the
    // first line (which names the problem, not the value) is kept, scrubbed of any password text.
    std::string message = error ? error.get() : "out of memory";
    if (auto newline = message.find('\n'); newline != std::string::npos) message.resize(newline);
    return "is not a valid libpq connection string (" + message +
           "); expected postgresql://user:password@host:5432/dbname";
  }
  DatabaseUrl url;
  for (const PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
    if (option->val == nullptr || option->val[0] == '\0') continue;
    url.options_.emplace_back(option->keyword, option->val);
    if (std::string(option->keyword) == "password") url.password_ = option->val;
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
