// A JSON-like document tree with typed scalars and insertion-ordered maps: the form in which the
// renderer reads values and builds Kubernetes objects. yaml-cpp's own Node keeps every scalar as
// untyped text, which cannot tell the string "4" from the number 4 when emitting; Kubernetes
// (and the parity test against Helm) can.
//
// Thread-safety: a Value is a plain value type; distinct objects may be used from distinct
// threads, one object not concurrently with a mutation of it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace billing::provisioner {

class Value {
 public:
  using List = std::vector<Value>;
  /// Keys in insertion order; emission keeps that order, which keeps output deterministic.
  using Map = std::vector<std::pair<std::string, Value>>;
  enum class Kind { kNull, kBool, kInt, kFloat, kString, kList, kMap };

  Value() = default;
  Value(bool b) : data_(b) {}                      // NOLINT(google-explicit-constructor)
  Value(int i) : data_(std::int64_t{i}) {}         // NOLINT(google-explicit-constructor)
  Value(std::int64_t i) : data_(i) {}              // NOLINT(google-explicit-constructor)
  Value(double d) : data_(d) {}                    // NOLINT(google-explicit-constructor)
  Value(const char* s) : data_(std::string(s)) {}  // NOLINT(google-explicit-constructor)
  Value(std::string s) : data_(std::move(s)) {}    // NOLINT(google-explicit-constructor)
  Value(List l) : data_(std::move(l)) {}           // NOLINT(google-explicit-constructor)
  Value(Map m) : data_(std::move(m)) {}            // NOLINT(google-explicit-constructor)

  static Value EmptyMap() { return Value(Map{}); }
  static Value EmptyList() { return Value(List{}); }

  Kind kind() const { return static_cast<Kind>(data_.index()); }
  bool IsNull() const { return kind() == Kind::kNull; }
  bool IsBool() const { return kind() == Kind::kBool; }
  bool IsInt() const { return kind() == Kind::kInt; }
  bool IsFloat() const { return kind() == Kind::kFloat; }
  bool IsString() const { return kind() == Kind::kString; }
  bool IsList() const { return kind() == Kind::kList; }
  bool IsMap() const { return kind() == Kind::kMap; }
  bool IsScalar() const { return !IsList() && !IsMap(); }

  // Accessors; calling one for the wrong kind throws std::bad_variant_access (a bug).
  bool AsBool() const { return std::get<bool>(data_); }
  std::int64_t AsInt() const { return std::get<std::int64_t>(data_); }
  double AsFloat() const { return std::get<double>(data_); }
  const std::string& AsString() const { return std::get<std::string>(data_); }
  const List& AsList() const { return std::get<List>(data_); }
  List& AsList() { return std::get<List>(data_); }
  const Map& AsMap() const { return std::get<Map>(data_); }
  Map& AsMap() { return std::get<Map>(data_); }

  /// The member `key` of a map; nullptr if absent or if this is not a map.
  const Value* Find(std::string_view key) const;
  Value* Find(std::string_view key);
  /// The value at a dotted path ("postgres.resources.limits"); nullptr if any step is missing.
  const Value* FindPath(std::string_view dotted_path) const;
  /// Sets `key` (replacing in place, else appending). This must be a map.
  Value& Set(std::string key, Value value);
  /// Removes `key` if present. This must be a map.
  void Erase(std::string_view key);

  /// Deep equality; an integer equals a float with the same numeric value.
  friend bool operator==(const Value& a, const Value& b);

 private:
  std::variant<std::monostate, bool, std::int64_t, double, std::string, List, Map> data_;
};

/// A scalar as Helm's `toString` prints it (null -> "", booleans true/false, numbers in
/// decimal); nullopt for lists and maps.
std::optional<std::string> ScalarText(const Value& value);

/// Deep-merges `override_value` into `base`: maps merge key by key, anything else replaces, and a
/// null in the override deletes the key (Helm's value coalescing).
void MergeInto(Value& base, const Value& override_value);

/// Parses every document of a YAML stream, resolving plain scalars the way Go's yaml.v2 (and so
/// Helm) does: null/~/empty, YAML 1.1 booleans (true, yes, on, ...), decimal integers, floats;
/// quoted and block scalars are strings. Throws std::runtime_error with the line on bad YAML.
std::vector<Value> ParseYamlStream(const std::string& text);
/// One document (an empty stream gives null). Throws like ParseYamlStream.
Value ParseYaml(const std::string& text);

/// Emits one document in block style, two-space indentation, strings quoted whenever a plain
/// scalar could be read as anything but that string; multi-line strings ending in a newline use
/// literal blocks. No trailing "---" or "...".
std::string EmitYaml(const Value& document);

}  // namespace billing::provisioner
