// Chart values: parsing of values files and Helm-style --set arguments. Pure: callers read the
// files and hand over their text.
#pragma once

#include <string>
#include <string_view>

#include "billing/provisioner/result.h"
#include "billing/provisioner/value.h"

namespace billing::provisioner {

/// Parses a values file's text into a map (an empty file gives an empty map). `source` names
/// the file in the error message.
Result<Value> ParseValuesText(const std::string& text, const std::string& source);

/// Parses one --set argument the way Helm's strvals does for the subset we support:
/// "a.b=c" sets nested keys; ',' separates assignments; '\' escapes the next character (so
/// "ingress.annotations.cert-manager\.io/cluster-issuer=x" addresses a dotted key); values
/// "true"/"false"/"null" (any case) become a boolean or null (null deletes the key), integers
/// without a leading zero become integers, anything else a string. List syntax ("{a,b}",
/// "name[0]") is rejected. Errors name the argument.
Result<Value> ParseSetArgument(std::string_view argument);

}  // namespace billing::provisioner
