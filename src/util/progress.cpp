#include <splitshare/util/progress.h>

#include <torch/torch.h>

#include <unistd.h>

#include <cstdio>

namespace splitshare::util {

ProgressBar::ProgressBar(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(std::max<int64_t>(total, 1)), enabled_(enabled), tty_(isatty(STDERR_FILENO)) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

void ProgressBar::update(int64_t done, const std::string& status) {
  done_ = done;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  } else {
    const int decile = static_cast<int>(10 * done_ / total_);
    if (decile == last_decile_) return;
    last_decile_ = decile;
  }
  last_draw_ = now;
  draw(status, false);
}

void ProgressBar::finish(const std::string& status) {
  done_ = total_;
  if (enabled_) draw(status, true);
}

void ProgressBar::draw(const std::string& status, bool final) {
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(kWidth * done_ / total_);
  std::string bar(filled, '#');
  bar.append(kWidth - filled, '.');
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double eta = done_ > 0 ? elapsed * (total_ - done_) / done_ : 0.0;
  std::fprintf(stderr, "%s%s [%s] %lld/%lld %s %s%s", tty_ ? "\r\033[K" : "", label_.c_str(), bar.c_str(),
               static_cast<long long>(done_), static_cast<long long>(total_), status.c_str(),
               final ? format_duration(elapsed).c_str() : ("eta " + format_duration(eta)).c_str(),
               final || !tty_ ? "\n" : "");
  std::fflush(stderr);
}

std::string format_duration(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, (s / 60) % 60);
  } else if (s >= 60) {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%.1fs", seconds);
  }
  return buf;
}

}  // namespace splitshare::util
