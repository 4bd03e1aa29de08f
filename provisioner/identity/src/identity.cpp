#include "identity.h"

#include <argon2.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "billing/common/base64.h"
#include "signup.h"

namespace billing::provisioner {
namespace {

// OWASP Password Storage Cheat Sheet, Argon2id minimum: 19 MiB, 2 passes, 1 lane. One lane also
// keeps libargon2 from starting threads inside a request handler.
constexpr std::uint32_t kArgonMemoryKiB = 19456;
constexpr std::uint32_t kArgonPasses = 2;
constexpr std::uint32_t kArgonLanes = 1;
constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kHashBytes = 32;

// NIST SP 800-57 / RFC 7518 section 3.3: RS256 keys below 2048 bits are not acceptable.
constexpr int kMinRsaBits = 2048;
// A PEM key is a few KiB; anything bigger is the wrong file (and must not be slurped whole).
constexpr std::size_t kMaxPemBytes = 1 << 20;
// A license is a few hundred bytes; the bound keeps a hostile token from costing much.
constexpr std::size_t kMaxTokenBytes = 64 * 1024;
constexpr char kIssuer[] = "iotistic-provisioner";

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free_all(bio); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

// OpenSSL's error queue is per thread: entries we leave behind would be reported by the next,
// unrelated OpenSSL user on this thread (libcurl's TLS, for one).
class ErrorQueueGuard {
 public:
  ErrorQueueGuard() = default;
  ~ErrorQueueGuard() { ERR_clear_error(); }
  ErrorQueueGuard(const ErrorQueueGuard&) = delete;
  ErrorQueueGuard& operator=(const ErrorQueueGuard&) = delete;
};

// Wipes a buffer that held secret bytes (key file contents) on every exit path.
class ScopedCleanse {
 public:
  explicit ScopedCleanse(std::string& secret) : secret_(secret) {}
  ~ScopedCleanse() { OPENSSL_cleanse(secret_.data(), secret_.size()); }
  ScopedCleanse(const ScopedCleanse&) = delete;
  ScopedCleanse& operator=(const ScopedCleanse&) = delete;

 private:
  std::string& secret_;
};

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// The reason of the most recent OpenSSL error: fixed library text ("no start line", "bad
// decrypt"), never data from the input, so it is safe to put in a message about a key.
std::string OpenSslReason() {
  const unsigned long code = ERR_peek_last_error();
  const char* reason = code != 0 ? ERR_reason_error_string(code) : nullptr;
  return reason != nullptr ? reason : "unknown OpenSSL error";
}

std::string ErrnoText(int error) {
  return std::error_code(error, std::generic_category()).message();
}

void FillRandom(unsigned char* out, std::size_t size) {
  while (size > 0) {
    const int chunk = static_cast<int>(std::min<std::size_t>(size, INT_MAX));
    if (RAND_bytes(out, chunk) != 1) {
      ErrorQueueGuard guard;
      throw std::runtime_error("OpenSSL RAND_bytes failed: " + OpenSslReason());
    }
    out += chunk;
    size -= static_cast<std::size_t>(chunk);
  }
}

const unsigned char* AsBytes(std::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}

// Reads the key file into `contents` (which the caller wipes); returns what went wrong, if
// anything. POSIX calls rather than iostreams so the message can say why (errno).
std::optional<std::string> ReadKeyFile(const std::string& path, std::string& contents) {
  const FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return "cannot be opened: " + ErrnoText(errno);
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) return "cannot be examined: " + ErrnoText(errno);
  if (!S_ISREG(info.st_mode)) return std::string("is not a regular file");
  if (static_cast<std::uintmax_t>(info.st_size) > kMaxPemBytes) {
    return "is larger than " + std::to_string(kMaxPemBytes) + " bytes, too large for a PEM key";
  }
  // One byte more than the size: a file that grows while we read is noticed, not truncated.
  contents.assign(static_cast<std::size_t>(info.st_size) + 1, '\0');
  std::size_t used = 0;
  while (used < contents.size()) {
    const ssize_t n = ::read(fd.get(), contents.data() + used, contents.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      return "cannot be read: " + ErrnoText(errno);
    }
    if (n == 0) break;
    used += static_cast<std::size_t>(n);
  }
  if (used == contents.size()) return std::string("changed while being read");
  contents.resize(used);
  return std::nullopt;
}

// Never prompts: PEM_read_* would otherwise ask for a passphrase on the terminal of a server.
int RefusePassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* asked) {
  *static_cast<bool*>(asked) = true;
  return -1;
}

