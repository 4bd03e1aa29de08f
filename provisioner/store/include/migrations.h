// The provisioner's PostgreSQL schema, as numbered migrations applied in order (schema_migrations
// records which ones a database has). One runner for every table: usage_records, customers,
// deployments.
#pragma once

#include <string>

namespace billing::provisioner {

/// Applies the migrations this version knows that the database lacks, in one transaction under
/// an advisory lock so that concurrent starts do not race. Throws on failure.
void ApplyMigrations(const std::string& database_url);

}  // namespace billing::provisioner
