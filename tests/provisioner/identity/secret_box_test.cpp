// SecretBox (AES-256-GCM sealing of stored secrets) and the secret chart values: round trips,
// key ids, fresh nonces, tamper and move detection, wrong and previous keys, key files, and the
// documented format (opened here with OpenSSL directly, not through SecretBox).
#include "secret_box.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>

#include "billing/common/base64.h"
#include "secret_values.h"

namespace billing::provisioner {
namespace {

std::string KeyOf(char first) {
  std::string key(SecretBox::kKeyBytes, '\0');
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<char>(first + i);
  return key;
}

std::shared_ptr<const SecretBox> Box(const std::string& current,
                                     std::vector<std::string> previous = {}) {
  auto box = SecretBox::Create(current, std::move(previous));
  EXPECT_TRUE(box.ok()) << box.error();
  return box.ok() ? box.value() : nullptr;
}

TEST(SecretBoxTest, SealsAndOpensWithTheKeyIdInTheHeader) {
  const auto box = Box(KeyOf(0));
  // First 8 bytes of SHA-256 of the bytes 0..31 (python3 hashlib).
  EXPECT_EQ(box->current_key_id(), "630dcd2966c43366");
  EXPECT_EQ(SecretBox::KeyId(KeyOf(0)), "630dcd2966c43366");
  for (const std::string& plaintext :
       {std::string(), std::string("p"), std::string("a database password"),
        std::string("\0\xff binary\n", 10), std::string(5000, 'x')}) {
    const auto sealed = box->Seal(plaintext, "acme-k3x9qa/postgres.password");
    EXPECT_TRUE(std::regex_match(sealed, std::regex("sealed:v1:630dcd2966c43366:[A-Za-z0-9_-]+")))
        << sealed;
    EXPECT_TRUE(SecretBox::IsSealed(sealed));
    EXPECT_EQ(SecretBox::KeyIdOf(sealed), "630dcd2966c43366");
    if (plaintext.size() > 3) {
      EXPECT_EQ(sealed.find(plaintext), std::string::npos);
    }
    const auto opened = box->Open(sealed, "acme-k3x9qa/postgres.password");
    ASSERT_TRUE(opened.ok()) << opened.error();
    EXPECT_EQ(opened.value(), plaintext);
  }
  EXPECT_FALSE(SecretBox::IsSealed("hunter2"));
  EXPECT_EQ(SecretBox::KeyIdOf("sealed:v1:nothex:abc"), "");
}

TEST(SecretBoxTest, EverySealHasAFreshNonce) {
  const auto box = Box(KeyOf(1));
  std::set<std::string> seen;
  std::set<std::string> nonces;
  for (int i = 0; i < 200; ++i) {
    const auto sealed = box->Seal("same", "c/p");
    seen.insert(sealed);
    const auto data = common::Base64Decode(sealed.substr(sealed.rfind(':') + 1));
    ASSERT_TRUE(data.has_value());
    nonces.insert(data->substr(0, 12));
  }
  EXPECT_EQ(seen.size(), 200u);
  EXPECT_EQ(nonces.size(), 200u);
}

TEST(SecretBoxTest, TheFormatIsNonceCiphertextTagWithHeaderAndContextAsAssociatedData) {
  const std::string key = KeyOf(2);
  const auto box = Box(key);
  const std::string context = "cust-abc123/license.key";
  const auto sealed = box->Seal("eyJhbGciOi.payload.sig", context);
  const std::string header = "sealed:v1:" + box->current_key_id() + ":";
  ASSERT_TRUE(sealed.starts_with(header));
  const auto data = common::Base64Decode(sealed.substr(header.size()));
  ASSERT_TRUE(data.has_value());
  ASSERT_EQ(data->size(), 12 + 22 + 16u);
  const std::string aad = header + context;
  const std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                            EVP_CIPHER_CTX_free);
  auto u = [](const std::string& s) { return reinterpret_cast<const unsigned char*>(s.data()); };
  std::string plain(22, '\0');
  std::string tag = data->substr(12 + 22);
  int n = 0;
  ASSERT_EQ(EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, u(key), u(*data)), 1);
  ASSERT_EQ(EVP_DecryptUpdate(ctx.get(), nullptr, &n, u(aad), static_cast<int>(aad.size())), 1);
  ASSERT_EQ(EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &n,
                              u(*data) + 12, 22),
            1);
  ASSERT_EQ(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16, tag.data()), 1);
  ASSERT_EQ(EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &n), 1);
  EXPECT_EQ(plain, "eyJhbGciOi.payload.sig");
}

