#include "billing/provisioner/value.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <regex>
#include <stdexcept>

namespace billing::provisioner {

const Value* Value::Find(std::string_view key) const {
  if (!IsMap()) return nullptr;
  for (const auto& [name, value] : AsMap()) {
    if (name == key) return &value;
  }
  return nullptr;
}

Value* Value::Find(std::string_view key) {
  return const_cast<Value*>(static_cast<const Value&>(*this).Find(key));
}

const Value* Value::FindPath(std::string_view dotted_path) const {
  const Value* node = this;
  while (node != nullptr) {
    const auto dot = dotted_path.find('.');
    node = node->Find(dotted_path.substr(0, dot));
    if (dot == std::string_view::npos) break;
    dotted_path.remove_prefix(dot + 1);
  }
  return node;
}

Value& Value::Set(std::string key, Value value) {
  Map& map = AsMap();
  for (auto& [name, existing] : map) {
    if (name == key) {
      existing = std::move(value);
      return existing;
    }
  }
  map.emplace_back(std::move(key), std::move(value));
  return map.back().second;
}

void Value::Erase(std::string_view key) {
  Map& map = AsMap();
  std::erase_if(map, [&](const auto& entry) { return entry.first == key; });
}

bool operator==(const Value& a, const Value& b) {
  if (a.IsInt() && b.IsFloat()) return static_cast<double>(a.AsInt()) == b.AsFloat();
  if (a.IsFloat() && b.IsInt()) return a.AsFloat() == static_cast<double>(b.AsInt());
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kNull:
      return true;
    case Value::Kind::kBool:
      return a.AsBool() == b.AsBool();
    case Value::Kind::kInt:
      return a.AsInt() == b.AsInt();
    case Value::Kind::kFloat:
      return a.AsFloat() == b.AsFloat();
    case Value::Kind::kString:
      return a.AsString() == b.AsString();
    case Value::Kind::kList:
      return a.AsList() == b.AsList();
    case Value::Kind::kMap: {
      // Maps compare as sets of keys: order is presentation only.
      const auto& left = a.AsMap();
      const auto& right = b.AsMap();
      if (left.size() != right.size()) return false;
      return std::all_of(left.begin(), left.end(), [&](const auto& entry) {
        const Value* other = b.Find(entry.first);
        return other != nullptr && *other == entry.second;
      });
    }
  }
  return false;
}

namespace {

std::string FloatText(double d) {
  if (std::isnan(d)) return ".nan";
  if (std::isinf(d)) return d > 0 ? ".inf" : "-.inf";
  std::array<char, 64> buffer{};
  auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), d);
  std::string text(buffer.data(), end);
  // YAML 1.1 readers (PyYAML, yaml.v2) need a '.' to see a float rather than an int or a string.
  if (text.find('.') == std::string::npos) {
    const auto exponent = text.find('e');
    text.insert(exponent == std::string::npos ? text.size() : exponent, ".0");
  }
  return text;
}

}  // namespace

std::optional<std::string> ScalarText(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kNull:
      return std::string();
    case Value::Kind::kBool:
      return std::string(value.AsBool() ? "true" : "false");
    case Value::Kind::kInt:
      return std::to_string(value.AsInt());
    case Value::Kind::kFloat: {
      const double d = value.AsFloat();
      // Values files are read as JSON numbers by Helm; whole numbers print without a fraction.
      if (std::trunc(d) == d && std::fabs(d) < 1e15) {
        return std::to_string(static_cast<std::int64_t>(d));
      }
      std::array<char, 64> buffer{};
      auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), d);
      return std::string(buffer.data(), end);
    }
    case Value::Kind::kString:
      return value.AsString();
    case Value::Kind::kList:
    case Value::Kind::kMap:
      return std::nullopt;
  }
  return std::nullopt;
}

void MergeInto(Value& base, const Value& override_value) {
  if (!base.IsMap() || !override_value.IsMap()) {
    base = override_value;
    return;
  }
  for (const auto& [key, value] : override_value.AsMap()) {
    if (value.IsNull()) {
      base.Erase(key);
      continue;
    }
    Value* existing = base.Find(key);
    if (existing != nullptr && existing->IsMap() && value.IsMap()) {
      MergeInto(*existing, value);
    } else {
      base.Set(key, value);
    }
  }
}

namespace {

// Resolution of plain scalars as gopkg.in/yaml.v2 does it (YAML 1.1 booleans included), so a
// values file means the same to the renderer as to Helm.
Value ResolvePlainScalar(const std::string& text) {
  static const std::array<std::string_view, 4> kNulls = {"", "~", "null", "Null"};
  if (std::find(kNulls.begin(), kNulls.end(), text) != kNulls.end() || text == "NULL") {
    return Value();
  }
  static const std::array<std::string_view, 11> kTrue = {
      "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};
  static const std::array<std::string_view, 11> kFalse = {
      "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"};
  if (std::find(kTrue.begin(), kTrue.end(), text) != kTrue.end()) return Value(true);
  if (std::find(kFalse.begin(), kFalse.end(), text) != kFalse.end()) return Value(false);
  static const std::regex kInt(R"([-+]?(0|[1-9][0-9]*))");
  if (std::regex_match(text, kInt)) {
    std::int64_t number = 0;
    const char* begin = text.data() + (text[0] == '+' ? 1 : 0);
    auto [end, ec] = std::from_chars(begin, text.data() + text.size(), number);
    if (ec == std::errc() && end == text.data() + text.size()) return Value(number);
  }
  static const std::regex kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (std::regex_match(text, kFloat)) return Value(std::stod(text));
  if (text == ".inf" || text == "+.inf" || text == ".Inf") {
    return Value(std::numeric_limits<double>::infinity());
  }
  if (text == "-.inf" || text == "-.Inf") return Value(-std::numeric_limits<double>::infinity());
  if (text == ".nan" || text == ".NaN") return Value(std::numeric_limits<double>::quiet_NaN());
  return Value(text);
}

Value FromNode(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return Value();
    case YAML::NodeType::Scalar: {
      const std::string& tag = node.Tag();
      if (tag == "!" || tag == "tag:yaml.org,2002:str") return Value(node.Scalar());
      return ResolvePlainScalar(node.Scalar());
    }
    case YAML::NodeType::Sequence: {
      Value::List list;
      for (const auto& item : node) list.push_back(FromNode(item));
      return Value(std::move(list));
    }
    case YAML::NodeType::Map: {
      Value map = Value::EmptyMap();
      for (const auto& entry : node) {
        map.Set(entry.first.as<std::string>(), FromNode(entry.second));
      }
      return map;
    }
  }
  return Value();
}

}  // namespace

