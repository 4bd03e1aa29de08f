// Customer accounts end to end: login, access and refresh tokens, customer-scoped reads and the
// brute-force limits, against the real binary, a real PostgreSQL store and the Kubernetes API
// test double (tests/support/kube_api_double.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <regex>

#include "identity.h"
#include "kube_api_double.h"
#include "testbed.h"

namespace billing::testbed {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr char kAdminToken[] = "test-admin-token-0123456789";
constexpr char kPassword[] = "correct horse battery staple 42";

class AccountsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    postgres_ = std::make_unique<PostgresServer>();
    keys_ = std::make_unique<TempDir>("accounts-keys");
    for (const auto& command : std::vector<std::vector<std::string>>{
             {"openssl", "genpkey", "-algorithm", "ed25519", "-out",
              (keys_->path() / "signing-key.pem").string()},
             {"openssl", "rand", "-hex", "-out", (keys_->path() / "encryption.key").string(), "32"},
             {"openssl", "rand", "-hex", "-out", (keys_->path() / "token.key").string(), "32"}}) {
      const auto made = RunCommand(command);
      ASSERT_EQ(made.exit_code, 0) << made.output;
    }
  }
  static void TearDownTestSuite() {
    postgres_.reset();
    keys_.reset();
  }

  void SetUp() override {
    static int counter = 0;
    database_ = "accounts_" + std::to_string(++counter);
    postgres_->CreateDatabase(database_);
    dir_ = std::make_unique<TempDir>("accounts-test");
    kube_ = std::make_unique<KubeApiDouble>();
    kube_->WriteKubeconfig(dir_->path() / "kubeconfig");
    port_ = FreePort();
  }

  void TearDown() override {
    if (HasFailure() && provisioner_) std::cerr << "provisioner log:\n" << provisioner_->Log();
    provisioner_.reset();
  }

  void StartProvisioner(std::vector<std::pair<std::string, std::string>> extra_env = {}) {
    Launch(std::move(extra_env));
    ASSERT_TRUE(WaitFor(
        [&] { return !provisioner_->Running() || HttpGet(Url("/healthz")).status == 200; }, 20s));
    ASSERT_TRUE(provisioner_->Running()) << provisioner_->Log();
  }

  void Launch(std::vector<std::pair<std::string, std::string>> extra_env) {
    std::vector<std::pair<std::string, std::string>> env = {
        {"PROVISIONER_ADMIN_TOKEN", kAdminToken},
        {"DATABASE_URL", postgres_->Url(database_)},
        {"LICENSE_SIGNING_KEY_FILE", (keys_->path() / "signing-key.pem").string()},
        {"PROVISIONER_ENCRYPTION_KEY_FILE", (keys_->path() / "encryption.key").string()},
        {"PROVISIONER_TOKEN_KEY_FILE", (keys_->path() / "token.key").string()},
        {"PROVISIONER_DOMAIN_BASE", "iot.example.com"},
        {"KUBECONFIG", (dir_->path() / "kubeconfig").string()},
        {"PROVISIONER_CHART_DIR",
         std::string(BILLING_SOURCE_DIR) + "/manifests/charts/customer-instance"},
        {"PROVISIONER_POLL_INTERVAL", "200ms"},
        {"PROVISIONER_SIGNUP_BURST", "100"}};
    for (auto& entry : extra_env) {
      std::erase_if(env, [&](const auto& e) { return e.first == entry.first; });
      env.push_back(std::move(entry));
    }
    static int starts = 0;
    provisioner_ = std::make_unique<Process>(Process::Options{
        {PROVISIONER_PATH, "serve", "--listen", "127.0.0.1:" + std::to_string(port_),
         "--health-listen", "127.0.0.1:" + std::to_string(FreePort())},
        env,
        {"PROMETHEUS_URL"},
        dir_->path() / ("provisioner-" + std::to_string(++starts) + ".log"),
        std::nullopt});
  }

  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  /// `admin`: with the platform operator's bearer token.
  HttpResponse Post(const std::string& path, const json& body, bool admin = false) {
    std::vector<std::string> headers = {"Content-Type: application/json", "Expect:"};
    if (admin) headers.push_back(std::string("Authorization: Bearer ") + kAdminToken);
    return HttpRequest("POST", Url(path), body.dump(), headers);
  }

  HttpResponse Get(const std::string& path, const std::string& bearer) {
    return HttpGet(Url(path), {"Authorization: Bearer " + bearer});
  }

  static json SignupBody(const std::string& email, const std::string& company) {
    return {{"email", email}, {"password", kPassword}, {"company_name", company}};
  }

  /// The operator signs a customer up (deployed at once); the 201 body (customer_id,
  /// access_token, refresh_token, ...).
  json Signup(const std::string& email, const std::string& company) {
    const auto response = Post("/api/customers/signup", SignupBody(email, company), true);
    EXPECT_EQ(response.status, 201) << response.body;
    return json::parse(response.body, nullptr, false);
  }

  /// `forwarded_for`: the client address an ingress would report (X-Forwarded-For).
  HttpResponse Login(const std::string& email, const std::string& password,
                     const std::string& forwarded_for = "") {
    std::vector<std::string> headers = {"Content-Type: application/json", "Expect:"};
    if (!forwarded_for.empty()) headers.push_back("X-Forwarded-For: " + forwarded_for);
    return HttpRequest("POST", Url("/api/customers/login"),
                       json{{"email", email}, {"password", password}}.dump(), headers);
  }

  static std::string StatusPath(const std::string& id) {
    return "/api/customers/" + id + "/deployment/status";
  }
  static std::string UsagePath(const std::string& id) {
    return "/api/customers/" + id + "/usage?from=0&to=3600";
  }

  double Verifications() {
    const auto metrics = HttpGet(Url("/metrics")).body;
    static const std::regex line(
        R"((?:^|\n)iotistic_provisioner_password_verifications_total ([0-9.e+]+))");
    std::smatch match;
    if (!std::regex_search(metrics, match, line)) {
      ADD_FAILURE() << "no password verification counter in /metrics";
      return -1;
    }
    return std::stod(match[1]);
  }

  static std::unique_ptr<PostgresServer> postgres_;
  static std::unique_ptr<TempDir> keys_;
  std::string database_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<KubeApiDouble> kube_;
  std::unique_ptr<Process> provisioner_;
  int port_ = 0;
};

