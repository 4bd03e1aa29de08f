// The provisioner's own metrics (prometheus-cpp registry, served on /metrics): HTTP requests and
// latencies, password verifications by logins, Kubernetes API requests and apply errors,
// reconciliation steps, deployments by phase (read from the store at scrape time) and the usage
// job's runs.
//
// Thread-safety: prometheus-cpp metrics are thread-safe; Families are created once.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace billing::provisioner {

class ServiceMetrics {
 public:
  ServiceMetrics();

  void ObserveHttp(const std::string& route, const std::string& method, int status, double seconds);
  void ObserveKubeRequest(const std::string& method, int status, double seconds);
  void CountApplyError(const std::string& kind, int status);
  void CountReconcile(const std::string& phase);
  void CountUsageRun(bool ok, double finished_at_unix);
  /// One Argon2id verification by a login.
  void CountPasswordVerification();
  /// An e-mail's fate: "sent", "failed" or "dropped".
  void CountMail(const std::string& outcome);
  /// A signup refused before it created anything: "client_rate" (the per-address limit) or
  /// "deployment_cap" (the platform-wide deployments per hour).
  void CountSignupRefused(const std::string& reason);
  /// A state-changing call whose audit entry could not be written.
  void CountAuditWriteFailure();
  /// Customers the last usage run found in Prometheus but not in the store (never billed).
  void SetUnknownUsageCustomers(std::size_t count);
  /// Periods the usage job found older than the metrics' retention: never billed from samples.
  void CountUsagePeriodsPastRetention(std::size_t periods);
  /// Adjustment rows written for final periods.
  void CountUsageAdjustments(std::size_t rows);
  /// Per customer with a deployment: the end of its last complete period (Unix seconds); the
  /// customers not given lose their series.
  void SetUsageLastComplete(const std::map<std::string, std::int64_t>& last_complete);
  /// Called at every scrape to read deployments by phase; throws -> the gauge is left as it was.
  void SetPhaseSource(std::function<std::map<std::string, std::int64_t>()> source);

  /// The text exposition format of everything above.
  std::string Serialize();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& http_requests_;
  prometheus::Family<prometheus::Histogram>& http_duration_;
  prometheus::Family<prometheus::Counter>& kube_requests_;
  prometheus::Family<prometheus::Histogram>& kube_duration_;
  prometheus::Family<prometheus::Counter>& apply_errors_;
  prometheus::Family<prometheus::Counter>& reconciles_;
  prometheus::Family<prometheus::Gauge>& deployments_;
  prometheus::Family<prometheus::Counter>& usage_runs_;
  prometheus::Gauge& usage_last_success_;
  prometheus::Gauge& usage_unknown_customers_;
  prometheus::Counter& usage_past_retention_;
  prometheus::Counter& usage_adjustments_;
  prometheus::Family<prometheus::Gauge>& usage_last_complete_;
  std::map<std::string, prometheus::Gauge*> usage_last_complete_series_;
  prometheus::Gauge& phase_source_up_;
  prometheus::Counter& password_verifications_;
  prometheus::Family<prometheus::Counter>& mails_;
  prometheus::Family<prometheus::Counter>& signups_refused_;
  prometheus::Counter& audit_write_failures_;
  std::function<std::map<std::string, std::int64_t>()> phase_source_;
};

}  // namespace billing::provisioner
