// The customers' HS256 access tokens: what verifies and every way a token must not.
#include "access_token.h"

#include <gtest/gtest.h>

#include "billing/common/base64.h"

namespace billing::provisioner {
namespace {

const std::string kKey(32, 'k');
const std::string kOtherKey(32, 'o');

AccessClaims Claims() { return {"acme-abc123", "customer", 1000, 1900}; }

TEST(AccessTokenTest, AGoodTokenVerifiesWithItsClaims) {
  const auto token = IssueAccessToken(Claims(), kKey);
  const auto claims = VerifyAccessToken(token, kKey, "customer", 1500);
  ASSERT_TRUE(claims.ok()) << claims.error();
  EXPECT_EQ(claims.value().subject, "acme-abc123");
  EXPECT_EQ(claims.value().issued_at, 1000);
  EXPECT_EQ(claims.value().expires_at, 1900);
  const auto header = common::Base64Decode(token.substr(0, token.find('.')));
  EXPECT_EQ(*header, R"({"alg":"HS256","typ":"JWT"})");
}

TEST(AccessTokenTest, AnotherKeyIsABadSignature) {
  const auto claims =
      VerifyAccessToken(IssueAccessToken(Claims(), kOtherKey), kKey, "customer", 1500);
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.error(), "access token: bad signature");
}

TEST(AccessTokenTest, ExpiredAtExp) {
  const auto token = IssueAccessToken(Claims(), kKey);
  EXPECT_TRUE(VerifyAccessToken(token, kKey, "customer", 1899).ok());
  const auto claims = VerifyAccessToken(token, kKey, "customer", 1900);
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.error(), "access token: expired");
}

TEST(AccessTokenTest, WrongAudienceIsRefused) {
  auto other = Claims();
  other.audience = "admin";
  const auto claims = VerifyAccessToken(IssueAccessToken(other, kKey), kKey, "customer", 1500);
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.error(), "access token: wrong audience");
}

TEST(AccessTokenTest, ATamperedPayloadIsABadSignature) {
  const auto token = IssueAccessToken(Claims(), kKey);
  const auto first = token.find('.');
  const auto second = token.find('.', first + 1);
  const std::string forged_payload =
      common::Base64UrlEncode(R"({"sub":"victim-xyz789","aud":"customer","iat":1000,"exp":1900})");
  const auto forged = token.substr(0, first + 1) + forged_payload + token.substr(second);
  const auto claims = VerifyAccessToken(forged, kKey, "customer", 1500);
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.error(), "access token: bad signature");
}

TEST(AccessTokenTest, AlgNoneIsRefusedEvenWithoutASignature) {
  const auto token = IssueAccessToken(Claims(), kKey);
  const auto first = token.find('.');
  const auto second = token.find('.', first + 1);
  const auto payload = token.substr(first + 1, second - first - 1);
  const auto none_header = common::Base64UrlEncode(R"({"alg":"none","typ":"JWT"})");
  for (const auto& forged : {none_header + "." + payload + ".", none_header + "." + payload + ".x",
                             none_header + "." + payload + token.substr(second)}) {
    const auto claims = VerifyAccessToken(forged, kKey, "customer", 1500);
    ASSERT_FALSE(claims.ok()) << forged;
  }
  const auto claims =
      VerifyAccessToken(none_header + "." + payload + token.substr(second), kKey, "customer", 1500);
  EXPECT_EQ(claims.error(), "access token: algorithm is not HS256");
}

TEST(AccessTokenTest, MalformedTokensAndShortKeysAreRefused) {
  for (const std::string bad : {"", "a.b", "a.b.c.d", "a+b.c.d", "..", "eyJ.eyJ."}) {
    EXPECT_FALSE(VerifyAccessToken(bad, kKey, "customer", 1500).ok()) << bad;
  }
  EXPECT_THROW(IssueAccessToken(Claims(), std::string(31, 'k')), std::invalid_argument);
  EXPECT_FALSE(
      VerifyAccessToken(IssueAccessToken(Claims(), kKey), kKey.substr(0, 31), "customer", 1500)
          .ok());
}

TEST(AccessTokenTest, Sha256HexIsTheStandardDigest) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace billing::provisioner