std::unique_ptr<PostgresServer> AccountsTest::postgres_;
std::unique_ptr<TempDir> AccountsTest::keys_;

TEST_F(AccountsTest, ACustomerTokenReadsItsOwnStatusAndUsageAndNobodyElses) {
  StartProvisioner();
  const auto john = Signup("john@example.com", "Acme");
  const auto jane = Signup("jane@example.com", "Globex");
  ASSERT_TRUE(john.contains("access_token")) << john.dump();
  const std::string id = john["customer_id"];
  const std::string other = jane["customer_id"];
  EXPECT_EQ(john["expires_in"], 900);

  // The signup's token, then a login's.
  EXPECT_EQ(Get(StatusPath(id), john["access_token"]).status, 200);
  const auto login = Login("John@Example.com", kPassword);
  ASSERT_EQ(login.status, 200) << login.body;
  const auto tokens = json::parse(login.body);
  EXPECT_EQ(tokens["customer_id"], id);
  const std::string token = tokens["access_token"];
  const auto status = Get(StatusPath(id), token);
  ASSERT_EQ(status.status, 200) << status.body;
  EXPECT_EQ(json::parse(status.body)["customer_id"], id);
  EXPECT_EQ(Get(UsagePath(id), token).status, 200);

  // Another customer's id answers exactly what an unknown one does.
  const auto theirs = Get(StatusPath(other), token);
  const auto unknown = Get(StatusPath("nobody-abc123"), token);
  EXPECT_EQ(theirs.status, 404);
  EXPECT_EQ(theirs.body, std::regex_replace(unknown.body, std::regex("nobody-abc123"), other));
  EXPECT_EQ(Get(UsagePath(other), token).status, 404);

  // Changing or deleting stays with the admin; the admin token still reads everything.
  EXPECT_EQ(HttpRequest("DELETE", Url("/api/customers/" + id + "/deployment"), "",
                        {"Authorization: Bearer " + token})
                .status,
            401);
  EXPECT_EQ(HttpRequest("POST", Url("/api/customers/" + id + "/deployment/upgrade"), "{}",
                        {"Authorization: Bearer " + token, "Content-Type: application/json"})
                .status,
            401);
  EXPECT_EQ(HttpRequest("POST", Url("/api/customers/" + id + "/deployment/restore"), "",
                        {"Authorization: Bearer " + token})
                .status,
            401);
  EXPECT_EQ(Get(StatusPath(other), kAdminToken).status, 200);

  // A forged token (another customer's claims under this token's signature) is nobody.
  auto parts = [](const std::string& jwt) {
    const auto first = jwt.find('.');
    const auto second = jwt.find('.', first + 1);
    return std::array<std::string, 3>{
        jwt.substr(0, first), jwt.substr(first + 1, second - first - 1), jwt.substr(second + 1)};
  };
  const auto mine = parts(token);
  const auto forged = mine[0] + "." + parts(jane["access_token"])[1] + "." + mine[2];
  EXPECT_EQ(Get(StatusPath(other), forged).status, 401);
  EXPECT_EQ(Get(StatusPath(id), "not-a-token").status, 401);
}

TEST_F(AccountsTest, AnAccessTokenExpiresAfterItsTtl) {
  StartProvisioner({{"PROVISIONER_ACCESS_TOKEN_TTL", "1s"}});
  const auto john = Signup("john@example.com", "Acme");
  const std::string id = john["customer_id"];
  EXPECT_EQ(john["expires_in"], 1);
  const std::string token = john["access_token"];
  // Polled: the token is good until its second is over, then refused for good.
  ASSERT_TRUE(WaitFor([&] { return Get(StatusPath(id), token).status == 401; }, 10s, 100ms));
  const auto expired = Get(StatusPath(id), token);
  EXPECT_EQ(expired.status, 401);
  EXPECT_NE(expired.headers.count("www-authenticate"), 0u);
}