std::vector<Value> ParseYamlStream(const std::string& text) {
  std::vector<Value> documents;
  try {
    for (const auto& node : YAML::LoadAll(text)) documents.push_back(FromNode(node));
  } catch (const YAML::Exception& error) {
    throw std::runtime_error(error.what());
  }
  return documents;
}

Value ParseYaml(const std::string& text) {
  auto documents = ParseYamlStream(text);
  if (documents.empty()) return Value();
  return std::move(documents.front());
}

namespace {

bool IsYamlKeyword(const std::string& text) {
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  static const std::array<std::string_view, 12> kKeywords = {
      "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", "nan", "inf"};
  return std::find(kKeywords.begin(), kKeywords.end(), lower) != kKeywords.end();
}

// Plain only when no YAML reader could take the text for anything else: starts with a letter,
// '_' or '/', continues with a conservative set, no ": " or " #", no trailing space or ':'.
bool CanBePlain(const std::string& text) {
  static const std::regex kSafe(R"([A-Za-z_/]([A-Za-z0-9_./@ :-]*[A-Za-z0-9_./@-])?)");
  return std::regex_match(text, kSafe) && text.find(": ") == std::string::npos &&
         text.find(" #") == std::string::npos && !IsYamlKeyword(text);
}

std::string DoubleQuoted(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\x";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += static_cast<char>(c);  // UTF-8 passes through unchanged
        }
    }
  }
  return out + "\"";
}

// Literal blocks keep config files readable; only for text that round-trips exactly through
// "|" (clip chomping): one trailing newline, no other control characters, no leading space.
bool CanBeLiteralBlock(const std::string& text) {
  if (text.size() < 2 || text.back() != '\n' || text[text.size() - 2] == '\n') return false;
  if (text.front() == ' ' || text.front() == '\n') return false;
  return std::none_of(text.begin(), text.end(),
                      [](unsigned char c) { return (c < 0x20 && c != '\n') || c == 0x7f; });
}

std::string ScalarYaml(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kNull:
      return "null";
    case Value::Kind::kBool:
      return value.AsBool() ? "true" : "false";
    case Value::Kind::kInt:
      return std::to_string(value.AsInt());
    case Value::Kind::kFloat:
      return FloatText(value.AsFloat());
    case Value::Kind::kString:
      return CanBePlain(value.AsString()) ? value.AsString() : DoubleQuoted(value.AsString());
    default:
      return "";
  }
}

std::string KeyYaml(const std::string& key) { return CanBePlain(key) ? key : DoubleQuoted(key); }

void EmitNode(const Value& value, int indent, std::string& out);

// Writes `value` after "key:" or "-" (the caller wrote that and no space yet).
void EmitAfterIndicator(const Value& value, int indent, std::string& out) {
  if (value.IsMap() && !value.AsMap().empty()) {
    out += '\n';
    EmitNode(value, indent + 2, out);
  } else if (value.IsList() && !value.AsList().empty()) {
    out += '\n';
    EmitNode(value, indent + 2, out);
  } else if (value.IsMap()) {
    out += " {}\n";
  } else if (value.IsList()) {
    out += " []\n";
  } else if (value.IsString() && CanBeLiteralBlock(value.AsString())) {
    out += " |\n";
    const std::string& text = value.AsString();
    std::size_t start = 0;
    while (start < text.size()) {
      const std::size_t end = text.find('\n', start);
      const std::string line = text.substr(start, end - start);
      if (!line.empty()) out += std::string(indent + 2, ' ') + line;
      out += '\n';
      start = end + 1;
    }
  } else {
    out += ' ' + ScalarYaml(value) + '\n';
  }
}

void EmitNode(const Value& value, int indent, std::string& out) {
  const std::string pad(indent, ' ');
  if (value.IsMap()) {
    for (const auto& [key, member] : value.AsMap()) {
      out += pad + KeyYaml(key) + ':';
      EmitAfterIndicator(member, indent, out);
    }
  } else if (value.IsList()) {
    for (const auto& item : value.AsList()) {
      if (item.IsMap() && !item.AsMap().empty()) {
        // "- key: value" with the remaining keys aligned under the first one.
        std::string nested;
        EmitNode(item, indent + 2, nested);
        out += pad + "- " + nested.substr(indent + 2);
      } else {
        out += pad + '-';
        EmitAfterIndicator(item, indent, out);
      }
    }
  } else {
    out += pad + ScalarYaml(value) + '\n';
  }
}

}  // namespace

std::string EmitYaml(const Value& document) {
  if (document.IsMap() && document.AsMap().empty()) return "{}\n";
  if (document.IsList() && document.AsList().empty()) return "[]\n";
  if (document.IsScalar()) return ScalarYaml(document) + '\n';
  std::string out;
  EmitNode(document, 0, out);
  return out;
}

}  // namespace billing::provisioner
