#pragma once

#include <csignal>

namespace splitshare::util {

/// Catches SIGINT and SIGTERM while it exists, so that a run can stop cleanly: the first
/// signal only sets a flag that pending() returns (the signal number; training polls it
/// after every step and writes a checkpoint); a second one ends the process at once with
/// exit status 128 + signal (the last checkpoint written stays loadable). The previous
/// handlers come back when it is destroyed. Create at most one at a time.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  /// 0, or the number of the first signal caught.
  int pending() const;

 private:
  struct sigaction previous_int_ {};
  struct sigaction previous_term_ {};
};

}  // namespace splitshare::util
