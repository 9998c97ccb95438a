#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace splitshare::util {

/// A one-line progress bar on stderr: redrawn in place on a terminal, printed every
/// ~10% otherwise (logs stay readable).
class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, bool enabled = true);
  /// Sets the completed count and the text shown after the bar.
  void update(int64_t done, const std::string& status);
  /// Ends the line.
  void finish(const std::string& status);

 private:
  void draw(const std::string& status, bool final);

  std::string label_;
  int64_t total_;
  int64_t done_ = 0;
  bool enabled_;
  bool tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

/// "1m23s" style durations.
std::string format_duration(double seconds);

}  // namespace splitshare::util