TEST_F(AccountsTest, RefreshRotatesAndLogoutRevokes) {
  StartProvisioner();
  const auto john = Signup("john@example.com", "Acme");
  const std::string id = john["customer_id"];
  const std::string first = john["refresh_token"];

  const auto refreshed = Post("/api/customers/refresh", {{"refresh_token", first}});
  ASSERT_EQ(refreshed.status, 200) << refreshed.body;
  const auto pair = json::parse(refreshed.body);
  const std::string second = pair["refresh_token"];
  EXPECT_NE(second, first);
  EXPECT_EQ(Get(StatusPath(id), pair["access_token"]).status, 200);

  // The old one was revoked by its use: a replay is refused.
  EXPECT_EQ(Post("/api/customers/refresh", {{"refresh_token", first}}).status, 401);
  EXPECT_EQ(Post("/api/customers/refresh", {{"refresh_token", "made-up"}}).status, 401);
  EXPECT_EQ(Post("/api/customers/refresh", json::object()).status, 400);

  // Logout revokes a live token.
  const auto login =
      Post("/api/customers/login", {{"email", "john@example.com"}, {"password", kPassword}});
  ASSERT_EQ(login.status, 200) << login.body;
  const std::string third = json::parse(login.body)["refresh_token"];
  EXPECT_EQ(Post("/api/customers/logout", {{"refresh_token", third}}).status, 200);
  EXPECT_EQ(Post("/api/customers/refresh", {{"refresh_token", third}}).status, 401);
}

TEST_F(AccountsTest, AReplayedRefreshTokenRevokesItsCustomersLiveTokens) {
  StartProvisioner();
  const auto john = Signup("john@example.com", "Acme");
  const std::string stolen = john["refresh_token"];
  const auto refreshed = Post("/api/customers/refresh", {{"refresh_token", stolen}});
  ASSERT_EQ(refreshed.status, 200) << refreshed.body;
  const std::string successor = json::parse(refreshed.body)["refresh_token"];
  const auto jane = Signup("jane@example.com", "Globex");

  EXPECT_EQ(Post("/api/customers/refresh", {{"refresh_token", stolen}}).status, 401);
  // Whoever holds the successor may be the thief: it is revoked too, other customers' are not.
  EXPECT_EQ(Post("/api/customers/refresh", {{"refresh_token", successor}}).status, 401);
  EXPECT_EQ(Post("/api/customers/refresh", {{"refresh_token", jane["refresh_token"]}}).status, 200);
}

TEST_F(AccountsTest, WrongPasswordAndUnknownEmailLookAliveAndCostOneVerificationEach) {
  StartProvisioner();
  Signup("john@example.com", "Acme");
  const double before = Verifications();
  const auto wrong = Login("john@example.com", "not the password");
  EXPECT_EQ(Verifications(), before + 1);
  const auto unknown = Login("nobody@example.com", "not the password");
  EXPECT_EQ(Verifications(), before + 2);
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(unknown.status, wrong.status);
  EXPECT_EQ(unknown.body, wrong.body);
  EXPECT_EQ(json::parse(wrong.body)["error"], "email or password: wrong");
  EXPECT_EQ(Login("john@example.com", kPassword).status, 200);
  EXPECT_EQ(Verifications(), before + 3);
}

TEST_F(AccountsTest, TheEleventhRapidFailureIsRefusedWithRetryAfter) {
  // Behind a trusted proxy each attempt comes from its own address: only the account's limit
  // can refuse.
  StartProvisioner({{"PROVISIONER_TRUSTED_PROXIES", "127.0.0.1"}});
  Signup("john@example.com", "Acme");
  auto address = [](int n) { return "198.51.100." + std::to_string(n); };
  for (int attempt = 1; attempt <= 10; ++attempt) {
    EXPECT_EQ(
        Login("john@example.com", "guess " + std::to_string(attempt), address(attempt)).status, 401)
        << attempt;
  }
  const double before = Verifications();
  const auto refused = Login("JOHN@example.com", "guess 11", address(11));
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_NE(refused.headers.count("retry-after"), 0u);
  // Refused before any hash is computed; the right password waits too.
  EXPECT_EQ(Verifications(), before);
  EXPECT_EQ(Login("john@example.com", kPassword, address(12)).status, 429);
}

TEST_F(AccountsTest, FailuresAreAlsoCountedPerClientAddressAcrossAccounts) {
  StartProvisioner();
  for (int attempt = 1; attempt <= 10; ++attempt) {
    const auto email = "nobody" + std::to_string(attempt) + "@example.com";
    EXPECT_EQ(Login(email, "guess").status, 401) << attempt;
  }
  const auto refused = Login("someone-else@example.com", "guess");
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_NE(refused.headers.count("retry-after"), 0u);
}