TEST(SecretBoxTest, AnyAlteredCharacterIsRefused) {
  const auto box = Box(KeyOf(3));
  const auto sealed = box->Seal("the password", "c/postgres.password");
  const auto data_start = sealed.rfind(':') + 1;
  for (std::size_t i = data_start; i < sealed.size(); ++i) {
    auto altered = sealed;
    altered[i] = altered[i] == 'A' ? 'B' : 'A';
    const auto opened = box->Open(altered, "c/postgres.password");
    ASSERT_FALSE(opened.ok()) << "position " << i;
    EXPECT_EQ(opened.error().find("the password"), std::string::npos);
  }
  EXPECT_FALSE(box->Open(sealed.substr(0, sealed.size() - 4), "c/postgres.password").ok());
  EXPECT_FALSE(box->Open(sealed.substr(0, data_start + 10), "c/postgres.password").ok());
  const auto not_sealed = box->Open("the password", "c/postgres.password");
  ASSERT_FALSE(not_sealed.ok());
  EXPECT_NE(not_sealed.error().find("not a sealed value"), std::string::npos);
}

TEST(SecretBoxTest, AValueMovedToAnotherFieldOrCustomerIsRefused) {
  const auto box = Box(KeyOf(4));
  const auto sealed = box->Seal("s3cret", "alpha-aaaaaa/postgres.password");
  for (const char* other : {"alpha-aaaaaa/license.key", "beta-bbbbbb/postgres.password",
                            "alpha-aaaaa/apostgres.password", ""}) {
    const auto opened = box->Open(sealed, other);
    ASSERT_FALSE(opened.ok()) << other;
    EXPECT_NE(opened.error().find("does not authenticate"), std::string::npos) << opened.error();
  }
}

TEST(SecretBoxTest, AWrongKeyIsRefusedAndPreviousKeysOnlyOpen) {
  const auto old_box = Box(KeyOf(5));
  const auto sealed = old_box->Seal("rotate me", "c/license.key");
  const auto wrong = Box(KeyOf(6));
  const auto refused = wrong->Open(sealed, "c/license.key");
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().find("key id " + old_box->current_key_id()), std::string::npos)
      << refused.error();
  EXPECT_NE(refused.error().find("not a configured key"), std::string::npos) << refused.error();

  // The header names the key: relabelling a value with another configured key's id fails the
  // tag (the header is associated data), it does not try the other key silently.
  const auto both = Box(KeyOf(6), {KeyOf(5)});
  auto relabelled = sealed;
  relabelled.replace(10, 16, both->current_key_id());
  EXPECT_FALSE(both->Open(relabelled, "c/license.key").ok());

  const auto opened = both->Open(sealed, "c/license.key");
  ASSERT_TRUE(opened.ok()) << opened.error();
  EXPECT_EQ(opened.value(), "rotate me");
  EXPECT_EQ(both->current_key_id(), wrong->current_key_id());
  EXPECT_TRUE(both->HasKey(old_box->current_key_id()));
  EXPECT_EQ(SecretBox::KeyIdOf(both->Seal("x", "c/license.key")), wrong->current_key_id());
}

