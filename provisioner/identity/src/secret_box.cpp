#include "secret_box.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <limits>
#include <optional>
#include <stdexcept>

#include "billing/common/base64.h"

namespace billing::provisioner {
namespace {

constexpr std::string_view kPrefix = "sealed:v1:";
constexpr std::size_t kKeyIdChars = 16;
constexpr std::size_t kNonceBytes = 12;
constexpr std::size_t kTagBytes = 16;

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

const unsigned char* Bytes(std::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}
unsigned char* Bytes(std::string& text) { return reinterpret_cast<unsigned char*>(text.data()); }

int Length(std::size_t size) {
  if (size > static_cast<std::size_t>(std::numeric_limits<int>::max() / 2)) {
    throw std::length_error("secret box: value too large");
  }
  return static_cast<int>(size);
}

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 0x0f];
  }
  return out;
}

std::optional<std::string> FromHex(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < text.size(); i += 2) {
    const int high = nibble(text[i]);
    const int low = nibble(text[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out += static_cast<char>(high << 4 | low);
  }
  return out;
}

bool IsKeyIdText(std::string_view text) {
  return text.size() == kKeyIdChars && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

void Wipe(std::string& bytes) {
  if (!bytes.empty()) OPENSSL_cleanse(bytes.data(), bytes.size());
}

std::string Header(std::string_view key_id) {
  return std::string(kPrefix) + std::string(key_id) + ":";
}

}  // namespace

Result<std::string> SecretBox::ParseKey(std::string_view contents) {
  static const std::string kForms =
      "give 32 random bytes, as 64 hex digits (openssl rand -hex 32), base64 of 32 bytes "
      "(openssl rand -base64 32) or the 32 bytes themselves";
  std::string key;
  // 32 bytes that are all printable are a short text (a typo'd hex or base64 key), not random
  // bytes: the chance that 32 random bytes are all printable is below 1e-13.
  const bool text_like =
      std::all_of(contents.begin(), contents.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
  if (contents.size() == kKeyBytes && !text_like) {
    key.assign(contents);
  } else {
    std::string_view text = contents;
    const auto space = [](char c) { return c == '\n' || c == '\r' || c == ' ' || c == '\t'; };
    while (!text.empty() && space(text.back())) text.remove_suffix(1);
    while (!text.empty() && space(text.front())) text.remove_prefix(1);
    if (text.empty()) return Error{"the key file is empty; " + kForms};
    if (auto hex = FromHex(text); text.size() == 2 * kKeyBytes && hex) {
      key = std::move(*hex);
    } else if (auto decoded = common::Base64Decode(text); decoded && decoded->size() == kKeyBytes) {
      key = std::move(*decoded);
    } else {
      if (decoded) Wipe(*decoded);
      return Error{"not a 32-byte key (" + std::to_string(contents.size()) + " bytes that are " +
                   "neither 64 hex digits nor base64 of 32 bytes); " + kForms};
    }
  }
  if (std::all_of(key.begin(), key.end(), [&](char c) { return c == key[0]; })) {
    Wipe(key);
    return Error{"the key is 32 identical bytes, not a random key; " + kForms};
  }
  return key;
}

std::string SecretBox::KeyId(std::string_view key) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(Bytes(key), key.size(), digest.data());
  return Hex(std::string_view(reinterpret_cast<const char*>(digest.data()), kKeyIdChars / 2));
}

Result<std::shared_ptr<const SecretBox>> SecretBox::Create(std::string current,
                                                           std::vector<std::string> previous) {
  std::vector<Key> keys;
  previous.insert(previous.begin(), std::move(current));
  for (std::size_t i = 0; i < previous.size(); ++i) {
    auto& bytes = previous[i];
    if (bytes.size() != kKeyBytes) {
      for (auto& key : previous) Wipe(key);
      return Error{(i == 0 ? std::string("the current key") : "previous key " + std::to_string(i)) +
                   " is " + std::to_string(bytes.size()) + " bytes, not " +
                   std::to_string(kKeyBytes)};
    }
    Key key{KeyId(bytes), std::move(bytes)};
    for (const auto& other : keys) {
      if (other.id == key.id) {
        Wipe(key.bytes);
        for (auto& k : keys) Wipe(k.bytes);
        for (auto& k : previous) Wipe(k);
        return Error{"key id " + key.id + " is given twice (a previous key is the current key?)"};
      }
    }
    keys.push_back(std::move(key));
  }
  return std::make_shared<const SecretBox>(Tag(), std::move(keys));
}

SecretBox::SecretBox(Tag, std::vector<Key> keys) : keys_(std::move(keys)) {}

SecretBox::~SecretBox() {
  for (auto& key : keys_) Wipe(key.bytes);
}

const std::string& SecretBox::current_key_id() const { return keys_.front().id; }

bool SecretBox::HasKey(std::string_view key_id) const { return Find(key_id) != nullptr; }

const SecretBox::Key* SecretBox::Find(std::string_view key_id) const {
  for (const auto& key : keys_) {
    if (key.id == key_id) return &key;
  }
  return nullptr;
}

bool SecretBox::IsSealed(std::string_view value) { return value.starts_with(kPrefix); }

std::string SecretBox::KeyIdOf(std::string_view value) {
  if (!IsSealed(value)) return "";
  const auto rest = value.substr(kPrefix.size());
  const auto colon = rest.find(':');
  if (colon == std::string_view::npos || !IsKeyIdText(rest.substr(0, colon))) return "";
  return std::string(rest.substr(0, colon));
}

std::string SecretBox::Seal(std::string_view plaintext, std::string_view context) const {
  const Key& key = keys_.front();
  const std::string aad = Header(key.id) + std::string(context);
  std::string out(kNonceBytes + plaintext.size() + kTagBytes, '\0');
  if (RAND_bytes(Bytes(out), static_cast<int>(kNonceBytes)) != 1) {
    throw std::runtime_error("secret box: the random generator failed");
  }
  const CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int written = 0;
  int final_written = 0;
  if (!ctx ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key.bytes), Bytes(out)) !=
          1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &written, Bytes(aad), Length(aad.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), Bytes(out) + kNonceBytes, &written, Bytes(plaintext),
                        Length(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), Bytes(out) + kNonceBytes + written, &final_written) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes),
                          Bytes(out) + kNonceBytes + plaintext.size()) != 1) {
    throw std::runtime_error("secret box: AES-256-GCM encryption failed");
  }
  return Header(key.id) + common::Base64UrlEncode(out);
}

