// `--set` arguments. Properties:
//  - ParseSetArgument never throws; an error quotes the argument it is about ("--set \"...\"");
//  - an accepted argument gives a map, and writing that map back as one --set argument (every
//    leaf as path=value, escaped) parses to the same values: nothing is lost or re-typed.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "billing/provisioner/value.h"
#include "billing/provisioner/values.h"
#include "fuzz_check.h"

using billing::provisioner::Value;

namespace {

std::string Escape(std::string_view text, std::string_view special) {
  std::string out;
  for (const char c : text) {
    if (c == '\\' || special.find(c) != std::string_view::npos) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

std::string LeafText(const Value& leaf) {
  if (leaf.IsNull()) return "null";
  if (leaf.IsBool()) return leaf.AsBool() ? "true" : "false";
  if (leaf.IsInt()) return std::to_string(leaf.AsInt());
  FUZZ_CHECK(leaf.IsString(), "--set makes only null, booleans, integers and strings");
  return Escape(leaf.AsString(), ",{");
}

void Write(const Value& map, const std::string& prefix, std::string& out) {
  for (const auto& [key, child] : map.AsMap()) {
    const std::string path = prefix + Escape(key, ".,={");
    if (child.IsMap()) {
      FUZZ_CHECK(!child.AsMap().empty(), "no empty maps from --set");
      Write(child, path + ".", out);
    } else {
      if (!out.empty()) out.push_back(',');
      out += path + "=" + LeafText(child);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view argument(reinterpret_cast<const char*>(data), size);
  const auto parsed = billing::provisioner::ParseSetArgument(argument);
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.error().rfind("--set \"", 0) == 0, "an error quotes the argument");
    return 0;
  }
  FUZZ_CHECK(parsed.value().IsMap(), "a map of values");
  if (parsed.value().AsMap().empty()) return 0;
  std::string written;
  Write(parsed.value(), "", written);
  const auto again = billing::provisioner::ParseSetArgument(written);
  FUZZ_CHECK(again.ok(), "the written-back argument parses");
  FUZZ_CHECK(again.value() == parsed.value(), "the same values after writing back");
  return 0;
}
