// Validation and redaction of the libpq connection string the exporter is given
// (DATABASE_URL).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "billing/common/result.h"

namespace billing::exporter {

/// A connection string that libpq accepted, with the password kept apart so
/// that nothing the exporter logs or exports can contain it.
class DatabaseUrl {
 public:
  /// Parses a libpq URI ("postgresql://user:pw@host:5432/db?sslmode=require")
  /// or key=value string. On failure returns a message that does not contain
  /// the input (it may hold a password).
  static common::Result<DatabaseUrl> Parse(const std::string& text);

  /// A key=value connection string for libpq with every parsed option plus
  /// `extra` options (which override parsed ones of the same name), values
  /// quoted as libpq requires.
  std::string ConnectionString(const std::vector<std::pair<std::string, std::string>>& extra) const;

  /// host:port/dbname with user, never the password; for logs.
  std::string Redacted() const;
  /// The database name libpq will connect to (dbname, else user, as libpq
  /// defaults it).
  std::string DatabaseName() const;
  const std::string& password() const { return password_; }
  /// A parsed option's value ("" if unset).
  std::string Option(const std::string& key) const { return Get(key); }

 private:
  std::vector<std::pair<std::string, std::string>> options_;  // non-empty, as parsed
  std::string password_;
  std::string Get(const std::string& key) const;
};

/// Replaces every occurrence of `secret` in `text` with "***" (no-op for an
/// empty secret).
std::string Scrub(std::string text, const std::string& secret);

}  // namespace billing::exporter
