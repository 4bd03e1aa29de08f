#include "value_json.h"

#include <cstdint>

namespace billing::provisioner {

nlohmann::ordered_json ToJson(const Value& value) {
  switch (value.kind()) {
    case Value::Kind::kNull:
      return nullptr;
    case Value::Kind::kBool:
      return value.AsBool();
    case Value::Kind::kInt:
      return value.AsInt();
    case Value::Kind::kFloat:
      return value.AsFloat();
    case Value::Kind::kString:
      return value.AsString();
    case Value::Kind::kList: {
      auto out = nlohmann::ordered_json::array();
      for (const auto& item : value.AsList()) out.push_back(ToJson(item));
      return out;
    }
    case Value::Kind::kMap: {
      auto out = nlohmann::ordered_json::object();
      for (const auto& [key, member] : value.AsMap()) out[key] = ToJson(member);
      return out;
    }
  }
  return nullptr;
}

Value FromJson(const nlohmann::ordered_json& json) {
  if (json.is_null()) return Value();
  if (json.is_boolean()) return Value(json.get<bool>());
  // Above INT64_MAX nlohmann holds an unsigned: keep the magnitude as a float, never wrap.
  if (json.is_number_unsigned() &&
      json.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) {
    return Value(json.get<double>());
  }
  if (json.is_number_integer()) return Value(json.get<std::int64_t>());
  if (json.is_number()) return Value(json.get<double>());
  if (json.is_string()) return Value(json.get<std::string>());
  if (json.is_array()) {
    Value::List items;
    for (const auto& item : json) items.push_back(FromJson(item));
    return Value(std::move(items));
  }
  Value::Map members;
  for (const auto& [key, member] : json.items()) members.emplace_back(key, FromJson(member));
  return Value(std::move(members));
}

}  // namespace billing::provisioner