TEST_F(AccountsTest, APasswordChangeNeedsTheOldPasswordAndEndsEverySession) {
  StartProvisioner();
  const auto john = Signup("john@example.com", "Acme");
  const std::string id = john["customer_id"];
  const std::string access = john["access_token"];
  const auto other_session = json::parse(Login("john@example.com", kPassword).body);
  constexpr char kNewPassword[] = "a new and longer passphrase 7";

  auto change = [&](const std::string& bearer, const json& body) {
    return HttpRequest(
        "POST", Url("/api/customers/password"), body.dump(),
        {"Content-Type: application/json", "Expect:", "Authorization: Bearer " + bearer});
  };
  // Only the customer's own token; the admin token is nobody's password.
  EXPECT_EQ(
      change(kAdminToken, {{"current_password", kPassword}, {"new_password", kNewPassword}}).status,
      401);
  const double before = Verifications();
  const auto wrong =
      change(access, {{"current_password", "not the password"}, {"new_password", kNewPassword}});
  EXPECT_EQ(wrong.status, 403) << wrong.body;
  EXPECT_EQ(json::parse(wrong.body)["error"], "current_password: wrong");
  EXPECT_EQ(Verifications(), before + 1);
  // The rules of signup, named by this field; refused before any hash is computed.
  const auto common =
      change(access, {{"current_password", kPassword}, {"new_password", "Password1234"}});
  EXPECT_EQ(common.status, 400) << common.body;
  EXPECT_NE(json::parse(common.body)["error"].get<std::string>().find("new_password: "),
            std::string::npos);
  EXPECT_EQ(Verifications(), before + 1);

  const auto changed =
      change(access, {{"current_password", kPassword}, {"new_password", kNewPassword}});
  ASSERT_EQ(changed.status, 200) << changed.body;
  const auto fresh = json::parse(changed.body);
  EXPECT_EQ(fresh["password_changed"], true);
  // The answer's pair works; every refresh token from before is dead (presenting one counts as a
  // replay, which ends the new session too: so it is checked last).
  EXPECT_EQ(Get(StatusPath(id), fresh["access_token"]).status, 200);
  EXPECT_EQ(Post("/api/customers/refresh", {{"refresh_token", fresh["refresh_token"]}}).status,
            200);
  EXPECT_EQ(Post("/api/customers/refresh", {{"refresh_token", john["refresh_token"]}}).status, 401);
  EXPECT_EQ(
      Post("/api/customers/refresh", {{"refresh_token", other_session["refresh_token"]}}).status,
      401);
  EXPECT_EQ(Login("john@example.com", kPassword).status, 401);
  EXPECT_EQ(Login("john@example.com", kNewPassword).status, 200);
}

TEST_F(AccountsTest, SignupRefusesTheMostCommonPasswords) {
  StartProvisioner();
  const auto refused =
      Post("/api/customers/signup",
           {{"email", "john@example.com"}, {"password", "QwertyUiop123"}, {"company_name", "Acme"}},
           true);
  EXPECT_EQ(refused.status, 400) << refused.body;
  const std::string error = json::parse(refused.body)["error"];
  EXPECT_TRUE(error.starts_with("password: is one of the most common passwords")) << error;
  EXPECT_EQ(error.find("QwertyUiop123"), std::string::npos);  // never echoed
}

TEST_F(AccountsTest, ALoginReHashesAPasswordStoredAtAnOlderCost) {
  StartProvisioner();
  const auto john = Signup("john@example.com", "Acme");
  const std::string id = john["customer_id"];
  // What an older release stored: Argon2id at a fifth of today's memory and one pass.
  const std::string weak = provisioner::HashPassword(kPassword, {4096, 1, 1});
  ASSERT_TRUE(weak.starts_with("$argon2id$v=19$m=4096,t=1,p=1$")) << weak;
  postgres_->Psql("UPDATE customers SET password_hash = '" + weak + "' WHERE id = '" + id + "'",
                  database_);
  auto stored = [&] {
    return postgres_->Psql("SELECT password_hash FROM customers WHERE id = '" + id + "'",
                           database_);
  };
  ASSERT_TRUE(stored().starts_with("$argon2id$v=19$m=4096,t=1,p=1$"));

  EXPECT_EQ(Login("john@example.com", "not the password").status, 401);
  EXPECT_TRUE(stored().starts_with("$argon2id$v=19$m=4096,t=1,p=1$")) << "a failed login re-hashed";
  ASSERT_EQ(Login("john@example.com", kPassword).status, 200);
  EXPECT_TRUE(stored().starts_with("$argon2id$v=19$m=19456,t=2,p=1$")) << stored();
  EXPECT_EQ(Login("john@example.com", kPassword).status, 200);
}

TEST_F(AccountsTest, WithoutAnSmtpRelayThereIsNoPasswordReset) {
  StartProvisioner();
  const auto refused = Post("/api/customers/password/reset", {{"email", "john@example.com"}});
  EXPECT_EQ(refused.status, 503) << refused.body;
}