TEST(SecretBoxTest, CreateRefusesShortAndRepeatedKeys) {
  EXPECT_FALSE(SecretBox::Create(std::string(31, 'k')).ok());
  EXPECT_FALSE(SecretBox::Create(KeyOf(0), {std::string(33, 'k')}).ok());
  const auto twice = SecretBox::Create(KeyOf(0), {KeyOf(0)});
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.error().find("twice"), std::string::npos);
}

TEST(SecretBoxTest, KeyFilesAreRawHexOrBase64Of32Bytes) {
  const std::string key = KeyOf(7);
  const std::string hex = "0708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223242526";
  for (const std::string& file : {key, hex, hex + "\n", "  " + hex.substr(0, 0) + hex + " \r\n",
                                  common::Base64Encode(key) + "\n", common::Base64UrlEncode(key)}) {
    const auto parsed = SecretBox::ParseKey(file);
    ASSERT_TRUE(parsed.ok()) << parsed.error() << " for " << file;
    EXPECT_EQ(parsed.value(), key);
  }
  for (const std::string& file :
       {std::string(), std::string("\n"), std::string(31, 'k'), hex.substr(0, 63), hex + "0",
        hex.substr(0, 62) + "zz", common::Base64Encode(key.substr(0, 24)), std::string(32, '\0'),
        std::string(64, '0')}) {
    const auto parsed = SecretBox::ParseKey(file);
    ASSERT_FALSE(parsed.ok()) << file;
    EXPECT_NE(parsed.error().find("openssl rand -hex 32"), std::string::npos) << parsed.error();
    if (file.size() > 8) {
      EXPECT_EQ(parsed.error().find(file), std::string::npos);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The secret chart values.

nlohmann::ordered_json Values() {
  return {{"customer", {{"id", "acme-k3x9qa"}, {"email", "ops@acme.example"}}},
          {"license", {{"key", "eyJ.license.sig"}}},
          {"postgres", {{"password", "generated-db-password"}, {"storage", "5Gi"}}},
          {"ingress", {{"enabled", true}}}};
}

TEST(SecretValuesTest, ExactlyTheListedPathsAreSealedAndOpenToTheSameValues) {
  EXPECT_EQ(
      std::set<std::string_view>(kSecretChartValuePaths.begin(), kSecretChartValuePaths.end()),
      (std::set<std::string_view>{
          "postgres.password", "license.key", "mosquitto.auth.exporter.password",
          "mosquitto.auth.exporter.passwordHash", "mosquitto.auth.device.password",
          "mosquitto.auth.device.passwordHash", "exporter.basicAuth.password"}));
  const auto box = Box(KeyOf(8));
  auto values = Values();
  SealSecretValues(*box, "acme-k3x9qa", values);
  const auto text = values.dump();
  EXPECT_EQ(text.find("generated-db-password"), std::string::npos) << text;
  EXPECT_EQ(text.find("eyJ.license.sig"), std::string::npos) << text;
  EXPECT_TRUE(SecretBox::IsSealed(values["postgres"]["password"].get<std::string>()));
  EXPECT_TRUE(SecretBox::IsSealed(values["license"]["key"].get<std::string>()));
  EXPECT_EQ(values["postgres"]["storage"], "5Gi");
  EXPECT_EQ(values["customer"], Values()["customer"]);
  SecretInventory inventory;
  AddToInventory(values, inventory);
  EXPECT_EQ(inventory.sealed, 2u);
  EXPECT_EQ(inventory.clear, 0u);
  EXPECT_EQ(inventory.key_ids, std::set<std::string>{box->current_key_id()});

  const auto opened = OpenSecretValues(box.get(), "acme-k3x9qa", values);
  ASSERT_TRUE(opened.ok()) << opened.error();
  EXPECT_EQ(opened.value().sealed, 2u);
  EXPECT_EQ(opened.value().clear, 0u);
  EXPECT_EQ(values.dump(), Values().dump());

  // Absent or non-string paths are left alone.
  nlohmann::ordered_json partial = {{"postgres", {{"storage", "1Gi"}}}, {"license", "x"}};
  SealSecretValues(*box, "c", partial);
  EXPECT_EQ(partial,
            (nlohmann::ordered_json{{"postgres", {{"storage", "1Gi"}}}, {"license", "x"}}));
}

TEST(SecretValuesTest, ClearValuesStillOpenAndAreCounted) {
  auto values = Values();
  const auto box = Box(KeyOf(9));
  auto opened = OpenSecretValues(box.get(), "acme-k3x9qa", values);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(opened.value().clear, 2u);
  EXPECT_EQ(values, Values());
  opened = OpenSecretValues(nullptr, "acme-k3x9qa", values);
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(opened.value().clear, 2u);
}

TEST(SecretValuesTest, MovedOrUnopenableValuesNameTheCustomerAndPath) {
  const auto box = Box(KeyOf(10));
  auto alpha = Values();
  SealSecretValues(*box, "alpha-aaaaaa", alpha);
  auto beta = Values();
  SealSecretValues(*box, "beta-bbbbbb", beta);

  auto moved = beta;
  moved["postgres"]["password"] = alpha["postgres"]["password"];
  auto result = OpenSecretValues(box.get(), "beta-bbbbbb", moved);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().find("postgres.password of customer beta-bbbbbb"), std::string::npos)
      << result.error();
  EXPECT_NE(result.error().find("does not authenticate"), std::string::npos) << result.error();

  auto swapped = alpha;
  swapped["postgres"]["password"] = alpha["license"]["key"];
  EXPECT_FALSE(OpenSecretValues(box.get(), "alpha-aaaaaa", swapped).ok());

  auto sealed = alpha;
  result = OpenSecretValues(nullptr, "alpha-aaaaaa", sealed);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().find("no encryption key is configured"), std::string::npos);
  result = OpenSecretValues(Box(KeyOf(11)).get(), "alpha-aaaaaa", sealed);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.error().find("not a configured key"), std::string::npos) << result.error();
}

