#include "service_metrics.h"

#include <prometheus/text_serializer.h>

#include "billing/common/version.h"
#include "phase.h"

namespace billing::provisioner {
namespace {

const prometheus::Histogram::BucketBoundaries kLatencyBuckets = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

}  // namespace

ServiceMetrics::ServiceMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      http_requests_(prometheus::BuildCounter()
                         .Name("iotistic_provisioner_http_requests_total")
                         .Help("HTTP requests answered, by route, method and status code.")
                         .Register(*registry_)),
      http_duration_(prometheus::BuildHistogram()
                         .Name("iotistic_provisioner_http_request_duration_seconds")
                         .Help("Time to answer HTTP requests, by route.")
                         .Register(*registry_)),
      kube_requests_(prometheus::BuildCounter()
                         .Name("iotistic_provisioner_kube_requests_total")
                         .Help("Kubernetes API requests, by method and status code (0: no answer).")
                         .Register(*registry_)),
      kube_duration_(prometheus::BuildHistogram()
                         .Name("iotistic_provisioner_kube_request_duration_seconds")
                         .Help("Kubernetes API request latency, by method.")
                         .Register(*registry_)),
      apply_errors_(prometheus::BuildCounter()
                        .Name("iotistic_provisioner_apply_errors_total")
                        .Help("Objects whose apply (or namespace deletion) failed after retries, "
                              "by kind and status code.")
                        .Register(*registry_)),
      reconciles_(prometheus::BuildCounter()
                      .Name("iotistic_provisioner_reconcile_steps_total")
                      .Help("Reconciliation steps, by the phase they observed.")
                      .Register(*registry_)),
      deployments_(prometheus::BuildGauge()
                       .Name("iotistic_provisioner_deployments")
                       .Help("Customer deployments by phase.")
                       .Register(*registry_)),
      usage_runs_(prometheus::BuildCounter()
                      .Name("iotistic_provisioner_usage_runs_total")
                      .Help("Runs of the periodic usage job, by result.")
                      .Register(*registry_)),
      usage_last_success_(prometheus::BuildGauge()
                              .Name("iotistic_provisioner_usage_last_success_timestamp_seconds")
                              .Help("When the usage job last stored records successfully.")
                              .Register(*registry_)
                              .Add({})),
      usage_unknown_customers_(
          prometheus::BuildGauge()
              .Name("iotistic_provisioner_usage_unknown_customers")
              .Help("Customers with usage samples in Prometheus that the provisioner's store does "
                    "not know, at the last usage run: never billed.")
              .Register(*registry_)
              .Add({})),
      usage_past_retention_(
          prometheus::BuildCounter()
              .Name("iotistic_provisioner_usage_periods_past_retention_total")
              .Help("Customer periods the usage job could not bill because their samples were "
                    "older than the metrics' retention (PROVISIONER_USAGE_RETENTION).")
              .Register(*registry_)
              .Add({})),
      usage_adjustments_(prometheus::BuildCounter()
                             .Name("iotistic_provisioner_usage_adjustments_total")
                             .Help("Adjustment rows the usage job wrote because a recomputed "
                                   "figure of a final (invoiced) period differed from it.")
                             .Register(*registry_)
                             .Add({})),
      usage_last_complete_(
          prometheus::BuildGauge()
              .Name("iotistic_provisioner_usage_last_complete_period_end_timestamp_seconds")
              .Help("Per customer with a deployment: the end of its last complete usage period "
                    "(its creation time while it has none).")
              .Register(*registry_)),
      phase_source_up_(prometheus::BuildGauge()
                           .Name("iotistic_provisioner_store_up")
                           .Help("1 if the last scrape could read the store, else 0.")
                           .Register(*registry_)
                           .Add({})),
      password_verifications_(
          prometheus::BuildCounter()
              .Name("iotistic_provisioner_password_verifications_total")
              .Help("Argon2id password verifications run by logins and password changes (one "
                    "per attempt, known e-mail or not).")
              .Register(*registry_)
              .Add({})),
      mails_(prometheus::BuildCounter()
                 .Name("iotistic_provisioner_mails_total")
                 .Help("E-mails to customers (password reset links), by outcome: sent, failed "
                       "(the relay refused or did not answer after every attempt), dropped "
                       "(the outbox was full or the service stopped first).")
                 .Register(*registry_)),
      signups_refused_(prometheus::BuildCounter()
                           .Name("iotistic_provisioner_signups_refused_total")
                           .Help("Signups refused before anything was created, by reason: "
                                 "client_rate (429, one address's limit), deployment_cap (503, "
                                 "the platform's deployments per hour), unverified_cap (503, "
                                 "the platform's signups awaiting verification).")
                           .Register(*registry_)),
      audit_write_failures_(
          prometheus::BuildCounter()
              .Name("iotistic_provisioner_audit_write_failures_total")
              .Help("State-changing API calls whose audit entry could not be written (the "
                    "call's outcome stands; the log names it).")
              .Register(*registry_)
              .Add({})) {
  for (const char* outcome : {"sent", "failed", "dropped"}) mails_.Add({{"outcome", outcome}});
  for (const char* reason : {"client_rate", "deployment_cap", "unverified_cap"}) {
    signups_refused_.Add({{"reason", reason}});
  }
  // Every phase is always exported, so "no Failed deployments" is a 0 rather than an absent series.
  for (const Phase phase : kAllPhases) deployments_.Add({{"phase", std::string(Name(phase))}});
  prometheus::BuildGauge()
      .Name("iotistic_provisioner_build_info")
      .Help("The provisioner's version and git revision; always 1.")
      .Register(*registry_)
      .Add({{"version", common::Version()}, {"revision", common::Revision()}})
      .Set(1);
  usage_runs_.Add({{"result", "success"}});
  usage_runs_.Add({{"result", "error"}});
}

void ServiceMetrics::ObserveHttp(const std::string& route, const std::string& method, int status,
                                 double seconds) {
  http_requests_.Add({{"route", route}, {"method", method}, {"code", std::to_string(status)}})
      .Increment();
  http_duration_.Add({{"route", route}}, kLatencyBuckets).Observe(seconds);
}

void ServiceMetrics::ObserveKubeRequest(const std::string& method, int status, double seconds) {
  kube_requests_.Add({{"method", method}, {"code", std::to_string(status)}}).Increment();
  kube_duration_.Add({{"method", method}}, kLatencyBuckets).Observe(seconds);
}

void ServiceMetrics::CountApplyError(const std::string& kind, int status) {
  apply_errors_.Add({{"kind", kind}, {"code", std::to_string(status)}}).Increment();
}

void ServiceMetrics::CountReconcile(const std::string& phase) {
  reconciles_.Add({{"phase", phase}}).Increment();
}

void ServiceMetrics::CountUsageRun(bool ok, double finished_at_unix) {
  usage_runs_.Add({{"result", ok ? "success" : "error"}}).Increment();
  if (ok) usage_last_success_.Set(finished_at_unix);
}

void ServiceMetrics::CountPasswordVerification() { password_verifications_.Increment(); }

void ServiceMetrics::CountMail(const std::string& outcome) {
  mails_.Add({{"outcome", outcome}}).Increment();
}

void ServiceMetrics::CountAuditWriteFailure() { audit_write_failures_.Increment(); }

void ServiceMetrics::CountSignupRefused(const std::string& reason) {
  signups_refused_.Add({{"reason", reason}}).Increment();
}

void ServiceMetrics::SetUnknownUsageCustomers(std::size_t count) {
  usage_unknown_customers_.Set(static_cast<double>(count));
}

void ServiceMetrics::CountUsagePeriodsPastRetention(std::size_t periods) {
  usage_past_retention_.Increment(static_cast<double>(periods));
}

void ServiceMetrics::CountUsageAdjustments(std::size_t rows) {
  usage_adjustments_.Increment(static_cast<double>(rows));
}

void ServiceMetrics::SetUsageLastComplete(
    const std::map<std::string, std::int64_t>& last_complete) {
  for (auto it = usage_last_complete_series_.begin(); it != usage_last_complete_series_.end();) {
    if (last_complete.count(it->first)) {
      ++it;
    } else {
      usage_last_complete_.Remove(it->second);
      it = usage_last_complete_series_.erase(it);
    }
  }
  for (const auto& [customer, end] : last_complete) {
    auto& series = usage_last_complete_series_[customer];
    if (series == nullptr) series = &usage_last_complete_.Add({{"customer_id", customer}});
    series->Set(static_cast<double>(end));
  }
}

void ServiceMetrics::SetPhaseSource(std::function<std::map<std::string, std::int64_t>()> source) {
  phase_source_ = std::move(source);
}

std::string ServiceMetrics::Serialize() {
  if (phase_source_) {
    try {
      const auto counts = phase_source_();
      for (const Phase value : kAllPhases) {
        const std::string phase(Name(value));
        const auto it = counts.find(phase);
        deployments_.Add({{"phase", phase}}).Set(it == counts.end() ? 0.0 : double(it->second));
      }
      phase_source_up_.Set(1);
    } catch (const std::exception&) {
      phase_source_up_.Set(0);
    }
  }
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace billing::provisioner