std::string KeyTypeName(const EVP_PKEY* key) {
  const char* name = EVP_PKEY_get0_type_name(key);
  if (name == nullptr) name = OBJ_nid2sn(EVP_PKEY_get_base_id(key));
  std::string text = name != nullptr ? name : "unknown";
  std::array<char, 80> group{};
  std::size_t group_length = 0;
  if (EVP_PKEY_get_group_name(key, group.data(), group.size(), &group_length) == 1 &&
      group_length > 0) {
    text += " (" + std::string(group.data(), group_length) + ")";
  }
  return text;
}

// The JWS "alg" for this key, or why the key is not acceptable. Used for the signing key and
// for the verifying key alike, so both sides accept exactly the same keys.
Result<std::string> JwsAlgorithm(const EVP_PKEY* key) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_ED25519:
      return std::string("EdDSA");
    case EVP_PKEY_RSA: {
      const int bits = EVP_PKEY_get_bits(key);
      if (bits < kMinRsaBits) {
        return Error{"RSA key has " + std::to_string(bits) + " bits; at least " +
                     std::to_string(kMinRsaBits) + " are required"};
      }
      return std::string("RS256");
    }
    default:
      return Error{"unsupported key type " + KeyTypeName(key) +
                   "; use Ed25519 (EdDSA) or RSA of at least 2048 bits (RS256)"};
  }
}

// RS256 is RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 section 3.3); EdDSA is PureEdDSA, which
// hashes internally and so takes no digest (RFC 8037).
const EVP_MD* DigestFor(const std::string& algorithm) {
  return algorithm == "RS256" ? EVP_sha256() : nullptr;
}

std::string Sign(EVP_PKEY* key, const std::string& algorithm, std::string_view data) {
  ErrorQueueGuard guard;
  const MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* key_ctx = nullptr;  // owned by ctx
  if (!ctx || EVP_DigestSignInit(ctx.get(), &key_ctx, DigestFor(algorithm), nullptr, key) != 1) {
    throw std::runtime_error("license signing: cannot initialise: " + OpenSslReason());
  }
  // PKCS#1 v1.5 is OpenSSL's default too; set it so a changed default cannot silently give PSS.
  if (algorithm == "RS256" && EVP_PKEY_CTX_set_rsa_padding(key_ctx, RSA_PKCS1_PADDING) <= 0) {
    throw std::runtime_error("license signing: cannot select PKCS#1 v1.5: " + OpenSslReason());
  }
  std::size_t size = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &size, AsBytes(data), data.size()) != 1) {
    throw std::runtime_error("license signing failed: " + OpenSslReason());
  }
  std::string signature(size, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                     AsBytes(data), data.size()) != 1) {
    throw std::runtime_error("license signing failed: " + OpenSslReason());
  }
  signature.resize(size);
  return signature;
}

// Compact JWS parts use the URL-safe alphabet without padding (RFC 7515 section 2). Accepting
// '+', '/', '=' or whitespace would let several spellings of one token verify.
bool IsBase64UrlText(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  });
}

// Untrusted text shown in an error: short, printable ASCII only.
std::string Quoted(const std::string& text) {
  constexpr std::size_t kMaxShown = 32;
  std::string shown;
  for (const char c : text.substr(0, kMaxShown)) {
    shown += (c >= 0x20 && c < 0x7F) ? c : '?';
  }
  if (text.size() > kMaxShown) shown += "...";
  return "\"" + shown + "\"";
}

Result<nlohmann::json> DecodeJsonObject(std::string_view part, const std::string& what) {
  const std::optional<std::string> decoded = common::Base64Decode(part);
  if (!decoded) return Error{"license: " + what + " is not valid base64url"};
  nlohmann::json parsed = nlohmann::json::parse(*decoded, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return Error{"license: " + what + " is not a JSON object"};
  return parsed;
}

std::optional<std::int64_t> IntegerClaim(const nlohmann::json& claims, const char* name) {
  const auto it = claims.find(name);
  if (it == claims.end()) return std::nullopt;
  if (it->is_number_unsigned()) {
    const auto value = it->get<std::uint64_t>();
    if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(value);
  }
  if (it->is_number_integer()) return it->get<std::int64_t>();
  return std::nullopt;
}

}  // namespace

