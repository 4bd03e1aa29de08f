// Passwords (Argon2id), license keys (JWS with Ed25519 and RSA keys made by the openssl CLI and
// checked by it too), random credentials, signup input and customer ids.
#include "identity.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "billing/common/base64.h"
#include "generated_values.h"
#include "signup.h"
#include "testbed.h"

namespace billing::provisioner {
namespace {

namespace fs = std::filesystem;
using common::Base64Decode;
using common::Base64UrlEncode;
using nlohmann::json;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

std::vector<std::string> Split(const std::string& token) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = token.find('.', start);
    parts.push_back(token.substr(start, dot - start));
    if (dot == std::string::npos) return parts;
    start = dot + 1;
  }
}

std::string DecodePart(const std::string& part) {
  const auto decoded = Base64Decode(part);
  EXPECT_TRUE(decoded.has_value()) << part;
  return decoded.value_or("");
}

// ---------------------------------------------------------------------------------------------
// Passwords

TEST(PasswordTest, HashVerifiesTheSamePasswordOnly) {
  const std::string hash = HashPassword("correct horse battery staple");
  EXPECT_TRUE(VerifyPassword(hash, "correct horse battery staple"));
  EXPECT_FALSE(VerifyPassword(hash, "correct horse battery stapl"));
  EXPECT_FALSE(VerifyPassword(hash, "Correct horse battery staple"));
  EXPECT_FALSE(VerifyPassword(hash, ""));
}

TEST(PasswordTest, HashIsArgon2idPhcWithOwaspParameters) {
  const std::string password = "s3cret-Passw0rd";
  const std::string hash = HashPassword(password);
  // $argon2id$v=19$m=19456,t=2,p=1$<salt: 16 bytes>$<hash: 32 bytes>, unpadded base64.
  static const std::regex kPhc(
      R"(\$argon2id\$v=19\$m=19456,t=2,p=1\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+))");
  std::smatch match;
  ASSERT_TRUE(std::regex_match(hash, match, kPhc)) << hash;
  EXPECT_EQ(DecodePart(match[1].str()).size(), 16U);
  EXPECT_EQ(DecodePart(match[2].str()).size(), 32U);
  EXPECT_EQ(hash.find(password), std::string::npos);
  EXPECT_EQ(hash.find(Base64UrlEncode(password)), std::string::npos);
}

TEST(PasswordTest, OnlyHashesBelowTodaysCostNeedARehash) {
  EXPECT_FALSE(PasswordHashNeedsRehash(HashPassword("correct horse battery staple")));
  const std::string cheap = HashPassword("correct horse battery staple", {4096, 1, 1});
  EXPECT_TRUE(cheap.starts_with("$argon2id$v=19$m=4096,t=1,p=1$")) << cheap;
  EXPECT_TRUE(VerifyPassword(cheap, "correct horse battery staple"));
  EXPECT_TRUE(PasswordHashNeedsRehash(cheap));
  EXPECT_TRUE(PasswordHashNeedsRehash(HashPassword("x", {19456, 1, 1})));   // fewer passes
  EXPECT_TRUE(PasswordHashNeedsRehash(HashPassword("x", {8192, 2, 1})));    // less memory
  EXPECT_TRUE(PasswordHashNeedsRehash(HashPassword("x", {19456, 2, 2})));   // other lanes
  EXPECT_FALSE(PasswordHashNeedsRehash(HashPassword("x", {65536, 3, 1})));  // costlier: kept
  EXPECT_TRUE(PasswordHashNeedsRehash("$argon2id$v=16$m=19456,t=2,p=1$c2FsdA$aGFzaA"));
  EXPECT_TRUE(PasswordHashNeedsRehash("not a hash"));
  EXPECT_TRUE(PasswordHashNeedsRehash(""));
}

TEST(PasswordTest, TheCommonPasswordListIsLoadedAndMatchedIgnoringCase) {
  EXPECT_GE(CommonPasswordCount(), 100u);
  EXPECT_TRUE(IsCommonPassword("password1234"));
  EXPECT_TRUE(IsCommonPassword("PassWord1234"));
  EXPECT_TRUE(IsCommonPassword("1qaz2wsx3edc"));
  EXPECT_FALSE(IsCommonPassword("password12345678901"));  // the whole password, not a prefix
  EXPECT_FALSE(IsCommonPassword("# Passwords refused at signup"));  // comments are not entries
  EXPECT_FALSE(IsCommonPassword(""));
}

TEST(PasswordTest, NewPasswordRulesNameTheFieldAndNeverEchoThePassword) {
  EXPECT_EQ(CheckNewPassword("a fine long passphrase", "john@example.com"), std::nullopt);
  const auto common = CheckNewPassword("Qwertyuiop123", "john@example.com", "new_password");
  ASSERT_TRUE(common.has_value());
  EXPECT_TRUE(common->starts_with("new_password: is one of the most common passwords")) << *common;
  EXPECT_EQ(common->find("Qwertyuiop123"), std::string::npos);
  EXPECT_EQ(CheckNewPassword("short", "john@example.com", "new_password"),
            "new_password: must be at least 12 characters long");
  EXPECT_EQ(CheckNewPassword("john-is-my-name-ok", "john@example.com"),
            "password: must not contain the part of the email address before '@'");
  EXPECT_EQ(CheckNewPassword(std::string("valid until \xff here"), "john@example.com"),
            "password: must be valid UTF-8");
}

TEST(PasswordTest, SaltMakesEveryHashDifferent) {
  const std::string first = HashPassword("the same password");
  const std::string second = HashPassword("the same password");
  EXPECT_NE(first, second);
  EXPECT_TRUE(VerifyPassword(first, "the same password"));
  EXPECT_TRUE(VerifyPassword(second, "the same password"));
}

TEST(PasswordTest, MalformedOrForeignHashesNeverVerify) {
  const std::string hash = HashPassword("a password here");
  EXPECT_FALSE(VerifyPassword("", "a password here"));
  EXPECT_FALSE(VerifyPassword("a password here", "a password here"));  // a clear-text "hash"
  EXPECT_FALSE(VerifyPassword(hash.substr(0, hash.size() - 4), "a password here"));
  std::string other_type = hash;
  other_type.replace(0, 9, "$argon2i");  // "$argon2id" -> "$argon2i": verify_id must refuse
  EXPECT_FALSE(VerifyPassword(other_type, "a password here"));
}

// ---------------------------------------------------------------------------------------------
// Random credentials

