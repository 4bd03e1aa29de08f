// common: how both programs stop. SIGTERM and SIGINT are blocked before any thread starts (the
// threads inherit the mask), so only the main thread takes them, with Wait(); SIGPIPE is ignored
// (a peer that closed its socket is an error of that write, not the end of the process).
// Header-only, POSIX only.
#pragma once

#include <pthread.h>

#include <csignal>
#include <cstring>
#include <string>

namespace billing::common {

class StopSignals {
 public:
  /// Call in the main thread before starting any other.
  StopSignals() {
    sigemptyset(&signals_);
    sigaddset(&signals_, SIGTERM);
    sigaddset(&signals_, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals_, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  /// Blocks until SIGTERM or SIGINT arrives; returns its description ("Terminated").
  std::string Wait() const {
    int received = 0;
    sigwait(&signals_, &received);
    return strsignal(received);
  }

 private:
  sigset_t signals_;
};

}  // namespace billing::common
