// common: glibc malloc set up once per process for the shape both programs have: a few large,
// short-lived buffers (the exporter's multi-MB pages, the provisioner's 19 MiB Argon2id blocks)
// handed out by many threads, and no allocation hot path that contends. Header-only, glibc only.
#pragma once

#include <malloc.h>

namespace billing::common {

/// Call at the start of main, before any other thread starts.
inline void TuneMalloc() {
  // Fixed (not glibc's dynamic) mmap threshold: every large buffer gets its own mapping and goes
  // back to the kernel the moment it is freed, by whichever thread frees it last. With the
  // dynamic default the threshold climbs to the size of the first large block freed, later ones
  // come from the heaps (one per arena), and the heaps keep their pages once they are freed:
  // 50 signups in a burst (an Argon2id hash of 19 MiB each, every request on its own thread)
  // left the provisioner 400 MiB resident, over its 256 Mi limit. Setting the threshold also fixes
  // the trim threshold at its 128 KiB default instead of twice the mmap threshold.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  // An arena per thread (glibc allows 8 per core) keeps each thread's freed small blocks to
  // itself; neither program allocates on a path where threads contend, so two are enough.
  mallopt(M_ARENA_MAX, 2);
}

}  // namespace billing::common