TEST(GeneratedValuesTest, EmptyValuesGetEveryGeneratedValue) {
  const auto patch = MissingGeneratedValues(nlohmann::ordered_json::object());
  using Pointer = nlohmann::ordered_json::json_pointer;
  for (const char* path : {"/postgres/password", "/mosquitto/auth/exporter/password",
                           "/mosquitto/auth/device/password", "/exporter/basicAuth/password"}) {
    ASSERT_TRUE(patch.contains(Pointer(path))) << path << " in " << patch.dump();
    EXPECT_EQ(patch.at(Pointer(path)).get<std::string>().size(), 32u) << path;
  }
  for (const char* user : {"exporter", "device"}) {
    const std::string base = std::string("/mosquitto/auth/") + user;
    EXPECT_TRUE(
        patch.at(Pointer(base + "/passwordHash")).get<std::string>().starts_with("$7$101$"));
  }
  EXPECT_NE(patch.at(Pointer("/mosquitto/auth/exporter/password")),
            patch.at(Pointer("/mosquitto/auth/device/password")));
}

TEST(GeneratedValuesTest, OnlyWhatIsMissingIsGeneratedAndExistingPasswordsKeepTheirValue) {
  nlohmann::ordered_json stored = {
      {"postgres", {{"password", "kept-database-password"}}},
      {"exporter", {{"basicAuth", {{"username", "prometheus"}}}}},
      {"mosquitto",
       {{"auth", {{"device", {{"password", "kept-device-password"}, {"passwordHash", ""}}}}}}}};
  const auto patch = MissingGeneratedValues(stored);
  EXPECT_FALSE(patch.contains("postgres")) << patch.dump();
  EXPECT_TRUE(patch["exporter"]["basicAuth"].contains("password"));
  EXPECT_FALSE(patch["exporter"]["basicAuth"].contains("username"));
  // The device keeps its password (its clients hold it); only the broker's hash is added.
  EXPECT_FALSE(patch["mosquitto"]["auth"]["device"].contains("password"));
  const auto hash = patch["mosquitto"]["auth"]["device"]["passwordHash"].get<std::string>();
  EXPECT_TRUE(hash.starts_with("$7$"));
  EXPECT_TRUE(patch["mosquitto"]["auth"]["exporter"].contains("password"));

  stored.merge_patch(patch);
  EXPECT_EQ(stored["exporter"]["basicAuth"]["username"], "prometheus");
  EXPECT_EQ(stored["mosquitto"]["auth"]["device"]["password"], "kept-device-password");
  // Complete now: nothing more to generate.
  EXPECT_EQ(MissingGeneratedValues(stored), nlohmann::ordered_json::object());
}

TEST(RandomTokenTest, IsUnpaddedBase64UrlOfTheRequestedBytes) {
  static const std::regex kAlphabet("[A-Za-z0-9_-]*");
  for (const std::size_t bytes : {0U, 1U, 2U, 3U, 16U, 24U, 32U}) {
    const std::string token = RandomToken(bytes);
    EXPECT_EQ(token.size(), (bytes * 4 + 2) / 3) << bytes;
    EXPECT_TRUE(std::regex_match(token, kAlphabet)) << token;
    EXPECT_EQ(DecodePart(token).size(), bytes) << token;
  }
}

TEST(RandomTokenTest, TokensAreUnique) {
  std::set<std::string> tokens;
  for (int i = 0; i < 2000; ++i) tokens.insert(RandomToken(16));
  EXPECT_EQ(tokens.size(), 2000U);
}

// Mosquitto 2.0's password-file entry: "$7$101$" + base64(12-byte salt) + "$" + base64(64-byte
// PBKDF2-HMAC-SHA512), recomputed here by Python's hashlib from the salt in the entry. (That
// Debian's Mosquitto accepts it: exporter_broker_auth_test.)
TEST(MosquittoPasswordHashTest, IsPbkdf2Sha512InMosquittosFormat) {
  const std::string hash = MosquittoPasswordHash("a-broker-password");
  const std::regex format(R"(\$7\$101\$([A-Za-z0-9+/]{16})\$([A-Za-z0-9+/]{86}==))");
  std::smatch parts;
  ASSERT_TRUE(std::regex_match(hash, parts, format)) << hash;
  EXPECT_EQ(billing::common::Base64Decode(parts[1].str())->size(), 12u);
  const auto python = billing::testbed::RunCommand(
      {"/usr/bin/python3", "-c",
       "import base64,hashlib,sys; print(base64.b64encode(hashlib.pbkdf2_hmac('sha512', "
       "sys.argv[1].encode(), base64.b64decode(sys.argv[2]), 101)).decode())",
       "a-broker-password", parts[1].str()});
  ASSERT_EQ(python.exit_code, 0) << python.output;
  EXPECT_EQ(python.output, parts[2].str() + "\n");
  EXPECT_NE(MosquittoPasswordHash("a-broker-password"), hash);  // a new salt every time
  EXPECT_TRUE(MosquittoPasswordHash("x", 1000).starts_with("$7$1000$"));
  EXPECT_THROW(MosquittoPasswordHash(""), std::invalid_argument);
  EXPECT_THROW(MosquittoPasswordHash("x", 0), std::invalid_argument);
}

TEST(RandomIdSuffixTest, UsesEveryLowercaseAlphanumericAndNothingElse) {
  EXPECT_EQ(RandomIdSuffix(0), "");
  std::string all;
  for (int i = 0; i < 600; ++i) {
    const std::string suffix = RandomIdSuffix(6);
    ASSERT_EQ(suffix.size(), 6U);
    all += suffix;
  }
  std::set<char> seen(all.begin(), all.end());
  // 3600 draws from 36 symbols: a symbol missing by chance has probability about 1e-42.
  EXPECT_EQ(seen.size(), 36U);
  EXPECT_TRUE(std::all_of(all.begin(), all.end(),
                          [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }));
}

// ---------------------------------------------------------------------------------------------
// License keys

class LicenseTest : public ::testing::Test {
 protected:
  // Key generation (RSA especially) is slow: once for the suite.
  static void SetUpTestSuite() {
    dir_ = std::make_unique<testbed::TempDir>("identity-test");
    OpenSsl({"genpkey", "-algorithm", "ed25519", "-out", Path("ed25519.pem")});
    OpenSsl({"genpkey", "-algorithm", "ed25519", "-out", Path("other-ed25519.pem")});
    OpenSsl({"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
             Path("rsa2048.pem")});
    OpenSsl({"rsa", "-in", Path("rsa2048.pem"), "-traditional", "-out", Path("rsa2048-pkcs1.pem")});
    OpenSsl({"genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out",
             Path("rsa1024.pem")});
    OpenSsl({"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
             Path("ec-p256.pem")});
    OpenSsl({"genpkey", "-algorithm", "ed25519", "-aes-256-cbc", "-pass", "pass:key-passphrase",
             "-out", Path("encrypted.pem")});
    for (const char* name : {"ed25519", "rsa2048"}) {
      OpenSsl({"pkey", "-in", Path(std::string(name) + ".pem"), "-pubout", "-out",
               Path(std::string(name) + ".pub.pem")});
    }
  }
  static void TearDownTestSuite() { dir_.reset(); }

