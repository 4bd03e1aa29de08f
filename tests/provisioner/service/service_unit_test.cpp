// Pure pieces of `provisioner serve`, without servers: the signup rate limiter, the serve
// configuration, the usage job's billing window, the stack renderer over the real chart, the
// Value <-> JSON conversions and the service's own metrics.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "audit.h"
#include "billing/common/version.h"
#include "body_deadline.h"
#include "deployer.h"
#include "login_throttle.h"
#include "mailer.h"
#include "rate_limiter.h"
#include "secret_values.h"
#include "serve_config.h"
#include "service_metrics.h"
#include "usage_scheduler.h"
#include "value_json.h"

namespace billing::provisioner {
namespace {

::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << part << "\" not found in:\n" << text;
}

::testing::AssertionResult Lacks(const std::string& text, const std::string& part) {
  if (text.find(part) == std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << part << "\" found in:\n" << text;
}

::testing::AssertionResult StartsWith(const std::string& text, const std::string& prefix) {
  if (text.rfind(prefix, 0) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "\"" << text << "\" does not start with \"" << prefix << "\"";
}

// ---------------------------------------------------------------------------------------------
// RateLimiter

// 60 per minute: one token per second, so times and token counts are easy to follow.
TEST(RateLimiterTest, AllowsTheBurstAtOnceThenRefuses) {
  RateLimiter limiter(60, 3);
  EXPECT_TRUE(limiter.Allow("a", 100));
  EXPECT_TRUE(limiter.Allow("a", 100));
  EXPECT_TRUE(limiter.Allow("a", 100));
  EXPECT_FALSE(limiter.Allow("a", 100));
  EXPECT_FALSE(limiter.Allow("a", 100));
}

TEST(RateLimiterTest, RefillsAtTheRateUpToTheBurst) {
  RateLimiter limiter(60, 3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(limiter.Allow("a", 100));
  EXPECT_FALSE(limiter.Allow("a", 100.5));  // half a token
  EXPECT_TRUE(limiter.Allow("a", 101));     // one token after one second
  EXPECT_FALSE(limiter.Allow("a", 101));
  EXPECT_TRUE(limiter.Allow("a", 103));  // two more seconds: two tokens
  EXPECT_TRUE(limiter.Allow("a", 103));
  EXPECT_FALSE(limiter.Allow("a", 103));
  // A long pause refills to the burst, never beyond it.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Allow("a", 1000)) << i;
  EXPECT_FALSE(limiter.Allow("a", 1000));
}

TEST(RateLimiterTest, RateIsPerMinute) {
  RateLimiter limiter(30, 1);  // one token every two seconds
  EXPECT_TRUE(limiter.Allow("a", 0));
  EXPECT_FALSE(limiter.Allow("a", 1.9));
  EXPECT_TRUE(limiter.Allow("a", 2));
}

TEST(RateLimiterTest, ClockGoingBackwardsMintsNoTokens) {
  RateLimiter limiter(60, 2);
  ASSERT_TRUE(limiter.Allow("a", 100));
  ASSERT_TRUE(limiter.Allow("a", 100));
  EXPECT_FALSE(limiter.Allow("a", 50));
  EXPECT_FALSE(limiter.Allow("a", 100.5));
  EXPECT_TRUE(limiter.Allow("a", 101));
  EXPECT_FALSE(limiter.Allow("a", 101));
}

TEST(RateLimiterTest, ClientsHaveTheirOwnBuckets) {
  RateLimiter limiter(60, 2);
  ASSERT_TRUE(limiter.Allow("10.0.0.1", 0));
  ASSERT_TRUE(limiter.Allow("10.0.0.1", 0));
  ASSERT_FALSE(limiter.Allow("10.0.0.1", 0));
  EXPECT_TRUE(limiter.Allow("10.0.0.2", 0));
  EXPECT_TRUE(limiter.Allow("10.0.0.2", 0));
  EXPECT_FALSE(limiter.Allow("10.0.0.2", 0));
  EXPECT_FALSE(limiter.Allow("10.0.0.1", 0));
}

TEST(RateLimiterTest, RetryAfterIsTheTimeUntilTheNextToken) {
  RateLimiter limiter(60, 1);
  double retry_after = -1;
  ASSERT_TRUE(limiter.Allow("a", 100, &retry_after));
  EXPECT_FALSE(limiter.Allow("a", 100, &retry_after));
  EXPECT_DOUBLE_EQ(retry_after, 1.0);
  EXPECT_FALSE(limiter.Allow("a", 100.25, &retry_after));
  EXPECT_DOUBLE_EQ(retry_after, 0.75);
  EXPECT_TRUE(limiter.Allow("a", 100 + 0.25 + retry_after));

  RateLimiter slow(6, 1);  // one token every ten seconds
  ASSERT_TRUE(slow.Allow("b", 0, &retry_after));
  EXPECT_FALSE(slow.Allow("b", 4, &retry_after));
  EXPECT_NEAR(retry_after, 6.0, 1e-9);
  EXPECT_FALSE(slow.Allow("b", 4));  // no out-parameter: just the answer
}

TEST(RateLimiterTest, FullTableRefusesNewClientsButNotKnownOnes) {
  RateLimiter limiter(60, 2, /*max_clients=*/2);
  ASSERT_TRUE(limiter.Allow("a", 0));
  ASSERT_TRUE(limiter.Allow("b", 0));
  double retry_after = -1;
  EXPECT_FALSE(limiter.Allow("c", 0, &retry_after));  // a and b are not full again yet
  EXPECT_DOUBLE_EQ(retry_after, 1.0);                 // a token's time
  EXPECT_TRUE(limiter.Allow("a", 0));                 // known clients keep their bucket
  EXPECT_FALSE(limiter.Allow("a", 0));
  EXPECT_TRUE(limiter.Allow("b", 0.5)) << "b had 1.5 tokens";
}

TEST(RateLimiterTest, FullBucketsAreForgottenToMakeRoom) {
  RateLimiter limiter(60, 2, /*max_clients=*/2);
  ASSERT_TRUE(limiter.Allow("a", 0));
  ASSERT_TRUE(limiter.Allow("a", 0));  // a: 0 tokens
  ASSERT_TRUE(limiter.Allow("b", 0));  // b: 1 token
  ASSERT_FALSE(limiter.Allow("c", 0));
  // At t=1 b is full again (1 + 1), a is not (0 + 1): c takes b's place.
  EXPECT_TRUE(limiter.Allow("c", 1));
  // a was kept: one token, not a fresh burst of two.
  EXPECT_TRUE(limiter.Allow("a", 1));
  EXPECT_FALSE(limiter.Allow("a", 1));
  // b was forgotten: it is a new client now, and the table (a, c) has no full bucket.
  EXPECT_FALSE(limiter.Allow("b", 1));
  // At t=3 a and c are full: both are forgotten, so two new clients fit and a third does not.
  EXPECT_TRUE(limiter.Allow("d", 3));
  EXPECT_TRUE(limiter.Allow("e", 3));
  EXPECT_FALSE(limiter.Allow("f", 3));
  // ... and a comes back as a new client only once a bucket is full again.
  EXPECT_FALSE(limiter.Allow("a", 3));
}

TEST(RateLimiterTest, FloodOfDistinctClientsStaysWithinTheBound) {
  constexpr std::size_t kMaxClients = 100;
  RateLimiter limiter(60, 5, kMaxClients);  // a bucket that gave one token is full after 1 s
  // 20000 distinct clients over 10 seconds. Every admitted client holds a table entry until its
  // bucket is full again, one second later; so no second may admit more than kMaxClients.
  std::vector<double> admitted;
  for (int i = 0; i < 20000; ++i) {
    const double now = i * 0.0005;
    double retry_after = -1;
    if (limiter.Allow("client-" + std::to_string(i), now, &retry_after)) {
      admitted.push_back(now);
    } else {
      ASSERT_DOUBLE_EQ(retry_after, 1.0) << i;
    }
  }
  // The first kMaxClients arrive within 0.05 s and all get in.
  ASSERT_GE(admitted.size(), kMaxClients);
  EXPECT_LT(admitted[kMaxClients - 1], 0.05);
  std::size_t first = 0;
  for (std::size_t last = 0; last < admitted.size(); ++last) {
    while (admitted[last] - admitted[first] >= 0.999) ++first;
    ASSERT_LE(last - first + 1, kMaxClients) << "window ending at t=" << admitted[last];
  }
  // The table turns over rather than locking everyone out: about kMaxClients per second.
  EXPECT_GE(admitted.size(), 9 * kMaxClients);
  EXPECT_LE(admitted.size(), 10 * kMaxClients);
}

// ---------------------------------------------------------------------------------------------
// ClientKey: who a signup comes from

std::vector<Network> Networks(std::initializer_list<const char*> texts) {
  std::vector<Network> networks;
  for (const char* text : texts) {
    const auto network = ParseNetwork(text);
    EXPECT_TRUE(network.has_value()) << text;
    if (network) networks.push_back(*network);
  }
  return networks;
}

TEST(ClientKeyTest, PeerIsTheClientUnlessItIsATrustedProxy) {
  const auto trusted = Networks({"10.0.0.0/8", "fd00::/8"});
  EXPECT_EQ(ClientKey("203.0.113.7", "198.51.100.1", trusted), "203.0.113.7")
      << "an untrusted peer cannot choose its own key";
  EXPECT_EQ(ClientKey("10.1.2.3", "198.51.100.1", trusted), "198.51.100.1");
  EXPECT_EQ(ClientKey("10.1.2.3", "", trusted), "10.1.2.3");
  EXPECT_EQ(ClientKey("10.1.2.3", "198.51.100.1", {}), "10.1.2.3");
}

TEST(ClientKeyTest, RightMostUntrustedForwardedAddressWins) {
  const auto trusted = Networks({"10.0.0.0/8"});
  // The client prepends a forged address; the ingress appends the real one.
  EXPECT_EQ(ClientKey("10.0.0.5", "1.2.3.4, 198.51.100.9", trusted), "198.51.100.9");
  EXPECT_EQ(ClientKey("10.0.0.5", "1.2.3.4, 198.51.100.9, 10.0.0.7", trusted), "198.51.100.9");
  EXPECT_EQ(ClientKey("10.0.0.5", "10.0.0.8,10.0.0.7", trusted), "10.0.0.8");
  EXPECT_EQ(ClientKey("10.0.0.5", "garbage, 198.51.100.9", trusted), "198.51.100.9");
  EXPECT_EQ(ClientKey("10.0.0.5", "198.51.100.9, garbage", trusted), "10.0.0.5");
}

TEST(ClientKeyTest, Ipv6ClientsAreGroupedBySlash64) {
  EXPECT_EQ(ClientKey("2001:db8:1:2:aaaa::1", "", {}), "2001:db8:1:2::/64");
  EXPECT_EQ(ClientKey("2001:db8:1:2:bbbb::9", "", {}), "2001:db8:1:2::/64");
  EXPECT_NE(ClientKey("2001:db8:1:3::1", "", {}), ClientKey("2001:db8:1:2::1", "", {}));
}

TEST(ClientKeyTest, ParseNetworkRefusesWhatIsNotOne) {
  for (const char* bad :
       {"", "10.0.0.0/33", "fd00::/129", "10.0.0/8", "10.0.0.0/-1", "host", "10.0.0.0/8x"}) {
    EXPECT_FALSE(ParseNetwork(bad).has_value()) << bad;
  }
  const auto trusted = Networks({"192.168.1.10"});  // a bare address is a /32
  EXPECT_EQ(ClientKey("192.168.1.10", "198.51.100.1", trusted), "198.51.100.1");
  EXPECT_EQ(ClientKey("192.168.1.11", "198.51.100.1", trusted), "192.168.1.11");
}

// ---------------------------------------------------------------------------------------------
// ParseServeConfig

class FakeEnv {
 public:
  FakeEnv()
      : vars_{{"PROVISIONER_ADMIN_TOKEN", "0123456789abcdef"},
              {"DATABASE_URL", "postgresql://p:q@db/provisioner"},
              {"LICENSE_SIGNING_KEY_FILE", "/keys/signing.pem"},
              {"PROVISIONER_DOMAIN_BASE", "iot.example.com"},
              {"PROVISIONER_ENCRYPTION_KEY_FILE", "/keys/encryption.key"},
              {"PROVISIONER_TOKEN_KEY_FILE", "/keys/token.key"}} {}

  void Set(const std::string& name, const std::string& value) { vars_[name] = value; }
  void Unset(const std::string& name) { vars_.erase(name); }

  Result<ServeConfig> Parse(const std::vector<std::string>& args = {}) const {
    return ParseServeConfig(
        args,
        [this](const char* name) -> const char* {
          const auto it = vars_.find(name);
          return it == vars_.end() ? nullptr : it->second.c_str();
        },
        "/default/chart");
  }

  /// The error of Parse(args), or "" (and a test failure) if it succeeded.
  std::string Error(const std::vector<std::string>& args = {}) const {
    const auto result = Parse(args);
    if (result.ok()) {
      ADD_FAILURE() << "expected an error";
      return "";
    }
    return result.error();
  }

 private:
  std::map<std::string, std::string> vars_;
};

constexpr const char* kRequired[] = {
    "PROVISIONER_ADMIN_TOKEN",         "DATABASE_URL",
    "LICENSE_SIGNING_KEY_FILE",        "PROVISIONER_DOMAIN_BASE",
    "PROVISIONER_ENCRYPTION_KEY_FILE", "PROVISIONER_TOKEN_KEY_FILE"};

// Both spellings of every flag, as the exporter takes them.
TEST(ServeConfigTest, FlagsTakeSeparateOrEqualsValues) {
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--listen", "127.0.0.1:4000", "--workers", "7"},
                                             {"--listen=127.0.0.1:4000", "--workers=7"}}) {
    const auto result = FakeEnv().Parse(args);
    ASSERT_TRUE(result.ok()) << result.error();
    EXPECT_EQ(result.value().api.listen, "127.0.0.1:4000");
    EXPECT_EQ(result.value().reconciler.workers, 7u);
  }
  EXPECT_NE(FakeEnv().Error({"--workers=x"}).find("--workers"), std::string::npos);
  EXPECT_NE(FakeEnv().Error({"--listen"}).find("--listen needs a value"), std::string::npos);
  EXPECT_NE(FakeEnv().Error({"--lis=1"}).find("unknown argument \"--lis=1\""), std::string::npos);
}

TEST(ServeConfigTest, Defaults) {
  const auto result = FakeEnv().Parse();
  ASSERT_TRUE(result.ok()) << result.error();
  const auto& c = result.value();
  EXPECT_EQ(c.api.admin_token, "0123456789abcdef");
  EXPECT_EQ(c.database_url,
            "postgresql://p:q@db/provisioner?connect_timeout=15&keepalives=1&keepalives_idle=30&"
            "keepalives_interval=10&keepalives_count=3&tcp_user_timeout=30000");
  EXPECT_DOUBLE_EQ(c.database_timeout_seconds, 15);
  EXPECT_EQ(c.signing_key_file, "/keys/signing.pem");
  EXPECT_EQ(c.api.domain_base, "iot.example.com");
  EXPECT_EQ(c.api.listen, "0.0.0.0:3000");
  EXPECT_EQ(c.health.listen, "0.0.0.0:3001");
  EXPECT_EQ(c.reconciler.workers, 4u);
  EXPECT_EQ(c.chart_dir, "/default/chart");
  EXPECT_EQ(c.values_file, "");
  EXPECT_EQ(c.api.default_plan, "standard");
  EXPECT_EQ(c.api.license_validity_seconds, 8760 * 3600);
  EXPECT_DOUBLE_EQ(c.api.signup_per_minute, 10);
  EXPECT_DOUBLE_EQ(c.api.signup_burst, 20);
  EXPECT_DOUBLE_EQ(c.api.deployments_per_hour, 120);
  EXPECT_EQ(c.reconciler.kube_retry.max_attempts, 5);
  EXPECT_DOUBLE_EQ(c.reconciler.timing.poll_seconds, 2);
  EXPECT_DOUBLE_EQ(c.reconciler.timing.resync_seconds, 30);
  EXPECT_DOUBLE_EQ(c.reconciler.timing.reapply_seconds, 600);
  EXPECT_DOUBLE_EQ(c.reconciler.timing.failure_backoff_seconds, 5);
  EXPECT_DOUBLE_EQ(c.reconciler.timing.failure_backoff_max_seconds, 300);
  EXPECT_DOUBLE_EQ(c.reconciler.dispatch_interval_seconds, 1);
  EXPECT_FALSE(c.usage.has_value());
}

TEST(ServeConfigTest, TheDatabaseTimeoutIsReadAndBecomesTheConnectTimeout) {
  FakeEnv env;
  env.Set("PROVISIONER_DATABASE_TIMEOUT", "500ms");
  const auto result = env.Parse();
  ASSERT_TRUE(result.ok()) << result.error();
  EXPECT_DOUBLE_EQ(result.value().database_timeout_seconds, 0.5);
  // libpq's minimum connect_timeout is 2 s.
  EXPECT_NE(result.value().database_url.find("?connect_timeout=2&"), std::string::npos);
  env.Set("PROVISIONER_DATABASE_TIMEOUT", "soon");
  EXPECT_TRUE(StartsWith(env.Error(), "PROVISIONER_DATABASE_TIMEOUT: 'soon' is not a positive"))
      << env.Error();
}

TEST(ConnectionDeadlinesTest, SettingsAreAddedOnlyWhereTheUrlGivesNone) {
  const std::string all =
      "connect_timeout=3&keepalives=1&keepalives_idle=30&keepalives_interval=10&"
      "keepalives_count=3&tcp_user_timeout=30000";
  EXPECT_EQ(WithConnectionDeadlines("postgres://u@h/db", 3), "postgres://u@h/db?" + all);
  EXPECT_EQ(WithConnectionDeadlines("postgresql://u@h/db?sslmode=require", 2.5),
            "postgresql://u@h/db?sslmode=require&" + all);
  // What the operator set stays as set; a longer name that merely starts the same does not count.
  EXPECT_EQ(WithConnectionDeadlines(
                "postgresql://h/db?keepalives=0&tcp_user_timeout=5000&connect_timeout=9", 3),
            "postgresql://h/db?keepalives=0&tcp_user_timeout=5000&connect_timeout=9&"
            "keepalives_idle=30&keepalives_interval=10&keepalives_count=3");
  EXPECT_EQ(WithConnectionDeadlines("host=db dbname=p connect_timeout = 7 keepalives=0", 3),
            "host=db dbname=p connect_timeout = 7 keepalives=0 keepalives_idle=30 "
            "keepalives_interval=10 keepalives_count=3 tcp_user_timeout=30000");
}

TEST(ServeConfigTest, MailNeedsASenderAndAPublicUrlAndIsOffWithoutARelay) {
  const auto off = FakeEnv().Parse();
  ASSERT_TRUE(off.ok()) << off.error();
  EXPECT_FALSE(off.value().mail.has_value());
  EXPECT_EQ(off.value().api.password_reset_ttl_seconds, 3600);
  EXPECT_EQ(off.value().api.signup_verification_ttl_seconds, 24 * 3600);
  EXPECT_EQ(off.value().api.max_unverified_signups, 1000);

  FakeEnv env;
  env.Set("PROVISIONER_SMTP_URL", "smtps://user:secret@relay.example.com:465");
  EXPECT_TRUE(StartsWith(env.Error(), "PROVISIONER_MAIL_FROM: required with PROVISIONER_SMTP_URL"))
      << env.Error();
  env.Set("PROVISIONER_MAIL_FROM", "Billing <billing@example.com>");
  EXPECT_TRUE(StartsWith(env.Error(), "PROVISIONER_MAIL_FROM: ")) << env.Error();
  env.Set("PROVISIONER_MAIL_FROM", "billing@example.com");
  EXPECT_TRUE(StartsWith(env.Error(), "PROVISIONER_PUBLIC_URL: required")) << env.Error();
  env.Set("PROVISIONER_PUBLIC_URL", "https://signup.example.com/");
  env.Set("PROVISIONER_PASSWORD_RESET_TTL", "30m");
  env.Set("PROVISIONER_SIGNUP_VERIFICATION_TTL", "90s.5");
  EXPECT_TRUE(StartsWith(env.Error(), "PROVISIONER_SIGNUP_VERIFICATION_TTL: ")) << env.Error();
  env.Set("PROVISIONER_SIGNUP_VERIFICATION_TTL", "2h");
  env.Set("PROVISIONER_MAX_UNVERIFIED_SIGNUPS", "0");
  EXPECT_TRUE(StartsWith(env.Error(), "PROVISIONER_MAX_UNVERIFIED_SIGNUPS: ")) << env.Error();
  env.Set("PROVISIONER_MAX_UNVERIFIED_SIGNUPS", "50");
  const auto on = env.Parse();
  ASSERT_TRUE(on.ok()) << on.error();
  ASSERT_TRUE(on.value().mail.has_value());
  EXPECT_EQ(on.value().mail->smtp_url, "smtps://user:secret@relay.example.com:465");
  EXPECT_EQ(on.value().mail->from, "billing@example.com");
  EXPECT_EQ(on.value().api.public_url, "https://signup.example.com");
  EXPECT_EQ(on.value().api.password_reset_ttl_seconds, 1800);
  EXPECT_EQ(on.value().api.signup_verification_ttl_seconds, 7200);
  EXPECT_EQ(on.value().api.max_unverified_signups, 50);

  env.Set("PROVISIONER_SMTP_URL", "http://relay.example.com");
  EXPECT_TRUE(StartsWith(env.Error(), "PROVISIONER_SMTP_URL: not an smtp://")) << env.Error();
  // The relay's password is never repeated in an error.
  env.Set("PROVISIONER_SMTP_URL", "smtp:/user:secret@relay");
  EXPECT_EQ(env.Error().find("secret"), std::string::npos) << env.Error();
}

TEST(MailTest, TheMessageHasItsHeadersCrlfLinesAndRefusesHeaderInjection) {
  const OutgoingMail mail{"john@example.com", "Choose a new password", "Hello,\n\nline two\n"};
  const std::string message =
      FormatMailMessage("billing@example.com", mail, 1796320000, "abc@example.com");
  EXPECT_TRUE(StartsWith(message,
                         "From: billing@example.com\r\nTo: john@example.com\r\n"
                         "Subject: Choose a new password\r\n"))
      << message;
  EXPECT_NE(message.find("\r\nDate: Thu, 03 Dec 2026 "), std::string::npos) << message;
  EXPECT_NE(message.find("\r\nMessage-ID: <abc@example.com>\r\n"), std::string::npos);
  EXPECT_NE(message.find("Content-Type: text/plain; charset=utf-8\r\n"), std::string::npos);
  EXPECT_TRUE(message.ends_with("\r\n\r\nHello,\r\n\r\nline two\r\n")) << message;
  EXPECT_EQ(message.find("\n\n"), std::string::npos);  // every line end is CRLF

  EXPECT_THROW(FormatMailMessage("billing@example.com",
                                 {"john@example.com\r\nBcc: all@example.com", "s", "t"}, 0, "m"),
               std::invalid_argument);
  EXPECT_THROW(FormatMailMessage("billing@example.com", {"a@example.com", "s\nX: y", "t"}, 0, "m"),
               std::invalid_argument);
}

TEST(MailTest, AMailThatCannotBeFormattedFailsOnceAndTheOutboxKeepsWorking) {
  ServiceMetrics metrics;
  // Nothing listens on port 1 of loopback: a mail that gets formatted fails to connect instead.
  MailerOptions options{"smtp://127.0.0.1:1", "billing@example.com", 5, 1, 10};
  SmtpMailer mailer(options, metrics);
  ASSERT_TRUE(mailer.Enqueue({"john@example.com\r\nBcc: all@example.com", "s", "t"}));
  ASSERT_TRUE(mailer.Enqueue({"jane@example.com", "s", "t"}));
  const auto failed = [&] {
    const std::string text = metrics.Serialize();
    const std::string series = "iotistic_provisioner_mails_total{outcome=\"failed\"} ";
    const auto at = text.find(series);
    return at == std::string::npos ? 0 : std::stoi(text.substr(at + series.size()));
  };
  // Both are counted as failed: the first without an attempt, the second after trying the relay
  // (the thread survived the first).
  for (int poll = 0; poll < 300 && failed() < 2; ++poll) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(failed(), 2) << metrics.Serialize();
}

TEST(MailTest, OnlySmtpUrlsWithAHostAreRelays) {
  EXPECT_TRUE(IsSmtpUrl("smtp://127.0.0.1:2525"));
  EXPECT_TRUE(IsSmtpUrl("smtps://user:pass@relay.example.com:465"));
  EXPECT_FALSE(IsSmtpUrl("smtp://"));
  EXPECT_FALSE(IsSmtpUrl("smtp:///path"));
  EXPECT_FALSE(IsSmtpUrl("https://relay.example.com"));
  EXPECT_FALSE(IsSmtpUrl(""));
}

TEST(ServeConfigTest, EachMissingRequiredVariableIsNamed) {
  for (const char* name : kRequired) {
    FakeEnv env;
    env.Unset(name);
    EXPECT_TRUE(StartsWith(env.Error(), std::string(name) + ": required")) << name;
    env.Set(name, "");  // empty is missing too
    EXPECT_TRUE(StartsWith(env.Error(), std::string(name) + ": required")) << name;
  }
}

TEST(ServeConfigTest, EncryptionKeyFilesAndTheExplicitOptOut) {
  FakeEnv env;
  auto result = env.Parse();
  ASSERT_TRUE(result.ok()) << result.error();
  EXPECT_EQ(result.value().encryption.key_file, "/keys/encryption.key");
  EXPECT_TRUE(result.value().encryption.previous_files.empty());
  EXPECT_FALSE(result.value().encryption.allow_clear);
  env.Set("PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES", "/keys/old-1, /keys/old-2");
  result = env.Parse();
  ASSERT_TRUE(result.ok()) << result.error();
  EXPECT_EQ(result.value().encryption.previous_files,
            (std::vector<std::string>{"/keys/old-1", "/keys/old-2"}));
  env.Set("PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES", "/keys/old-1,,/keys/old-2");
  EXPECT_TRUE(StartsWith(env.Error(), "PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES: "));

  // Without a key: refused, naming the variable, how to make a key and the opt-out.
  env.Unset("PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES");
  env.Unset("PROVISIONER_ENCRYPTION_KEY_FILE");
  const auto error = env.Error();
  EXPECT_TRUE(StartsWith(error, "PROVISIONER_ENCRYPTION_KEY_FILE: required")) << error;
  EXPECT_TRUE(Contains(error, "openssl rand -hex 32")) << error;
  EXPECT_TRUE(Contains(error, "PROVISIONER_ALLOW_UNENCRYPTED_SECRETS=true")) << error;
  env.Set("PROVISIONER_ALLOW_UNENCRYPTED_SECRETS", "yes");
  EXPECT_TRUE(StartsWith(env.Error(), "PROVISIONER_ALLOW_UNENCRYPTED_SECRETS: 'yes'"));
  env.Set("PROVISIONER_ALLOW_UNENCRYPTED_SECRETS", "true");
  result = env.Parse();
  ASSERT_TRUE(result.ok()) << result.error();
  EXPECT_TRUE(result.value().encryption.allow_clear);
  EXPECT_EQ(result.value().encryption.key_file, "");
  // Previous keys only open: they need a current key, opt-out or not.
  env.Set("PROVISIONER_ENCRYPTION_PREVIOUS_KEY_FILES", "/keys/old-1");
  EXPECT_TRUE(StartsWith(env.Error(), "PROVISIONER_ENCRYPTION_KEY_FILE: required with"));
}

TEST(ServeConfigTest, AllMissingNamesTheFirst) {
  FakeEnv env;
  for (const char* name : kRequired) env.Unset(name);
  EXPECT_TRUE(StartsWith(env.Error(), "PROVISIONER_ADMIN_TOKEN: required"));
  env.Set("PROVISIONER_ADMIN_TOKEN", "0123456789abcdef");
  EXPECT_TRUE(StartsWith(env.Error(), "DATABASE_URL: required"));
}

TEST(ServeConfigTest, AdminTokenNeedsSixteenCharacters) {
  FakeEnv env;
  env.Set("PROVISIONER_ADMIN_TOKEN", "0123456789abcde");
  const auto error = env.Error();
  EXPECT_TRUE(StartsWith(error, "PROVISIONER_ADMIN_TOKEN:"));
  EXPECT_TRUE(Contains(error, "16"));
  env.Set("PROVISIONER_ADMIN_TOKEN", "0123456789abcdef");
  EXPECT_TRUE(env.Parse().ok());
}

TEST(ServeConfigTest, BadDurationsAreNamed) {
  const char* const names[] = {"PROVISIONER_POLL_INTERVAL",       "PROVISIONER_RESYNC_INTERVAL",
                               "PROVISIONER_REAPPLY_INTERVAL",    "PROVISIONER_FAILURE_BACKOFF",
                               "PROVISIONER_FAILURE_BACKOFF_MAX", "PROVISIONER_LICENSE_VALIDITY"};
  for (const char* name : names) {
    for (const char* bad : {"soon", "5", "0s", "-5s", "1.5s", "5 s", "5d"}) {
      FakeEnv env;
      env.Set(name, bad);
      const auto error = env.Error();
      EXPECT_TRUE(StartsWith(error, std::string(name) + ": '" + bad + "'")) << error;
    }
  }
}

TEST(ServeConfigTest, DurationsAreRead) {
  FakeEnv env;
  env.Set("PROVISIONER_POLL_INTERVAL", "500ms");
  env.Set("PROVISIONER_RESYNC_INTERVAL", "1m30s");
  env.Set("PROVISIONER_FAILURE_BACKOFF", "3s");
  env.Set("PROVISIONER_FAILURE_BACKOFF_MAX", "10m");
  env.Set("PROVISIONER_LICENSE_VALIDITY", "24h");
  const auto result = env.Parse();
  ASSERT_TRUE(result.ok()) << result.error();
  const auto& c = result.value();
  EXPECT_DOUBLE_EQ(c.reconciler.timing.poll_seconds, 0.5);
  EXPECT_DOUBLE_EQ(c.reconciler.dispatch_interval_seconds, 0.5);  // never slower than the poll
  EXPECT_DOUBLE_EQ(c.reconciler.timing.resync_seconds, 90);
  EXPECT_DOUBLE_EQ(c.reconciler.timing.failure_backoff_seconds, 3);
  EXPECT_DOUBLE_EQ(c.reconciler.timing.failure_backoff_max_seconds, 600);
  EXPECT_EQ(c.api.license_validity_seconds, 86400);

  env.Set("PROVISIONER_POLL_INTERVAL", "5s");
  const auto slow = env.Parse();
  ASSERT_TRUE(slow.ok()) << slow.error();
  EXPECT_DOUBLE_EQ(slow.value().reconciler.dispatch_interval_seconds, 1);
}

TEST(ServeConfigTest, ReapplyIntervalIsRead) {
  FakeEnv env;
  env.Set("PROVISIONER_REAPPLY_INTERVAL", "1s");
  auto result = env.Parse();
  ASSERT_TRUE(result.ok()) << result.error();
  EXPECT_DOUBLE_EQ(result.value().reconciler.timing.reapply_seconds, 1);
  env.Set("PROVISIONER_REAPPLY_INTERVAL", "1h30m");
  result = env.Parse();
  ASSERT_TRUE(result.ok()) << result.error();
  EXPECT_DOUBLE_EQ(result.value().reconciler.timing.reapply_seconds, 5400);
  // It stands on its own: the other intervals keep their defaults.
  EXPECT_DOUBLE_EQ(result.value().reconciler.timing.resync_seconds, 30);
  env.Set("PROVISIONER_REAPPLY_INTERVAL", "250ms");
  result = env.Parse();
  ASSERT_TRUE(result.ok()) << result.error();
  EXPECT_DOUBLE_EQ(result.value().reconciler.timing.reapply_seconds, 0.25);
  env.Set("PROVISIONER_REAPPLY_INTERVAL", "");  // empty is unset: the default
  result = env.Parse();
  ASSERT_TRUE(result.ok()) << result.error();
  EXPECT_DOUBLE_EQ(result.value().reconciler.timing.reapply_seconds, 600);
  env.Set("PROVISIONER_REAPPLY_INTERVAL", "never");
  const auto error = env.Error();
  EXPECT_TRUE(StartsWith(error, "PROVISIONER_REAPPLY_INTERVAL: 'never'")) << error;
  EXPECT_TRUE(Contains(error, "positive duration")) << error;
}

TEST(ServeConfigTest, BadCountsAreNamed) {
  const std::vector<std::pair<const char*, std::vector<const char*>>> cases = {
      {"PROVISIONER_KUBE_MAX_ATTEMPTS", {"0", "21", "-1", "five", "5x", " 5", "+5"}},
      {"PROVISIONER_SIGNUP_RATE_PER_MINUTE", {"0", "100001", "1.5", "ten"}},
      {"PROVISIONER_SIGNUP_BURST", {"0", "100001", "1e3"}},
      {"PROVISIONER_DEPLOYMENTS_PER_HOUR", {"0", "1000001", "lots"}},
  };
  for (const auto& [name, values] : cases) {
    for (const char* bad : values) {
      FakeEnv env;
      env.Set(name, bad);
      const auto error = env.Error();
      EXPECT_TRUE(StartsWith(error, std::string(name) + ": '" + bad + "'")) << error;
      EXPECT_TRUE(Contains(error, "whole number")) << error;
    }
  }
}

TEST(ServeConfigTest, CountsAreReadAtTheirBounds) {
  FakeEnv env;
  env.Set("PROVISIONER_KUBE_MAX_ATTEMPTS", "20");
  env.Set("PROVISIONER_SIGNUP_RATE_PER_MINUTE", "1");
  env.Set("PROVISIONER_SIGNUP_BURST", "100000");
  env.Set("PROVISIONER_DEPLOYMENTS_PER_HOUR", "1");
  const auto result = env.Parse();
  ASSERT_TRUE(result.ok()) << result.error();
  EXPECT_EQ(result.value().reconciler.kube_retry.max_attempts, 20);
  EXPECT_DOUBLE_EQ(result.value().api.signup_per_minute, 1);
  EXPECT_DOUBLE_EQ(result.value().api.signup_burst, 100000);
  EXPECT_DOUBLE_EQ(result.value().api.deployments_per_hour, 1);
}

TEST(ServeConfigTest, OptionalSettings) {
  FakeEnv env;
  env.Set("PROVISIONER_CHART_DIR", "/charts/ci");
  env.Set("PROVISIONER_VALUES_FILE", "/etc/platform.yaml");
  env.Set("PROVISIONER_DEFAULT_PLAN", "pro");
  const auto result = env.Parse();
  ASSERT_TRUE(result.ok()) << result.error();
  EXPECT_EQ(result.value().chart_dir, "/charts/ci");
  EXPECT_EQ(result.value().values_file, "/etc/platform.yaml");
  EXPECT_EQ(result.value().api.default_plan, "pro");
}

TEST(ServeConfigTest, ListenAndWorkersFlags) {
  const FakeEnv env;
  for (const char* good : {"127.0.0.1:8080", "localhost:0", "[::1]:65535", "0.0.0.0:3000"}) {
    const auto result = env.Parse({"--listen", good});
    ASSERT_TRUE(result.ok()) << good << ": " << result.error();
    EXPECT_EQ(result.value().api.listen, good);
  }
  for (const char* bad : {"8080", ":8080", "host:", "host:65536", "host:-1", "host:80x", ""}) {
    EXPECT_TRUE(StartsWith(env.Error({"--listen", bad}), std::string("--listen: '") + bad + "'"))
        << bad;
  }
  for (const char* good : {"1", "64", "7"}) {
    const auto result = env.Parse({"--workers", good});
    ASSERT_TRUE(result.ok()) << good << ": " << result.error();
    EXPECT_EQ(result.value().reconciler.workers, std::stoul(good));
  }
  for (const char* bad : {"0", "65", "-1", "four", "4.0", ""}) {
    EXPECT_TRUE(StartsWith(env.Error({"--workers", bad}), std::string("--workers: '") + bad + "'"))
        << bad;
  }
  const auto both = env.Parse({"--workers", "2", "--listen", "127.0.0.1:1"});
  ASSERT_TRUE(both.ok()) << both.error();
  EXPECT_EQ(both.value().reconciler.workers, 2u);
  EXPECT_EQ(both.value().api.listen, "127.0.0.1:1");

  EXPECT_TRUE(StartsWith(env.Error({"--workers"}), "--workers needs a value"));
  EXPECT_TRUE(StartsWith(env.Error({"--listen"}), "--listen needs a value"));
  const auto unknown = env.Error({"--port", "3000"});
  EXPECT_TRUE(StartsWith(unknown, "unknown argument \"--port\""));
  EXPECT_TRUE(Contains(unknown, "usage: provisioner serve"));
}

// The probes' and Prometheus' listener: its own HOST:PORT, never the API's.
TEST(ServeConfigTest, HealthListenFlag) {
  const FakeEnv env;
  for (const char* good : {"127.0.0.1:8081", "localhost:0", "[::1]:65535", "0.0.0.0:3001"}) {
    const auto result = env.Parse({"--health-listen", good});
    ASSERT_TRUE(result.ok()) << good << ": " << result.error();
    EXPECT_EQ(result.value().health.listen, good);
    EXPECT_EQ(result.value().api.listen, "0.0.0.0:3000");
  }
  const auto equals = env.Parse({"--health-listen=127.0.0.1:9", "--listen=127.0.0.1:8"});
  ASSERT_TRUE(equals.ok()) << equals.error();
  EXPECT_EQ(equals.value().health.listen, "127.0.0.1:9");
  for (const char* bad : {"3001", ":3001", "host:", "host:65536", "host:x", ""}) {
    EXPECT_TRUE(StartsWith(env.Error({"--health-listen", bad}),
                           std::string("--health-listen: '") + bad + "' is not HOST:PORT"))
        << bad;
  }
  EXPECT_TRUE(StartsWith(env.Error({"--health-listen"}), "--health-listen needs a value"));
  const auto same = env.Error({"--listen", "0.0.0.0:3000", "--health-listen", "0.0.0.0:3000"});
  EXPECT_TRUE(StartsWith(same, "--health-listen: '0.0.0.0:3000' is the API's --listen too"))
      << same;
  // Port 0 is a fresh free port for each listener.
  EXPECT_TRUE(env.Parse({"--listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0"}).ok());
  EXPECT_TRUE(Contains(kServeUsage, "--health-listen"));
}

TEST(ServeConfigTest, RequestLimits) {
  const auto defaults = FakeEnv().Parse();
  ASSERT_TRUE(defaults.ok()) << defaults.error();
  EXPECT_EQ(defaults.value().api.header_timeout_seconds, 10);
  EXPECT_EQ(defaults.value().api.body.timeout_seconds, 10);
  EXPECT_EQ(defaults.value().api.body.min_bytes_per_second, 1024);

  FakeEnv env;
  env.Set("PROVISIONER_HEADER_TIMEOUT", "2s");
  env.Set("PROVISIONER_BODY_TIMEOUT", "1500ms");
  env.Set("PROVISIONER_BODY_MIN_RATE", "0");
  const auto set = env.Parse();
  ASSERT_TRUE(set.ok()) << set.error();
  EXPECT_EQ(set.value().api.header_timeout_seconds, 2);
  EXPECT_EQ(set.value().api.body.timeout_seconds, 1.5);
  EXPECT_EQ(set.value().api.body.min_bytes_per_second, 0);

  for (const auto& [name, value, message] : std::vector<std::array<std::string, 3>>{
           {"PROVISIONER_HEADER_TIMEOUT", "0s", "is not a positive duration"},
           {"PROVISIONER_HEADER_TIMEOUT", "500ms", "at least 1s"},
           {"PROVISIONER_BODY_TIMEOUT", "ten", "is not a positive duration"},
           {"PROVISIONER_BODY_MIN_RATE", "-1", "is not a whole number from 0 to 1000000000"},
           {"PROVISIONER_BODY_MIN_RATE", "1k", "is not a whole number from 0 to 1000000000"}}) {
    FakeEnv bad;
    bad.Set(name, value);
    const auto error = bad.Error();
    EXPECT_TRUE(StartsWith(error, name + ": ")) << error;
    EXPECT_TRUE(Contains(error, message)) << error;
  }
}

// ---------------------------------------------------------------------------------------------
// SlowBodyRefusal

TEST(SlowBodyRefusalTest, TheDeadlineHoldsWhateverTheRate) {
  const BodyLimits limits{4, 0};
  EXPECT_EQ(SlowBodyRefusal(limits, 3.9, 0), std::nullopt);
  const auto late = SlowBodyRefusal(limits, 4, 1000000);
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(*late, "body: not complete 4s after the headers; send the whole request at once");
  EXPECT_TRUE(Contains(*SlowBodyRefusal(BodyLimits{0.5, 0}, 0.6, 0), "not complete 0.5s after"));
}

TEST(SlowBodyRefusalTest, TheMinimumRateCountsAfterTheFirstSecond) {
  const BodyLimits limits{10, 1000};
  // Nothing at all is fine within the first second.
  EXPECT_EQ(SlowBodyRefusal(limits, 1.0, 0), std::nullopt);
  // 2.5 s in: 1,500 bytes are due.
  EXPECT_EQ(SlowBodyRefusal(limits, 2.5, 1500), std::nullopt);
  const auto slow = SlowBodyRefusal(limits, 2.5, 1499);
  ASSERT_TRUE(slow.has_value());
  EXPECT_EQ(*slow, "body: arrived slower than 1000 bytes a second; send the whole request at once");
  // A byte every two seconds, as a slow client trickles it.
  EXPECT_TRUE(SlowBodyRefusal(limits, 4, 2).has_value());
  // No minimum rate: only the deadline.
  EXPECT_EQ(SlowBodyRefusal(BodyLimits{10, 0}, 9, 0), std::nullopt);
}

TEST(ServeConfigTest, PrometheusUrlEnablesUsageWithDefaults) {
  FakeEnv env;
  env.Set("PROMETHEUS_URL", "http://prometheus.monitoring:9090");
  const auto result = env.Parse();
  ASSERT_TRUE(result.ok()) << result.error();
  ASSERT_TRUE(result.value().usage.has_value());
  const auto& usage = *result.value().usage;
  EXPECT_EQ(usage.prometheus_url, "http://prometheus.monitoring:9090");
  EXPECT_EQ(usage.period_seconds, 3600);
  EXPECT_EQ(usage.lookback_seconds, 6 * 3600);
  EXPECT_EQ(usage.settle_seconds, 120);
  EXPECT_DOUBLE_EQ(usage.interval_seconds, 300);
  EXPECT_DOUBLE_EQ(usage.max_gap_seconds, 300);
}

TEST(ServeConfigTest, UsageSettings) {
  FakeEnv env;
  env.Set("PROMETHEUS_URL", "https://prom.example.com");
  env.Set("PROVISIONER_USAGE_PERIOD", "15m");
  env.Set("PROVISIONER_USAGE_LOOKBACK", "2h");
  env.Set("PROVISIONER_USAGE_SETTLE", "30s");
  env.Set("PROVISIONER_USAGE_INTERVAL", "1m");
  env.Set("PROVISIONER_USAGE_MAX_GAP", "10m");
  const auto result = env.Parse();
  ASSERT_TRUE(result.ok()) << result.error();
  ASSERT_TRUE(result.value().usage.has_value());
  const auto& usage = *result.value().usage;
  EXPECT_EQ(usage.prometheus_url, "https://prom.example.com");
  EXPECT_EQ(usage.period_seconds, 900);
  EXPECT_EQ(usage.lookback_seconds, 7200);
  EXPECT_EQ(usage.settle_seconds, 30);
  EXPECT_DOUBLE_EQ(usage.interval_seconds, 60);
  EXPECT_DOUBLE_EQ(usage.max_gap_seconds, 600);
}

TEST(ServeConfigTest, UsageSettingsAreIgnoredWithoutPrometheus) {
  FakeEnv env;
  env.Set("PROVISIONER_USAGE_PERIOD", "15m");
  const auto result = env.Parse();
  ASSERT_TRUE(result.ok()) << result.error();
  EXPECT_FALSE(result.value().usage.has_value());
}

TEST(ServeConfigTest, BadUsageSettingsAreNamed) {
  {
    FakeEnv env;
    env.Set("PROMETHEUS_URL", "prometheus:9090");
    EXPECT_TRUE(StartsWith(env.Error(), "PROMETHEUS_URL: 'prometheus:9090'"));
  }
  {
    FakeEnv env;
    env.Set("PROMETHEUS_URL", "http://prom:9090");
    env.Set("PROVISIONER_USAGE_PERIOD", "1500ms");
    EXPECT_TRUE(StartsWith(env.Error(), "PROVISIONER_USAGE_PERIOD:"));
  }
  for (const char* name :
       {"PROVISIONER_USAGE_PERIOD", "PROVISIONER_USAGE_LOOKBACK", "PROVISIONER_USAGE_SETTLE",
        "PROVISIONER_USAGE_INTERVAL", "PROVISIONER_USAGE_MAX_GAP"}) {
    FakeEnv env;
    env.Set("PROMETHEUS_URL", "http://prom:9090");
    env.Set(name, "hourly");
    EXPECT_TRUE(StartsWith(env.Error(), std::string(name) + ": 'hourly'")) << name;
  }
}

// ---------------------------------------------------------------------------------------------
// WindowAt

UsageScheduleOptions Schedule(std::int64_t period, std::int64_t lookback, std::int64_t settle) {
  UsageScheduleOptions options;
  options.period_seconds = period;
  options.lookback_seconds = lookback;
  options.settle_seconds = settle;
  return options;
}

TEST(WindowAtTest, BillsClosedPeriodsOnceSettled) {
  const auto hourly = Schedule(3600, 6 * 3600, 120);
  // 10:02:00: the period 09:00-10:00 has just settled.
  auto window = WindowAt(10 * 3600 + 120, hourly);
  EXPECT_EQ(window.to, 10 * 3600);
  EXPECT_EQ(window.from, 4 * 3600);
  // One second earlier it has not.
  window = WindowAt(10 * 3600 + 119, hourly);
  EXPECT_EQ(window.to, 9 * 3600);
  EXPECT_EQ(window.from, 3 * 3600);
  // 10:00:00 itself: 09:00-10:00 has closed but not settled.
  window = WindowAt(10 * 3600, hourly);
  EXPECT_EQ(window.to, 9 * 3600);
}

TEST(WindowAtTest, WithoutSettleAPeriodIsBilledTheMomentItEnds) {
  const auto hourly = Schedule(3600, 3 * 3600, 0);
  auto window = WindowAt(7200, hourly);
  EXPECT_EQ(window.to, 7200);
  EXPECT_EQ(window.from, 7200 - 3 * 3600);
  window = WindowAt(7199, hourly);
  EXPECT_EQ(window.to, 3600);
}

TEST(WindowAtTest, InvariantsOverADay) {
  for (const auto& options :
       {Schedule(3600, 6 * 3600, 120), Schedule(900, 5400, 30), Schedule(3600, 5400, 600),
        Schedule(86400, 7 * 86400, 3600), Schedule(3600, 600, 120)}) {
    for (std::int64_t now = 1'700'000'000; now < 1'700'000'000 + 2 * 86400; now += 37) {
      const auto w = WindowAt(now, options);
      const auto settled = now - options.settle_seconds;
      SCOPED_TRACE("now=" + std::to_string(now) +
                   " period=" + std::to_string(options.period_seconds));
      ASSERT_EQ(w.to % options.period_seconds, 0);
      ASSERT_EQ(w.from % options.period_seconds, 0);
      ASSERT_LE(w.to, settled) << "an unsettled period is billed";
      ASSERT_GT(w.to + options.period_seconds, settled) << "the last settled period is left out";
      ASSERT_LT(w.from, w.to);
      // The look-back: every period that started at or after now - settle - lookback (rounded
      // down to a boundary), and at least the last settled one.
      ASSERT_LE(w.from, settled - options.lookback_seconds);
      if (w.from != w.to - options.period_seconds) {
        ASSERT_GT(w.from + options.period_seconds, settled - options.lookback_seconds)
            << "more than the look-back";
      }
    }
  }
}

TEST(WindowAtTest, LookBackShorterThanAPeriodBillsTheLastSettledPeriod) {
  const auto options = Schedule(3600, 600, 120);
  for (const std::int64_t now : {7200 + 120, 7200 + 700, 7200 + 3600 + 119}) {
    const auto w = WindowAt(now, options);
    EXPECT_EQ(w.to, 7200) << now;
    EXPECT_EQ(w.from, 3600) << now;
  }
}

TEST(WindowAtTest, LookBackIsRoundedDownToAPeriodBoundary) {
  const auto options = Schedule(3600, 5400, 0);  // 1.5 periods
  auto w = WindowAt(7200, options);              // 7200 - 5400 = 1800 -> 0
  EXPECT_EQ(w.from, 0);
  EXPECT_EQ(w.to, 7200);
  w = WindowAt(9000, options);  // 9000 - 5400 = 3600
  EXPECT_EQ(w.from, 3600);
  EXPECT_EQ(w.to, 7200);
}

TEST(WindowAtTest, NegativeTimesFloorTowardsMinusInfinity) {
  const auto options = Schedule(3600, 3600, 0);
  auto w = WindowAt(-1, options);
  EXPECT_EQ(w.to, -3600);
  EXPECT_EQ(w.from, -7200);
  w = WindowAt(-3600, options);  // exactly on a boundary
  EXPECT_EQ(w.to, -3600);
  EXPECT_EQ(w.from, -7200);
  w = WindowAt(-3601, options);
  EXPECT_EQ(w.to, -7200);
  EXPECT_EQ(w.from, -10800);
  w = WindowAt(0, Schedule(3600, 6 * 3600, 120));  // settle reaches before the epoch
  EXPECT_EQ(w.to, -3600);
  EXPECT_EQ(w.from, -7 * 3600);
  w = WindowAt(0, options);
  EXPECT_EQ(w.to, 0);
  EXPECT_EQ(w.from, -3600);
}

TEST(WindowAtTest, ExtremeTimesDoNotOverflow) {
  const auto options = Schedule(3600, 6 * 3600, 120);
  const auto max = std::numeric_limits<std::int64_t>::max();
  auto w = WindowAt(max, options);
  EXPECT_EQ(w.to, ((max - 120) / 3600) * 3600);
  EXPECT_EQ(w.from, w.to - 6 * 3600);
  const auto low = std::numeric_limits<std::int64_t>::min() / 2;
  w = WindowAt(low, options);
  EXPECT_EQ(w.to % 3600, 0);
  EXPECT_LE(w.to, low - 120);
  EXPECT_GT(w.to + 3600, low - 120);
  EXPECT_EQ(w.from, w.to - 6 * 3600);
}

// ---------------------------------------------------------------------------------------------
// StackRenderer

std::string ReadChartFile(const std::string& name) {
  const std::string path =
      std::string(BILLING_SOURCE_DIR) + "/manifests/charts/customer-instance/" + name;
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

StackRenderer ChartRenderer(const std::string& platform_values = "") {
  return StackRenderer(ReadChartFile("values.yaml"), ReadChartFile("Chart.yaml"), platform_values,
                       ReadChartFile("values.schema.json"));
}

// Mosquitto $7$ hashes of the two broker passwords below (as tests/provisioner/render/values/).
constexpr const char* kExporterHash =
    "$7$101$AQIDBAUGBwgJCgsM$FDlxf28KiDAlbXClbWSBLOEYSeLhupZQiW9BgRi0kIT+"
    "tvobRpClCZV9YruaNpxzNuyEaoks"
    "KbUI+3JsajBzKQ==";
constexpr const char* kDeviceHash =
    "$7$101$DQ4PEBESExQVFhcY$nDSoMgYAszqT1AVWWgk7UhWp7CmxnufMor3xlo37v0W+"
    "sg2xljkijbt4PwxKHZHvNX3EkCdp"
    "n1fV/SM8OQ/LpA==";

nlohmann::ordered_json MinimalCustomer(const std::string& id = "acme42") {
  return {
      {"customer", {{"id", id}, {"email", "ops@acme.example"}, {"companyName", "Acme"}}},
      {"license", {{"key", "header.payload.signature"}}},
      {"domain", {{"base", "iot.example.com"}}},
      {"postgres", {{"password", "s3cret-Passw0rd"}}},
      {"mosquitto",
       {{"auth",
         {{"exporter", {{"password", "Exp0rter-Mqtt-Passw0rd"}, {"passwordHash", kExporterHash}}},
          {"device", {{"password", "Dev1ce-Mqtt-Passw0rd"}, {"passwordHash", kDeviceHash}}}}}}}};
}

const KubeObject* FindObject(const std::vector<KubeObject>& objects, const std::string& kind,
                             const std::string& name) {
  for (const auto& object : objects) {
    if (object.kind == kind && object.name == name) return &object;
  }
  return nullptr;
}

TEST(StackRendererTest, MinimalCustomerLivesInItsOwnNamespace) {
  const auto renderer = ChartRenderer();
  const auto result = renderer.Render(MinimalCustomer("acme42"));
  ASSERT_TRUE(result.ok()) << result.error();
  const auto& objects = result.value();
  ASSERT_GE(objects.size(), 10u);
  EXPECT_EQ(CustomerNamespace("acme42"), "customer-acme42");
  EXPECT_EQ(objects.front().kind, "Namespace");
  EXPECT_EQ(objects.front().name, "customer-acme42");
  EXPECT_EQ(objects.front().namespace_name, "");
  std::size_t workloads = 0;
  for (std::size_t i = 1; i < objects.size(); ++i) {
    const auto& object = objects[i];
    SCOPED_TRACE(object.kind + " " + object.name);
    EXPECT_NE(object.kind, "Namespace");
    EXPECT_EQ(object.namespace_name, "customer-acme42");
    const Value* in_manifest = object.manifest.FindPath("metadata.namespace");
    ASSERT_NE(in_manifest, nullptr);
    ASSERT_TRUE(in_manifest->IsString());
    EXPECT_EQ(in_manifest->AsString(), "customer-acme42");
    if (object.kind == "Deployment" || object.kind == "StatefulSet") ++workloads;
  }
  EXPECT_EQ(workloads, 5u);  // postgres, mosquitto, api, dashboard, exporter
}

TEST(StackRendererTest, RenderNamesTheMissingValue) {
  auto values = MinimalCustomer();
  values["postgres"].erase("password");
  const auto result = ChartRenderer().Render(values);
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(Contains(result.error(), "postgres.password"));
}

TEST(StackRendererTest, UnknownValueAcceptsChartKeys) {
  const auto renderer = ChartRenderer();
  EXPECT_EQ(renderer.UnknownValue(nlohmann::json::object()), std::nullopt);
  EXPECT_EQ(renderer.UnknownValue({{"postgres", {{"port", 5433}}}}), std::nullopt);
  EXPECT_EQ(renderer.UnknownValue({{"postgres", {{"resources", {{"limits", {{"cpu", "1"}}}}}}},
                                   {"ingress", {{"enabled", false}}},
                                   {"exporter", {{"serviceMonitor", {{"enabled", true}}}}}}),
            std::nullopt);
  // Unsetting a map with null is a chart key too.
  EXPECT_EQ(renderer.UnknownValue({{"ingress", {{"annotations", nullptr}}}}), std::nullopt);
}

TEST(StackRendererTest, UnknownValueFindsTyposAtAnyDepth) {
  const auto renderer = ChartRenderer();
  EXPECT_EQ(renderer.UnknownValue({{"postgress", {{"port", 5433}}}}), "postgress");
  EXPECT_EQ(renderer.UnknownValue({{"postgres", {{"prot", 5433}}}}), "postgres.prot");
  EXPECT_EQ(renderer.UnknownValue({{"postgres", {{"resourcs", {{"limits", {{"cpu", "1"}}}}}}}}),
            "postgres.resourcs");
  // Resource names are open in Kubernetes (nvidia.com/gpu), and so in the chart's schema.
  EXPECT_EQ(renderer.UnknownValue(
                {{"postgres", {{"resources", {{"limits", {{"nvidia.com/gpu", "1"}}}}}}}}),
            std::nullopt);
  EXPECT_EQ(renderer.UnknownValue({{"exporter", {{"serviceMonitor", {{"intervall", "1m"}}}}}}),
            "exporter.serviceMonitor.intervall");
  EXPECT_EQ(renderer.UnknownValue({{"ingress", {{"tls", {{"enabled", true}, {"secret", "x"}}}}}}),
            "ingress.tls.secret");
}

// The mechanism, on a schema with a free-form map, a $ref and a closed object.
TEST(StackRendererTest, UnknownValueFollowsTheSchema) {
  const StackRenderer renderer("web:\n  replicas: 1\n", "name: x\n", "", R"({
    "definitions": {"limits": {"type": "object", "additionalProperties": false,
                               "properties": {"cpu": {"type": "string"}}}},
    "properties": {"web": {"type": "object", "additionalProperties": false, "properties": {
      "podAnnotations": {"type": "object", "additionalProperties": {"type": "string"}},
      "limits": {"$ref": "#/definitions/limits"},
      "replicas": {"type": "integer"}}}}})");
  EXPECT_EQ(renderer.UnknownValue({{"web", {{"podAnnotations", {{"example.com/a", "1"}}}}}}),
            std::nullopt);
  EXPECT_EQ(renderer.UnknownValue({{"web", {{"limits", {{"cpu", "1"}}}}}}), std::nullopt);
  EXPECT_EQ(renderer.UnknownValue({{"web", {{"limits", {{"memory", "1Gi"}}}}}}),
            "web.limits.memory");
  EXPECT_EQ(renderer.UnknownValue({{"web", {{"replica", 2}}}}), "web.replica");
  EXPECT_EQ(renderer.UnknownValue({{"webb", 1}}), "webb") << "top-level keys are closed";
  // Without a schema nothing is refused (the renderer still validates what it reads).
  const StackRenderer no_schema("web:\n  replicas: 1\n", "name: x\n", "");
  EXPECT_EQ(no_schema.UnknownValue({{"webb", 1}}), std::nullopt);
}

// ingress.annotations is free-form in values.schema.json although values.yaml has entries.
TEST(StackRendererTest, UnknownValueAcceptsNewIngressAnnotations) {
  const auto renderer = ChartRenderer();
  // A default key is accepted either way.
  EXPECT_EQ(renderer.UnknownValue(
                {{"ingress", {{"annotations", {{"cert-manager.io/cluster-issuer", "staging"}}}}}}),
            std::nullopt);
  EXPECT_EQ(
      renderer.UnknownValue(
          {{"ingress", {{"annotations", {{"nginx.ingress.kubernetes.io/ssl-redirect", "true"}}}}}}),
      std::nullopt);
}

TEST(StackRendererTest, PlatformValuesApplyUnderTheCustomers) {
  const auto renderer = ChartRenderer(
      "postgres:\n  storageClass: fast-ssd\n"
      "api:\n  image:\n    repository: registry.example.com/api\n    tag: \"2\"\n"
      "dashboard:\n  image:\n    repository: registry.example.com/dashboard\n    tag: \"2\"\n");
  auto values = MinimalCustomer();
  // Merged key by key: the platform's repository, the customer's tag.
  values["api"] = {{"image", {{"tag", "3-customer"}}}};
  const auto result = renderer.Render(values);
  ASSERT_TRUE(result.ok()) << result.error();
  const auto yaml_of = [&](const std::vector<KubeObject>& objects, const std::string& kind,
                           const std::string& name) {
    const auto* object = FindObject(objects, kind, name);
    return object ? ToYamlStream({*object}) : "(no " + kind + " " + name + ")";
  };
  const auto postgres = yaml_of(result.value(), "StatefulSet", "customer-acme42-postgres");
  EXPECT_TRUE(Contains(postgres, "storageClassName: fast-ssd"));
  EXPECT_TRUE(Lacks(postgres, "storageClassName: standard"));
  const auto dashboard = yaml_of(result.value(), "Deployment", "customer-acme42-dashboard");
  EXPECT_TRUE(Contains(dashboard, "image: registry.example.com/dashboard:2"));
  const auto api = yaml_of(result.value(), "Deployment", "customer-acme42-api");
  EXPECT_TRUE(Contains(api, "image: registry.example.com/api:3-customer"));
  EXPECT_TRUE(Lacks(api, "registry.example.com/api:2"));

  // The customer's own value beats the platform's.
  values["postgres"]["storageClass"] = "slow-hdd";
  const auto customer_wins = renderer.Render(values);
  ASSERT_TRUE(customer_wins.ok()) << customer_wins.error();
  EXPECT_TRUE(Contains(yaml_of(customer_wins.value(), "StatefulSet", "customer-acme42-postgres"),
                       "storageClassName: slow-hdd"));
}

TEST(StackRendererTest, PlatformValuesAreChecked) {
  const auto renderer = ChartRenderer("mosquitto:\n  mqttPort: 0\n");
  const auto result = renderer.Render(MinimalCustomer());
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(Contains(result.error(), "mosquitto.mqttPort"));
}

// The provisioner applies without Helm and so must render the Namespace whatever the platform's
// or the customer's values say.
TEST(StackRendererTest, PlatformValuesCannotDropTheNamespace) {
  const auto renderer = ChartRenderer("namespace:\n  create: false\n");
  const auto result = renderer.Render(MinimalCustomer());
  ASSERT_TRUE(result.ok()) << result.error();
  ASSERT_FALSE(result.value().empty());
  EXPECT_EQ(result.value().front().kind, "Namespace");
}

std::set<std::string> KindsOf(const std::vector<KubeObject>& objects) {
  std::set<std::string> kinds;
  for (const auto& object : objects) kinds.insert(object.kind);
  return kinds;
}

std::set<std::string> Identities(const std::vector<KubeObject>& objects) {
  std::set<std::string> out;
  for (const auto& object : objects) {
    out.insert(object.api_version + " " + object.kind + " " + object.namespace_name + "/" +
               object.name);
  }
  return out;
}

// What the Deployer prunes is RenderEveryOptionalPart minus Render: the overlay must turn on
// every optional object the chart has, and change nothing else.
TEST(StackRendererTest, EveryOptionalPartRendersEveryKindOfTheChart) {
  auto values = MinimalCustomer();
  values["ingress"] = {{"enabled", false}};
  values["networkPolicy"] = {{"enabled", false}};
  values["resourceQuota"] = {{"enabled", false}};
  values["exporter"] = {{"serviceMonitor", {{"enabled", false}}}};
  const auto renderer = ChartRenderer();
  const auto off = renderer.Render(values);
  ASSERT_TRUE(off.ok()) << off.error();
  const auto on = renderer.RenderEveryOptionalPart(values);
  ASSERT_TRUE(on.ok()) << on.error();

  // Every kind at the top level of the chart's templates (as provisioner_manifests_test reads
  // them): a kind behind a new switch that the overlay lacks fails here.
  std::set<std::string> in_templates;
  const auto templates =
      std::filesystem::path(BILLING_SOURCE_DIR) / "manifests/charts/customer-instance/templates";
  for (const auto& entry : std::filesystem::directory_iterator(templates)) {
    if (entry.path().extension() != ".yaml") continue;
    std::istringstream text(ReadChartFile("templates/" + entry.path().filename().string()));
    for (std::string line; std::getline(text, line);) {
      if (!line.starts_with("kind:")) continue;
      std::istringstream words(line.substr(5));
      std::string kind;
      words >> kind;
      in_templates.insert(kind);
    }
  }
  ASSERT_FALSE(in_templates.empty());
  EXPECT_EQ(KindsOf(on.value()), in_templates);

  // Everything the customer's values render is among the candidates, and the difference is
  // exactly the optional objects.
  const auto current = Identities(off.value());
  const auto all = Identities(on.value());
  std::set<std::string> prunable;
  for (const auto& identity : all) {
    if (!current.count(identity)) prunable.insert(identity);
  }
  for (const auto& identity : current) EXPECT_TRUE(all.count(identity)) << identity;
  EXPECT_EQ(prunable, (std::set<std::string>{
                          "monitoring.coreos.com/v1 ServiceMonitor customer-acme42/"
                          "customer-acme42-exporter",
                          "networking.k8s.io/v1 Ingress customer-acme42/customer-acme42-ingress",
                          "networking.k8s.io/v1 NetworkPolicy customer-acme42/customer-acme42-api",
                          "networking.k8s.io/v1 NetworkPolicy customer-acme42/"
                          "customer-acme42-dashboard",
                          "networking.k8s.io/v1 NetworkPolicy customer-acme42/"
                          "customer-acme42-exporter",
                          "networking.k8s.io/v1 NetworkPolicy customer-acme42/"
                          "customer-acme42-mosquitto",
                          "networking.k8s.io/v1 NetworkPolicy customer-acme42/"
                          "customer-acme42-network-policy",
                          "networking.k8s.io/v1 NetworkPolicy customer-acme42/"
                          "customer-acme42-postgres",
                          "v1 ResourceQuota customer-acme42/customer-acme42-quota",
                      }));
}

// The overlay only switches parts on: the objects both renders have are the same objects.
TEST(StackRendererTest, EveryOptionalPartKeepsTheCustomersValues) {
  auto values = MinimalCustomer();
  values["mosquitto"]["maxQueuedMessages"] = 5000;
  values["ingress"] = {{"enabled", false}, {"exposeMetrics", true}};  // no password needed: off
  const auto renderer =
      ChartRenderer("api:\n  image:\n    repository: registry.example.com/api\n    tag: \"2\"\n");
  const auto current = renderer.Render(values);
  ASSERT_TRUE(current.ok()) << current.error();
  const auto all = renderer.RenderEveryOptionalPart(values);
  ASSERT_TRUE(all.ok()) << all.error();
  for (const auto& object : current.value()) {
    const auto* same = FindObject(all.value(), object.kind, object.name);
    ASSERT_NE(same, nullptr) << object.kind << " " << object.name;
    EXPECT_EQ(ToYamlStream({*same}), ToYamlStream({object})) << object.kind << " " << object.name;
  }
  EXPECT_EQ(FindObject(current.value(), "Ingress", "customer-acme42-ingress"), nullptr);
  EXPECT_NE(FindObject(all.value(), "Ingress", "customer-acme42-ingress"), nullptr);
  // The customer's own values are still checked.
  values["postgres"].erase("password");
  const auto refused = renderer.RenderEveryOptionalPart(values);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(Contains(refused.error(), "postgres.password"));
}

// ---------------------------------------------------------------------------------------------
// value_json

TEST(ValueJsonTest, RoundTripKeepsOrderAndKinds) {
  const auto json = nlohmann::ordered_json::parse(R"({
    "zeta": 1, "alpha": 1.5, "mid": true, "nothing": null, "text": "4", "whole": 2.0,
    "negative": -7, "big": 9223372036854775807, "off": false,
    "list": [3, 0.25, "x", false, null, {"b": 1, "a": 2}, []],
    "nested": {"y": {}, "x": [], "w": {"later": "1", "earlier": "2"}}
  })");
  const Value value = FromJson(json);
  ASSERT_TRUE(value.IsMap());
  std::vector<std::string> keys;
  for (const auto& [key, member] : value.AsMap()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"zeta", "alpha", "mid", "nothing", "text", "whole",
                                            "negative", "big", "off", "list", "nested"}));
  EXPECT_EQ(value.Find("zeta")->kind(), Value::Kind::kInt);
  EXPECT_EQ(value.Find("zeta")->AsInt(), 1);
  EXPECT_EQ(value.Find("alpha")->kind(), Value::Kind::kFloat);
  EXPECT_DOUBLE_EQ(value.Find("alpha")->AsFloat(), 1.5);
  EXPECT_EQ(value.Find("mid")->kind(), Value::Kind::kBool);
  EXPECT_TRUE(value.Find("mid")->AsBool());
  EXPECT_EQ(value.Find("off")->kind(), Value::Kind::kBool);
  EXPECT_FALSE(value.Find("off")->AsBool());
  EXPECT_EQ(value.Find("nothing")->kind(), Value::Kind::kNull);
  EXPECT_EQ(value.Find("text")->kind(), Value::Kind::kString);
  EXPECT_EQ(value.Find("text")->AsString(), "4");
  EXPECT_EQ(value.Find("whole")->kind(), Value::Kind::kFloat);
  EXPECT_EQ(value.Find("negative")->AsInt(), -7);
  EXPECT_EQ(value.Find("big")->kind(), Value::Kind::kInt);
  EXPECT_EQ(value.Find("big")->AsInt(), std::numeric_limits<std::int64_t>::max());
  const auto& list = value.Find("list")->AsList();
  ASSERT_EQ(list.size(), 7u);
  EXPECT_EQ(list[0].kind(), Value::Kind::kInt);
  EXPECT_EQ(list[1].kind(), Value::Kind::kFloat);
  EXPECT_EQ(list[2].kind(), Value::Kind::kString);
  EXPECT_EQ(list[3].kind(), Value::Kind::kBool);
  EXPECT_EQ(list[4].kind(), Value::Kind::kNull);
  EXPECT_EQ(list[5].kind(), Value::Kind::kMap);
  EXPECT_EQ(list[5].AsMap().front().first, "b");
  EXPECT_EQ(list[6].kind(), Value::Kind::kList);
  EXPECT_EQ(value.FindPath("nested.y")->kind(), Value::Kind::kMap);
  EXPECT_EQ(value.FindPath("nested.x")->kind(), Value::Kind::kList);
  EXPECT_EQ(value.FindPath("nested.w")->AsMap().front().first, "later");

  const auto back = ToJson(value);
  EXPECT_EQ(back, json);
  EXPECT_EQ(back.dump(), json.dump());  // same order, 2.0 still a float, "4" still a string
  EXPECT_TRUE(back["whole"].is_number_float());
  EXPECT_TRUE(back["zeta"].is_number_integer());
  EXPECT_TRUE(back["text"].is_string());
}

