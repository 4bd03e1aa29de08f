// Comparing secrets (tokens, Authorization headers) without leaking through timing how many
// leading bytes matched.
#pragma once

#include <string_view>

namespace billing::common {

/// True if equal; the time taken depends only on the lengths, not on where the inputs differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace billing::common
