// SecretBox: authenticated encryption of the secrets the provisioner stores (AES-256-GCM through
// OpenSSL's EVP API). Pure: keys are given as bytes, nothing is read or written here.
//
// A sealed value is text that fits in a JSON string:
//   sealed:v1:<key id>:<base64url(nonce || ciphertext || tag)>
// with a fresh random 96-bit nonce per seal and a 128-bit tag. The key id is the first 8 bytes of
// SHA-256 of the key, in hex (16 characters): it names the key without revealing it. The
// associated data is the header "sealed:v1:<key id>:" followed by the caller's context (the
// provisioner uses "<customer id>/<chart value path>"), so a sealed value copied to another
// field or another customer, or relabelled with another key id, does not open.
//
// Thread-safety: a SecretBox is immutable after construction and may be shared between threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "billing/provisioner/result.h"

namespace billing::provisioner {

class SecretBox {
 public:
  static constexpr std::size_t kKeyBytes = 32;

  /// The key in a key file: exactly 32 bytes (raw, not all printable), or 64 hex digits, or the
  /// base64 (standard or url-safe, padding optional) of 32 bytes; text forms may have whitespace
  /// around them (a trailing newline). The error says which forms are accepted and never contains
  /// the file's bytes.
  static Result<std::string> ParseKey(std::string_view file_contents);
  /// First 8 bytes of SHA-256 of `key`, lower-case hex.
  static std::string KeyId(std::string_view key);

  /// `current` seals and opens; `previous` only open (rotation). Each key is kKeyBytes bytes;
  /// the same key twice is an error.
  static Result<std::shared_ptr<const SecretBox>> Create(std::string current,
                                                         std::vector<std::string> previous = {});
  ~SecretBox();
  SecretBox(const SecretBox&) = delete;
  struct Key {
    std::string id;
    std::string bytes;
  };
  /// Only Create can make the tag (make_shared needs a public constructor).
  class Tag {
    friend class SecretBox;
    Tag() = default;
  };
  SecretBox(Tag, std::vector<Key> keys);
  SecretBox& operator=(const SecretBox&) = delete;

  const std::string& current_key_id() const;
  /// True if `key_id` is the current or a previous key's id.
  bool HasKey(std::string_view key_id) const;

  /// Throws std::runtime_error only if OpenSSL fails (the CSPRNG, out of memory).
  std::string Seal(std::string_view plaintext, std::string_view context) const;
  /// The plaintext, or an error saying why not (not a sealed value, unknown key id, or the tag
  /// does not verify: altered, moved to another context, or another key). Never contains the
  /// plaintext or key material.
  Result<std::string> Open(std::string_view sealed, std::string_view context) const;

  /// Whether `value` has the sealed form's prefix (it may still fail to open).
  static bool IsSealed(std::string_view value);
  /// The key id in a sealed value's header; empty if `value` is not in the sealed form.
  static std::string KeyIdOf(std::string_view value);

 private:
  const Key* Find(std::string_view key_id) const;
  std::vector<Key> keys_;  // keys_[0] is the current key
};

}  // namespace billing::provisioner