TEST(ValueJsonTest, ValueToJsonAndBack) {
  const Value value(Value::Map{
      {"s", Value("yes")},
      {"i", Value(std::int64_t{-3})},
      {"f", Value(3.0)},
      {"b", Value(false)},
      {"n", Value()},
      {"l", Value(Value::List{Value(1), Value("1"), Value(1.0)})},
      {"m", Value::EmptyMap()},
  });
  const auto json = ToJson(value);
  EXPECT_EQ(json.dump(), R"({"s":"yes","i":-3,"f":3.0,"b":false,"n":null,"l":[1,"1",1.0],"m":{}})");
  const Value back = FromJson(json);
  EXPECT_EQ(back, value);
  // operator== takes 3 and 3.0 as equal; the kinds must survive as well.
  EXPECT_EQ(back.Find("i")->kind(), Value::Kind::kInt);
  EXPECT_EQ(back.Find("f")->kind(), Value::Kind::kFloat);
  EXPECT_EQ(back.Find("s")->kind(), Value::Kind::kString);
  EXPECT_EQ(back.Find("l")->AsList()[0].kind(), Value::Kind::kInt);
  EXPECT_EQ(back.Find("l")->AsList()[1].kind(), Value::Kind::kString);
  EXPECT_EQ(back.Find("l")->AsList()[2].kind(), Value::Kind::kFloat);
  EXPECT_EQ(back.Find("m")->kind(), Value::Kind::kMap);
  EXPECT_EQ(EmitYaml(back), EmitYaml(value));
}

