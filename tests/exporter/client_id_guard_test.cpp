// The client-id guard's decision and options (the plugin in a real broker:
// exporter_broker_auth_test).
#include "client_id_guard.h"

#include <gtest/gtest.h>

namespace {

using billing::plugin::DecideConnect;
using billing::plugin::GuardDecision;
using billing::plugin::GuardOptions;
using billing::plugin::ParseGuardOptions;

TEST(ClientIdGuardTest, ReservedIdOnlyForTheReservedUserEverythingElseDeferred) {
  const GuardOptions options{"billing-exporter-abc", "billing-exporter"};
  EXPECT_EQ(DecideConnect(options, "billing-exporter-abc", "billing-exporter"),
            GuardDecision::kDefer);  // the password file still checks its password
  EXPECT_EQ(DecideConnect(options, "billing-exporter-abc", "device"), GuardDecision::kRefuse);
  EXPECT_EQ(DecideConnect(options, "billing-exporter-abc", std::nullopt), GuardDecision::kRefuse);
  EXPECT_EQ(DecideConnect(options, "billing-exporter-abc", ""), GuardDecision::kRefuse);
  EXPECT_EQ(DecideConnect(options, "billing-exporter-abcd", "device"), GuardDecision::kDefer);
  EXPECT_EQ(DecideConnect(options, "dev-1", "device"), GuardDecision::kDefer);
  EXPECT_EQ(DecideConnect(options, "dev-1", std::nullopt), GuardDecision::kDefer);
}

TEST(ClientIdGuardTest, OptionsAreRequiredAndUnknownOnesNamed) {
  const auto good = ParseGuardOptions({{"client_id", "x"}, {"username", "u"}});
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good.value().client_id, "x");
  EXPECT_EQ(good.value().username, "u");
  const auto error = [](const std::vector<std::pair<std::string, std::string>>& options) {
    const auto parsed = ParseGuardOptions(options);
    return parsed.ok() ? std::string() : parsed.error();
  };
  EXPECT_TRUE(error({{"username", "u"}}).starts_with("plugin_opt_client_id: required"));
  EXPECT_TRUE(error({{"client_id", "x"}}).starts_with("plugin_opt_username: required"));
  EXPECT_TRUE(error({{"client_id", "x"}, {"username", "u"}, {"clientid", "y"}})
                  .starts_with("plugin_opt_clientid: unknown option"));
}

}  // namespace
