// Holds the latest sample of every collector and the page a scrape serves.
// Publishing a sample serialises the page once (plain and gzip); a scrape only
// takes a reference to the current page, so its cost does not depend on the
// database's size or speed.
#pragma once

#include <prometheus/metric_family.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace billing::exporter {

struct Page {
  std::string text;  // Prometheus text format 0.0.4
  std::string gzip;  // the same bytes, gzip-compressed
};

struct CollectorHealth {
  std::string name;
  bool ready = false;  // sampled successfully within three of its intervals
  std::string detail;  // last error, or how long ago the last success was
};

/// Thread-safety: every method may be called from any thread.
class Exposition {
 public:
  using Clock = std::chrono::steady_clock;

  Exposition(std::vector<std::pair<std::string, std::string>> constant_labels, std::string version);
  Exposition(const Exposition&) = delete;
  Exposition& operator=(const Exposition&) = delete;

  /// Declares a collector before sampling starts, so its self-metrics appear
  /// from the first page.
  void Register(const std::string& collector, std::chrono::milliseconds interval);

  /// Replaces `collector`'s families with a new sample and rebuilds the page.
  void Publish(const std::string& collector, std::vector<prometheus::MetricFamily> families,
               bool ok, std::chrono::duration<double> took,
               std::chrono::system_clock::time_point finished_at);

  std::shared_ptr<const Page> Current() const;
  std::vector<CollectorHealth> Health(Clock::time_point now = Clock::now()) const;

 private:
  struct CollectorState {
    std::string name;
    std::chrono::milliseconds interval{0};
    std::shared_ptr<const std::string> serialized;  // its families, constant labels applied
    std::uint64_t errors = 0;
    double last_duration_seconds = 0;
    double last_success_unix_seconds = 0;  // 0: never
    std::optional<Clock::time_point> last_success;
  };

  std::string SerializeOwnMetrics() const;  // requires mutex_
  // Rebuilds the page from the current state; called holding `lock` on mutex_, which it releases
  // while it concatenates and compresses.
  void Rebuild(std::unique_lock<std::mutex> lock);

  const std::vector<std::pair<std::string, std::string>> constant_labels_;
  const std::string version_;
  mutable std::mutex mutex_;
  std::vector<CollectorState> collectors_;  // guarded by mutex_
  std::shared_ptr<const Page> page_;        // guarded by mutex_
  std::uint64_t generation_ = 0;            // guarded by mutex_: rebuilds started
  std::uint64_t page_generation_ = 0;       // guarded by mutex_: the rebuild page_ came from
};

/// Serialises families in the text format, with `constant_labels` first on
/// every series.
std::string SerializeText(std::vector<prometheus::MetricFamily> families,
                          const std::vector<std::pair<std::string, std::string>>& constant_labels);

/// gzip (RFC 1952) of `data`.
std::string GzipCompress(const std::string& data);

}  // namespace billing::exporter