// JSON integers above INT64_MAX are unsigned in nlohmann::json: FromJson must not wrap them to
// negative numbers (the upgrade API passes customer values through it; the renderer then refuses
// the out-of-range value by name).
TEST(ValueJsonTest, IntegersAboveInt64MaxDoNotWrapNegative) {
  for (const char* text : {"18446744073709551615", "9223372036854775808"}) {
    const Value value = FromJson(nlohmann::ordered_json::parse(text));
    const bool wrapped = value.IsInt() && value.AsInt() < 0;
    EXPECT_FALSE(wrapped) << text << " became " << (value.IsInt() ? value.AsInt() : 0);
  }
}

// ---------------------------------------------------------------------------------------------
// ServiceMetrics

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// The text exposition format, enough of it for these tests (label values may hold '{', '}', ',').
std::vector<Sample> ParseExposition(const std::string& text) {
  std::vector<Sample> samples;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    Sample sample;
    std::size_t i = line.find_first_of("{ ");
    if (i == std::string::npos) throw std::runtime_error("bad sample line: " + line);
    sample.name = line.substr(0, i);
    if (line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const auto eq = line.find("=\"", i);
        if (eq == std::string::npos) throw std::runtime_error("bad labels: " + line);
        const std::string key = line.substr(i, eq - i);
        std::string value;
        for (i = eq + 2; i < line.size() && line[i] != '"'; ++i) {
          if (line[i] == '\\' && i + 1 < line.size()) {
            ++i;
            value += line[i] == 'n' ? '\n' : line[i];
          } else {
            value += line[i];
          }
        }
        ++i;  // the closing quote
        if (i < line.size() && line[i] == ',') ++i;
        sample.labels[key] = value;
      }
      ++i;  // '}'
    }
    sample.value = std::stod(line.substr(i));
    samples.push_back(std::move(sample));
  }
  return samples;
}

