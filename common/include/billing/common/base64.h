// Base64 (RFC 4648): the standard alphabet with padding (HTTP basic auth, Kubernetes Secret
// data, kubeconfig *-data fields) and the URL-safe alphabet without padding (JWT, generated
// credentials).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace billing::common {

std::string Base64Encode(std::string_view data);
std::string Base64UrlEncode(std::string_view data);  // '-' '_' and no '=' padding

/// Decodes either alphabet (even mixed), padded or not; spaces, tabs, CR and LF are ignored
/// (PEM-style line breaks). nullopt for any other character, an impossible length, misplaced
/// padding, or non-zero unused bits in the last symbol (a non-canonical encoding).
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace billing::common