  static std::string Path(const std::string& name) { return (dir_->path() / name).string(); }

  static std::string OpenSsl(std::vector<std::string> args) {
    args.insert(args.begin(), "openssl");
    const auto result = testbed::RunCommand(args);
    EXPECT_EQ(result.exit_code, 0) << result.output;
    return result.output;
  }

  static std::shared_ptr<const LicenseSigner> Signer(const std::string& name) {
    auto signer = LicenseSigner::FromPemFile(Path(name));
    EXPECT_TRUE(signer.ok()) << signer.error();
    return signer.ok() ? signer.value() : nullptr;
  }

  static LicenseClaims Claims() {
    LicenseClaims claims;
    claims.customer_id = "acme-inc-x7k2p9";
    claims.plan = "professional";
    claims.issued_at = 1700000000;
    claims.expires_at = 1731536000;
    return claims;
  }

  // Signs `header.claims` with the openssl CLI, independently of LicenseSigner.
  static std::string SignWithCli(const std::string& key, const json& header, const json& claims) {
    const std::string input = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(claims.dump());
    WriteFile(Path("cli-input"), input);
    OpenSsl({"pkeyutl", "-sign", "-inkey", Path(key), "-rawin", "-in", Path("cli-input"), "-out",
             Path("cli-sig")});
    return input + "." + Base64UrlEncode(ReadFile(Path("cli-sig")));
  }

  // Every error about a key must leave the key out: no PEM armour, no line of its body.
  static void ExpectNoKeyMaterial(const std::string& error, const std::string& key_file) {
    EXPECT_EQ(error.find("PRIVATE KEY"), std::string::npos) << error;
    EXPECT_EQ(error.find("-----"), std::string::npos) << error;
    std::istringstream pem(ReadFile(Path(key_file)));
    for (std::string line; std::getline(pem, line);) {
      if (line.rfind("-----", 0) == 0 || line.size() < 16) continue;
      EXPECT_EQ(error.find(line.substr(0, 16)), std::string::npos) << error;
    }
  }

  static std::unique_ptr<testbed::TempDir> dir_;
};
std::unique_ptr<testbed::TempDir> LicenseTest::dir_;

TEST_F(LicenseTest, Ed25519LicenseIsEdDsaJwsThatVerifiesWithThePublicKey) {
  const auto signer = Signer("ed25519.pem");
  ASSERT_NE(signer, nullptr);
  EXPECT_EQ(signer->algorithm(), "EdDSA");
  const std::string token = signer->Issue(Claims());
  const auto parts = Split(token);
  ASSERT_EQ(parts.size(), 3U) << token;
  EXPECT_EQ(DecodePart(parts[0]), R"({"alg":"EdDSA","typ":"JWT"})");
  const json claims = json::parse(DecodePart(parts[1]));
  EXPECT_EQ(claims, json::parse(R"({"iss":"iotistic-provisioner","sub":"acme-inc-x7k2p9",
                                    "plan":"professional","iat":1700000000,"exp":1731536000})"));
  EXPECT_EQ(DecodePart(parts[2]).size(), 64U);  // Ed25519 signatures are 64 bytes

  const auto verified = VerifyLicense(token, signer->PublicKeyPem());
  ASSERT_TRUE(verified.ok()) << verified.error();
  EXPECT_EQ(verified.value().customer_id, "acme-inc-x7k2p9");
  EXPECT_EQ(verified.value().plan, "professional");
  EXPECT_EQ(verified.value().issued_at, 1700000000);
  EXPECT_EQ(verified.value().expires_at, 1731536000);
}

TEST_F(LicenseTest, PublicKeyPemIsWhatOpensslDerives) {
  EXPECT_EQ(Signer("ed25519.pem")->PublicKeyPem(), ReadFile(Path("ed25519.pub.pem")));
  EXPECT_EQ(Signer("rsa2048.pem")->PublicKeyPem(), ReadFile(Path("rsa2048.pub.pem")));
}

TEST_F(LicenseTest, OpensslCliVerifiesTheEd25519Signature) {
  const std::string token = Signer("ed25519.pem")->Issue(Claims());
  const auto parts = Split(token);
  ASSERT_EQ(parts.size(), 3U);
  WriteFile(Path("ed-input"), parts[0] + "." + parts[1]);
  WriteFile(Path("ed-sig"), DecodePart(parts[2]));
  const auto ok = testbed::RunCommand({"openssl", "pkeyutl", "-verify", "-pubin", "-inkey",
                                       Path("ed25519.pub.pem"), "-rawin", "-in", Path("ed-input"),
                                       "-sigfile", Path("ed-sig")});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_NE(ok.output.find("Signature Verified Successfully"), std::string::npos) << ok.output;
  // The same check fails for other data, so its success above means something.
  WriteFile(Path("ed-input"), parts[0] + "." + parts[1] + "x");
  const auto bad = testbed::RunCommand({"openssl", "pkeyutl", "-verify", "-pubin", "-inkey",
                                        Path("ed25519.pub.pem"), "-rawin", "-in", Path("ed-input"),
                                        "-sigfile", Path("ed-sig")});
  EXPECT_NE(bad.exit_code, 0) << bad.output;
}

TEST_F(LicenseTest, Rsa2048LicenseIsRs256MatchingOpensslDgstByteForByte) {
  const auto signer = Signer("rsa2048.pem");
  ASSERT_NE(signer, nullptr);
  EXPECT_EQ(signer->algorithm(), "RS256");
  const std::string token = signer->Issue(Claims());
  const auto parts = Split(token);
  ASSERT_EQ(parts.size(), 3U);
  EXPECT_EQ(DecodePart(parts[0]), R"({"alg":"RS256","typ":"JWT"})");
  const auto verified = VerifyLicense(token, signer->PublicKeyPem());
  ASSERT_TRUE(verified.ok()) << verified.error();
  EXPECT_EQ(verified.value().customer_id, "acme-inc-x7k2p9");

  WriteFile(Path("rsa-input"), parts[0] + "." + parts[1]);
  WriteFile(Path("rsa-sig"), DecodePart(parts[2]));
  const auto verify =
      testbed::RunCommand({"openssl", "dgst", "-sha256", "-verify", Path("rsa2048.pub.pem"),
                           "-signature", Path("rsa-sig"), Path("rsa-input")});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_NE(verify.output.find("Verified OK"), std::string::npos) << verify.output;
  // PKCS#1 v1.5 is deterministic: openssl's own RS256 signature must be the very same bytes.
  OpenSsl({"dgst", "-sha256", "-sign", Path("rsa2048.pem"), "-out", Path("rsa-cli-sig"),
           Path("rsa-input")});
  EXPECT_EQ(ReadFile(Path("rsa-cli-sig")), DecodePart(parts[2]));
}

