// What build this is: the project's version and the git revision it was built from.
#pragma once

#include <string>

namespace billing::common {

/// project(VERSION) of the top-level CMakeLists.txt, e.g. "0.1.0" (the chart's appVersion and
/// the images' tag are the same version; tests/images checks it).
std::string Version();

/// The git revision (12 hex digits) of the source, the image build's REVISION argument, or
/// "unknown" when built outside a git checkout without one.
std::string Revision();

}  // namespace billing::common