TEST_F(AccountsTest, APasswordResetLinkByMailWorksOnceAndEndsEverySession) {
  SmtpServer smtp;
  StartProvisioner({{"PROVISIONER_SMTP_URL", smtp.Url()},
                    {"PROVISIONER_MAIL_FROM", "billing@iot.example.com"},
                    {"PROVISIONER_PUBLIC_URL", "https://signup.iot.example.com/"}});
  const auto john = Signup("john@example.com", "Acme");
  const std::string id = john["customer_id"];

  // Known and unknown addresses get the same answer; only the known one gets mail.
  const auto unknown = Post("/api/customers/password/reset", {{"email", "nobody@example.com"}});
  const auto known = Post("/api/customers/password/reset", {{"email", "JOHN@example.com"}});
  EXPECT_EQ(known.status, 202) << known.body;
  EXPECT_EQ(unknown.status, known.status);
  EXPECT_EQ(unknown.body, known.body);
  ASSERT_TRUE(WaitFor([&] { return !smtp.Messages().empty(); }, 20s)) << provisioner_->Log();
  const std::string mail = smtp.Messages().front();
  EXPECT_NE(mail.find("To: john@example.com"), std::string::npos) << mail;
  EXPECT_NE(mail.find("From: billing@iot.example.com"), std::string::npos) << mail;
  std::smatch link;
  ASSERT_TRUE(std::regex_search(
      mail, link,
      std::regex(R"(https://signup\.iot\.example\.com/reset-password\?token=([A-Za-z0-9_-]+))")))
      << mail;
  const std::string token = link[1];

  constexpr char kNewPassword[] = "chosen after a reset, 2026";
  const auto weak =
      Post("/api/customers/password/reset/confirm", {{"token", token}, {"new_password", "short"}});
  EXPECT_EQ(weak.status, 400) << weak.body;  // a bad new password does not use the link up
  const auto confirmed = Post("/api/customers/password/reset/confirm",
                              {{"token", token}, {"new_password", kNewPassword}});
  ASSERT_EQ(confirmed.status, 200) << confirmed.body;
  EXPECT_EQ(json::parse(confirmed.body)["customer_id"], id);
  const auto again = Post("/api/customers/password/reset/confirm",
                          {{"token", token}, {"new_password", "yet another passphrase 9"}});
  EXPECT_EQ(again.status, 400) << again.body;
  EXPECT_EQ(Post("/api/customers/refresh", {{"refresh_token", john["refresh_token"]}}).status, 401);
  EXPECT_EQ(Login("john@example.com", kPassword).status, 401);
  EXPECT_EQ(Login("john@example.com", kNewPassword).status, 200);
  EXPECT_EQ(smtp.Messages().size(), 1u);  // the unknown address got nothing
  EXPECT_EQ(Post("/api/customers/password/reset/confirm",
                 {{"token", "made-up"}, {"new_password", kNewPassword}})
                .status,
            400);
}

TEST_F(AccountsTest, WithoutAnSmtpRelayOnlyTheOperatorSignsCustomersUp) {
  StartProvisioner();
  const auto anonymous = Post("/api/customers/signup", SignupBody("john@example.com", "Acme"));
  EXPECT_EQ(anonymous.status, 401) << anonymous.body;
  EXPECT_NE(anonymous.body.find("PROVISIONER_SMTP_URL"), std::string::npos) << anonymous.body;
  EXPECT_EQ(postgres_->Psql("SELECT count(*) FROM customers", database_), "0");
  EXPECT_TRUE(kube_->Namespaces().empty());
  // The operator's signup deploys at once, and a taken address is a 409 for it.
  const auto john = Signup("john@example.com", "Acme");
  EXPECT_TRUE(john.contains("access_token")) << john.dump();
  const auto taken = Post("/api/customers/signup", SignupBody("JOHN@example.com", "Again"), true);
  EXPECT_EQ(taken.status, 409) << taken.body;
}

// A public platform: an SMTP relay verifies the addresses of anonymous signups.
class PublicSignupTest : public AccountsTest {
 protected:
  void StartPublic(std::vector<std::pair<std::string, std::string>> extra_env = {}) {
    extra_env.insert(extra_env.end(),
                     {{"PROVISIONER_SMTP_URL", smtp_.Url()},
                      {"PROVISIONER_MAIL_FROM", "billing@iot.example.com"},
                      {"PROVISIONER_PUBLIC_URL", "https://signup.iot.example.com"}});
    StartProvisioner(std::move(extra_env));
  }

  /// The `n`th mail received (from 1), once it has arrived.
  std::string Mail(std::size_t n) {
    EXPECT_TRUE(WaitFor([&] { return smtp_.Messages().size() >= n; }, 20s))
        << smtp_.Messages().size() << " mails\n"
        << provisioner_->Log();
    const auto messages = smtp_.Messages();
    return messages.size() >= n ? messages[n - 1] : "";
  }

  /// The verification token of a mail's link; empty when it has none.
  static std::string VerificationToken(const std::string& mail) {
    static const std::regex link_pattern(
        R"(https://signup\.iot\.example\.com/verify-email\?token=([A-Za-z0-9_-]+))");
    std::smatch link;
    if (!std::regex_search(mail, link, link_pattern)) return "";
    return link[1];
  }

  HttpResponse Verify(const std::string& token) {
    return Post("/api/customers/verify", {{"token", token}});
  }

  bool HasNamespace(const std::string& id) {
    const auto namespaces = kube_->Namespaces();
    return std::find(namespaces.begin(), namespaces.end(), "customer-" + id) != namespaces.end();
  }

  SmtpServer smtp_;
};