TEST_F(LicenseTest, TraditionalPkcs1RsaKeyIsAcceptedToo) {
  const auto pkcs1 = Signer("rsa2048-pkcs1.pem");
  ASSERT_NE(pkcs1, nullptr);
  ASSERT_NE(ReadFile(Path("rsa2048-pkcs1.pem")).find("BEGIN RSA PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(pkcs1->PublicKeyPem(), ReadFile(Path("rsa2048.pub.pem")));
}

TEST_F(LicenseTest, FromPemReadsTheKeyFromMemory) {
  const auto signer = LicenseSigner::FromPem(ReadFile(Path("ed25519.pem")));
  ASSERT_TRUE(signer.ok()) << signer.error();
  EXPECT_EQ(signer.value()->PublicKeyPem(), ReadFile(Path("ed25519.pub.pem")));
  const auto garbage = LicenseSigner::FromPem("not a key");
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.error().find("not a PEM private key"), std::string::npos) << garbage.error();
}

// A license made by another implementation (the openssl CLI) verifies, so VerifyLicense does
// not only understand its own output.
TEST_F(LicenseTest, VerifiesATokenSignedByTheOpensslCli) {
  const json claims = {{"iss", "iotistic-provisioner"},
                       {"sub", "cli-customer"},
                       {"plan", "basic"},
                       {"iat", 1},
                       {"exp", 4102444800}};
  const std::string token = SignWithCli("ed25519.pem", {{"alg", "EdDSA"}, {"typ", "JWT"}}, claims);
  const auto verified = VerifyLicense(token, ReadFile(Path("ed25519.pub.pem")));
  ASSERT_TRUE(verified.ok()) << verified.error();
  EXPECT_EQ(verified.value().customer_id, "cli-customer");
  EXPECT_EQ(verified.value().plan, "basic");
  EXPECT_EQ(verified.value().issued_at, 1);
  EXPECT_EQ(verified.value().expires_at, 4102444800);
}

TEST_F(LicenseTest, TamperedTokensFail) {
  const auto signer = Signer("ed25519.pem");
  const std::string token = signer->Issue(Claims());
  const auto parts = Split(token);
  ASSERT_EQ(parts.size(), 3U);

  // Same signature, claims upgraded to another plan.
  json claims = json::parse(DecodePart(parts[1]));
  claims["plan"] = "enterprise";
  const auto upgraded = VerifyLicense(
      parts[0] + "." + Base64UrlEncode(claims.dump()) + "." + parts[2], signer->PublicKeyPem());
  ASSERT_FALSE(upgraded.ok());
  EXPECT_NE(upgraded.error().find("signature does not match"), std::string::npos)
      << upgraded.error();

  // One signature byte changed.
  std::string signature = DecodePart(parts[2]);
  signature[10] = static_cast<char>(signature[10] ^ 0x01);
  const auto flipped = VerifyLicense(parts[0] + "." + parts[1] + "." + Base64UrlEncode(signature),
                                     signer->PublicKeyPem());
  ASSERT_FALSE(flipped.ok());
  EXPECT_NE(flipped.error().find("signature does not match"), std::string::npos) << flipped.error();

  // Signed by another Ed25519 key.
  const auto other = VerifyLicense(token, Signer("other-ed25519.pem")->PublicKeyPem());
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.error().find("signature does not match"), std::string::npos) << other.error();
}

TEST_F(LicenseTest, AlgorithmMustMatchTheKeyNotTheToken) {
  const auto ed = Signer("ed25519.pem");
  const auto rsa = Signer("rsa2048.pem");
  const std::string claims = Split(ed->Issue(Claims()))[1];
  // "none" with an empty signature, the classic JWT bypass.
  const auto none =
      VerifyLicense(Base64UrlEncode(R"({"alg":"none"})") + "." + claims + ".", ed->PublicKeyPem());
  EXPECT_FALSE(none.ok());
  const auto none_signed = VerifyLicense(
      Base64UrlEncode(R"({"alg":"none"})") + "." + claims + ".AAAA", ed->PublicKeyPem());
  ASSERT_FALSE(none_signed.ok());
  EXPECT_NE(none_signed.error().find("\"none\" does not match"), std::string::npos)
      << none_signed.error();
  // An RS256 token against an Ed25519 key, and the other way round.
  const auto mismatch = VerifyLicense(rsa->Issue(Claims()), ed->PublicKeyPem());
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.error().find("\"RS256\" does not match"), std::string::npos)
      << mismatch.error();
  EXPECT_NE(mismatch.error().find("expected EdDSA"), std::string::npos) << mismatch.error();
  const auto reverse = VerifyLicense(ed->Issue(Claims()), rsa->PublicKeyPem());
  ASSERT_FALSE(reverse.ok());
  EXPECT_NE(reverse.error().find("expected RS256"), std::string::npos) << reverse.error();
}

TEST_F(LicenseTest, MalformedTokensAreDescribed) {
  const auto signer = Signer("ed25519.pem");
  const std::string pem = signer->PublicKeyPem();
  const auto parts = Split(signer->Issue(Claims()));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not a compact JWS"},
      {"abc", "not a compact JWS"},
      {"a.b", "not a compact JWS"},
      {parts[0] + "." + parts[1] + "." + parts[2] + ".x", "not a compact JWS"},
      {parts[0] + "." + parts[1] + ".", "signature is not base64url"},
      {parts[0] + "=." + parts[1] + "." + parts[2], "header is not base64url"},
      {parts[0] + "." + parts[1] + "." + parts[2] + "\n", "signature is not base64url"},
      {Base64UrlEncode("[1]") + "." + parts[1] + "." + parts[2], "header is not a JSON object"},
      {Base64UrlEncode("{\"typ\":\"JWT\"}") + "." + parts[1] + "." + parts[2], "no \"alg\""},
      {Base64UrlEncode(R"({"alg":"EdDSA","crit":["exp"]})") + "." + parts[1] + "." + parts[2],
       "crit"},
  };
  for (const auto& [token, expected] : cases) {
    const auto result = VerifyLicense(token, pem);
    ASSERT_FALSE(result.ok()) << token;
    EXPECT_NE(result.error().find(expected), std::string::npos)
        << "token " << token << ": " << result.error();
  }
  const auto bad_key = VerifyLicense(signer->Issue(Claims()), "not a key");
  ASSERT_FALSE(bad_key.ok());
  EXPECT_NE(bad_key.error().find("public key: not a PEM public key"), std::string::npos)
      << bad_key.error();
}