// The value of the one sample `name` with exactly `labels`; nullopt if there is none.
std::optional<double> Find(const std::vector<Sample>& samples, const std::string& name,
                           const std::map<std::string, std::string>& labels) {
  std::optional<double> found;
  for (const auto& sample : samples) {
    if (sample.name != name || sample.labels != labels) continue;
    if (found) throw std::runtime_error("duplicate series " + name);
    found = sample.value;
  }
  return found;
}

constexpr const char* kPhases[] = {"Pending", "Deploying", "Ready",
                                   "Failed",  "Deleting",  "Deleted"};
constexpr char kDeployments[] = "iotistic_provisioner_deployments";
constexpr char kStoreUp[] = "iotistic_provisioner_store_up";

TEST(ServiceMetricsTest, EveryPhaseIsExportedWithZeroWhenTheStoreHasNone) {
  ServiceMetrics metrics;
  std::map<std::string, std::int64_t> counts = {{"Ready", 3}, {"Failed", 2}};
  metrics.SetPhaseSource([&] { return counts; });
  auto samples = ParseExposition(metrics.Serialize());
  EXPECT_EQ(Find(samples, kDeployments, {{"phase", "Ready"}}), 3.0);
  EXPECT_EQ(Find(samples, kDeployments, {{"phase", "Failed"}}), 2.0);
  EXPECT_EQ(Find(samples, kDeployments, {{"phase", "Pending"}}), 0.0);
  EXPECT_EQ(Find(samples, kStoreUp, {}), 1.0);

  counts.clear();  // no deployments at all: every phase is 0, not absent or stale
  samples = ParseExposition(metrics.Serialize());
  for (const char* phase : kPhases) {
    EXPECT_EQ(Find(samples, kDeployments, {{"phase", phase}}), 0.0) << phase;
  }
  EXPECT_EQ(Find(samples, kStoreUp, {}), 1.0);
}