TEST_F(PublicSignupTest, NothingIsDeployedUntilTheMailedLinkIsFollowedOnce) {
  StartPublic();
  const auto accepted = Post("/api/customers/signup", SignupBody("john@example.com", "Acme"));
  ASSERT_EQ(accepted.status, 202) << accepted.body;
  EXPECT_FALSE(json::parse(accepted.body).contains("customer_id")) << accepted.body;
  const auto mail = Mail(1);
  EXPECT_NE(mail.find("To: john@example.com"), std::string::npos) << mail;
  const auto token = VerificationToken(mail);
  ASSERT_FALSE(token.empty()) << mail;
  // Awaiting verification: no customer, no namespace, no login.
  EXPECT_EQ(postgres_->Psql("SELECT count(*) FROM customers", database_), "0");
  EXPECT_EQ(postgres_->Psql("SELECT count(*) FROM pending_signups", database_), "1");
  EXPECT_TRUE(kube_->Namespaces().empty());
  EXPECT_EQ(Login("john@example.com", kPassword).status, 401);
  // The link's token is stored only as its hash.
  EXPECT_EQ(postgres_->Psql("SELECT count(*) FROM pending_signups WHERE position('" + token +
                                "' in row_to_json(pending_signups)::text) > 0",
                            database_),
            "0");

  EXPECT_EQ(Verify("made-up-token").status, 400);
  // Two uses of the link at once: exactly one creates the customer.
  auto racing = std::async(std::launch::async, [&] { return Verify(token); });
  auto verified = Verify(token);
  auto raced = racing.get();
  if (verified.status != 201) std::swap(verified, raced);
  ASSERT_EQ(verified.status, 201) << verified.body;
  EXPECT_EQ(raced.status, 400) << raced.body;
  const auto body = json::parse(verified.body);
  const std::string id = body["customer_id"];
  ASSERT_TRUE(body.contains("access_token")) << verified.body;
  EXPECT_EQ(Get(StatusPath(id), body["access_token"]).status, 200);
  ASSERT_TRUE(WaitFor([&] { return HasNamespace(id); }, 20s)) << provisioner_->Log();
  EXPECT_EQ(Login("john@example.com", kPassword).status, 200);
  // Once only.
  const auto again = Verify(token);
  EXPECT_EQ(again.status, 400) << again.body;
  EXPECT_NE(again.body.find("token"), std::string::npos) << again.body;
  EXPECT_EQ(postgres_->Psql("SELECT count(*) FROM customers", database_), "1");
  EXPECT_EQ(postgres_->Psql("SELECT count(*) FROM pending_signups", database_), "0");
}

TEST_F(PublicSignupTest, ARegisteredAddressGetsTheSameAnswerAndItsOwnerANotice) {
  StartPublic();
  Signup("john@example.com", "Acme");  // by the operator: no mail
  const auto registered = Post("/api/customers/signup", SignupBody("JOHN@example.com", "Evil"));
  const auto fresh = Post("/api/customers/signup", SignupBody("jane@example.com", "Globex"));
  EXPECT_EQ(registered.status, 202) << registered.body;
  EXPECT_EQ(registered.status, fresh.status);
  EXPECT_EQ(registered.body, fresh.body);
  const auto notice = Mail(1);
  EXPECT_NE(notice.find("To: john@example.com"), std::string::npos) << notice;
  EXPECT_NE(notice.find("already has an account"), std::string::npos) << notice;
  EXPECT_TRUE(VerificationToken(notice).empty()) << notice;
  const auto link = Mail(2);
  EXPECT_NE(link.find("To: jane@example.com"), std::string::npos) << link;
  EXPECT_FALSE(VerificationToken(link).empty()) << link;
  EXPECT_EQ(postgres_->Psql("SELECT count(*) FROM pending_signups", database_), "1");
}

TEST_F(PublicSignupTest, OneAddressGetsAtMostThreeSignupMailsAnHour) {
  StartPublic();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(Post("/api/customers/signup", SignupBody("flooded@example.com", "Flood")).status,
              202);
  }
  EXPECT_EQ(Post("/api/customers/signup", SignupBody("other@example.com", "Other")).status, 202);
  // The outbox sends in order: once the last signup's mail is there, every earlier one is too.
  const auto last = Mail(4);
  EXPECT_NE(last.find("To: other@example.com"), std::string::npos) << last;
  EXPECT_EQ(smtp_.Messages().size(), 4u);
}

TEST_F(PublicSignupTest, UnverifiedSignupsAreCappedAndExpireFreeingTheirAddress) {
  StartPublic(
      {{"PROVISIONER_MAX_UNVERIFIED_SIGNUPS", "1"}, {"PROVISIONER_SIGNUP_VERIFICATION_TTL", "2s"}});
  ASSERT_EQ(Post("/api/customers/signup", SignupBody("john@example.com", "Acme")).status, 202);
  const auto first_token = VerificationToken(Mail(1));
  ASSERT_FALSE(first_token.empty());
  const auto capped = Post("/api/customers/signup", SignupBody("john@example.com", "Acme"));
  EXPECT_EQ(capped.status, 503) << capped.body;
  EXPECT_TRUE(capped.headers.contains("retry-after"));
  EXPECT_NE(
      HttpGet(Url("/metrics"))
          .body.find("iotistic_provisioner_signups_refused_total{reason=\"unverified_cap\"} 1"),
      std::string::npos);
  // Once the first link has expired, its slot and its address are free again.
  ASSERT_TRUE(WaitFor(
      [&] {
        return Post("/api/customers/signup", SignupBody("john@example.com", "Acme")).status == 202;
      },
      20s, 250ms));
  const auto second_token = VerificationToken(Mail(2));
  ASSERT_FALSE(second_token.empty());
  EXPECT_EQ(Verify(first_token).status, 400);
  const auto verified = Verify(second_token);
  EXPECT_EQ(verified.status, 201) << verified.body;
}

TEST_F(AccountsTest, AShortOrMissingTokenKeyStopsTheStartNamingTheVariable) {
  const auto short_key = dir_->path() / "short.key";
  std::ofstream(short_key) << "too short";
  for (const auto& key : {short_key.string(), (dir_->path() / "missing.key").string()}) {
    Launch({{"PROVISIONER_TOKEN_KEY_FILE", key}});
    ASSERT_TRUE(WaitFor([&] { return !provisioner_->Running(); }, 20s)) << key;
    EXPECT_NE(provisioner_->Log().find("PROVISIONER_TOKEN_KEY_FILE: "), std::string::npos)
        << provisioner_->Log();
  }
}

