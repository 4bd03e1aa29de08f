// kubeconfig documents. "PW" in the input becomes a long marker standing for a bearer token.
// Properties:
//  - ParseKubeconfig never throws; an error starts with "kubeconfig: " and names a field;
//  - an error never quotes a token (when the marker only appears in `token` values);
//  - accepted credentials are usable as they are: an http(s) server without a trailing '/', CA and
//    client certificate/key as PEM, a client certificate only with its key, never a CA that is
//    then not checked.
#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "fuzz_check.h"
#include "kube_client.h"

namespace {
constexpr const char* kMarker = "Zq7SecretMarker9";

// Whether every marker stands in a `token` value (the only secret a kubeconfig holds inline,
// besides the PEMs), as YAML reads the document: a quoted scalar spanning lines is one value.
bool MarkerOnlyInTokens(const YAML::Node& node, bool is_token_value) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return is_token_value || node.Scalar().find(kMarker) == std::string::npos;
    case YAML::NodeType::Sequence:
      for (const auto& item : node) {
        if (!MarkerOnlyInTokens(item, false)) return false;
      }
      return true;
    case YAML::NodeType::Map:
      for (const auto& entry : node) {
        if (!MarkerOnlyInTokens(entry.first, false)) return false;
        const bool token = entry.first.IsScalar() && entry.first.Scalar() == "token";
        if (!MarkerOnlyInTokens(entry.second, token)) return false;
      }
      return true;
    default:
      return true;
  }
}

bool MarkerOnlyInTokens(const std::string& text) {
  try {
    return MarkerOnlyInTokens(YAML::Load(text), false);
  } catch (const YAML::Exception&) {
    return false;  // not YAML: the marker is not a token's value
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  for (auto at = text.find("PW"); at != std::string::npos; at = text.find("PW", at)) {
    text.replace(at, 2, kMarker);
  }
  // No base directory: relative file references cannot be read, as for a kubeconfig whose files
  // are missing.
  const auto parsed = billing::provisioner::ParseKubeconfig(text, "/nonexistent-kubeconfig-dir");
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.error().rfind("kubeconfig: ", 0) == 0, "errors name the kubeconfig");
    FUZZ_CHECK(parsed.error().size() > 12, "errors say what is wrong");
    if (text.find(kMarker) != std::string::npos && MarkerOnlyInTokens(text)) {
      if (parsed.error().find(kMarker) != std::string::npos) {
        std::fprintf(stderr, "error: %s\n", parsed.error().c_str());
      }
      FUZZ_CHECK(parsed.error().find(kMarker) == std::string::npos, "errors never quote a token");
    }
    return 0;
  }
  const auto& credentials = parsed.value();
  FUZZ_CHECK(
      credentials.server.rfind("https://", 0) == 0 || credentials.server.rfind("http://", 0) == 0,
      "an http(s) server");
  FUZZ_CHECK(credentials.server.back() != '/', "no trailing '/'");
  FUZZ_CHECK(!(credentials.insecure_skip_tls_verify && !credentials.ca_pem.empty()),
             "never a CA that is not checked");
  FUZZ_CHECK(credentials.client_certificate_pem.empty() == credentials.client_key_pem.empty(),
             "a client certificate only with its key");
  for (const std::string* pem :
       {&credentials.ca_pem, &credentials.client_certificate_pem, &credentials.client_key_pem}) {
    FUZZ_CHECK(pem->empty() || pem->find("-----BEGIN ") != std::string::npos, "PEM documents");
  }
  return 0;
}