TEST(ServiceMetricsTest, BuildInfoNamesTheVersionAndRevision) {
  ServiceMetrics metrics;
  const auto samples = ParseExposition(metrics.Serialize());
  EXPECT_EQ(
      Find(samples, "iotistic_provisioner_build_info",
           {{"version", billing::common::Version()}, {"revision", billing::common::Revision()}}),
      1.0);
  EXPECT_FALSE(billing::common::Version().empty());
  EXPECT_FALSE(billing::common::Revision().empty());
}

TEST(ServiceMetricsTest, EveryPhaseIsExportedBeforeAnySource) {
  ServiceMetrics metrics;
  const auto samples = ParseExposition(metrics.Serialize());
  for (const char* phase : kPhases) {
    EXPECT_EQ(Find(samples, kDeployments, {{"phase", phase}}), 0.0) << phase;
  }
  EXPECT_EQ(Find(samples, "iotistic_provisioner_usage_runs_total", {{"result", "success"}}), 0.0);
  EXPECT_EQ(Find(samples, "iotistic_provisioner_usage_runs_total", {{"result", "error"}}), 0.0);
}

TEST(ServiceMetricsTest, StoreDownWhenTheSourceThrows) {
  ServiceMetrics metrics;
  bool fail = false;
  metrics.SetPhaseSource([&]() -> std::map<std::string, std::int64_t> {
    if (fail) throw std::runtime_error("connection refused");
    return {{"Ready", 4}};
  });
  auto samples = ParseExposition(metrics.Serialize());
  ASSERT_EQ(Find(samples, kStoreUp, {}), 1.0);

  fail = true;
  std::string text;
  ASSERT_NO_THROW(text = metrics.Serialize());
  samples = ParseExposition(text);
  EXPECT_EQ(Find(samples, kStoreUp, {}), 0.0);
  EXPECT_EQ(Find(samples, kDeployments, {{"phase", "Ready"}}), 4.0);  // left as it was

  fail = false;
  samples = ParseExposition(metrics.Serialize());
  EXPECT_EQ(Find(samples, kStoreUp, {}), 1.0);
}

