// A global operator new that counts, for the tests that prove a hot path allocates nothing. A test
// binary links billing::counting_allocator (an object library, so the replacement is always in
// the binary) and compares AllocationsOnThisThread() before and after the path.
#pragma once

#include <cstddef>

namespace billing::testbed {

/// Allocations made by the calling thread since it started.
std::size_t AllocationsOnThisThread();

}  // namespace billing::testbed
