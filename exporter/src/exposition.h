// Holds the latest sample of every collector and the page a scrape serves.
// Publishing a sample serialises the page once (plain and gzip); a scrape only
// takes a reference to the current page, so its cost does not depend on the
// database's size or speed.
//
// Memory: the plain page is not one concatenated string but the list of the
// collectors' serialised families, one string each (shared with the
// collector's state and with the pages before it), so the text of a big sample
// exists once, not twice; only the gzip encoding, a fraction of the size, is a
// buffer of its own. The HTTP server writes the chunks in sequence.
#pragma once

#include <prometheus/metric_family.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace billing::exporter {

struct Page {
  /// Prometheus text format 0.0.4: the concatenation of `chunks`, in order (a
  /// chunk is one family of a collector's sample, or the exporter's own
  /// metrics). Chunks are immutable and shared by successive pages until their
  /// collector publishes again.
  std::vector<std::shared_ptr<const std::string>> chunks;
  std::size_t text_size = 0;  // the sum of the chunks' sizes: the plain Content-Length
  std::string gzip;           // the same bytes, gzip-compressed (one buffer)

  /// The whole plain text as one string (a copy: for tests and tools, not the
  /// scrape path).
  std::string Text() const;
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

  /// `version` and `revision` are the labels of iotistic_exporter_build_info.
  Exposition(std::vector<std::pair<std::string, std::string>> constant_labels, std::string version,
             std::string revision = "unknown");
  Exposition(const Exposition&) = delete;
  Exposition& operator=(const Exposition&) = delete;

  /// Declares a collector before sampling starts, so its self-metrics appear
  /// from the first page.
  void Register(const std::string& collector, std::chrono::milliseconds interval);

  /// Replaces `collector`'s families with a new sample and rebuilds the page.
  void Publish(const std::string& collector, std::vector<prometheus::MetricFamily> families,
               bool ok, std::chrono::duration<double> took,
               std::chrono::system_clock::time_point finished_at);

  /// A sample of `collector` is overdue: serve `families` in place of its last sample's families
  /// of the same names (the others stay, with their values as last sampled), until its next
  /// Publish. Neither a success nor a failure: the sample has not finished.
  void PublishOverdue(const std::string& collector, std::vector<prometheus::MetricFamily> families);

  std::shared_ptr<const Page> Current() const;
  std::vector<CollectorHealth> Health(Clock::time_point now = Clock::now()) const;

 private:
  struct CollectorState {
    std::string name;
    std::chrono::milliseconds interval{0};
    // Its families serialised (constant labels applied), one string per family; these very
    // strings are the page's chunks.
    std::vector<std::shared_ptr<const std::string>> chunks;
    std::uint64_t errors = 0;
    double last_duration_seconds = 0;
    double last_success_unix_seconds = 0;  // 0: never
    std::optional<Clock::time_point> last_success;
    // The rebuild that puts the last successful sample on the page: ready only once page_ is that
    // one or newer, so /readyz never says ready while scrapes still get the page before it.
    std::uint64_t success_generation = 0;
  };

  std::string SerializeOwnMetrics() const;  // requires mutex_
  // Rebuilds the page from the current state; called holding `lock` on mutex_, which it releases
  // while it concatenates and compresses.
  void Rebuild(std::unique_lock<std::mutex> lock);

  const std::vector<std::pair<std::string, std::string>> constant_labels_;
  const std::string version_;
  const std::string revision_;
  mutable std::mutex mutex_;
  std::vector<CollectorState> collectors_;  // guarded by mutex_
  std::shared_ptr<const Page> page_;        // guarded by mutex_
  std::uint64_t generation_ = 0;            // guarded by mutex_: rebuilds started
  std::uint64_t page_generation_ = 0;       // guarded by mutex_: the rebuild page_ came from
};

/// Serialises families in the text format, with `constant_labels` first on
/// every series: one string per family (empty ones left out), freeing each
/// family once written.
std::vector<std::shared_ptr<const std::string>> SerializeChunks(
    std::vector<prometheus::MetricFamily> families,
    const std::vector<std::pair<std::string, std::string>>& constant_labels);

/// The same as one string.
std::string SerializeText(std::vector<prometheus::MetricFamily> families,
                          const std::vector<std::pair<std::string, std::string>>& constant_labels);

/// gzip (RFC 1952) of `data`.
std::string GzipCompress(const std::string& data);

/// gzip (RFC 1952) of the concatenation of `chunks`, without concatenating
/// them: the same bytes as GzipCompress of the concatenation. The result's
/// capacity is trimmed to its size.
std::string GzipCompress(const std::vector<std::shared_ptr<const std::string>>& chunks);

}  // namespace billing::exporter