Argon2Cost CurrentPasswordHashCost() { return {kArgonMemoryKiB, kArgonPasses, kArgonLanes}; }

std::string HashPassword(std::string_view password, const Argon2Cost& cost) {
  std::array<unsigned char, kSaltBytes> salt{};
  FillRandom(salt.data(), salt.size());
  // argon2_encodedlen counts the terminating NUL.
  std::string encoded(argon2_encodedlen(cost.passes, cost.memory_kib, cost.lanes, kSaltBytes,
                                        kHashBytes, Argon2_id),
                      '\0');
  // The password goes straight from the caller's buffer to libargon2: no copy here to wipe.
  const int rc = argon2id_hash_encoded(cost.passes, cost.memory_kib, cost.lanes, password.data(),
                                       password.size(), salt.data(), salt.size(), kHashBytes,
                                       encoded.data(), encoded.size());
  if (rc != ARGON2_OK) {
    throw std::runtime_error(std::string("Argon2id hashing failed: ") + argon2_error_message(rc));
  }
  encoded.resize(std::strlen(encoded.c_str()));
  return encoded;
}

bool VerifyPassword(const std::string& encoded_hash, std::string_view password) {
  // argon2id_verify parses the PHC string itself (and refuses argon2i/argon2d ones); any error,
  // a malformed hash included, is "does not match".
  return !encoded_hash.empty() &&
         argon2id_verify(encoded_hash.c_str(), password.data(), password.size()) == ARGON2_OK;
}

bool PasswordHashNeedsRehash(const std::string& encoded_hash) {
  // "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>": only the parameters are read.
  static const std::regex kParameters(
      R"(^\$argon2id\$v=(\d{1,3})\$m=(\d{1,10}),t=(\d{1,10}),p=(\d{1,10})\$)");
  std::smatch match;
  if (!std::regex_search(encoded_hash, match, kParameters)) return true;
  const auto number = [&](std::size_t group) { return std::stoull(match[group].str()); };
  const Argon2Cost current = CurrentPasswordHashCost();
  return number(1) != ARGON2_VERSION_NUMBER || number(2) < current.memory_kib ||
         number(3) < current.passes || number(4) != current.lanes;
}

std::string RandomToken(std::size_t bytes) {
  std::string raw(bytes, '\0');
  const ScopedCleanse wipe(raw);  // the raw bytes are the credential too
  FillRandom(reinterpret_cast<unsigned char*>(raw.data()), raw.size());
  return common::Base64UrlEncode(raw);
}

std::string MosquittoPasswordHash(std::string_view password, int iterations) {
  if (password.empty()) throw std::invalid_argument("a broker password cannot be empty");
  if (iterations < 1) throw std::invalid_argument("PBKDF2 needs at least one iteration");
  // Mosquitto's sizes (password_mosq.h): a 12-byte salt and SHA-512's 64-byte output; it refuses
  // an entry whose decoded salt or hash has another length.
  std::array<unsigned char, 12> salt{};
  FillRandom(salt.data(), salt.size());
  std::string hash(64, '\0');
  const ScopedCleanse wipe(hash);
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(),
                        static_cast<int>(salt.size()), iterations, EVP_sha512(),
                        static_cast<int>(hash.size()),
                        reinterpret_cast<unsigned char*>(hash.data())) != 1) {
    throw std::runtime_error("PBKDF2-HMAC-SHA512 failed");
  }
  return "$7$" + std::to_string(iterations) + "$" +
         common::Base64Encode(
             std::string_view(reinterpret_cast<const char*>(salt.data()), salt.size())) +
         "$" + common::Base64Encode(hash);
}