// The audit trail and named admin tokens (issue 14).
class AuditTest : public AccountsTest {
 protected:
  HttpResponse Call(const std::string& method, const std::string& path, const json& body,
                    const std::string& bearer) {
    std::vector<std::string> headers = {"Content-Type: application/json", "Expect:"};
    if (!bearer.empty()) headers.push_back("Authorization: Bearer " + bearer);
    return HttpRequest(method, Url(path), body.is_null() ? "" : body.dump(), headers);
  }
  json Trail(const std::string& bearer = kAdminToken) {
    const auto response = Get("/api/audit?since=0&limit=1000", bearer);
    EXPECT_EQ(response.status, 200) << response.body;
    return json::parse(response.body, nullptr, false)["entries"];
  }
  std::string Sql(const std::string& sql) { return postgres_->Psql(sql, database_); }
};

TEST_F(AuditTest, StateChangingCallsAreRecordedWithoutTheirSecrets) {
  StartProvisioner();
  const auto customer = Signup("audit@example.com", "Audit Co");
  const std::string id = customer["customer_id"];
  const auto login = Login("audit@example.com", kPassword);
  ASSERT_EQ(login.status, 200) << login.body;
  const auto upgrade =
      Call("POST", "/api/customers/" + id + "/deployment/upgrade",
           {{"values", {{"postgres", {{"password", "chosen-db-secret"}}}}}}, kAdminToken);
  const auto suspend = Call("DELETE", "/api/customers/" + id + "/deployment", nullptr, kAdminToken);
  ASSERT_EQ(suspend.status, 202) << suspend.body;
  ASSERT_EQ(Get(StatusPath(id), kAdminToken).status, 200);  // a read: not recorded

  const auto trail = Trail();
  ASSERT_EQ(trail.size(), 4u) << trail.dump(2);
  EXPECT_EQ(trail[0]["route"], "/api/customers/signup");
  EXPECT_EQ(trail[0]["credential"], "admin:PROVISIONER_ADMIN_TOKEN");
  EXPECT_EQ(trail[0]["customer_id"], id);
  EXPECT_EQ(trail[0]["status"], 201);
  EXPECT_EQ(trail[0]["request"]["body"]["email"], "audit@example.com");
  EXPECT_EQ(trail[0]["request"]["body"]["password"], "[redacted]");
  EXPECT_EQ(trail[1]["route"], "/api/customers/login");
  EXPECT_EQ(trail[1]["credential"], "none");
  EXPECT_EQ(trail[1]["customer_id"], id);
  EXPECT_EQ(trail[2]["route"], "/api/customers/{id}/deployment/upgrade");
  EXPECT_EQ(trail[2]["status"], upgrade.status);
  EXPECT_EQ(trail[2]["customer_id"], id);
  EXPECT_EQ(trail[3]["method"], "DELETE");
  EXPECT_EQ(trail[3]["status"], 202);
  EXPECT_EQ(trail[3]["client"], "127.0.0.1");
  // Nothing secret reached the table: neither the passwords nor the tokens the answers carried.
  const auto table =
      Sql("SELECT string_agg(request::text || coalesce(error, ''), ' ') FROM audit_log");
  for (const std::string& secret :
       {std::string(kPassword), std::string("chosen-db-secret"),
        customer["refresh_token"].get<std::string>(), std::string(kAdminToken)}) {
    EXPECT_EQ(table.find(secret), std::string::npos) << secret;
  }
  // A customer's token does not read the trail.
  EXPECT_EQ(Get("/api/audit", customer["access_token"]).status, 401);
}

// PostgreSQL refuses text that is not UTF-8: a header of such bytes must not keep the call out.
TEST_F(AuditTest, AForwardedForHeaderOfAnyBytesCannotKeepACallOutOfTheTrail) {
  StartProvisioner();
  const auto signup = HttpRequest(
      "POST", Url("/api/customers/signup"), SignupBody("xff@example.com", "Xff Co").dump(),
      {"Content-Type: application/json", "Expect:", "X-Forwarded-For: \xff\xfe 198.51.100.7",
       std::string("Authorization: Bearer ") + kAdminToken});
  ASSERT_EQ(signup.status, 201) << signup.body;
  const auto trail = Trail();
  ASSERT_EQ(trail.size(), 1u) << trail.dump(2);
  EXPECT_EQ(trail[0]["client"], "127.0.0.1 (X-Forwarded-For: ?? 198.51.100.7)");
  EXPECT_EQ(trail[0]["status"], 201);
}

TEST_F(AuditTest, TheTrailIsAppendOnlyInTheDatabase) {
  StartProvisioner();
  Signup("append@example.com", "Append Co");
  for (const char* statement :
       {"UPDATE audit_log SET status = 200", "DELETE FROM audit_log", "TRUNCATE audit_log"}) {
    EXPECT_THROW(Sql(statement), std::runtime_error) << statement;
  }
  EXPECT_EQ(Sql("SELECT count(*) FROM audit_log"), "1");
  EXPECT_EQ(Trail().size(), 1u);
}

