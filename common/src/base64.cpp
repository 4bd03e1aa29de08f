#include "billing/common/base64.h"

#include <array>
#include <cstdint>

namespace billing::common {
namespace {

constexpr char kStandard[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrlSafe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Encode(std::string_view data, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    const std::uint32_t chunk =
        (static_cast<std::uint32_t>(static_cast<unsigned char>(data[i])) << 16) |
        (static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8) |
        static_cast<unsigned char>(data[i + 2]);
    out += alphabet[(chunk >> 18) & 63];
    out += alphabet[(chunk >> 12) & 63];
    out += alphabet[(chunk >> 6) & 63];
    out += alphabet[chunk & 63];
  }
  if (i < data.size()) {
    std::uint32_t chunk = static_cast<std::uint32_t>(static_cast<unsigned char>(data[i])) << 16;
    const bool two = i + 1 < data.size();
    if (two) chunk |= static_cast<std::uint32_t>(static_cast<unsigned char>(data[i + 1])) << 8;
    out += alphabet[(chunk >> 18) & 63];
    out += alphabet[(chunk >> 12) & 63];
    if (two) {
      out += alphabet[(chunk >> 6) & 63];
    } else if (pad) {
      out += '=';
    }
    if (pad) out += '=';
  }
  return out;
}

constexpr std::array<std::int8_t, 256> MakeDecodeTable() {
  std::array<std::int8_t, 256> table{};
  for (auto& entry : table) entry = -1;
  for (int i = 0; i < 64; ++i) {
    table[static_cast<unsigned char>(kStandard[i])] = static_cast<std::int8_t>(i);
    table[static_cast<unsigned char>(kUrlSafe[i])] = static_cast<std::int8_t>(i);
  }
  return table;
}
constexpr auto kDecode = MakeDecodeTable();

}  // namespace

std::string Base64Encode(std::string_view data) { return Encode(data, kStandard, true); }
std::string Base64UrlEncode(std::string_view data) { return Encode(data, kUrlSafe, false); }

std::optional<std::string> Base64Decode(std::string_view text) {
  std::string out;
  out.reserve(text.size() / 4 * 3);
  std::uint32_t chunk = 0;
  int bits = 0;
  std::size_t symbols = 0;
  std::size_t padding = 0;
  for (const char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding > 0) return std::nullopt;  // data after padding
    const auto value = kDecode[static_cast<unsigned char>(c)];
    if (value < 0) return std::nullopt;
    ++symbols;
    chunk = (chunk << 6) | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((chunk >> bits) & 0xFF);
    }
  }
  if (symbols % 4 == 1 || padding > 2) return std::nullopt;
  if (padding > 0 && (symbols + padding) % 4 != 0) return std::nullopt;
  if ((chunk & ((1U << bits) - 1)) != 0) return std::nullopt;  // non-canonical trailing bits
  return out;
}

}  // namespace billing::common