std::string RandomIdSuffix(std::size_t length) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  constexpr unsigned kSymbols = sizeof(kAlphabet) - 1;
  // Bytes >= 252 are redrawn: 256 is not a multiple of 36, and byte % 36 would favour a-d.
  constexpr unsigned kUnbiasedLimit = 256 / kSymbols * kSymbols;
  std::string out;
  out.reserve(length);
  std::array<unsigned char, 64> pool{};
  while (out.size() < length) {
    FillRandom(pool.data(), pool.size());
    for (const unsigned char byte : pool) {
      if (byte < kUnbiasedLimit && out.size() < length) out += kAlphabet[byte % kSymbols];
    }
  }
  return out;
}

struct LicenseSigner::Impl {
  PkeyPtr key;
  std::string algorithm;
  std::string public_key_pem;
};

LicenseSigner::LicenseSigner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LicenseSigner::~LicenseSigner() = default;

Result<std::shared_ptr<const LicenseSigner>> LicenseSigner::FromPem(const std::string& pem) {
  return Load(pem, "license key (PEM text)");
}

Result<std::shared_ptr<const LicenseSigner>> LicenseSigner::FromPemFile(const std::string& path) {
  const std::string source = "license key " + path;
  std::string contents;
  const ScopedCleanse wipe(contents);
  if (const auto problem = ReadKeyFile(path, contents)) return Error{source + ": " + *problem};
  return Load(contents, source);
}

Result<std::shared_ptr<const LicenseSigner>> LicenseSigner::Load(const std::string& pem,
                                                                 const std::string& source) {
  const ErrorQueueGuard guard;
  if (pem.size() > kMaxPemBytes) {
    return Error{source + ": larger than " + std::to_string(kMaxPemBytes) + " bytes"};
  }
  const BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Error{source + ": out of memory"};
  bool passphrase_asked = false;
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, RefusePassphrase, &passphrase_asked));
  if (!key) {
    if (passphrase_asked) {
      return Error{source + ": the private key is encrypted; give an unencrypted PEM key"};
    }
    return Error{source + ": not a PEM private key (" + OpenSslReason() + ")"};
  }
  auto algorithm = JwsAlgorithm(key.get());
  if (!algorithm.ok()) return Error{source + ": " + algorithm.error()};

  const BioPtr out(BIO_new(BIO_s_mem()));
  if (!out || PEM_write_bio_PUBKEY(out.get(), key.get()) != 1) {
    return Error{source + ": cannot derive the public key (" + OpenSslReason() + ")"};
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(out.get(), &data);
  auto impl = std::make_unique<Impl>();
  impl->key = std::move(key);
  impl->algorithm = std::move(algorithm).value();
  impl->public_key_pem.assign(data, static_cast<std::size_t>(size));
  // A local class may call the private constructor; std::make_shared itself may not.
  struct Shared : LicenseSigner {
    explicit Shared(std::unique_ptr<Impl> impl) : LicenseSigner(std::move(impl)) {}
  };
  return std::shared_ptr<const LicenseSigner>(std::make_shared<Shared>(std::move(impl)));
}

const std::string& LicenseSigner::algorithm() const { return impl_->algorithm; }

std::string LicenseSigner::PublicKeyPem() const { return impl_->public_key_pem; }

std::string LicenseSigner::Issue(const LicenseClaims& claims) const {
  const nlohmann::json header = {{"alg", impl_->algorithm}, {"typ", "JWT"}};
  const nlohmann::json payload = {{"iss", kIssuer},
                                  {"sub", claims.customer_id},
                                  {"plan", claims.plan},
                                  {"iat", claims.issued_at},
                                  {"exp", claims.expires_at}};
  std::string payload_text;
  try {
    payload_text = payload.dump();
  } catch (const nlohmann::json::type_error&) {
    // dump() refuses invalid UTF-8; ids and plans are ASCII, so this is a caller bug.
    throw std::invalid_argument("license claims: customer_id or plan is not valid UTF-8");
  }
  const std::string signing_input =
      common::Base64UrlEncode(header.dump()) + "." + common::Base64UrlEncode(payload_text);
  return signing_input + "." +
         common::Base64UrlEncode(Sign(impl_->key.get(), impl_->algorithm, signing_input));
}

