#include <splitshare/util/signals.h>

#include <atomic>
#include <csignal>

#include <unistd.h>

namespace splitshare::util {
namespace {

// A signal handler can reach only static storage; lock-free atomics are async-signal-safe.
std::atomic<int> caught_signal{0};

void on_signal(int signal) {
  int expected = 0;
  if (!caught_signal.compare_exchange_strong(expected, signal)) _exit(128 + signal);
}

}  // namespace

StopSignals::StopSignals() {
  caught_signal = 0;
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &previous_int_);
  sigaction(SIGTERM, &action, &previous_term_);
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &previous_int_, nullptr);
  sigaction(SIGTERM, &previous_term_, nullptr);
}

int StopSignals::pending() const { return caught_signal.load(); }

}  // namespace splitshare::util