TEST_F(AuditTest, AnEntryThatCannotBeWrittenLeavesTheCallAsItWasAndIsCounted) {
  StartProvisioner();
  // The trail's table refuses every row from now on, as a full disk or a broken grant would.
  Sql("CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
      "$$ BEGIN RAISE EXCEPTION 'audit rows refused by the test'; END $$");
  Sql("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log "
      "FOR EACH ROW EXECUTE FUNCTION refuse_audit()");
  const auto customer = Signup("unaudited@example.com", "Unaudited Co");
  ASSERT_TRUE(customer.contains("customer_id")) << customer.dump();
  // The customer exists and can log in: the answer stood although its entry was lost.
  EXPECT_EQ(Login("unaudited@example.com", kPassword).status, 200);
  EXPECT_EQ(Sql("SELECT count(*) FROM audit_log"), "0");
  const auto metrics = HttpGet(Url("/metrics")).body;
  EXPECT_NE(metrics.find("iotistic_provisioner_audit_write_failures_total 2"), std::string::npos)
      << metrics;
  EXPECT_NE(provisioner_->Log().find("audit: the entry of POST /api/customers/signup (201, "
                                     "admin:PROVISIONER_ADMIN_TOKEN) could not be written"),
            std::string::npos)
      << provisioner_->Log();
}

TEST_F(AuditTest, NamedAdminTokensWorkAreNamedInTheTrailAndCanBeRevoked) {
  StartProvisioner();
  const auto created = Call("POST", "/api/admin/tokens", {{"name", "ci-deploy"}}, kAdminToken);
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string ci = json::parse(created.body)["token"];
  const auto other = Call("POST", "/api/admin/tokens", {{"name", "on-call"}}, ci);
  ASSERT_EQ(other.status, 201) << other.body;
  const std::string on_call = json::parse(other.body)["token"];
  EXPECT_EQ(Call("POST", "/api/admin/tokens", {{"name", "ci-deploy"}}, kAdminToken).status, 409);
  EXPECT_EQ(Call("POST", "/api/admin/tokens", {{"name", "Bad Name"}}, kAdminToken).status, 400);
  // Hashed at rest: the table holds no token.
  const auto stored = Sql("SELECT string_agg(name || token_hash, ' ') FROM admin_tokens");
  EXPECT_EQ(stored.find(ci.substr(7)), std::string::npos);

  const auto by_ci =
      Call("POST", "/api/customers/signup", SignupBody("ci@example.com", "CI Co"), ci);
  ASSERT_EQ(by_ci.status, 201) << by_ci.body;
  EXPECT_EQ(Call("DELETE", "/api/admin/tokens/ci-deploy", nullptr, on_call).status, 200);
  // Revoked: it opens nothing from the next request; the other tokens still work.
  EXPECT_EQ(Get("/api/audit", ci).status, 401);
  EXPECT_EQ(
      Call("POST", "/api/customers/signup", SignupBody("ci2@example.com", "CI Two"), ci).status,
      401);
  EXPECT_EQ(Get("/api/audit", on_call).status, 200);
  EXPECT_EQ(Get("/api/audit", kAdminToken).status, 200);
  EXPECT_EQ(Call("DELETE", "/api/admin/tokens/ci-deploy", nullptr, on_call).status, 404);

  const auto listed = json::parse(Get("/api/admin/tokens", on_call).body);
  ASSERT_EQ(listed["tokens"].size(), 2u) << listed.dump();
  EXPECT_EQ(listed["tokens"][0]["name"], "ci-deploy");
  EXPECT_TRUE(listed["tokens"][0]["revoked_at"].is_string());
  EXPECT_TRUE(listed["tokens"][1]["revoked_at"].is_null());
  EXPECT_EQ(listed.dump().find("iotadm_"), std::string::npos);

  std::vector<std::string> credentials;
  for (const auto& entry : Trail(on_call)) credentials.push_back(entry["credential"]);
  EXPECT_EQ(credentials,
            (std::vector<std::string>{"admin:PROVISIONER_ADMIN_TOKEN", "admin:ci-deploy",
                                      "admin:PROVISIONER_ADMIN_TOKEN",
                                      "admin:PROVISIONER_ADMIN_TOKEN", "admin:ci-deploy",
                                      "admin:on-call", "revoked:ci-deploy", "admin:on-call"}));
  // Refused for want of a credential (none, or one that opens nothing): counted by the request
  // metric, never a row, so that a flood costs no write.
  EXPECT_EQ(Call("DELETE", "/api/admin/tokens/on-call", nullptr, "").status, 401);
  EXPECT_EQ(Call("DELETE", "/api/admin/tokens/on-call", nullptr, "iotadm_made-up").status, 401);
  EXPECT_EQ(Sql("SELECT count(*) FROM audit_log WHERE status = 401 AND credential <> "
                "'revoked:ci-deploy'"),
            "0");
  // A token pasted where its name belongs is refused without being echoed or recorded.
  const auto pasted = Call("DELETE", "/api/admin/tokens/" + on_call, nullptr, on_call);
  EXPECT_EQ(pasted.status, 400) << pasted.body;
  EXPECT_EQ(pasted.body.find(on_call), std::string::npos) << pasted.body;
  EXPECT_EQ(Sql("SELECT count(*) FROM audit_log WHERE position('" + on_call +
                "' in audit_log::text) > 0"),
            "0");
}

}  // namespace
}  // namespace billing::testbed
