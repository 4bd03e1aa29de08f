#include "backoff.h"

#include <gtest/gtest.h>

namespace billing::exporter {
namespace {

using std::chrono::milliseconds;

TEST(BackoffTest, DoublesWithJitterUpToTheCapAndResets) {
  Backoff backoff(milliseconds(100), milliseconds(1000), 42);
  const std::int64_t ceilings[] = {100, 200, 400, 800, 1000, 1000, 1000};
  for (auto ceiling : ceilings) {
    const auto delay = backoff.NextDelay().count();
    EXPECT_GE(delay, ceiling / 2);
    EXPECT_LE(delay, ceiling);
  }
  backoff.Reset();
  EXPECT_LE(backoff.NextDelay().count(), 100);
}

}  // namespace
}  // namespace billing::exporter
