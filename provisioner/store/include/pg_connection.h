// store: how the provisioner holds a PostgreSQL connection.
#pragma once

#include <memory>
#include <string>

namespace pqxx {
class connection_base;
}

namespace billing::provisioner {

/// libpqxx 6's connection_base has no virtual destructor: a connection deleted through it never
/// runs pqxx::connection's destructor (its close() and members), which AddressSanitizer reports
/// as a new-delete type mismatch. This deleter deletes it as the pqxx::connection it was made as.
struct DeleteConnection {
  void operator()(pqxx::connection_base* connection) const noexcept;
};
using PgConnection = std::unique_ptr<pqxx::connection_base, DeleteConnection>;

/// Opens a connection to `database_url` with terse error messages (no SQL in them).
PgConnection Connect(const std::string& database_url);

}  // namespace billing::provisioner
