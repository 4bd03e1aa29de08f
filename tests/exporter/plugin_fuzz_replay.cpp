// Runs the plugin fuzz target without libFuzzer, in ctest: over valid snapshots, every truncation
// of them and a fixed-seed series of byte mutations, so the properties are checked on every build.
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>

#include "usage_snapshot.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {
void Run(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
}
}  // namespace

int main() {
  using namespace billing::plugin;
  Snapshot s;
  s.broker_start_unix_s = 1700000000;
  s.sequence = 7;
  s.total = {5, 5000, 40, 5, 9000};
  s.clients.push_back({"dev-1", "alice", true, false, 1, {3, 3000, 20, 3, 9000}});
  s.clients.push_back({"", "", false, true, 0, {2, 2000, 20, 2, 0}});
  s.groups.push_back({"devices", false, {5, 5000, 40, 5, 0}});
  std::string valid;
  EncodeSnapshot(s, valid);
  std::mt19937_64 rng(18);
  long runs = 0;
  for (std::size_t n = 0; n <= valid.size(); ++n, ++runs) Run(valid.substr(0, n));
  for (int i = 0; i < 200000; ++i, ++runs) {
    std::string mutated = valid;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) mutated[rng() % mutated.size()] = static_cast<char>(rng());
    Run(mutated);
  }
  Run("billing_snapshot_interval 0\nbilling_max_clients 5");
  Run("billing_snapshot_topic a/#");
  std::printf("%ld inputs, every property held\n", runs);
  return 0;
}
