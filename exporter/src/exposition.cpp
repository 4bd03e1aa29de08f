#include "exposition.h"

#include <prometheus/text_serializer.h>
#include <zlib.h>

#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <string_view>

#include "billing/common/metric_names.h"

namespace billing::exporter {
namespace {

prometheus::ClientMetric GaugeMetric(std::vector<prometheus::ClientMetric::Label> labels,
                                     double value) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  return metric;
}

// Unused capacity a serialised page may keep rather than be copied to fit.
constexpr std::size_t kMaxSlack = 64 * 1024;
// zlib counts in uInt; feed and drain it at most this much at a time.
constexpr std::size_t kMaxZlibRun = std::size_t{1} << 30;

}  // namespace

std::vector<std::shared_ptr<const std::string>> SerializeChunks(
    std::vector<prometheus::MetricFamily> families,
    const std::vector<std::pair<std::string, std::string>>& constant_labels) {
  // One family at a time, each into a string of its own and freed as soon as it is written: with
  // tens of thousands of series the families are the largest thing a sample holds, and a single
  // stream for all of them would hold the old and the doubled buffer of the whole page at its last
  // growth. The text serializer writes each family on its own, so the bytes are those of one call
  // with all of them.
  const prometheus::TextSerializer serializer;
  std::vector<std::shared_ptr<const std::string>> chunks;
  std::vector<prometheus::MetricFamily> one(1);
  for (auto& family : families) {
    if (!constant_labels.empty()) {
      for (auto& metric : family.metric) {
        std::vector<prometheus::ClientMetric::Label> labels;
        labels.reserve(constant_labels.size() + metric.label.size());
        for (const auto& [name, value] : constant_labels) labels.push_back({name, value});
        for (auto& label : metric.label) labels.push_back(std::move(label));
        metric.label = std::move(labels);
      }
    }
    one.front() = std::move(family);
    std::ostringstream out;
    serializer.Serialize(out, one);
    one.front() = prometheus::MetricFamily{};
    std::string text = std::move(out).str();
    if (text.empty()) continue;
    // The stream's buffer grows by doubling; the text is kept until the next sample, so do not
    // keep up to as much again in unused capacity.
    if (text.capacity() - text.size() > kMaxSlack) text.shrink_to_fit();
    chunks.push_back(std::make_shared<const std::string>(std::move(text)));
  }
  return chunks;
}

std::string SerializeText(std::vector<prometheus::MetricFamily> families,
                          const std::vector<std::pair<std::string, std::string>>& constant_labels) {
  const auto chunks = SerializeChunks(std::move(families), constant_labels);
  std::size_t size = 0;
  for (const auto& chunk : chunks) size += chunk->size();
  std::string text;
  text.reserve(size);
  for (const auto& chunk : chunks) text += *chunk;
  return text;
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
  out.shrink_to_fit();  // deflateBound is more than the input; do not keep it
  deflateEnd(&stream);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
  return out;
}

std::string GzipCompress(const std::vector<std::shared_ptr<const std::string>>& chunks) {
  z_stream stream{};
  // windowBits 15 + 16 selects the gzip wrapper; level 6 is zlib's default
  // speed/size balance.
  if (deflateInit2(&stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2 failed");
  }
  std::size_t total = 0;
  for (const auto& chunk : chunks) total += chunk->size();
  // Metrics text compresses 10-30x: start at a fraction of deflateBound (which is more than the
  // input) and grow, rather than zero-filling a buffer the size of the page.
  std::string out(std::min<std::size_t>(deflateBound(&stream, total), total / 8 + 4096), '\0');
  std::size_t used = 0;
  auto run = [&](int flush) {
    int rc = Z_OK;
    do {
      if (used == out.size()) out.resize(out.size() * 2);
      stream.next_out = reinterpret_cast<Bytef*>(out.data() + used);
      stream.avail_out = static_cast<uInt>(std::min<std::size_t>(out.size() - used, kMaxZlibRun));
      const uInt before = stream.avail_out;
      rc = deflate(&stream, flush);
      used += before - stream.avail_out;
      if (rc == Z_STREAM_ERROR) break;
    } while (flush == Z_FINISH ? rc != Z_STREAM_END : stream.avail_in > 0);
    return rc;
  };
  int rc = Z_OK;
  for (const auto& chunk : chunks) {
    for (std::size_t offset = 0; offset < chunk->size() && rc != Z_STREAM_ERROR;) {
      const std::size_t n = std::min<std::size_t>(chunk->size() - offset, kMaxZlibRun);
      stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(chunk->data() + offset));
      stream.avail_in = static_cast<uInt>(n);
      rc = run(Z_NO_FLUSH);
      offset += n;
    }
  }
  if (rc != Z_STREAM_ERROR) rc = run(Z_FINISH);
  deflateEnd(&stream);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
  out.resize(used);
  out.shrink_to_fit();
  return out;
}