TEST_F(LicenseTest, ClaimsAreCheckedAfterTheSignature) {
  const json header = {{"alg", "EdDSA"}, {"typ", "JWT"}};
  const std::string pem = ReadFile(Path("ed25519.pub.pem"));
  const json good = {
      {"iss", "iotistic-provisioner"}, {"sub", "c1"}, {"plan", "basic"}, {"iat", 1}, {"exp", 2}};
  json wrong_issuer = good;
  wrong_issuer["iss"] = "someone-else";
  json no_sub = good;
  no_sub.erase("sub");
  json numeric_plan = good;
  numeric_plan["plan"] = 3;
  json string_iat = good;
  string_iat["iat"] = "1";
  json fractional_exp = good;
  fractional_exp["exp"] = 2.5;
  for (const auto& [claims, expected] : std::vector<std::pair<json, std::string>>{
           {wrong_issuer, "issuer"},
           {no_sub, "\"sub\""},
           {numeric_plan, "\"plan\""},
           {string_iat, "\"iat\""},
           {fractional_exp, "\"exp\""},
       }) {
    const auto result = VerifyLicense(SignWithCli("ed25519.pem", header, claims), pem);
    ASSERT_FALSE(result.ok()) << claims.dump();
    EXPECT_NE(result.error().find(expected), std::string::npos) << result.error();
  }
  EXPECT_TRUE(VerifyLicense(SignWithCli("ed25519.pem", header, good), pem).ok());
}

TEST_F(LicenseTest, WeakRsaKeyIsRejectedNamingTheFile) {
  const auto result = LicenseSigner::FromPemFile(Path("rsa1024.pem"));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().find(Path("rsa1024.pem")), std::string::npos) << result.error();
  EXPECT_NE(result.error().find("1024 bits"), std::string::npos) << result.error();
  EXPECT_NE(result.error().find("2048"), std::string::npos) << result.error();
  ExpectNoKeyMaterial(result.error(), "rsa1024.pem");
}

TEST_F(LicenseTest, EcKeyIsRejectedNamingTheFileAndType) {
  const auto result = LicenseSigner::FromPemFile(Path("ec-p256.pem"));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().find(Path("ec-p256.pem")), std::string::npos) << result.error();
  EXPECT_NE(result.error().find("unsupported key type EC"), std::string::npos) << result.error();
  EXPECT_NE(result.error().find("prime256v1"), std::string::npos) << result.error();
  ExpectNoKeyMaterial(result.error(), "ec-p256.pem");
}

TEST_F(LicenseTest, EncryptedKeyIsRejectedWithoutPrompting) {
  const auto result = LicenseSigner::FromPemFile(Path("encrypted.pem"));
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().find(Path("encrypted.pem")), std::string::npos) << result.error();
  EXPECT_NE(result.error().find("encrypted"), std::string::npos) << result.error();
  ExpectNoKeyMaterial(result.error(), "encrypted.pem");
}

TEST_F(LicenseTest, PublicKeyOrGarbageIsNotAPrivateKey) {
  for (const char* name : {"ed25519.pub.pem", "garbage.pem"}) {
    if (std::string(name) == "garbage.pem") {
      WriteFile(Path(name), "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n");
    }
    const auto result = LicenseSigner::FromPemFile(Path(name));
    ASSERT_FALSE(result.ok()) << name;
    EXPECT_NE(result.error().find(Path(name)), std::string::npos) << result.error();
    EXPECT_NE(result.error().find("not a PEM private key"), std::string::npos) << result.error();
    ExpectNoKeyMaterial(result.error(), name);
  }
}

