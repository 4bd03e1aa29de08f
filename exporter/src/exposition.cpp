#include "exposition.h"

#include <prometheus/text_serializer.h>
#include <zlib.h>

#include <sstream>
#include <stdexcept>

#include "metric_names.h"

namespace billing::exporter {
namespace {

prometheus::ClientMetric GaugeMetric(std::vector<prometheus::ClientMetric::Label> labels,
                                     double value) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  return metric;
}

}  // namespace

std::string SerializeText(std::vector<prometheus::MetricFamily> families,
                          const std::vector<std::pair<std::string, std::string>>& constant_labels) {
  if (!constant_labels.empty()) {
    for (auto& family : families) {
      for (auto& metric : family.metric) {
        std::vector<prometheus::ClientMetric::Label> labels;
        labels.reserve(constant_labels.size() + metric.label.size());
        for (const auto& [name, value] : constant_labels) labels.push_back({name, value});
        for (auto& label : metric.label) labels.push_back(std::move(label));
        metric.label = std::move(labels);
      }
    }
  }
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return std::move(out).str();
}

std::string GzipCompress(const std::string& data) {
  z_stream stream{};
  // windowBits 15 + 16 selects the gzip wrapper; level 6 is zlib's default
  // speed/size balance.
  if (deflateInit2(&stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::string out(deflateBound(&stream, data.size()), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
  return out;
}

Exposition::Exposition(std::vector<std::pair<std::string, std::string>> constant_labels,
                       std::string version)
    : constant_labels_(std::move(constant_labels)), version_(std::move(version)) {
  Rebuild(std::unique_lock(mutex_));
}

void Exposition::Register(const std::string& collector, std::chrono::milliseconds interval) {
  std::unique_lock lock(mutex_);
  for (const auto& state : collectors_) {
    if (state.name == collector) throw std::logic_error("collector registered twice: " + collector);
  }
  CollectorState state;
  state.name = collector;
  state.interval = interval;
  collectors_.push_back(std::move(state));
  Rebuild(std::move(lock));
}

void Exposition::Publish(const std::string& collector,
                         std::vector<prometheus::MetricFamily> families, bool ok,
                         std::chrono::duration<double> took,
                         std::chrono::system_clock::time_point finished_at) {
  // Serialise outside the lock: with thousands of tables this is the expensive
  // part.
  auto serialized =
      std::make_shared<const std::string>(SerializeText(std::move(families), constant_labels_));
  std::unique_lock lock(mutex_);
  for (auto& state : collectors_) {
    if (state.name != collector) continue;
    state.serialized = std::move(serialized);
    state.last_duration_seconds = took.count();
    if (ok) {
      state.last_success = Clock::now();
      state.last_success_unix_seconds =
          std::chrono::duration<double>(finished_at.time_since_epoch()).count();
    } else {
      ++state.errors;
    }
    Rebuild(std::move(lock));
    return;
  }
  throw std::logic_error("publish for unregistered collector: " + collector);
}

std::shared_ptr<const Page> Exposition::Current() const {
  std::lock_guard lock(mutex_);
  return page_;
}

std::vector<CollectorHealth> Exposition::Health(Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  std::vector<CollectorHealth> out;
  for (const auto& state : collectors_) {
    CollectorHealth health;
    health.name = state.name;
    if (!state.last_success) {
      health.detail = "no successful sample yet";
    } else {
      const auto age = now - *state.last_success;
      health.ready = age <= 3 * state.interval;
      health.detail =
          "last successful sample " +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(age).count()) + "s ago";
    }
    out.push_back(std::move(health));
  }
  return out;
}

std::string Exposition::SerializeOwnMetrics() const {
  using prometheus::MetricType;
  prometheus::MetricFamily duration{
      names::kSampleDuration, "Seconds the collector's last sample took.", MetricType::Gauge, {}};
  prometheus::MetricFamily last{
      names::kLastSampleTimestamp,
      "Unix time of the collector's last successful sample (0: none yet).",
      MetricType::Gauge,
      {}};
  prometheus::MetricFamily errors{names::kSampleErrors,
                                  "Samples that failed since the exporter started.",
                                  MetricType::Counter,
                                  {}};
  for (const auto& state : collectors_) {
    const std::vector<prometheus::ClientMetric::Label> labels = {{"collector", state.name}};
    duration.metric.push_back(GaugeMetric(labels, state.last_duration_seconds));
    last.metric.push_back(GaugeMetric(labels, state.last_success_unix_seconds));
    prometheus::ClientMetric error_count;
    error_count.label = labels;
    error_count.counter.value = static_cast<double>(state.errors);
    errors.metric.push_back(std::move(error_count));
  }
  prometheus::MetricFamily build{names::kBuildInfo,
                                 "The exporter's version; always 1.",
                                 MetricType::Gauge,
                                 {GaugeMetric({{"version", version_}}, 1)}};
  std::vector<prometheus::MetricFamily> families;
  if (!collectors_.empty()) {
    families = {std::move(duration), std::move(last), std::move(errors)};
  }
  families.push_back(std::move(build));
  return SerializeText(std::move(families), constant_labels_);
}

void Exposition::Rebuild(std::unique_lock<std::mutex> lock) {
  // Take what the page is made of under the lock, then concatenate and compress without it, so
  // that scrapes (Current) and other collectors' publishes never wait on the gzip of a big page.
  std::vector<std::shared_ptr<const std::string>> parts;
  for (const auto& state : collectors_) {
    if (state.serialized) parts.push_back(state.serialized);
  }
  const std::string own = SerializeOwnMetrics();
  const std::uint64_t generation = ++generation_;
  lock.unlock();

  auto page = std::make_shared<Page>();
  std::size_t size = own.size();
  for (const auto& part : parts) size += part->size();
  page->text.reserve(size);
  for (const auto& part : parts) page->text += *part;
  page->text += own;
  page->gzip = GzipCompress(page->text);

  lock.lock();
  // Two publishes may finish out of order; the page of the later one wins.
  if (generation > page_generation_) {
    page_ = std::move(page);
    page_generation_ = generation;
  }
}

}  // namespace billing::exporter
