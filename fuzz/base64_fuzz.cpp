// Base64 (RFC 4648). Properties:
//  - Decode(Encode(x)) == x and Decode(UrlEncode(x)) == x for every byte string;
//  - Decode accepts only canonical encodings: whatever it accepts is, once whitespace is dropped,
//    the URL alphabet mapped to the standard one and padding removed, exactly Encode() of what it
//    returned, without its padding;
//  - the encoded length is 4 * ceil(n / 3) (padded) or ceil(4n / 3) (unpadded).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "billing/common/base64.h"
#include "fuzz_check.h"

using billing::common::Base64Decode;
using billing::common::Base64Encode;
using billing::common::Base64UrlEncode;

namespace {
std::string StripPadding(std::string text) {
  while (!text.empty() && text.back() == '=') text.pop_back();
  return text;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  const std::string standard = Base64Encode(input);
  const std::string url = Base64UrlEncode(input);
  FUZZ_CHECK(standard.size() == 4 * ((size + 2) / 3), "padded length");
  FUZZ_CHECK(url.size() == (4 * size + 2) / 3, "unpadded length");
  FUZZ_CHECK(url.find_first_of("+/=") == std::string::npos, "URL alphabet, no padding");
  FUZZ_CHECK(Base64Decode(standard) == std::string(input), "standard round trip");
  FUZZ_CHECK(Base64Decode(url) == std::string(input), "URL-safe round trip");

  const auto decoded = Base64Decode(input);
  if (!decoded) return 0;
  std::string canonical;
  for (char c : input) {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    if (c == '-') c = '+';
    if (c == '_') c = '/';
    canonical.push_back(c);
  }
  FUZZ_CHECK(StripPadding(canonical) == StripPadding(Base64Encode(*decoded)),
             "only canonical encodings are accepted");
  return 0;
}
