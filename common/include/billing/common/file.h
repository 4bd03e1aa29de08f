// Reading a whole file, for configuration, charts, keys and credentials.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace billing::common {

/// The file's bytes; nullopt if it cannot be opened or read, or is a directory.
std::optional<std::string> ReadTextFile(const std::filesystem::path& path);

}  // namespace billing::common
