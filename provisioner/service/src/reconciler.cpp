#include "reconciler.h"

#include <chrono>

#include "billing/common/log.h"

namespace billing::provisioner {

using billing::common::Log;
using billing::common::LogLevel;

Reconciler::Reconciler(Store& store, std::string database_url, const StackRenderer& renderer,
                       KubeCredentials credentials, ReconcilerOptions options,
                       ServiceMetrics& metrics)
    : store_(store),
      database_url_(std::move(database_url)),
      renderer_(renderer),
      credentials_(std::move(credentials)),
      options_(std::move(options)),
      metrics_(metrics) {
  for (std::size_t i = 0; i < std::max<std::size_t>(options_.workers, 1); ++i) {
    threads_.emplace_back([this] { WorkerLoop(); });
  }
  threads_.emplace_back([this] { DispatchLoop(); });
}

Reconciler::~Reconciler() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  dispatch_wake_.notify_all();
  for (auto& thread : threads_) thread.join();
}

void Reconciler::Wake() {
  {
    std::lock_guard lock(mutex_);
    wake_requested_ = true;
  }
  dispatch_wake_.notify_one();
}

void Reconciler::DispatchLoop() {
  const auto interval = std::chrono::duration<double>(options_.dispatch_interval_seconds);
  while (true) {
    std::vector<std::string> due;
    try {
      // Suspensions whose retention ended become deletions, due at once.
      for (const auto& id : store_.PurgeExpiredSuspensions()) {
        Log(LogLevel::kInfo, "reconciler",
            "customer " + id + ": suspended past its retention, purging");
      }
      // More than the workers can take at once, so a slow customer does not hold up the rest.
      due = store_.DueDeployments(options_.workers * 4 + 16);
    } catch (const std::exception& e) {
      Log(LogLevel::kWarn, "reconciler", std::string("store unavailable: ") + e.what());
    }
    std::unique_lock lock(mutex_);
    for (auto& id : due) {
      if (in_flight_.insert(id).second) queue_.push_back(std::move(id));
    }
    if (!queue_.empty()) work_ready_.notify_all();
    dispatch_wake_.wait_for(lock, interval, [&] { return stopping_ || wake_requested_; });
    if (stopping_) return;
    wake_requested_ = false;
  }
}

void Reconciler::WorkerLoop() {
  ReconcileSession session(database_url_, store_.secrets());
  KubeClient kube(credentials_, options_.field_manager, options_.kube_retry,
                  [this](const std::string& method, int status, double seconds) {
                    metrics_.ObserveKubeRequest(method, status, seconds);
                  });
  DeployerEvents events;
  events.apply_failed = [this](const std::string& kind, int status) {
    metrics_.CountApplyError(kind, status);
  };
  Deployer deployer(renderer_, kube, options_.timing, events);
  while (true) {
    std::string customer_id;
    {
      std::unique_lock lock(mutex_);
      work_ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      customer_id = std::move(queue_.front());
      queue_.pop_front();
    }
    RunStep(session, deployer, customer_id);
    {
      std::lock_guard lock(mutex_);
      in_flight_.erase(customer_id);
    }
  }
}

void Reconciler::RunStep(ReconcileSession& session, Deployer& deployer,
                         const std::string& customer_id) {
  try {
    if (!session.TryLock(customer_id)) return;  // another provisioner is on it
    struct Unlock {
      ReconcileSession& session;
      const std::string& id;
      ~Unlock() {
        try {
          session.Unlock(id);
        } catch (const std::exception&) {
          // The connection broke: its locks went with it.
        }
      }
    } unlock{session, customer_id};
    const auto deployment = session.Load(customer_id);
    if (!deployment) return;
    Observation observation;
    auto fail = [&](std::string message) {
      observation.phase = Phase::kFailed;
      observation.message = std::move(message);
      observation.components = deployment->components;
      observation.attempts = deployment->attempts + 1;
      observation.retry_after_seconds = options_.timing.failure_backoff_max_seconds;
    };
    if (!deployment->secrets_error.empty() && deployment->desired_state != DesiredState::kAbsent) {
      // A secret that does not open is never rendered: the deployment fails, naming the value,
      // until the key is configured or the value restored (teardown needs no secrets).
      fail(deployment->secrets_error);
    } else {
      try {
        observation = deployer.Step(*deployment);
      } catch (const std::exception& e) {
        // A bug or an answer we cannot read: fail visibly and retry later, never stop the worker.
        fail(std::string("internal error: ") + e.what());
      }
    }
    session.Record(customer_id, deployment->desired_generation, deployment->desired_state,
                   observation);
    const std::string from(Name(deployment->phase));
    const std::string to(Name(observation.phase));
    metrics_.CountReconcile(to);
    if (observation.phase != deployment->phase || observation.phase == Phase::kFailed) {
      Log(observation.phase == Phase::kFailed ? LogLevel::kWarn : LogLevel::kInfo, "reconciler",
          "customer " + customer_id + ": " + from + " -> " + to + ": " + observation.message);
    }
    if (observation.retry_after_seconds == 0) Wake();
  } catch (const std::exception& e) {
    Log(LogLevel::kWarn, "reconciler",
        "customer " + customer_id + ": store error, retrying: " + e.what());
  }
}

}  // namespace billing::provisioner