std::string Page::Text() const {
  std::string text;
  text.reserve(text_size);
  for (const auto& chunk : chunks) text += *chunk;
  return text;
}

Exposition::Exposition(std::vector<std::pair<std::string, std::string>> constant_labels,
                       std::string version, std::string revision)
    : constant_labels_(std::move(constant_labels)),
      version_(std::move(version)),
      revision_(std::move(revision)) {
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
  auto chunks = SerializeChunks(std::move(families), constant_labels_);
  std::unique_lock lock(mutex_);
  for (auto& state : collectors_) {
    if (state.name != collector) continue;
    state.chunks.swap(chunks);
    state.last_duration_seconds = took.count();
    if (ok) {
      state.success_generation = generation_ + 1;  // the Rebuild below
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

namespace {
// The family a serialised chunk holds: every chunk starts "# HELP <name> " (or "# TYPE <name> "
// for a family without help text).
std::string_view ChunkFamily(const std::string& chunk) {
  const std::string_view text(chunk);
  for (const std::string_view prefix : {"# HELP ", "# TYPE "}) {
    if (text.substr(0, prefix.size()) == prefix) {
      const auto rest = text.substr(prefix.size());
      return rest.substr(0, rest.find(' '));
    }
  }
  return {};
}
}  // namespace

void Exposition::PublishOverdue(const std::string& collector,
                                std::vector<prometheus::MetricFamily> families) {
  auto replacements = SerializeChunks(std::move(families), constant_labels_);
  std::unique_lock lock(mutex_);
  for (auto& state : collectors_) {
    if (state.name != collector) continue;
    for (auto& replacement : replacements) {
      const auto name = ChunkFamily(*replacement);
      const auto same =
          std::find_if(state.chunks.begin(), state.chunks.end(),
                       [&](const auto& chunk) { return ChunkFamily(*chunk) == name; });
      if (same != state.chunks.end()) {
        *same = std::move(replacement);
      } else {
        state.chunks.push_back(std::move(replacement));
      }
    }
    Rebuild(std::move(lock));
    return;
  }
  throw std::logic_error("overdue sample for unregistered collector: " + collector);
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
      health.ready = age <= 3 * state.interval && page_generation_ >= state.success_generation;
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
  prometheus::MetricFamily build{
      names::kBuildInfo,
      "The exporter's version and git revision; always 1.",
      MetricType::Gauge,
      {GaugeMetric({{"revision", revision_}, {"version", version_}}, 1)}};
  std::vector<prometheus::MetricFamily> families;
  if (!collectors_.empty()) {
    families = {std::move(duration), std::move(last), std::move(errors)};
  }
  families.push_back(std::move(build));
  return SerializeText(std::move(families), constant_labels_);
}

void Exposition::Rebuild(std::unique_lock<std::mutex> lock) {
  // Take what the page is made of under the lock, then compress without it, so that scrapes
  // (Current) and other collectors' publishes never wait on the gzip of a big page. The plain
  // page is these very strings, shared, never a concatenated copy.
  auto page = std::make_shared<Page>();
  for (const auto& state : collectors_) {
    page->chunks.insert(page->chunks.end(), state.chunks.begin(), state.chunks.end());
  }
  page->chunks.push_back(std::make_shared<const std::string>(SerializeOwnMetrics()));
  const std::uint64_t generation = ++generation_;
  lock.unlock();

  for (const auto& chunk : page->chunks) page->text_size += chunk->size();
  page->gzip = GzipCompress(page->chunks);

  std::shared_ptr<const Page> unused = std::move(page);
  lock.lock();
  // Two publishes may finish out of order; the page of the later one wins.
  if (generation > page_generation_) {
    page_.swap(unused);
    page_generation_ = generation;
  }
  lock.unlock();
  // The page replaced (or the one built in vain) is freed outside the lock, by whoever holds it
  // last: this thread, or a scrape still writing it.
  unused.reset();
}

}  // namespace billing::exporter
