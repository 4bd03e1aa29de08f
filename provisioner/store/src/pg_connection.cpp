#include "pg_connection.h"

#include <pqxx/pqxx>

namespace billing::provisioner {

void DeleteConnection::operator()(pqxx::connection_base* connection) const noexcept {
  // Every PgConnection is made by Connect below, as a pqxx::connection.
  std::unique_ptr<pqxx::connection>(static_cast<pqxx::connection*>(connection)).reset();
}

PgConnection Connect(const std::string& database_url) {
  auto connection = std::make_unique<pqxx::connection>(database_url);
  // Error messages without DETAIL: "Failing row contains (...)" would put stored credentials into
  // the logs.
  connection->set_verbosity(pqxx::connection_base::terse);
  return PgConnection(connection.release());
}

}  // namespace billing::provisioner
