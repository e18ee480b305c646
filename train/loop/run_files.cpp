// Run-folder files shared by the trainers; see run_files.h.
#include "train/loop/run_files.h"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <sstream>

#include "tensor/errors.h"
#include "train/loop/clip.h"
#include "train/eval/plot.h"

namespace sx::train::run_files {

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

void create_run_folder(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) SX_THROW(IOError, "cannot create run folder ", dir, ": ", ec.message());
}

RunLog::RunLog(const std::string& path) {
  if (path.empty()) return;
  f_.open(path, std::ios::app);
  if (!f_) SX_THROW(IOError, "cannot open log file ", path);
}

void RunLog::line(const std::string& s) {
  if (!f_.is_open()) return;
  f_ << utc_now() << "  " << s << '\n';
  f_.flush();
}

std::string resumed_line(const std::string& ckpt_path, const TrainState& st) {
  return "resumed from " + ckpt_path + " at epoch " + std::to_string(st.epoch) + ", batch " +
         std::to_string(st.batch_in_epoch) + ", step " + std::to_string(st.step);
}

std::string csv_table(const std::string& header, const std::vector<std::vector<std::string>>& rows) {
  std::string s = header + "\n";
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (i) s += ',';
      s += row[i];
    }
    s += '\n';
  }
  return s;
}

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> c;
  std::stringstream ss(line);
  for (std::string x; std::getline(ss, x, ',');) c.push_back(x);
  return c;
}

void write_loss_plot(const std::string& path, const std::string& title, const std::string& metric,
                     const std::vector<double>& epochs, const std::vector<double>& train_loss,
                     const std::vector<double>& val_metric, size_t min_points) {
  SX_CHECK(train_loss.size() == epochs.size() && val_metric.size() == epochs.size(),
           "write_loss_plot: ", epochs.size(), " epochs but ", train_loss.size(), " losses and ", val_metric.size(),
           " metric values");
  plot::LinePlot p;
  p.title = title;
  p.xlabel = "epoch";
  p.ylabel = "loss / " + metric;
  p.auto_range = true;
  plot::Series loss, val;
  loss.label = "train loss";
  loss.color = plot::palette(0);
  val.label = "val " + metric;
  val.color = plot::palette(1);
  for (size_t i = 0; i < epochs.size(); ++i) {
    loss.x.push_back(epochs[i]);
    loss.y.push_back(train_loss[i]);
    if (std::isfinite(val_metric[i]) && val_metric[i] >= 0) {
      val.x.push_back(epochs[i]);
      val.y.push_back(val_metric[i]);
    }
  }
  p.series = {loss};
  if (!val.x.empty()) p.series.push_back(val);
  if (loss.x.size() >= min_points && !loss.x.empty()) plot::render(p).save_png(path);
}

}  // namespace sx::train::run_files