TEST_F(LicenseTest, UnreadableKeyFileErrorsNameTheFile) {
  const auto missing = LicenseSigner::FromPemFile(Path("does-not-exist.pem"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find(Path("does-not-exist.pem")), std::string::npos);
  EXPECT_NE(missing.error().find("No such file or directory"), std::string::npos)
      << missing.error();

  const auto directory = LicenseSigner::FromPemFile(dir_->path().string());
  ASSERT_FALSE(directory.ok());
  EXPECT_NE(directory.error().find("not a regular file"), std::string::npos) << directory.error();
}

// Loads `path` as an unprivileged user: root reads files whatever their mode, so as root (CI) the
// load runs in a child that first drops to "nobody". Returns the error, or "" if it loaded.
std::string LoadErrorAsUnprivilegedUser(const std::string& path) {
  if (geteuid() != 0) {
    const auto result = LicenseSigner::FromPemFile(path);
    return result.ok() ? "" : result.error();
  }
  const passwd* nobody = getpwnam("nobody");
  if (nobody == nullptr) return "no user nobody";
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  const pid_t child = fork();
  if (child == 0) {
    close(fds[0]);
    std::string message = "could not drop privileges";
    if (setgroups(0, nullptr) == 0 && setgid(nobody->pw_gid) == 0 && setuid(nobody->pw_uid) == 0) {
      const auto result = LicenseSigner::FromPemFile(path);
      message = result.ok() ? "" : result.error();
    }
    const auto written = write(fds[1], message.data(), message.size());
    _exit(written == static_cast<ssize_t>(message.size()) ? 0 : 1);
  }
  close(fds[1]);
  std::string message;
  char buffer[512];
  for (ssize_t n; (n = read(fds[0], buffer, sizeof buffer)) > 0;) message.append(buffer, n);
  close(fds[0]);
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "the child failed: " + message;
  return message;
}

TEST_F(LicenseTest, KeyFileWithoutReadPermissionIsReported) {
  const std::string path = Path("no-read.pem");
  fs::copy_file(Path("ed25519.pem"), path, fs::copy_options::overwrite_existing);
  // The directory stays traversable, so the file's own mode is what refuses the read.
  fs::permissions(dir_->path(),
                  fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  fs::permissions(path, fs::perms::none);
  const std::string error = LoadErrorAsUnprivilegedUser(path);
  ASSERT_FALSE(error.empty()) << "a key file nobody may read was loaded";
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("Permission denied"), std::string::npos) << error;
}

TEST_F(LicenseTest, InvalidUtf8ClaimIsACallerErrorNotACorruptToken) {
  LicenseClaims claims = Claims();
  claims.plan = "pro\xff";
  EXPECT_THROW((void)Signer("ed25519.pem")->Issue(claims), std::invalid_argument);
}

// The header promises a signer may be shared between threads.
TEST_F(LicenseTest, OneSignerIssuesFromManyThreads) {
  for (const char* key : {"ed25519.pem", "rsa2048.pem"}) {
    const auto signer = Signer(key);
    ASSERT_NE(signer, nullptr);
    std::vector<std::string> tokens(4);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      threads.emplace_back([&, t] {
        LicenseClaims claims = Claims();
        claims.customer_id = "thread-" + std::to_string(t);
        for (int i = 0; i < 20; ++i) tokens[t] = signer->Issue(claims);
      });
    }
    for (auto& thread : threads) thread.join();
    for (std::size_t t = 0; t < tokens.size(); ++t) {
      const auto verified = VerifyLicense(tokens[t], signer->PublicKeyPem());
      ASSERT_TRUE(verified.ok()) << key << ": " << verified.error();
      EXPECT_EQ(verified.value().customer_id, "thread-" + std::to_string(t));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Signup input

constexpr char kGoodPassword[] = "correct horse battery";

std::string Body(const std::string& email, const std::string& password,
                 const std::string& company_name) {
  return json{{"email", email}, {"password", password}, {"company_name", company_name}}.dump();
}

// The error, or a note that there was none (so EXPECT messages stay readable).
std::string ErrorOf(std::string_view body) {
  const auto result = ParseSignupRequest(body);
  return result.ok() ? "<accepted>" : result.error();
}

bool StartsWith(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

TEST(SignupTest, ValidRequestIsTrimmedWherePromised) {
  const auto result = ParseSignupRequest(
      Body("  Ada.Lovelace@Example.co.uk\n", "  spaces kept in passwords ", "  Acme, Inc.  "));
  ASSERT_TRUE(result.ok()) << result.error();
  EXPECT_EQ(result.value().email, "Ada.Lovelace@Example.co.uk");
  EXPECT_EQ(result.value().password, "  spaces kept in passwords ");
  EXPECT_EQ(result.value().company_name, "Acme, Inc.");
}

TEST(SignupTest, MalformedJsonIsReportedWithoutEchoingTheBody) {
  EXPECT_TRUE(StartsWith(ErrorOf("{"), "body: not valid JSON: ")) << ErrorOf("{");
  EXPECT_TRUE(StartsWith(ErrorOf(""), "body: not valid JSON: "));
  EXPECT_TRUE(StartsWith(ErrorOf("{\"email\": 1e999}"), "body: not valid JSON: "));
  const std::string truncated = R"({"email":"a@example.com","password":"hunter2-secret-value)";
  const std::string error = ErrorOf(truncated);
  EXPECT_TRUE(StartsWith(error, "body: not valid JSON: ")) << error;
  EXPECT_EQ(error.find("hunter2"), std::string::npos) << error;
  const std::string trailing = Body("a@example.com", "hunter2-secret-value", "Acme") + " garbage";
  EXPECT_EQ(ErrorOf(trailing).find("hunter2"), std::string::npos) << ErrorOf(trailing);
  EXPECT_TRUE(StartsWith(ErrorOf(trailing), "body: not valid JSON: ")) << ErrorOf(trailing);
}

TEST(SignupTest, BodyMustBeAnObject) {
  for (const char* body : {"[]", "\"x\"", "null", "42", "[{\"email\":\"a@example.com\"}]"}) {
    EXPECT_EQ(ErrorOf(body), "body: must be a JSON object") << body;
  }
}

TEST(SignupTest, MissingWrongTypedUnknownAndRepeatedFieldsAreNamed) {
  for (const char* field : {"email", "password", "company_name"}) {
    json body = json::parse(Body("a@example.com", kGoodPassword, "Acme"));
    body.erase(field);
    EXPECT_EQ(ErrorOf(body.dump()), std::string(field) + ": is required");
    for (const json& wrong :
         {json(1), json(nullptr), json::array({"x"}), json(true), json::object({{"x", "y"}})}) {
      body[field] = wrong;
      EXPECT_EQ(ErrorOf(body.dump()), std::string(field) + ": must be a string") << body.dump();
    }
  }
  json extra = json::parse(Body("a@example.com", kGoodPassword, "Acme"));
  extra["admin"] = true;
  EXPECT_TRUE(StartsWith(ErrorOf(extra.dump()), "admin: unknown field")) << ErrorOf(extra.dump());
  extra.erase("admin");
  extra["we\"ird\nname"] = 1;
  EXPECT_TRUE(StartsWith(ErrorOf(extra.dump()), "body: unknown field")) << ErrorOf(extra.dump());

  const std::string twice =
      R"({"email":"a@example.com","password":"correct horse battery","company_name":"Acme",)"
      R"("email":"admin@example.com"})";
  EXPECT_EQ(ErrorOf(twice), "email: must be given only once");
}

TEST(SignupTest, InvalidEmailsAreRejectedNamingTheField) {
  const std::string long_local(65, 'a');
  const std::string long_label(64, 'a');
  const std::string long_domain = std::string(60, 'd') + "." + std::string(60, 'd') + "." +
                                  std::string(60, 'd') + "." + std::string(60, 'd') + ".com";
  for (const std::string& email : std::vector<std::string>{
           "",
           "   ",
           "no-at-sign.example.com",
           "a@@example.com",
           "a@b@example.com",
           "@example.com",
           "a@",
           "a@localhost",
           "a@exa_mple.com",
           "a@-example.com",
           "a@example-.com",
           "a@example..com",
           "a@.example.com",
           "a@example.com.",
           "a b@example.com",
           "a\tb@example.com",
           "a\xc2\xa0"
           "b@example.com",  // no-break space
           "a\x7f@example.com",
           std::string("a\0b@example.com", 15),
           "a@ex\xc3\xa4mple.com",  // an IDN must be written xn--...
           long_local + "@example.com",
           "a@" + long_label + ".com",
           std::string(63, 'a') + "@" + long_domain,  // 311 characters
       }) {
    const std::string error = ErrorOf(Body(email, kGoodPassword, "Acme"));
    EXPECT_TRUE(StartsWith(error, "email: ")) << "\"" << email << "\" -> " << error;
  }
}

TEST(SignupTest, EmailLimitsAreInclusive) {
  const std::string local64(64, 'a');
  const std::string label63(63, 'b');
  // 64 + 1 + 63 + 1 + 63 + 1 + 61 = 254
  const std::string email254 = local64 + "@" + label63 + "." + label63 + "." + std::string(61, 'c');
  ASSERT_EQ(email254.size(), 254U);
  for (const std::string& email : std::vector<std::string>{
           local64 + "@example.com", "a@" + label63 + ".com", email254, "x@a-b.c-d.museum",
           "first.last+tag@sub.example.org", "\xc3\xa9l\xc3\xa8ve@example.fr"}) {
    EXPECT_EQ(ErrorOf(Body(email, kGoodPassword, "Acme")), "<accepted>") << email;
  }
  EXPECT_TRUE(StartsWith(ErrorOf(Body(email254 + "c", kGoodPassword, "Acme")), "email: "));
}

TEST(SignupTest, PasswordRulesCountCharactersAndNeverEchoThePassword) {
  const std::string email = "ada.lovelace@example.com";
  struct Case {
    std::string password;
    std::string expected;  // the error, or "<accepted>"
  };
  std::string long_password;  // 128 code points, 3 bytes each
  for (int i = 0; i < 128; ++i) long_password += i % 2 == 0 ? "\xe2\x82\xac" : "\xe2\x84\xa2";
  const std::vector<Case> cases = {
      {"eleven-char", "password: must be at least 12 characters long"},
      {"twelve-chars", "<accepted>"},
      // 11 characters but 22 bytes: characters count, not bytes.
      {"\xc3\xa9\xc3\xa0\xc3\xbc\xc3\xb6\xc3\xa4\xc3\xa7\xc3\xb1\xc3\xb8\xc3\xa5\xc3\xae\xc3\xaa",
       "password: must be at least 12 characters long"},
      {long_password, "<accepted>"},
      {long_password + "x", "password: must be at most 128 characters long"},
      {"aaaaaaaaaaaa", "password: must not consist mostly of one repeated character"},
      {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaB1",
       "password: must not consist mostly of one repeated "
       "character"},
      {"aaaaaabbbbbbc", "<accepted>"},  // 6 of 13 is not "mostly"
      {"ADA.LOVELACE@EXAMPLE.COM", "password: must not be the email address"},
      {"my name is Ada.Lovelace!",
       "password: must not contain the part of the email address "
       "before '@'"},
  };
  for (const auto& c : cases) {
    const std::string error = ErrorOf(Body(email, c.password, "Acme"));
    EXPECT_EQ(error, c.expected) << "password of " << c.password.size() << " bytes";
    EXPECT_EQ(error.find(c.password), std::string::npos);
  }
  // A very short local part is not a word to forbid.
  EXPECT_EQ(ErrorOf(Body("jo@example.com", "joyful mornings", "Acme")), "<accepted>");
}

TEST(SignupTest, CompanyNamesAreAnyTextKeptVerbatim) {
  for (const std::string& name : std::vector<std::string>{
           "Robert'); DROP TABLE customers;--",
           "\" OR \"1\"=\"1",
           "<script>alert(1)</script>",
           "Back\\slash & \"Quotes\" 'Ltd'",
           "\xf0\x9f\x9a\x80 Rocket Ltd",                       // emoji
           "\xe6\xa0\xaa\xe5\xbc\x8f\xe4\xbc\x9a\xe7\xa4\xbe",  // Japanese
           "\xd8\xb4\xd8\xb1\xd9\x83\xd8\xa9",                  // Arabic
           "Cafe\xcc\x81 Lumie\xcc\x80re",                      // combining accents
           "x",
       }) {
    const auto result = ParseSignupRequest(Body("a@example.com", kGoodPassword, name));
    ASSERT_TRUE(result.ok()) << name << ": " << result.error();
    EXPECT_EQ(result.value().company_name, name);
  }
}

TEST(SignupTest, CompanyNameLengthAndControlCharacters) {
  std::string name200;
  for (int i = 0; i < 200; ++i) name200 += "\xc3\xa9";  // 400 bytes, 200 characters
  EXPECT_EQ(ErrorOf(Body("a@example.com", kGoodPassword, name200)), "<accepted>");
  EXPECT_EQ(ErrorOf(Body("a@example.com", kGoodPassword, name200 + "x")),
            "company_name: must be at most 200 characters");
  // Surrounding spaces do not count (they are trimmed).
  EXPECT_EQ(ErrorOf(Body("a@example.com", kGoodPassword, "  " + name200 + "\n")), "<accepted>");
  for (const std::string& empty :
       std::vector<std::string>{"", "   ", "\n\t", "\xe3\x80\x80"}) {  // ideographic space
    EXPECT_EQ(ErrorOf(Body("a@example.com", kGoodPassword, empty)),
              "company_name: must not be empty");
  }
  for (const std::string& control : std::vector<std::string>{
           "Line\nBreak", "Tab\tInside", "Bell\x07", "Esc\x1b[31m", std::string("Nul\0Byte", 8),
           "C1\xc2\x85"
           "Next"}) {
    const std::string error = ErrorOf(Body("a@example.com", kGoodPassword, control));
    EXPECT_TRUE(StartsWith(error, "company_name: must not contain control characters")) << error;
  }
}

TEST(SignupTest, InvalidUtf8IsRejectedNamingTheField) {
  const auto raw = [](const std::string& email, const std::string& password,
                      const std::string& company) {
    return "{\"email\":\"" + email + "\",\"password\":\"" + password + "\",\"company_name\":\"" +
           company + "\"}";
  };
  const std::string ok_email = "a@example.com";
  EXPECT_EQ(ErrorOf(raw(ok_email, kGoodPassword, "Acme\xff")), "company_name: must be valid UTF-8");
  EXPECT_EQ(ErrorOf(raw("a\xc0\xaf@example.com", kGoodPassword, "Acme")),  // overlong '/'
            "email: must be valid UTF-8");
  EXPECT_EQ(ErrorOf(raw(ok_email, "correct horse \xed\xa0\x80 battery", "Acme")),  // surrogate
            "password: must be valid UTF-8");
  EXPECT_EQ(ErrorOf(raw(ok_email, kGoodPassword, "Acme \xe2\x82")),  // truncated sequence
            "company_name: must be valid UTF-8");
  EXPECT_EQ(ErrorOf(raw(ok_email, kGoodPassword, "\xf4\x90\x80\x80")),  // above U+10FFFF
            "company_name: must be valid UTF-8");
  // Also inside a nested value, in an unknown field, in a field name, outside any string.
  EXPECT_EQ(ErrorOf(R"({"company_name":["x)"
                    "\xff"
                    R"("],"email":"a@example.com"})"),
            "company_name: must be valid UTF-8");
  EXPECT_TRUE(StartsWith(ErrorOf(R"({"extra":")"
                                 "\xfe"
                                 R"("})"),
                         "extra: unknown field"));
  EXPECT_EQ(ErrorOf(R"({"e)"
                    "\xff"
                    R"(mail":"x"})"),
            "body: a field name is not valid UTF-8");
  EXPECT_TRUE(StartsWith(ErrorOf("{\"email\":\xff}"), "body: not valid JSON: "));
  // A JSON escape of a lone surrogate is not valid text either.
  EXPECT_TRUE(StartsWith(ErrorOf(raw(ok_email, kGoodPassword, "\\ud800")), "body: not valid JSON"));
}

