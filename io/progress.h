// A one-line progress bar on stderr for long loops (prepare, synth, training epochs).
//
//   ProgressBar bar(n_files, "prepare");
//   for (...) { ...; bar.update(1, "bad=0"); }
//   bar.finish();
//
// On a terminal the line is redrawn in place with '\r' at most ~10 times per second:
//   prepare [#########.........]  512/1200  43% 85.3/s ETA 8s  bad=0
// When stderr is not a terminal (CI logs) it prints a plain line at each ~10% step instead, so a
// log does not fill with redraws. update() is thread-safe (worker threads may call it).
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

namespace sx::io {

class ProgressBar {
 public:
  // total <= 0 means unknown: count and rate are shown, no bar or ETA.
  ProgressBar(int64_t total, std::string label, std::FILE* out = stderr);
  ~ProgressBar();  // calls finish() if it has not been called
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // Adds n to the count; extra_text is shown at the end of the line (e.g. "loss 0.412").
  void update(int64_t n = 1, const std::string& extra_text = "");
  void set_extra(const std::string& extra_text);
  // Prints the final line (count, rate, elapsed) and a newline. Idempotent.
  void finish();

  int64_t count() const;
  double elapsed_seconds() const;
  // Forces plain-line mode (tests, or a caller that knows better than isatty).
  void set_tty(bool tty) { tty_ = tty; }

  // The text of one status line (no '\r' or newline); exposed for tests.
  static std::string format_line(const std::string& label, int64_t done, int64_t total, double seconds,
                                 const std::string& extra, bool final_line);

 private:
  void draw(bool final_line);
  std::string label_, extra_;
  int64_t total_, done_ = 0;
  std::FILE* out_;
  bool tty_;
  bool finished_ = false;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
  mutable std::mutex mu_;
};

}  // namespace sx::io
