// License key verification. The first input byte picks the public key (Ed25519 or RSA), the rest
// is the token. The keys below are test keys made for this target only; the tokens the signers
// issue at start-up (and the seed corpus, signed with the same keys) give the fuzzer valid
// tokens to mutate. Properties:
//  - VerifyLicense never throws, and accepts only tokens the matching signer issued, byte for
//    byte (nothing else is signed by the key: a forgery, an algorithm swap or a token of the other
//    key or of a third key must fail), with exactly the claims issued;
//  - every rejection says what is wrong, prefixed with "license: " or "public key: ".
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "identity.h"

using billing::provisioner::LicenseClaims;
using billing::provisioner::LicenseSigner;

namespace {

constexpr const char* kEd25519Key =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIBzn4RAnY7pMeyMW3t/9ZoJd4cjxP2ikVNMr6SG/hNmO\n"
    "-----END PRIVATE KEY-----\n";
constexpr const char* kRsaKey =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCoAZQTsmDjFA59\n"
    "OB1P4xSqKbgRzZuh9YxqwGM4vZVHSzcX46vU2djt+c6aV+KxTXW/9YGgaPvwJRiV\n"
    "0k3rt6sw4JjdFlcH189K7dDCkwMUK0FeywYkJvVyPyLvJL0azVT4lOE6DpojDctL\n"
    "GWwQarh2pCWHJKbPA/+BO5cuQbr8Dtvsg2lAP8PVDX97JIfpX3SGjq+C1AMRJ0QS\n"
    "nr5K3qnHTfRf1sntTNjX5IB/Y8MXNC9759NV993GAsZPKH1F5SaE47aj/a6mFjH1\n"
    "QFsYs09XsF7Z7HKLOTwPHJVVS+aQedgy4iGkDxcKQaeLoPAP6otG5O/vHXuGwI7Q\n"
    "iwrm6YS3AgMBAAECggEAL+KvSYPssJx9Wrx9QlFXiP62G8DuTJXXzW+DeF805qqu\n"
    "C82VIuhqt72dYQmOr/mDh9Caf1WdBYAVR1K3aemiTh6eA1oEOVSOHW22NFdBp+SC\n"
    "T9nvKKvABq2vL9lZWwPOZcHNhkY2MaqTWJbo4a8BX7N+jMvqDZQ2paeN+h27BW9i\n"
    "YvpWipPIWv3n6zS2J0ki2QR2n3dsxaQcjdm9DEzk8D/cRrmsVhgD6gslXAWVjeq8\n"
    "wKXEaeehe05N710WB3kXl9k13HSF+CXu14p4TnAqt3ds6NevebLuPI48jpktOhPl\n"
    "f8q/4OAscibl9AeWfBOsuucn2A90XOkqpfXr8x6O5QKBgQDbAYeL5nDvJcBuaSwn\n"
    "+hTXLUe7Et9Qcwb1tBRFkIrY6sHwZnsNGXOnrzcn9AShuxCEU5vkdI5mp6TD9yAM\n"
    "jxiQ9p5P/J/G7wWiqIXzhI7mJ5OFXwVwPswvVCbiRtuCRxgoLrJg+H4EKIpP5L3S\n"
    "rDey7NTdjHYt4racuHZH47si4wKBgQDEYqpTyhZigzx/rHvhtoWefbGOYpDHdj1i\n"
    "muSjJNQlGnReD9JBpQHY7tsBRQE3eQLwZV1+vPTYZ0lxE63/G1Ycke0XQJv9PHnc\n"
    "eN/EIr+hSzgOLbAYmRJb0j6kXDX/alVPnuB0NYMlLFkgeiPlwlebjlPtlbh5/dbt\n"
    "sy2W4Bb7HQKBgQClUx1Axf/g+E2wy6Iyt31+BkeM+C0uLPdHCd73uKqoH2eyE5q2\n"
    "g80j+4gWmAXbFTzdt8QKDNbmtY0TBf3inS89V36hASKYaR2G8dLUxu+c3KlnWBjh\n"
    "5/X5kHwd+sGAMi0RQFcWDuAKQZRPxWxqmekeH9x9NqiL8QZLfpCDqm09YwKBgHop\n"
    "5kq5K7Ocb8X8RhPitrwg9JLePbHWm9j7Ab966X0rN7hLnz+2pa+M5i+j/V3EqU9h\n"
    "vwdYA/eaSNVOqK5JEwgyvon4ZxDgze2YQ5p/AzYS1Iv9X83tar4zy0PzGKQKQYeG\n"
    "DZo8r5gwPkE1uZ7zhgv+PbdNq7Q3c7vp+jIgtCsBAoGAJZorhTFQTANnCEUB0SEm\n"
    "0Uf5ZGmK8D/N+jcAz7WUcs7q7ktN83LEEqvKeekDKmy1a0E2wZhC9xn2yHohwg4P\n"
    "tnOPMiKIYrS30JqAH6t81bTVqZks1Rp63Q5EVmGyigMYUv8ag4Raiz5jXh8YCwV6\n"
    "huNP4RVIEqleUy1R73gXtBA=\n"
    "-----END PRIVATE KEY-----\n";
constexpr const char* kOtherEd25519Key =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIJ44ncdcBoVNVxIBFtL9fjageQ27myvclqavosg2URZ5\n"
    "-----END PRIVATE KEY-----\n";

struct Keys {
  std::string public_pem[2];
  std::map<std::string, LicenseClaims> issued[2];  // token -> claims, per key
};

const Keys& TheKeys() {
  static const Keys keys = [] {
    Keys k;
    const std::vector<LicenseClaims> claims = {
        {"acme-x1b2c3", "pro", 1'700'000'000, 1'800'000'000},
        {"c", "standard", 0, 1},
        {"\xc3\xa9t\xc3\xa9-z9", "", -5, 4'102'444'800},
    };
    const char* pems[2] = {kEd25519Key, kRsaKey};
    for (int i = 0; i < 2; ++i) {
      auto signer = LicenseSigner::FromPem(pems[i]);
      FUZZ_CHECK(signer.ok(), "the test key loads");
      k.public_pem[i] = signer.value()->PublicKeyPem();
      for (const auto& c : claims) k.issued[i][signer.value()->Issue(c)] = c;
    }
    // A third key's tokens (and the other key's) must never pass: they are not in issued[i].
    auto other = LicenseSigner::FromPem(kOtherEd25519Key);
    FUZZ_CHECK(other.ok(), "the other test key loads");
    return k;
  }();
  return keys;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const Keys& keys = TheKeys();
  const int which = data[0] & 1;
  const std::string token(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto verified = billing::provisioner::VerifyLicense(token, keys.public_pem[which]);
  const auto issued = keys.issued[which].find(token);
  if (!verified.ok()) {
    FUZZ_CHECK(issued == keys.issued[which].end(), "a token the key signed is accepted");
    FUZZ_CHECK(verified.error().rfind("license: ", 0) == 0 ||
                   verified.error().rfind("public key: ", 0) == 0,
               "a rejection says what is wrong");
    return 0;
  }
  FUZZ_CHECK(issued != keys.issued[which].end(), "only tokens signed by the key are accepted");
  const auto& claims = verified.value();
  FUZZ_CHECK(claims.customer_id == issued->second.customer_id &&
                 claims.plan == issued->second.plan &&
                 claims.issued_at == issued->second.issued_at &&
                 claims.expires_at == issued->second.expires_at,
             "exactly the claims issued");
  return 0;
}
