// DeriveStatus, ApplyDue, FailedStatus and TeardownStatus: every phase transition of one
// reconciliation step, from the stored deployment and the workloads as the API returns them.
#include "status.h"

#include <gtest/gtest.h>

#include "phase.h"

namespace billing::provisioner {
namespace {

DeployerTiming Timing() {
  DeployerTiming t;
  t.poll_seconds = 2;
  t.resync_seconds = 30;
  t.reapply_seconds = 600;
  t.failure_backoff_seconds = 5;
  t.failure_backoff_max_seconds = 300;
  return t;
}

DeploymentRow Row(Phase phase, std::int64_t desired = 1, std::int64_t applied = 1,
                  std::optional<double> since_apply = 10.0, int attempts = 0) {
  DeploymentRow d;
  d.customer_id = "acme";
  d.phase = phase;
  d.desired_generation = desired;
  d.applied_generation = applied;
  d.seconds_since_apply = since_apply;
  d.attempts = attempts;
  d.components = nlohmann::json::object();
  return d;
}

// A Deployment as the API returns it: rolled out unless told otherwise.
nlohmann::json Deployment(std::int64_t ready, std::int64_t desired = 1, bool deadline = false) {
  nlohmann::json d = {{"kind", "Deployment"},
                      {"metadata", {{"generation", 2}}},
                      {"spec", {{"replicas", desired}}},
                      {"status",
                       {{"observedGeneration", 2},
                        {"replicas", desired},
                        {"updatedReplicas", desired},
                        {"readyReplicas", ready},
                        {"availableReplicas", ready}}}};
  if (deadline) {
    d["status"]["conditions"] = {
        {{"type", "Progressing"}, {"status", "False"}, {"reason", "ProgressDeadlineExceeded"}}};
  }
  return d;
}

WorkloadState Workload(std::string component, std::optional<nlohmann::json> live) {
  return {"Deployment", "customer-acme-" + component, std::move(component), std::move(live)};
}

TEST(PhaseTest, NamesRoundTrip) {
  for (const Phase phase : kAllPhases) EXPECT_EQ(ParsePhase(Name(phase)), phase);
  EXPECT_EQ(ParsePhase("ready"), std::nullopt);
  EXPECT_EQ(ParseDesiredState("present"), DesiredState::kPresent);
  EXPECT_EQ(ParseDesiredState(Name(DesiredState::kSuspended)), DesiredState::kSuspended);
  EXPECT_EQ(ParseDesiredState("absent"), DesiredState::kAbsent);
  EXPECT_EQ(ParseDesiredState("gone"), std::nullopt);
  EXPECT_EQ(Name(DesiredState::kAbsent), "absent");
}

TEST(ApplyDueTest, NewGenerationPendingFailedAndStaleApply) {
  const auto t = Timing();
  EXPECT_FALSE(ApplyDue(Row(Phase::kReady), t));
  EXPECT_FALSE(ApplyDue(Row(Phase::kDeploying), t));
  EXPECT_TRUE(ApplyDue(Row(Phase::kReady, 2, 1), t));  // upgrade requested
  EXPECT_TRUE(ApplyDue(Row(Phase::kPending), t));
  EXPECT_TRUE(ApplyDue(Row(Phase::kFailed), t));
  EXPECT_TRUE(ApplyDue(Row(Phase::kReady, 1, 1, 600.0), t));  // drift repair
  EXPECT_FALSE(ApplyDue(Row(Phase::kReady, 1, 1, 599.0), t));
  EXPECT_TRUE(ApplyDue(Row(Phase::kReady, 1, 1, std::nullopt), t));  // never recorded
}

TEST(DeriveStatusTest, PendingToDeployingWhileAWorkloadIsNotReady) {
  const auto o = DeriveStatus(
      Row(Phase::kPending, 1, 0),
      {Workload("api", Deployment(1)), Workload("dashboard", Deployment(0))}, 1, Timing());
  EXPECT_EQ(o.phase, Phase::kDeploying);
  EXPECT_EQ(o.message, "waiting for dashboard (1 of 1 replicas not available)");
  EXPECT_EQ(o.applied_generation, 1);
  EXPECT_EQ(o.retry_after_seconds, 2);
  EXPECT_EQ(o.components["api"]["ready"], true);
  EXPECT_EQ(o.components["dashboard"]["ready"], false);
  EXPECT_EQ(o.components["dashboard"]["name"], "customer-acme-dashboard");
}

TEST(DeriveStatusTest, DeployingToReadyWhenEveryWorkloadIsReady) {
  const auto o =
      DeriveStatus(Row(Phase::kDeploying),
                   {Workload("api", Deployment(2, 2)), Workload("dashboard", Deployment(1))},
                   std::nullopt, Timing());
  EXPECT_EQ(o.phase, Phase::kReady);
  EXPECT_EQ(o.message, "all components ready");
  EXPECT_EQ(o.applied_generation, std::nullopt);  // nothing applied in this step
  EXPECT_EQ(o.retry_after_seconds, 30);           // resync
  EXPECT_EQ(o.attempts, 0);
  EXPECT_EQ(o.components["api"]["ready_replicas"], 2);
}

TEST(DeriveStatusTest, ReadyResyncsNoLaterThanTheReapplyInterval) {
  auto t = Timing();
  t.reapply_seconds = 20;
  const auto o = DeriveStatus(Row(Phase::kReady), {Workload("api", Deployment(1))}, 1, t);
  EXPECT_EQ(o.phase, Phase::kReady);
  EXPECT_EQ(o.retry_after_seconds, 20);
}

TEST(DeriveStatusTest, ReadyToDeployingWhenAWorkloadWasDeleted) {
  const auto o = DeriveStatus(Row(Phase::kReady, 1, 1, 10.0, 2),
                              {Workload("api", std::nullopt), Workload("dashboard", Deployment(1))},
                              std::nullopt, Timing());
  EXPECT_EQ(o.phase, Phase::kDeploying);
  EXPECT_EQ(o.message, "re-applying: missing workloads");
  EXPECT_EQ(o.applied_generation, 0);  // forces the next step to apply
  EXPECT_EQ(o.attempts, 3);
  EXPECT_EQ(o.retry_after_seconds, 2 * 4);  // poll doubled per attempt
  EXPECT_EQ(o.components["api"]["ready"], false);
}

TEST(DeriveStatusTest, MissingWorkloadBackoffIsCapped) {
  const auto o = DeriveStatus(Row(Phase::kDeploying, 1, 1, 10.0, 30),
                              {Workload("api", std::nullopt)}, std::nullopt, Timing());
  EXPECT_EQ(o.retry_after_seconds, 300);
}

TEST(DeriveStatusTest, DeployingToFailedWhenARolloutPassedItsDeadline) {
  const auto o = DeriveStatus(Row(Phase::kDeploying, 2, 1, 10.0, 1),
                              {Workload("api", Deployment(0, 1, /*deadline=*/true))}, 2, Timing());
  EXPECT_EQ(o.phase, Phase::kFailed);
  EXPECT_EQ(o.message, "rollout failed: api (deployment exceeded its progress deadline)");
  EXPECT_EQ(o.applied_generation, 2);  // the apply itself succeeded
  EXPECT_EQ(o.attempts, 2);
  EXPECT_EQ(o.retry_after_seconds, 10);  // 5 s doubled once
  EXPECT_EQ(o.components["api"]["ready"], false);
}

TEST(FailedStatusTest, BackoffDoublesPerAttemptUpToTheCap) {
  auto row = Row(Phase::kReady);
  row.components = {{"api", {{"ready", true}}}};
  const auto first = FailedStatus(row, "apply Secret x: HTTP 422", Timing());
  EXPECT_EQ(first.phase, Phase::kFailed);
  EXPECT_EQ(first.message, "apply Secret x: HTTP 422");
  EXPECT_EQ(first.attempts, 1);
  EXPECT_EQ(first.retry_after_seconds, 5);
  EXPECT_EQ(first.components, row.components);  // the last known components stay
  EXPECT_EQ(first.applied_generation, std::nullopt);
  row.phase = Phase::kFailed;
  row.attempts = 3;
  EXPECT_EQ(FailedStatus(row, "again", Timing()).retry_after_seconds, 40);
  row.attempts = 50;
  EXPECT_EQ(FailedStatus(row, "again", Timing()).retry_after_seconds, 300);
}

TEST(SuspendedStatusTest, SuspendingWhilePodsRunThenSuspendedWithTheDataKept) {
  auto row = Row(Phase::kSuspended, 3, 2);
  row.desired_state = DesiredState::kSuspended;
  row.purge_after = "2026-12-11T18:00:00Z";
  // Scaled down, the controller has not seen it yet: its replica count is still the old one's.
  auto scaled = Deployment(1);
  scaled["metadata"]["generation"] = 3;
  scaled["status"]["replicas"] = 0;
  const auto waiting = SuspendedStatus(
      row, {Workload("api", scaled), Workload("dashboard", Deployment(1))}, 3, Timing());
  EXPECT_EQ(waiting.phase, Phase::kSuspended);
  EXPECT_EQ(waiting.applied_generation, 3);
  EXPECT_EQ(waiting.message,
            "suspending: waiting for api (1 pods), dashboard (1 pods) to stop; data kept until "
            "2026-12-11T18:00:00Z");
  EXPECT_EQ(waiting.retry_after_seconds, 2);
  // Seen and stopped; a workload someone deleted runs nothing either.
  scaled["status"]["observedGeneration"] = 3;
  const auto done = SuspendedStatus(
      row, {Workload("api", scaled), Workload("dashboard", std::nullopt)}, std::nullopt, Timing());
  EXPECT_EQ(done.phase, Phase::kSuspended);
  EXPECT_EQ(done.message,
            "suspended: every workload scaled to zero, data kept until 2026-12-11T18:00:00Z");
  EXPECT_EQ(done.retry_after_seconds, 30);
  EXPECT_EQ(done.components["api"]["ready"], false);
  EXPECT_EQ(done.components["api"]["desired_replicas"], 0);
}

TEST(TeardownStatusTest, DeletingUntilTheNamespaceIsGoneThenDeleted) {
  const auto deleting = TeardownStatus("customer-acme", false, Timing());
  EXPECT_EQ(deleting.phase, Phase::kDeleting);
  EXPECT_EQ(deleting.message, "waiting for namespace customer-acme to terminate");
  EXPECT_EQ(deleting.retry_after_seconds, 2);
  const auto deleted = TeardownStatus("customer-acme", true, Timing());
  EXPECT_EQ(deleted.phase, Phase::kDeleted);
  EXPECT_EQ(deleted.message, "namespace customer-acme deleted");
  EXPECT_LT(deleted.retry_after_seconds, 0);  // never again
  EXPECT_TRUE(deleted.components.empty());
}

}  // namespace
}  // namespace billing::provisioner
