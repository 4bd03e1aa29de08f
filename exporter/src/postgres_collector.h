// I/O half of the PostgreSQL collector: one persistent, read-only connection
// per collector, every statement under statement_timeout, reconnect with capped
// exponential backoff.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <pqxx/connection>
#include <string>

#include "backoff.h"
#include "collector.h"
#include "config.h"
#include "postgres_sample.h"

namespace billing::exporter {

/// A connection that is opened on demand, re-opened after it breaks (not before
/// its backoff has passed) and whose every query is bounded by a client-side
/// watchdog as well as the server's statement_timeout, so a frozen server
/// cannot hang the sampler.
class PgSession {
 public:
  /// Each statement runs under `query_timeout`; one Run() sends at most `statements_per_run`
  /// of them, so its watchdog allows that many timeouts.
  PgSession(std::string component, const PostgresConfig& config,
            std::chrono::milliseconds query_timeout, int statements_per_run = 1);
  ~PgSession();
  PgSession(const PgSession&) = delete;
  PgSession& operator=(const PgSession&) = delete;

  /// Runs `work` on the connection, connecting first if needed. Exceptions from
  /// `work` are returned as an error message (scrubbed of the password); a
  /// broken connection is closed so the next call reconnects after the backoff.
  template <typename Work>
  std::string Run(Work&& work);

 private:
  std::string Connect();
  std::string RunErased(const std::function<void(pqxx::connection&)>& work);

  const std::string component_;
  const PostgresConfig& config_;
  const std::chrono::milliseconds query_timeout_;
  const int statements_per_run_;
  std::unique_ptr<pqxx::connection> connection_;
  Backoff backoff_;
  std::chrono::steady_clock::time_point next_attempt_{};
};

template <typename Work>
std::string PgSession::Run(Work&& work) {
  return RunErased(std::function<void(pqxx::connection&)>(std::forward<Work>(work)));
}

/// Samples the catalog: every user table's estimated rows, rows inserted and
/// exact sizes, the database size and the statistics' reset time, in one
/// read-only transaction. Sizes are measured only for the tables the
/// TableSizeCache plans (new, changed, or all of them in a full sample).
class PostgresCatalogCollector final : public Collector {
 public:
  PostgresCatalogCollector(const PostgresConfig& config, std::chrono::milliseconds interval);
  const std::string& Name() const override { return name_; }
  std::chrono::milliseconds Interval() const override { return interval_; }
  SampleResult Sample() override;
  /// iotistic_postgres_up 0: a database that does not answer is not up.
  std::vector<prometheus::MetricFamily> OverdueFamilies() const override;

 private:
  const std::string name_ = "postgres";
  const PostgresConfig& config_;
  const std::chrono::milliseconds interval_;
  TableSelection selection_;
  TableSizeCache sizes_;
  PgSession session_;
};

/// Exact count(*) of the configured tables, each under its own timeout, on a
/// slower cadence and its own connection, so a long count never delays the
/// catalog sample billing depends on.
class PostgresExactCountCollector final : public Collector {
 public:
  explicit PostgresExactCountCollector(const PostgresConfig& config);
  const std::string& Name() const override { return name_; }
  std::chrono::milliseconds Interval() const override { return config_.exact_count_interval; }
  SampleResult Sample() override;

 private:
  const std::string name_ = "postgres_exact_count";
  const PostgresConfig& config_;
  PgSession session_;
};

/// Reads one catalog sample over an open connection, measuring exact sizes for
/// the selected tables `sizes` plans and serving its last exact sizes for the
/// others (throws on any failure that leaves a table without an exact size).
CatalogSample ReadCatalog(pqxx::connection& connection, const TableSelection& selection,
                          TableSizeCache& sizes);

}  // namespace billing::exporter
