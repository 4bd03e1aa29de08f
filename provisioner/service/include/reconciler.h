// provisioner/reconcile: drives every customer's observed state toward the desired state in the
// store. A dispatcher asks the store which deployments are due (new, changed, deploying, failed
// and waiting for a retry, ready and due for a resync) and hands them to worker threads; each
// worker holds the customer's advisory lock while it runs one Deployer step, so two workers (or
// two provisioners) never work on one customer at once. State lives only in the store: a
// restarted provisioner picks up where the last one stopped.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "deployer.h"
#include "kube_client.h"
#include "service_metrics.h"
#include "store.h"

namespace billing::provisioner {

struct ReconcilerOptions {
  std::size_t workers = 4;
  double dispatch_interval_seconds = 1;  // how often the store is asked for due work
  DeployerTiming timing;
  KubeRetryPolicy kube_retry;
  std::string field_manager = "billing-provisioner";
};

class Reconciler {
 public:
  Reconciler(Store& store, std::string database_url, const StackRenderer& renderer,
             KubeCredentials credentials, ReconcilerOptions options, ServiceMetrics& metrics);
  ~Reconciler();  // stops and joins every thread; a step in flight finishes first
  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  /// Look for due work now (after a signup, upgrade or delete) instead of at the next interval.
  void Wake();

 private:
  void DispatchLoop();
  void WorkerLoop();
  void RunStep(ReconcileSession& session, Deployer& deployer, const std::string& customer_id);

  Store& store_;
  const std::string database_url_;
  const StackRenderer& renderer_;
  const KubeCredentials credentials_;
  const ReconcilerOptions options_;
  ServiceMetrics& metrics_;

  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable dispatch_wake_;
  std::deque<std::string> queue_;
  std::set<std::string> in_flight_;  // queued or running here
  bool wake_requested_ = false;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace billing::provisioner
