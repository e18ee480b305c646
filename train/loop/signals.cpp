// SIGINT/SIGTERM handling; see signals.h.
#include "train/loop/signals.h"

#include <unistd.h>

#include <atomic>
#include <cstring>

namespace sx::train {
namespace {
// Lock-free atomics are async-signal-safe to load and store.
std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "signal flag must be lock-free");

extern "C" void on_stop_signal(int sig) {
  int expected = 0;
  if (g_signal.compare_exchange_strong(expected, sig)) {
    static const char msg[] =
        "\nspinexr: stop requested; finishing the current step and saving a checkpoint (signal again to quit now)\n";
    ssize_t r = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)r;
    return;
  }
  static const char msg[] = "\nspinexr: second signal, exiting now without saving\n";
  ssize_t r = ::write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)r;
  ::_exit(128 + sig);
}
}  // namespace

StopSignals::StopSignals() {
  g_signal.store(0);
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // interrupted reads/writes resume; the loop polls the flag
  sigaction(SIGINT, &sa, &old_int_);
  sigaction(SIGTERM, &sa, &old_term_);
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &old_int_, nullptr);
  sigaction(SIGTERM, &old_term_, nullptr);
}

bool stop_requested() { return g_signal.load() != 0; }
int stop_signal() { return g_signal.load(); }
int exit_code_for_signal(int sig) { return sig > 0 ? 128 + sig : 0; }
void request_stop(int sig) {
  int expected = 0;
  g_signal.compare_exchange_strong(expected, sig);
}
void clear_stop() { g_signal.store(0); }

}  // namespace sx::train