Result<LicenseClaims> VerifyLicense(const std::string& token, const std::string& public_key_pem) {
  const ErrorQueueGuard guard;
  if (token.size() > kMaxTokenBytes) {
    return Error{"license: longer than " + std::to_string(kMaxTokenBytes) + " characters"};
  }
  const std::size_t first = token.find('.');
  const std::size_t second = first == std::string::npos ? first : token.find('.', first + 1);
  if (second == std::string::npos || token.find('.', second + 1) != std::string::npos) {
    return Error{"license: not a compact JWS (three base64url parts separated by '.')"};
  }
  const std::string_view text(token);
  const std::string_view header_part = text.substr(0, first);
  const std::string_view claims_part = text.substr(first + 1, second - first - 1);
  const std::string_view signature_part = text.substr(second + 1);
  if (!IsBase64UrlText(header_part)) return Error{"license: header is not base64url"};
  if (!IsBase64UrlText(claims_part)) return Error{"license: claims are not base64url"};
  if (!IsBase64UrlText(signature_part)) return Error{"license: signature is not base64url"};

  const auto header = DecodeJsonObject(header_part, "header");
  if (!header.ok()) return Error{header.error()};
  const auto alg = header.value().find("alg");
  if (alg == header.value().end() || !alg->is_string()) {
    return Error{"license: header has no \"alg\" string"};
  }
  // RFC 7515 section 4.1.11: extensions listed in "crit" must be understood; we know none.
  if (header.value().contains("crit")) return Error{"license: header has unsupported \"crit\""};

  if (public_key_pem.size() > kMaxPemBytes) return Error{"public key: larger than 1 MiB"};
  const BioPtr bio(BIO_new_mem_buf(public_key_pem.data(), static_cast<int>(public_key_pem.size())));
  bool passphrase_asked = false;
  const PkeyPtr key(
      bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, RefusePassphrase, &passphrase_asked) : nullptr);
  if (!key) return Error{"public key: not a PEM public key (" + OpenSslReason() + ")"};
  const auto expected = JwsAlgorithm(key.get());
  if (!expected.ok()) return Error{"public key: " + expected.error()};
  // The algorithm comes from the key, never from the token: "none" or an HMAC-with-the-public-
  // key trick cannot get through.
  const auto& alg_name = alg->get_ref<const std::string&>();
  if (alg_name != expected.value()) {
    return Error{"license: algorithm " + Quoted(alg_name) + " does not match the " +
                 KeyTypeName(key.get()) + " public key (expected " + expected.value() + ")"};
  }

  const std::optional<std::string> signature = common::Base64Decode(signature_part);
  if (!signature) return Error{"license: signature is not valid base64url"};
  const std::string_view signing_input = text.substr(0, second);
  const MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* key_ctx = nullptr;  // owned by ctx
  if (!ctx ||
      EVP_DigestVerifyInit(ctx.get(), &key_ctx, DigestFor(expected.value()), nullptr, key.get()) !=
          1 ||
      (expected.value() == "RS256" &&
       EVP_PKEY_CTX_set_rsa_padding(key_ctx, RSA_PKCS1_PADDING) <= 0)) {
    return Error{"license: cannot set up verification (" + OpenSslReason() + ")"};
  }
  if (EVP_DigestVerify(ctx.get(), AsBytes(*signature), signature->size(), AsBytes(signing_input),
                       signing_input.size()) != 1) {
    return Error{"license: signature does not match the public key"};
  }

  const auto claims = DecodeJsonObject(claims_part, "claims");
  if (!claims.ok()) return Error{claims.error()};
  const nlohmann::json& json = claims.value();
  const auto iss = json.find("iss");
  if (iss == json.end() || *iss != kIssuer) {
    return Error{std::string("license: issuer (\"iss\") is not ") + kIssuer};
  }
  LicenseClaims result;
  const auto sub = json.find("sub");
  if (sub == json.end() || !sub->is_string()) return Error{"license: \"sub\" is not a string"};
  result.customer_id = sub->get<std::string>();
  const auto plan = json.find("plan");
  if (plan == json.end() || !plan->is_string()) return Error{"license: \"plan\" is not a string"};
  result.plan = plan->get<std::string>();
  const auto iat = IntegerClaim(json, "iat");
  if (!iat) return Error{"license: \"iat\" is not an integer number of seconds"};
  result.issued_at = *iat;
  const auto exp = IntegerClaim(json, "exp");
  if (!exp) return Error{"license: \"exp\" is not an integer number of seconds"};
  result.expires_at = *exp;
  return result;
}

}  // namespace billing::provisioner
