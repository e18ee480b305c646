// The files a training run keeps in its run folder, shared by the classifier trainer (trainer.h)
// and the detector trainer (det_train.h):
//   train.log    RunLog: one line per event, each prefixed by the UTC time, appended and flushed
//   history.csv  a header of column names, then one line per epoch record (csv_table writes it,
//                read_csv_data_lines / split_csv_line read it back; each trainer names its columns
//                and formats its own cells)
//   loss.png     write_loss_plot: the mean training loss per epoch and one validation metric
// and the step bookkeeping both training loops share (TrainState counters, skipped steps).
#pragma once
#include <cstddef>
#include <fstream>
#include <string>
#include <vector>

#include "train/checkpoint.h"
#include "train/optim.h"

namespace sx::train::run_files {

// The current UTC time as "YYYY-MM-DDTHH:MM:SSZ".
std::string utc_now();
// printf-style formatting of one number ("%.4f", "%g" ...).
std::string fmt(const char* format, double v);

// Creates the run folder (and its parents); IOError naming it when that fails.
void create_run_folder(const std::string& dir);

// train.log: appended (a resumed run continues it); each line is "<utc time>  <text>", flushed.
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
// The lines after the header of a CSV file, empty lines left out; none when the file cannot be opened.
std::vector<std::string> read_csv_data_lines(const std::string& path);
// A line's cells, split at ',' (no quoting: history files hold numbers only).
std::vector<std::string> split_csv_line(const std::string& line);

// loss.png: the training loss per epoch ("train loss") and the validation metric ("val <metric>",
// only its finite, non-negative points), y label "loss / <metric>". Written only when there are at
// least `min_points` epochs (and at least one). epochs, train_loss and val_metric run in parallel.
void write_loss_plot(const std::string& path, const std::string& title, const std::string& metric,
                     const std::vector<double>& epochs, const std::vector<double>& train_loss,
                     const std::vector<double>& val_metric, size_t min_points);
// The same from per-epoch records holding `epoch` and `train_loss`, the metric read from `field`.
template <class Record>
void write_loss_plot(const std::string& path, const std::string& title, const std::string& metric,
                     const std::vector<Record>& history, double Record::*field, size_t min_points) {
  std::vector<double> epochs, loss, val;
  for (const Record& r : history) {
    epochs.push_back(static_cast<double>(r.epoch));
    loss.push_back(r.train_loss);
    val.push_back(r.*field);
  }
  write_loss_plot(path, title, metric, epochs, loss, val, min_points);
}

// ---- step bookkeeping -------------------------------------------------------------------------
// The checks of a training loop's settings, each ValueError starting "<who>: " ("train", "train-det").
void check_loop_config(const std::string& who, const std::string& out_dir, int64_t epochs,
                       const std::string& nan_policy, int64_t val_every, double clip_norm);
// "step S (epoch E, batch B)": where the current batch of (0-based) `epoch` stands.
std::string step_where(const TrainState& st, int64_t epoch);
// A step skipped for its non-finite `loss` (nan policy "skip"; the caller has counted it in
// `skipped` and logged it): ValueError once more than `max_skips` were skipped, naming `where`;
// otherwise the gradients are dropped, the loss recorded in step_losses and the batch passed.
void skip_step(optim::Optimizer& opt, TrainState& st, std::vector<double>& step_losses, double loss,
               int64_t skipped, int64_t max_skips, const std::string& where);
// After backward: clipping by global norm (clip_norm > 0), the optimizer step, gradients dropped.
void optimizer_step(optim::Optimizer& opt, double clip_norm);
// A step done: step and batch counters, the epoch's running loss, the loss in step_losses.
void count_step(TrainState& st, std::vector<double>& step_losses, double loss);
// The mean training loss of the epoch so far (NaN without a step).
double epoch_mean_loss(const TrainState& st);
// The end of (0-based) `epoch`: the state moves to the start of the next one.
void end_epoch(TrainState& st, int64_t epoch);

}  // namespace sx::train::run_files
