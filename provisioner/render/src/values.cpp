#include "billing/provisioner/values.h"

#include <strings.h>

#include <charconv>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace billing::provisioner {

Result<Value> ParseValuesText(const std::string& text, const std::string& source) {
  Value values;
  try {
    values = ParseYaml(text);
  } catch (const std::runtime_error& error) {
    return Error{source + ": invalid YAML: " + error.what()};
  }
  if (values.IsNull()) return Value::EmptyMap();
  if (!values.IsMap()) return Error{source + ": a values file must be a YAML map"};
  return values;
}

namespace {

// Splits on `separator` where it is not escaped by a backslash; escapes stay in the parts.
std::vector<std::string_view> SplitUnescaped(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == separator) {
      parts.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(text.substr(start));
  return parts;
}

std::string Unescape(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) ++i;
    out += text[i];
  }
  return out;
}

bool EqualsIgnoringCase(const std::string& a, const char* b) {
  return strcasecmp(a.c_str(), b) == 0;
}

// Helm's strvals typing (typedVal): keep this in step with tools/chart-render/main.go.
Value TypedValue(const std::string& text) {
  if (EqualsIgnoringCase(text, "true")) return Value(true);
  if (EqualsIgnoringCase(text, "false")) return Value(false);
  if (EqualsIgnoringCase(text, "null")) return Value();
  if (text == "0") return Value(std::int64_t{0});
  if (!text.empty() && text[0] != '0') {
    std::int64_t number = 0;
    const char* begin = text.data() + (text[0] == '+' ? 1 : 0);
    const char* end = text.data() + text.size();
    auto [parsed_end, ec] = std::from_chars(begin, end, number);
    if (ec == std::errc() && parsed_end == end && begin != end) return Value(number);
  }
  return Value(text);
}

}  // namespace

Result<Value> ParseSetArgument(std::string_view argument) {
  // Checked before splitting on ',' because a list ("a={x,y}") contains commas itself.
  if (argument.find("={") != std::string_view::npos) {
    return Error{"--set \"" + std::string(argument) + "\": list values are not supported"};
  }
  Value result = Value::EmptyMap();
  for (std::string_view assignment : SplitUnescaped(argument, ',')) {
    const std::string quoted = "--set \"" + std::string(assignment) + "\"";
    const auto pieces = SplitUnescaped(assignment, '=');
    if (pieces.size() < 2) return Error{quoted + ": expected key=value"};
    const std::string_view key = pieces[0];
    const std::string_view raw_value = assignment.substr(key.size() + 1);
    const auto path = SplitUnescaped(key, '.');
    Value* node = &result;
    for (std::size_t i = 0; i < path.size(); ++i) {
      if (path[i].empty()) {
        return Error{quoted + ": empty key segment in \"" + std::string(key) + "\""};
      }
      if (path[i].find_first_of("[]") != std::string_view::npos) {
        return Error{quoted + ": list indexes are not supported"};
      }
      const std::string segment = Unescape(path[i]);
      if (i + 1 == path.size()) {
        node->Set(segment, TypedValue(Unescape(raw_value)));
        break;
      }
      Value* child = node->Find(segment);
      if (child == nullptr || !child->IsMap()) child = &node->Set(segment, Value::EmptyMap());
      node = child;
    }
  }
  return result;
}

}  // namespace billing::provisioner
