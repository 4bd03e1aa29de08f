// Fuzz target for the broker plugin's outside input: the usage snapshot decoder (the exporter reads
// whatever is published on the snapshot topic) and the plugin's option parser (mosquitto.conf).
// Properties: neither throws nor crashes; a decoded snapshot encodes to bytes that decode to the
// same snapshot; accepted options are within their documented ranges.
// libFuzzer build (clang): see tests/exporter/CMakeLists.txt (BILLING_PLUGIN_FUZZ).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "plugin_options.h"
#include "usage_snapshot.h"

namespace {

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto decoded = billing::plugin::DecodeSnapshot(input);
  Check(decoded.snapshot.has_value() != !decoded.error.empty(), "a snapshot or an error");
  if (decoded.snapshot) {
    std::string encoded;
    billing::plugin::EncodeSnapshot(*decoded.snapshot, encoded);
    const auto again = billing::plugin::DecodeSnapshot(encoded);
    Check(again.snapshot && *again.snapshot == *decoded.snapshot, "encoding round-trips");
    Check(encoded.size() <= size, "the canonical encoding is never longer");
  }
  // The same bytes as option lines: "name value" per line.
  std::vector<std::pair<std::string, std::string>> options;
  for (std::size_t at = 0; at < input.size();) {
    const auto end = std::min(input.find('\n', at), input.size());
    const auto line = input.substr(at, end - at);
    const auto space = line.find(' ');
    options.emplace_back(
        std::string(line.substr(0, space)),
        space == std::string_view::npos ? "" : std::string(line.substr(space + 1)));
    at = end + 1;
  }
  const auto parsed = billing::plugin::ParsePluginOptions(options);
  if (parsed.ok()) {
    const auto* o = &parsed.value();
    Check(o->snapshot_interval >= std::chrono::seconds(1) &&
              o->snapshot_interval <= std::chrono::seconds(3600),
          "interval in range");
    Check(o->limits.max_clients >= 1 && o->limits.max_clients <= 100000, "client cap in range");
    Check(!o->snapshot_topic.empty() && o->snapshot_topic.find_first_of("+#") == std::string::npos,
          "a topic name");
  } else {
    Check(parsed.error().rfind("plugin_opt_", 0) == 0, "errors name the option");
  }
  return 0;
}
