#include "io/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace sx::io {

namespace {
std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  long t = static_cast<long>(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}
}  // namespace

ProgressBar::ProgressBar(int64_t total, std::string label, std::FILE* out)
    : label_(std::move(label)), total_(total), out_(out) {
  tty_ = out_ && ::isatty(::fileno(out_));
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

ProgressBar::~ProgressBar() { finish(); }

int64_t ProgressBar::count() const {
  std::lock_guard<std::mutex> lk(mu_);
  return done_;
}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string ProgressBar::format_line(const std::string& label, int64_t done, int64_t total, double seconds,
                                     const std::string& extra, bool final_line) {
  std::string s = label;
  char buf[160];
  double rate = seconds > 0 ? done / seconds : 0.0;
  if (total > 0) {
    const int width = 20;
    double frac = std::min(1.0, std::max(0.0, static_cast<double>(done) / total));
    int filled = static_cast<int>(frac * width);
    s += " [";
    s.append(filled, '#');
    s.append(width - filled, '.');
    s += "]";
    std::snprintf(buf, sizeof buf, " %lld/%lld %3d%% %.1f/s", static_cast<long long>(done),
                  static_cast<long long>(total), static_cast<int>(frac * 100), rate);
    s += buf;
    if (final_line) s += " in " + fmt_duration(seconds);
    else s += " ETA " + (rate > 0 ? fmt_duration((total - done) / rate) : std::string("?"));
  } else {
    std::snprintf(buf, sizeof buf, " %lld %.1f/s", static_cast<long long>(done), rate);
    s += buf;
    if (final_line) s += " in " + fmt_duration(seconds);
  }
  if (!extra.empty()) s += "  " + extra;
  return s;
}

void ProgressBar::draw(bool final_line) {
  if (!out_) return;
  double secs = elapsed_seconds();
  std::string line = format_line(label_, done_, total_, secs, extra_, final_line);
  if (tty_) std::fprintf(out_, "\r%s\033[K%s", line.c_str(), final_line ? "\n" : "");
  else std::fprintf(out_, "%s\n", line.c_str());
  std::fflush(out_);
}

void ProgressBar::update(int64_t n, const std::string& extra_text) {
  std::lock_guard<std::mutex> lk(mu_);
  if (finished_) return;
  done_ += n;
  if (!extra_text.empty()) extra_ = extra_text;
  auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ >= std::chrono::milliseconds(100)) {
      last_draw_ = now;
      draw(false);
    }
  } else if (total_ > 0) {
    int decile = static_cast<int>(std::min<int64_t>(10, done_ * 10 / total_));
    if (decile > last_decile_ && decile < 10) {
      last_decile_ = decile;
      draw(false);
    }
  } else if (now - last_draw_ >= std::chrono::seconds(10)) {
    last_draw_ = now;
    draw(false);
  }
}

void ProgressBar::set_extra(const std::string& extra_text) {
  std::lock_guard<std::mutex> lk(mu_);
  extra_ = extra_text;
}

void ProgressBar::finish() {
  std::lock_guard<std::mutex> lk(mu_);
  if (finished_) return;
  finished_ = true;
  draw(true);
}

}  // namespace sx::io
