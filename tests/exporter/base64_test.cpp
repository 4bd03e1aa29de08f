// billing::common base64: RFC 4648 test vectors in both alphabets, padding, whitespace and
// rejection of everything that is not base64.
#include "billing/common/base64.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "billing/common/compare.h"

namespace billing::common {
namespace {

// RFC 4648 section 10.
const std::vector<std::pair<std::string, std::string>> kRfc4648Vectors = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

std::string WithoutPadding(std::string text) {
  while (!text.empty() && text.back() == '=') text.pop_back();
  return text;
}

TEST(Base64Test, EncodesRfc4648VectorsWithPadding) {
  for (const auto& [plain, encoded] : kRfc4648Vectors) {
    EXPECT_EQ(Base64Encode(plain), encoded) << "input \"" << plain << "\"";
  }
}

TEST(Base64Test, UrlEncodingOfRfc4648VectorsHasNoPadding) {
  for (const auto& [plain, encoded] : kRfc4648Vectors) {
    EXPECT_EQ(Base64UrlEncode(plain), WithoutPadding(encoded)) << "input \"" << plain << "\"";
  }
}

TEST(Base64Test, DecodesRfc4648VectorsPaddedAndUnpadded) {
  for (const auto& [plain, encoded] : kRfc4648Vectors) {
    EXPECT_EQ(Base64Decode(encoded), std::optional<std::string>(plain)) << encoded;
    EXPECT_EQ(Base64Decode(WithoutPadding(encoded)), std::optional<std::string>(plain)) << encoded;
  }
}

// Values 62 and 63 are the only symbols the alphabets disagree on (RFC 4648 sections 4 and 5).
TEST(Base64Test, AlphabetsDifferOnlyInSymbols62And63) {
  EXPECT_EQ(Base64Encode("\xfb\xef\xbe"), "++++");
  EXPECT_EQ(Base64UrlEncode("\xfb\xef\xbe"), "----");
  EXPECT_EQ(Base64Encode("\xff\xff\xff"), "////");
  EXPECT_EQ(Base64UrlEncode("\xff\xff\xff"), "____");
  EXPECT_EQ(Base64Encode("\xfb\xff"), "+/8=");
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_EQ(Base64Decode("+/8="), std::optional<std::string>("\xfb\xff"));
  EXPECT_EQ(Base64Decode("-_8"), std::optional<std::string>("\xfb\xff"));
}

TEST(Base64Test, EveryByteValueAndLengthRoundTripsInBothAlphabets) {
  std::string all;
  for (int byte = 0; byte < 256; ++byte) all += static_cast<char>(byte);
  for (std::size_t length = 0; length <= all.size(); ++length) {
    const std::string data = all.substr(all.size() - length);  // high bytes too, not only 0..n
    const std::string standard = Base64Encode(data);
    const std::string url = Base64UrlEncode(data);
    EXPECT_EQ(standard.size(), (length + 2) / 3 * 4);
    EXPECT_EQ(url.size(), (length * 4 + 2) / 3);
    EXPECT_EQ(url.find_first_of("+/="), std::string::npos) << url;
    EXPECT_EQ(Base64Decode(standard), std::optional<std::string>(data)) << "length " << length;
    EXPECT_EQ(Base64Decode(url), std::optional<std::string>(data)) << "length " << length;
  }
}

TEST(Base64Test, IgnoresLineBreaksAndSpaces) {
  EXPECT_EQ(Base64Decode("Zm9v\nYmFy"), std::optional<std::string>("foobar"));
  EXPECT_EQ(Base64Decode("Zm9v\r\nYmFy\r\n"), std::optional<std::string>("foobar"));
  EXPECT_EQ(Base64Decode(" Zm 9v\tYm Fy "), std::optional<std::string>("foobar"));
  EXPECT_EQ(Base64Decode("Zg\n=="), std::optional<std::string>("f"));
  EXPECT_EQ(Base64Decode(" \n "), std::optional<std::string>(""));
}

TEST(Base64Test, RejectsCharactersOutsideBothAlphabets) {
  for (const std::string& text :
       std::vector<std::string>{"Zm9v!", "Zm9v.YmFy", "Zm9v\vYmFy", std::string("Zm\0v", 4),
                                std::string("Zm9v\xc3\xa9")}) {
    EXPECT_EQ(Base64Decode(text), std::nullopt) << text;
  }
}

TEST(Base64Test, RejectsImpossibleLengthsAndMisplacedPadding) {
  for (const std::string& text : std::vector<std::string>{
           "Z",         // one symbol carries 6 bits: not a byte
           "Zm9vY",     // 4k+1 symbols
           "Zg=",       // padding that does not complete the quantum
           "Zg===",     // too much padding
           "Zm8==",     // 3 symbols + 2 padding
           "Zm9v=",     // padding after a complete quantum
           "=",         // padding alone
           "==",        //
           "Zg==Zg==",  // data after padding
           "Zm=9v",     // padding in the middle
       }) {
    EXPECT_EQ(Base64Decode(text), std::nullopt) << text;
  }
}

// "Zh==" would decode to "f" too if the unused low bits were ignored; a canonical encoder never
// produces it, and accepting it would give one value several spellings.
TEST(Base64Test, RejectsNonCanonicalTrailingBits) {
  EXPECT_EQ(Base64Decode("Zg=="), std::optional<std::string>("f"));
  EXPECT_EQ(Base64Decode("Zh=="), std::nullopt);
  EXPECT_EQ(Base64Decode("Zh"), std::nullopt);
  EXPECT_EQ(Base64Decode("Zm8="), std::optional<std::string>("fo"));
  EXPECT_EQ(Base64Decode("Zm9="), std::nullopt);
}

}  // namespace
}  // namespace billing::common

// billing::common's other small helper for secrets, tested beside base64.

namespace billing::common {
namespace {

TEST(ConstantTimeEqualsTest, EqualOnlyWhenEveryByteAndTheLengthMatch) {
  EXPECT_TRUE(ConstantTimeEquals("Bearer token", "Bearer token"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals("Bearer token", "Bearer tokeN"));
  EXPECT_FALSE(ConstantTimeEquals("Bearer token", "Bearer token2"));
  EXPECT_FALSE(ConstantTimeEquals("Bearer token2", "Bearer token"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
}

}  // namespace
}  // namespace billing::common
