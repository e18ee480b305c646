// The files the training loop (train/loop/loop.h) keeps in a run folder:
//   train.log    RunLog: one line per event, each prefixed by the UTC time, appended and flushed
//   history.csv  a header of column names, then one line per epoch (csv_table writes it,
//                split_csv_line reads a line back)
//   loss.png     write_loss_plot: the mean training loss per epoch and one validation metric
#pragma once
#include <cstddef>
#include <fstream>
#include <string>
#include <vector>

#include "train/loop/checkpoint.h"

namespace sx::train::run_files {

// The current UTC time as "YYYY-MM-DDTHH:MM:SSZ".
std::string utc_now();
// printf-style formatting of one number ("%.4f", "%g" ...).
std::string fmt(const char* format, double v);

// Creates the run folder (and its parents); IOError naming it when that fails.
void create_run_folder(const std::string& dir);

// train.log: appended (a resumed run continues it); each line is "<utc time>  <text>", flushed.
// An empty path keeps no file (a dry run writes nothing): line() does nothing.
class RunLog {
 public:
  explicit RunLog(const std::string& path);
  void line(const std::string& s);

 private:
  std::ofstream f_;
};

// The train.log line of a resumed run: "resumed from <ckpt> at epoch E, batch B, step S".
std::string resumed_line(const std::string& ckpt_path, const TrainState& st);

// A CSV file's text: the header line, then each row's cells joined by ','.
std::string csv_table(const std::string& header, const std::vector<std::vector<std::string>>& rows);
// A line's cells, split at ',' (no quoting: history files hold numbers only).
std::vector<std::string> split_csv_line(const std::string& line);

// loss.png: the training loss per epoch ("train loss") and the validation metric ("val <metric>",
// only its finite, non-negative points), y label "loss / <metric>". Written only when there are at
// least `min_points` epochs (and at least one). epochs, train_loss and val_metric run in parallel.
void write_loss_plot(const std::string& path, const std::string& title, const std::string& metric,
                     const std::vector<double>& epochs, const std::vector<double>& train_loss,
                     const std::vector<double>& val_metric, size_t min_points);
}  // namespace sx::train::run_files
