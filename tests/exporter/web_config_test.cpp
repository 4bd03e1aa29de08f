#include "web_config.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "basic_auth.h"
#include "billing/common/base64.h"

namespace billing::exporter {
namespace {

// Made with python3-bcrypt (an implementation independent of the libcrypt the exporter uses):
// bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4[, prefix=b"2a"])).
constexpr const char* kHash2b = "$2b$04$AZ3RAEMUfptKmRP/gqliROdw6jHc0X7.3ALTJlx6pOQTo.LU34z2y";
constexpr const char* kHash2a = "$2a$04$pBralKJJ0DuZrEhOSwBykOziaFOxZHeQytDKQdFBE8YVAXZBouNey";

WebConfig Parse(const std::string& text) {
  auto parsed = ParseWebConfig(text);
  if (!parsed.ok()) {
    ADD_FAILURE() << parsed.error();
    return {};
  }
  return parsed.value();
}

common::Error Error(const std::string& text) {
  auto parsed = ParseWebConfig(text);
  if (!parsed.ok()) return parsed.failure();
  ADD_FAILURE() << "accepted: " << text;
  return {};
}

std::string Header(const std::string& user, const std::string& password) {
  return "Basic " + common::Base64Encode(user + ":" + password);
}

TEST(WebConfigTest, ParsesTheExporterToolkitFormat) {
  const auto config = Parse(std::string("tls_server_config:\n"
                                        "  cert_file: /tls/tls.crt\n"
                                        "  key_file: /tls/tls.key\n"
                                        "  client_auth_type: RequireAndVerifyClientCert\n"
                                        "  client_ca_file: /tls/ca.crt\n"
                                        "  min_version: TLS13\n"
                                        "basic_auth_users:\n"
                                        "  prometheus: '") +
                            kHash2b + "'\n  other: '" + kHash2a + "'\n");
  ASSERT_TRUE(config.tls);
  EXPECT_EQ(config.tls->cert_file, "/tls/tls.crt");
  EXPECT_EQ(config.tls->key_file, "/tls/tls.key");
  EXPECT_EQ(config.tls->client_auth_type, "RequireAndVerifyClientCert");
  EXPECT_EQ(config.tls->client_ca_file, "/tls/ca.crt");
  EXPECT_EQ(config.tls->min_version, "TLS13");
  EXPECT_EQ(config.basic_auth_users.size(), 2u);
  EXPECT_EQ(config.basic_auth_users.at("prometheus"), kHash2b);
}

TEST(WebConfigTest, DefaultsAndEmptyFile) {
  EXPECT_FALSE(Parse("").tls);
  EXPECT_TRUE(Parse("").basic_auth_users.empty());
  const auto config = Parse("tls_server_config: {cert_file: c.pem, key_file: k.pem}\n");
  ASSERT_TRUE(config.tls);
  EXPECT_EQ(config.tls->client_auth_type, "NoClientCert");
  EXPECT_EQ(config.tls->min_version, "TLS12");
}

TEST(WebConfigTest, ErrorsNameTheFieldAndTheFix) {
  struct Case {
    std::string text;
    std::string field;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"tls_server_config: {cert_file: c.pem}\n", "tls_server_config", "key_file"},
      {"tls_server_config: {cert_file: c, key_file: k, cipher_suites: [x]}\n",
       "tls_server_config.cipher_suites", "not supported"},
      {"http_server_config: {http2: false}\n", "http_server_config", "not supported"},
      {"tls_server_config: {cert_file: c, key_file: k, client_auth_type: Maybe}\n",
       "tls_server_config.client_auth_type", "RequireAndVerifyClientCert"},
      {"tls_server_config: {cert_file: c, key_file: k, client_auth_type: "
       "RequireAndVerifyClientCert}\n",
       "tls_server_config.client_ca_file", "required"},
      {"tls_server_config: {cert_file: c, key_file: k, client_ca_file: ca}\n",
       "tls_server_config.client_auth_type", "never verifies"},
      {"tls_server_config: {cert_file: c, key_file: k, min_version: TLS10}\n",
       "tls_server_config.min_version", "TLS12"},
      {"basic_auth_users:\n  alice: plaintext\n", "basic_auth_users.alice", "bcrypt"},
      {"basic_auth_users:\n  alice: '$1$abc$defghijklmnopqrstuv'\n", "basic_auth_users.alice",
       "bcrypt"},
      {std::string("basic_auth_users:\n  'a:b': '") + kHash2b + "'\n", "basic_auth_users.a:b",
       "':'"},
      {"basic_auth_users: [alice]\n", "basic_auth_users", "bcrypt"},
      {"tls_server_config: [\n", "(file)", "YAML"},
  };
  for (const auto& c : cases) {
    const auto error = Error(c.text);
    EXPECT_EQ(error.field, c.field) << c.text;
    EXPECT_NE(error.message.find(c.says), std::string::npos) << c.text << " -> " << error.message;
  }
}

TEST(WebConfigTest, BcryptHashShape) {
  EXPECT_TRUE(IsBcryptHash(kHash2b));
  EXPECT_TRUE(IsBcryptHash(kHash2a));
  std::string y = kHash2b;
  y[2] = 'y';
  EXPECT_TRUE(IsBcryptHash(y));
  EXPECT_FALSE(IsBcryptHash(std::string(kHash2b).substr(0, 59)));
  std::string bad_cost = kHash2b;
  bad_cost[4] = '3';
  bad_cost[5] = '5';
  EXPECT_FALSE(IsBcryptHash(bad_cost));
  std::string bad_char = kHash2b;
  bad_char[20] = '!';
  EXPECT_FALSE(IsBcryptHash(bad_char));
}

TEST(BasicAuthTest, NoUsersMeansOpen) {
  const BasicAuth auth;
  EXPECT_FALSE(auth.enabled());
  EXPECT_TRUE(auth.Authorized(nullptr));
}

TEST(BasicAuthTest, BcryptUsersFromAnotherImplementationVerify) {
  const BasicAuth auth({{"prometheus", kHash2b}, {"grafana", kHash2a}}, "", "");
  EXPECT_TRUE(auth.Authorized(Header("prometheus", "correct horse").c_str()));
  EXPECT_TRUE(auth.Authorized(Header("grafana", "correct horse").c_str()));
  EXPECT_FALSE(auth.Authorized(Header("prometheus", "correct horsE").c_str()));
  EXPECT_FALSE(auth.Authorized(Header("prometheus", "").c_str()));
  EXPECT_FALSE(auth.Authorized(Header("nobody", "correct horse").c_str()));
  EXPECT_FALSE(auth.Authorized(nullptr));
  EXPECT_FALSE(auth.Authorized("Bearer abc"));
  EXPECT_FALSE(auth.Authorized("Basic !!!not-base64"));
  EXPECT_FALSE(auth.Authorized(("Basic " + common::Base64Encode("no-colon")).c_str()));
}

TEST(BasicAuthTest, AnUnknownUserCostsABcryptRunLikeAWrongPassword) {
  const BasicAuth auth({{"prometheus", kHash2b}}, "", "");
  const auto before = auth.bcrypt_runs();
  EXPECT_FALSE(auth.Authorized(Header("prometheus", "wrong").c_str()));
  EXPECT_EQ(auth.bcrypt_runs(), before + 1);
  EXPECT_FALSE(auth.Authorized(Header("nobody", "wrong").c_str()));
  EXPECT_EQ(auth.bcrypt_runs(), before + 2);
}

TEST(BasicAuthTest, AVerifiedHeaderIsRememberedAWrongOneNever) {
  const BasicAuth auth({{"prometheus", kHash2b}}, "", "");
  const auto good = Header("prometheus", "correct horse");
  ASSERT_TRUE(auth.Authorized(good.c_str()));
  const auto after_first = auth.bcrypt_runs();
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(auth.Authorized(good.c_str()));
  EXPECT_EQ(auth.bcrypt_runs(), after_first);  // scrapes after the first cost no bcrypt
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(auth.Authorized(Header("prometheus", "x").c_str()));
  EXPECT_EQ(auth.bcrypt_runs(), after_first + 3);
}

TEST(BasicAuthTest, ConcurrentChecksAgree) {
  const BasicAuth auth({{"prometheus", kHash2b}}, "", "");
  const auto good = Header("prometheus", "correct horse");
  const auto bad = Header("prometheus", "nope");
  std::vector<std::thread> threads;
  std::atomic<int> wrong_answers{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (!auth.Authorized(good.c_str())) ++wrong_answers;
        if (i % 5 == 0 && auth.Authorized(bad.c_str())) ++wrong_answers;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(wrong_answers.load(), 0);
}

TEST(BasicAuthTest, ThePlainUserOfTheExporterConfigStillWorks) {
  const BasicAuth auth({}, "scraper", "pw");
  EXPECT_TRUE(auth.enabled());
  EXPECT_TRUE(auth.Authorized(Header("scraper", "pw").c_str()));
  EXPECT_FALSE(auth.Authorized(Header("scraper", "pw2").c_str()));
  EXPECT_FALSE(auth.Authorized(Header("other", "pw").c_str()));
  EXPECT_EQ(auth.bcrypt_runs(), 0u);
}

}  // namespace
}  // namespace billing::exporter