TEST(SecretValuesTest, ResealMovesEverythingToTheCurrentKeyAndIsIdempotent) {
  const auto old_box = Box(KeyOf(12));
  auto under_old = Values();
  SealSecretValues(*old_box, "acme-k3x9qa", under_old);
  const auto new_box = Box(KeyOf(13), {KeyOf(12)});

  auto rotated = under_old;
  auto counts = ResealSecretValues(*new_box, "acme-k3x9qa", rotated);
  ASSERT_TRUE(counts.ok()) << counts.error();
  EXPECT_EQ(counts.value().rotated, 2u);
  EXPECT_EQ(counts.value().clear, 0u);
  SecretInventory inventory;
  AddToInventory(rotated, inventory);
  EXPECT_EQ(inventory.key_ids, std::set<std::string>{new_box->current_key_id()});

  auto again = rotated;
  counts = ResealSecretValues(*new_box, "acme-k3x9qa", again);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts.value().current, 2u);
  EXPECT_EQ(counts.value().rotated + counts.value().clear, 0u);
  EXPECT_EQ(again.dump(), rotated.dump()) << "values under the current key are left as they are";

  auto clear = Values();
  counts = ResealSecretValues(*new_box, "acme-k3x9qa", clear);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts.value().clear, 2u);

  // Only the new key now: everything opens to the original values.
  const auto only_new = Box(KeyOf(13));
  for (auto* values : {&rotated, &clear}) {
    ASSERT_TRUE(OpenSecretValues(only_new.get(), "acme-k3x9qa", *values).ok());
    EXPECT_EQ(values->dump(), Values().dump());
  }
  auto unknown = under_old;
  EXPECT_FALSE(ResealSecretValues(*Box(KeyOf(14)), "acme-k3x9qa", unknown).ok());
}

}  // namespace
}  // namespace billing::provisioner