TEST(ServiceMetricsTest, CountersCarryTheirLabels) {
  ServiceMetrics metrics;
  const std::string route = "/api/customers/{id}/deployment/status";
  metrics.ObserveHttp(route, "GET", 200, 0.01);
  metrics.ObserveHttp(route, "GET", 200, 0.02);
  metrics.ObserveHttp(route, "GET", 404, 0.001);
  metrics.ObserveHttp("/api/customers/signup", "POST", 429, 0.003);
  metrics.ObserveKubeRequest("PATCH", 0, 30);
  metrics.ObserveKubeRequest("GET", 200, 0.004);
  metrics.CountApplyError("StatefulSet", 422);
  metrics.CountReconcile("Ready");
  metrics.CountReconcile("Ready");
  metrics.CountReconcile("Failed");
  metrics.CountUsageRun(true, 1'700'000'000);
  metrics.CountUsageRun(false, 1'700'000'300);

  const auto samples = ParseExposition(metrics.Serialize());
  const std::string http = "iotistic_provisioner_http_requests_total";
  EXPECT_EQ(Find(samples, http, {{"route", route}, {"method", "GET"}, {"code", "200"}}), 2.0);
  EXPECT_EQ(Find(samples, http, {{"route", route}, {"method", "GET"}, {"code", "404"}}), 1.0);
  EXPECT_EQ(Find(samples, http,
                 {{"route", "/api/customers/signup"}, {"method", "POST"}, {"code", "429"}}),
            1.0);
  EXPECT_EQ(
      Find(samples, "iotistic_provisioner_http_request_duration_seconds_count", {{"route", route}}),
      3.0);
  EXPECT_EQ(Find(samples, "iotistic_provisioner_http_request_duration_seconds_bucket",
                 {{"route", route}, {"le", "0.005"}}),
            1.0);
  const std::string kube = "iotistic_provisioner_kube_requests_total";
  EXPECT_EQ(Find(samples, kube, {{"method", "PATCH"}, {"code", "0"}}), 1.0);
  EXPECT_EQ(Find(samples, kube, {{"method", "GET"}, {"code", "200"}}), 1.0);
  EXPECT_EQ(Find(samples, "iotistic_provisioner_kube_request_duration_seconds_count",
                 {{"method", "PATCH"}}),
            1.0);
  EXPECT_EQ(Find(samples, "iotistic_provisioner_apply_errors_total",
                 {{"kind", "StatefulSet"}, {"code", "422"}}),
            1.0);
  const std::string steps = "iotistic_provisioner_reconcile_steps_total";
  EXPECT_EQ(Find(samples, steps, {{"phase", "Ready"}}), 2.0);
  EXPECT_EQ(Find(samples, steps, {{"phase", "Failed"}}), 1.0);
  const std::string runs = "iotistic_provisioner_usage_runs_total";
  EXPECT_EQ(Find(samples, runs, {{"result", "success"}}), 1.0);
  EXPECT_EQ(Find(samples, runs, {{"result", "error"}}), 1.0);
  // A failed run does not move the last success.
  EXPECT_EQ(Find(samples, "iotistic_provisioner_usage_last_success_timestamp_seconds", {}),
            1'700'000'000.0);
}

// ---------------------------------------------------------------------------------------------
// LoginThrottle

TEST(LoginThrottleTest, TheTenthFailureInTheWindowRefusesUntilTheOldestLeavesIt) {
  LoginThrottle throttle(10, 900);
  for (int i = 0; i < 9; ++i) throttle.RecordFailure("account a", 100.0 + i);
  EXPECT_FALSE(throttle.RetryAfter("account a", 109));
  throttle.RecordFailure("account a", 109);
  const auto wait = throttle.RetryAfter("account a", 110);
  ASSERT_TRUE(wait);
  EXPECT_DOUBLE_EQ(*wait, 100 + 900 - 110);
  EXPECT_FALSE(throttle.RetryAfter("account b", 110)) << "keys are counted apart";
  EXPECT_FALSE(throttle.RetryAfter("account a", 1000.5)) << "the oldest failure left the window";
}

TEST(LoginThrottleTest, KeysAreBoundedAndExpiredOnesMakeRoom) {
  LoginThrottle throttle(1, 10, 2);
  throttle.RecordFailure("a", 0);
  throttle.RecordFailure("b", 0);
  throttle.RecordFailure("c", 1);  // full of live keys: not tracked
  EXPECT_FALSE(throttle.RetryAfter("c", 1));
  throttle.RecordFailure("c", 20);  // a and b expired: room again
  EXPECT_TRUE(throttle.RetryAfter("c", 20));
}

}  // namespace
}  // namespace billing::provisioner

// The audit trail keeps what was asked, never a secret (audit.h).
TEST(AuditRedaction, EverySecretChartValueIsRedactedAtAnyDepth) {
  for (const auto path : billing::provisioner::kSecretChartValuePaths) {
    nlohmann::json values = nlohmann::json::object();
    nlohmann::json* at = &values;
    std::string rest(path);
    for (auto dot = rest.find('.'); dot != std::string::npos; dot = rest.find('.')) {
      at = &(*at)[rest.substr(0, dot)];
      rest = rest.substr(dot + 1);
    }
    (*at)[rest] = "s3cret-value";
    const auto recorded = billing::provisioner::RedactedRequest(
        "", nlohmann::json{{"values", values}, {"list", {values}}}.dump());
    EXPECT_EQ(recorded.dump().find("s3cret-value"), std::string::npos) << path;
    EXPECT_NE(recorded.dump().find("[redacted]"), std::string::npos) << path;
  }
}

TEST(AuditRedaction, KeepsWhatIsNotSecretAndOnlyCountsABodyThatIsNotJson) {
  using billing::provisioner::RedactedRequest;
  const auto recorded =
      RedactedRequest("purge=true&access_token=abc",
                      R"({"email":"a@example.com","password":"pw","Refresh_Token":"t",
        "license":{"plan":"pro","validity_days":30},"license_key":"jwt","a\u0000b":"x\u0000y"})");
  EXPECT_EQ(recorded["query"]["purge"], "true");
  EXPECT_EQ(recorded["query"]["access_token"], "[redacted]");
  EXPECT_EQ(recorded["body"]["email"], "a@example.com");
  EXPECT_EQ(recorded["body"]["password"], "[redacted]");
  EXPECT_EQ(recorded["body"]["Refresh_Token"], "[redacted]");
  EXPECT_EQ(recorded["body"]["license"]["plan"], "pro");
  EXPECT_EQ(recorded["body"]["license_key"], "[redacted]");
  // jsonb refuses NUL: no request can make its own entry fail.
  EXPECT_EQ(recorded.dump().find("\\u0000"), std::string::npos) << recorded.dump();
  EXPECT_EQ(RedactedRequest("", "password=hunter2"), (nlohmann::json{{"body_bytes", 16}}));
  EXPECT_EQ(RedactedRequest("", ""), nlohmann::json::object());
}