TEST(SignupTest, OversizedBodyIsRejected) {
  const std::string body = Body("a@example.com", kGoodPassword, std::string(70000, 'x'));
  EXPECT_EQ(ErrorOf(body), "body: must be at most 65536 bytes");
}

// ---------------------------------------------------------------------------------------------
// Customer ids

bool IsDns1123Label(const std::string& text) {
  static const std::regex kLabel("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  return std::regex_match(text, kLabel);
}

TEST(CustomerIdTest, ReducesTheCompanyNameToALabel) {
  EXPECT_EQ(MakeCustomerId("Acme, Inc.", "x7k2p9"), "acme-inc-x7k2p9");
  EXPECT_EQ(MakeCustomerId("  --Hello__World--  ", "a1"), "hello-world-a1");
  EXPECT_EQ(MakeCustomerId("ACME 2000", "zz"), "acme-2000-zz");
  // Nothing is transliterated: non-ASCII letters just disappear.
  EXPECT_EQ(MakeCustomerId("Caf\xc3\xa9 Lumi\xc3\xa8re", "z9"), "caf-lumire-z9");
  EXPECT_EQ(MakeCustomerId("\xe6\xa0\xaa\xe5\xbc\x8f\xe4\xbc\x9a\xe7\xa4\xbe", "ab12"),
            "customer-ab12");
  EXPECT_EQ(MakeCustomerId("\xf0\x9f\x9a\x80\xf0\x9f\x9a\x80", "ab12"), "customer-ab12");
  EXPECT_EQ(MakeCustomerId("!!!", "ab12"), "customer-ab12");
  EXPECT_EQ(MakeCustomerId("", "ab12"), "customer-ab12");
}

TEST(CustomerIdTest, LongNamesAreCutToSixteenCharacters) {
  EXPECT_EQ(MakeCustomerId("The Very Long Company Name Incorporated", "abcdef"),
            "the-very-long-co-abcdef");
  // A cut that ends on a separator drops it.
  EXPECT_EQ(MakeCustomerId("abcdefghijklmno pqr", "x1"), "abcdefghijklmno-x1");
}

TEST(CustomerIdTest, SuffixIsSanitisedAndTheResultNeverExceeds34) {
  EXPECT_EQ(MakeCustomerId("Acme", "AB-12"), "acme-ab12");
  EXPECT_EQ(MakeCustomerId("Acme", ""), "acme");
  const std::string id = MakeCustomerId("The Very Long Company Name", std::string(40, 'z'));
  EXPECT_EQ(id.size(), 34U);
  EXPECT_TRUE(IsDns1123Label(id)) << id;
}

TEST(CustomerIdTest, AlwaysAValidLabelOfAtMost34Characters) {
  const std::vector<std::string> names = {
      "Acme",
      "-",
      "---a---",
      "a-b-c-d-e-f-g-h-i-j",
      "0000000000000000000000",
      " ",
      "Ünïcödé Ltd",
      "\xff\xfe invalid bytes",
      "UPPER lower 123",
      std::string(300, 'q'),
      "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q",
      "\t\n\r",
  };
  for (const auto& name : names) {
    for (const std::string& suffix : {RandomIdSuffix(6), std::string("x"), std::string(""),
                                      std::string("--"), std::string(20, '9')}) {
      const std::string id = MakeCustomerId(name, suffix);
      EXPECT_TRUE(IsDns1123Label(id)) << "\"" << name << "\" + \"" << suffix << "\" -> " << id;
      EXPECT_LE(id.size(), 34U) << id;
    }
  }
}

// The upgrade body, field by field: what is accepted, and every refusal naming its field.
TEST(UpgradeRequestTest, AcceptsValuesAndEitherLicenseOrLicenseKey) {
  auto parsed = ParseUpgradeRequest(R"({"values": {"ingress": {"enabled": false}},
                                        "license": {"plan": "pro", "validity_days": 30}})");
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  ASSERT_TRUE(parsed.value().values.has_value());
  EXPECT_EQ((*parsed.value().values)["ingress"]["enabled"], false);
  ASSERT_TRUE(parsed.value().license.has_value());
  EXPECT_EQ(parsed.value().license->plan, "pro");
  EXPECT_EQ(parsed.value().license->validity_days, 30);
  EXPECT_FALSE(parsed.value().license_key.has_value());

  parsed = ParseUpgradeRequest(R"({"license_key": "a.b.c"})");
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(parsed.value().license_key, "a.b.c");
  EXPECT_FALSE(parsed.value().values.has_value());

  parsed = ParseUpgradeRequest(R"({"license": {}})");  // a new key, stored plan, default validity
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_FALSE(parsed.value().license->plan.has_value());
  EXPECT_FALSE(parsed.value().license->validity_days.has_value());
}

