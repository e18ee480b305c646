// Graceful interruption of long runs (training, evaluation).
//
// While a StopSignals guard is alive, SIGINT and SIGTERM do not kill the process: the first one
// only records which signal arrived (an async-signal-safe store), and the training loop polls
// stop_requested() at each step boundary, writes a checkpoint and returns; the CLI then exits
// with 128 + signal number (130 for SIGINT, 143 for SIGTERM), the shell convention.
// A second signal means "now": the handler writes one line to stderr and calls _exit(128 + sig)
// at once (the only place besides the CLI's main() that ends the process; _exit and write are
// async-signal-safe, nothing else is touched).
// The guard restores the previous handlers when it goes out of scope.
#pragma once
#include <csignal>

namespace sx::train {

class StopSignals {
 public:
  StopSignals();   // installs the handlers and clears any earlier request
  ~StopSignals();  // restores the previous handlers
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  struct sigaction old_int_, old_term_;
};

bool stop_requested();
int stop_signal();                   // SIGINT / SIGTERM, or 0 when none arrived
int exit_code_for_signal(int sig);   // 128 + sig (130, 143)
// Simulates a first signal (tests, or a caller that wants the same graceful path).
void request_stop(int sig);
void clear_stop();

}  // namespace sx::train
