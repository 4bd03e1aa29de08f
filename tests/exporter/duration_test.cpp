#include "billing/common/duration.h"

#include <gtest/gtest.h>

namespace billing::common {
namespace {

using std::chrono::milliseconds;

TEST(DurationTest, ParsesUnitsAndCombinations) {
  EXPECT_EQ(ParseDuration("500ms"), milliseconds(500));
  EXPECT_EQ(ParseDuration("15s"), milliseconds(15000));
  EXPECT_EQ(ParseDuration("5m"), milliseconds(300000));
  EXPECT_EQ(ParseDuration("2h"), milliseconds(7200000));
  EXPECT_EQ(ParseDuration("1m30s"), milliseconds(90000));
  EXPECT_EQ(ParseDuration("0s"), milliseconds(0));
}

TEST(DurationTest, RejectsWhatIsNotADuration) {
  for (const char* bad : {"", "15", "s", "-1s", "1.5s", "15 s", "15sec", "1d", "s15", "1m30",
                          "99999999999999999999h", "9223372036854775807h"}) {
    EXPECT_EQ(ParseDuration(bad), std::nullopt) << bad;
  }
}

TEST(DurationTest, FormatRoundTrips) {
  for (auto ms : {0, 1, 250, 1000, 90000, 3600000, 3723004}) {
    const auto text = FormatDuration(milliseconds(ms));
    EXPECT_EQ(ParseDuration(text), milliseconds(ms)) << text;
  }
  EXPECT_EQ(FormatDuration(milliseconds(90000)), "1m30s");
}

}  // namespace
}  // namespace billing::common