TEST(AuditRedaction, OnlyStateChangingCallsOnKnownRoutesAreAudited) {
  using billing::provisioner::IsAudited;
  EXPECT_TRUE(IsAudited("POST", "/api/customers/signup", 201, "admin:PROVISIONER_ADMIN_TOKEN"));
  EXPECT_TRUE(IsAudited("POST", "/api/customers/signup", 202, "none"));
  EXPECT_TRUE(IsAudited("DELETE", "/api/customers/{id}/deployment", 403, "customer:acme"));
  EXPECT_FALSE(IsAudited("GET", "/api/audit", 200, "admin:ops"));
  EXPECT_FALSE(IsAudited("HEAD", "/api/customers/{id}/usage", 200, "admin:ops"));
  EXPECT_FALSE(IsAudited("OPTIONS", "/api/customers/signup", 204, "none"));
  EXPECT_FALSE(IsAudited("POST", "other", 404, "admin:ops"));
  EXPECT_FALSE(IsAudited("POST", "/api/customers/login", 429, "none"));
}

// Someone without a credential cannot make the provisioner write: every refusal of an anonymous
// call is only counted. Someone with one (or with a revoked one) is on record whatever the answer.
TEST(AuditRedaction, AnonymousRefusalsAreNotWrittenButAnyCredentialsAre) {
  using billing::provisioner::IsAudited;
  for (const int status : {400, 401, 404, 405, 409, 413, 415, 422}) {
    EXPECT_FALSE(IsAudited("POST", "/api/customers/login", status, "none")) << status;
    EXPECT_FALSE(IsAudited("DELETE", "/api/admin/tokens/{name}", status, "invalid")) << status;
    EXPECT_TRUE(IsAudited("DELETE", "/api/admin/tokens/{name}", status, "revoked:ci")) << status;
    EXPECT_TRUE(
        IsAudited("POST", "/api/customers/{id}/deployment/upgrade", status, "customer:acme"))
        << status;
  }
  EXPECT_TRUE(IsAudited("POST", "/api/customers/login", 200, "none"));
  EXPECT_TRUE(IsAudited("POST", "/api/customers/verify", 201, "invalid"));
}