TEST(UpgradeRequestTest, RefusalsNameTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{", "body: not valid JSON"},
      {"[]", "body: must be a JSON object"},
      {"{}", "body: give values, license or license_key"},
      {R"({"value": {}})", "value: unknown field (use values, license or license_key)"},
      {R"({"values": [1]})", "values: must be an object of chart values"},
      {R"({"license": {}, "license_key": "x"})",
       "license: give either license (to issue a new key) or license_key, not both"},
      {R"({"license": "pro"})", "license: must be an object like {\"plan\": \"pro\"}"},
      {R"({"license": {"tier": "pro"}})", "license.tier: unknown field (use plan, validity_days)"},
      {R"({"license": {"plan": "Pro!"}})",
       "license.plan: must be a plan name like \"pro\" ([a-z0-9-], at most 32)"},
      {R"({"license": {"plan": 3}})",
       "license.plan: must be a plan name like \"pro\" ([a-z0-9-], at most 32)"},
      {R"({"license": {"validity_days": 0}})",
       "license.validity_days: must be a whole number of days, 1 to 3660"},
      {R"({"license": {"validity_days": 3661}})",
       "license.validity_days: must be a whole number of days, 1 to 3660"},
      {R"({"license": {"validity_days": 1.5}})",
       "license.validity_days: must be a whole number of days, 1 to 3660"},
      {R"({"license_key": 7})", "license_key: must be a string (a JWT)"},
  };
  for (const auto& [body, error] : cases) {
    const auto parsed = ParseUpgradeRequest(body);
    ASSERT_FALSE(parsed.ok()) << body;
    EXPECT_EQ(parsed.error(), error) << body;
  }
}

}  // namespace
}  // namespace billing::provisioner