Result<std::string> SecretBox::Open(std::string_view sealed, std::string_view context) const {
  const std::string key_id = KeyIdOf(sealed);
  if (key_id.empty()) {
    return Error{"not a sealed value (expected sealed:v1:<16 hex key id>:<base64url data>)"};
  }
  const Key* key = Find(key_id);
  if (key == nullptr) {
    return Error{"sealed under key id " + key_id +
                 ", which is not a configured key (current key id " + current_key_id() + ")"};
  }
  const auto data = common::Base64Decode(sealed.substr(Header(key_id).size()));
  if (!data || data->size() < kNonceBytes + kTagBytes) {
    return Error{"sealed under key id " + key_id + ": the data is not base64 or too short"};
  }
  const std::string aad = Header(key_id) + std::string(context);
  const std::size_t length = data->size() - kNonceBytes - kTagBytes;
  std::string plaintext(length, '\0');
  std::string tag = data->substr(kNonceBytes + length);
  const CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int written = 0;
  int final_written = 0;
  if (!ctx ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, Bytes(key->bytes), Bytes(*data)) !=
          1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &written, Bytes(aad), Length(aad.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), Bytes(plaintext), &written, Bytes(*data) + kNonceBytes,
                        Length(length)) != 1) {
    throw std::runtime_error("secret box: AES-256-GCM decryption failed");
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes),
                          Bytes(tag)) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), Bytes(plaintext) + written, &final_written) != 1) {
    Wipe(plaintext);
    return Error{"sealed under key id " + key_id +
                 ": does not authenticate (altered, or moved from another field or customer)"};
  }
  return plaintext;
}

}  // namespace billing::provisioner