TEST(AuditRedaction, TheRecordedClientIsAlwaysPrintableText) {
  using billing::provisioner::AuditedClient;
  EXPECT_EQ(AuditedClient("127.0.0.1", ""), "127.0.0.1");
  EXPECT_EQ(AuditedClient("10.0.0.7", "203.0.113.9"), "10.0.0.7 (X-Forwarded-For: 203.0.113.9)");
  // PostgreSQL refuses invalid UTF-8: such a header could otherwise keep a call out of the trail.
  EXPECT_EQ(AuditedClient("10.0.0.7", "\xff\xfe\n1.2.3.4"),
            "10.0.0.7 (X-Forwarded-For: ???1.2.3.4)");
  const auto long_header = AuditedClient("10.0.0.7", std::string(1000, 'a'));
  EXPECT_EQ(long_header.size(), std::string("10.0.0.7 (X-Forwarded-For: )").size() + 256);
}

TEST(AuditRedaction, ABodyNestedDeeperThanAnyRequestIsCutShort) {
  std::string deep;
  for (int i = 0; i < 5000; ++i) deep += R"({"a":)";
  deep += "1" + std::string(5000, '}');
  const auto recorded = billing::provisioner::RedactedRequest("", deep);
  const auto text = recorded.dump();
  EXPECT_NE(text.find("[nested too deep]"), std::string::npos);
  EXPECT_LT(text.size(), 400u) << text;
}
