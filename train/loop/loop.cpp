// The one training loop; see loop.h for the order of operations and the run folder.
#include "train/loop/loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <memory>
#include <sstream>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/progress.h"
#include "tensor/autograd.h"
#include "tensor/dist/bucketer.h"
#include "tensor/ops.h"
#include "train/loop/clip.h"
#include "train/eval/metrics.h"
#include "train/loop/optim.h"
#include "train/loop/precise_bn.h"
#include "train/loop/run_files.h"
#include "train/loop/scheduler.h"
#include "train/loop/signals.h"
#include "train/loop/zero.h"

namespace sx::train {
namespace {

using Clock = std::chrono::steady_clock;
using run_files::fmt;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// "step S (epoch E, batch B)": where the current batch of (0-based) `epoch` stands.
std::string step_where(const TrainState& st, int64_t epoch) {
  return "step " + std::to_string(st.step) + " (epoch " + std::to_string(epoch + 1) + ", batch " +
         std::to_string(st.batch_in_epoch) + ")";
}

// ---- history.csv ---------------------------------------------------------------------------------
// Columns: epoch,step,train_loss,<loss terms>,lr,seconds,<validation columns>. Numbers are written
// to round-trip exactly (metrics::json_number; "null" for NaN). The reader goes by the header's
// names, so files of earlier versions (other column orders, "nan") read too: a column that is none
// of the fixed ones or the task's validation columns is a loss term.
std::vector<std::string> term_names(const std::vector<EpochLog>& h) {
  std::map<std::string, int> seen;
  for (const auto& r : h)
    for (const auto& [k, v] : r.terms) seen[k] = 1;
  std::vector<std::string> out;
  for (const auto& [k, v] : seen) out.push_back(k);
  return out;
}

std::string history_csv(const std::vector<EpochLog>& h, const std::vector<std::string>& val_columns) {
  const std::vector<std::string> terms = term_names(h);
  std::string header = "epoch,step,train_loss";
  for (const auto& t : terms) header += "," + t;
  header += ",lr,seconds";
  for (const auto& c : val_columns) header += "," + c;
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : h) {
    std::vector<std::string> row = {std::to_string(r.epoch), std::to_string(r.step), metrics::json_number(r.train_loss)};
    for (const auto& t : terms) {
      auto it = r.terms.find(t);
      row.push_back(metrics::json_number(it == r.terms.end() ? NAN : it->second));
    }
    row.push_back(metrics::json_number(r.lr));
    row.push_back(metrics::json_number(r.seconds));
    for (const auto& c : val_columns) row.push_back(metrics::json_number(r.get(c)));
    rows.push_back(std::move(row));
  }
  return run_files::csv_table(header, rows);
}

double parse_cell(const std::string& path, const std::string& cell) {
  if (cell.empty() || cell == "null" || cell == "nan" || cell == "-nan") return NAN;
  char* end = nullptr;
  const double v = std::strtod(cell.c_str(), &end);
  if (*end != '\0') SX_THROW(IOError, path, ": '", cell, "' is not a number");
  return v;
}

// The records up to `max_step` (a resumed run drops the epochs after its checkpoint). No file: none.
std::vector<EpochLog> read_history_csv(const std::string& path, const std::vector<std::string>& val_columns,
                                       int64_t max_step) {
  std::vector<EpochLog> out;
  std::ifstream f(path);
  if (!f) return out;
  std::string header;
  std::getline(f, header);
  const std::vector<std::string> names = run_files::split_csv_line(header);
  int line_no = 1;
  for (std::string line; std::getline(f, line);) {
    ++line_no;
    if (line.empty()) continue;
    const std::vector<std::string> cells = run_files::split_csv_line(line);
    if (cells.size() != names.size())
      SX_THROW(IOError, path, ":", line_no, ": ", cells.size(), " cells under a header of ", names.size());
    EpochLog r;
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string& n = names[i];
      const double v = parse_cell(path + ":" + std::to_string(line_no), cells[i]);
      if (n == "epoch") r.epoch = static_cast<int64_t>(v);
      else if (n == "step") r.step = static_cast<int64_t>(v);
      else if (n == "train_loss") r.train_loss = v;
      else if (n == "lr") r.lr = v;
      else if (n == "seconds") r.seconds = v;
      else if (std::find(val_columns.begin(), val_columns.end(), n) != val_columns.end()) r.val[n] = v;
      else r.terms[n] = v;
    }
    if (r.step <= max_step) out.push_back(std::move(r));
  }
  return out;
}

// ---- metrics.json --------------------------------------------------------------------------------
io::Json history_json(const std::vector<EpochLog>& h, const std::vector<std::string>& val_columns) {
  io::Json a = io::Json::array();
  for (const auto& r : h) {
    io::Json e = {{"epoch", r.epoch}, {"step", r.step}, {"train_loss", r.train_loss}};
    for (const auto& [k, v] : r.terms) e[k] = v;
    e["lr"] = r.lr;
    e["seconds"] = r.seconds;
    for (const auto& c : val_columns) e[c] = r.get(c);
    a.push_back(std::move(e));
  }
  return a;
}

// The probe's estimate (cost_probe.h), printed when the loop shows progress. On CUDA a batch
// whose biggest version (the largest random scale) would not fit is refused, naming one that fits.
CostEstimate probe_report(const LoopConfig& cfg, nn::Module& model, const std::vector<double>& times, int64_t batch,
                          int64_t spe, int64_t steps_left, int64_t epochs_left, bool bar_shown) {
  CostEstimate c = estimate_cost(times, batch, spe, steps_left);
  c.peak_bytes = peak_memory_bytes(cfg.device);
  c.device_bytes = device_memory_bytes(cfg.device);
  c.memory_source = memory_source(cfg.device);
  int64_t all_bytes = 0, trainable_bytes = 0;
  for (const auto& [name, t] : model.state_dict()) all_bytes += t.numel() * static_cast<int64_t>(dtype_size(t.dtype()));
  for (const Tensor& t : model.trainable_parameters())
    trainable_bytes += t.numel() * static_cast<int64_t>(dtype_size(t.dtype()));
  c.fixed_bytes = fixed_training_bytes(all_bytes, trainable_bytes, optimizer_state_slots(cfg.optimizer, cfg.momentum));
  if (cfg.progress) std::fprintf(stderr, "%s%s\n", bar_shown && isatty(2) ? "\n" : "", format_cost(c, epochs_left).c_str());
  if (cfg.device.is_cuda() && c.device_bytes > 0 && c.peak_bytes > c.fixed_bytes) {
    const double s2 = std::max(1.0, cfg.probe_max_scale * cfg.probe_max_scale);
    const double worst = static_cast<double>(c.fixed_bytes) + static_cast<double>(c.peak_bytes - c.fixed_bytes) * s2;
    if (worst > 0.95 * static_cast<double>(c.device_bytes)) {
      const int64_t fits = largest_fitting_batch(c.peak_bytes, c.fixed_bytes, batch, cfg.probe_max_scale, c.device_bytes);
      SX_THROW(ValueError, cfg.who, ": batch ", batch, " needs about ", human_bytes(static_cast<int64_t>(worst)), " on ",
               cfg.device.str(), " at the largest random scale ", cfg.probe_max_scale, " (measured ",
               human_bytes(c.peak_bytes), " in the probe), more than 95% of its ", human_bytes(c.device_bytes),
               fits > 0 ? "; --batch " + std::to_string(fits) + " fits" : std::string("; not even one image fits: lower --size"));
    }
  }
  return c;
}

}  // namespace

double EpochLog::get(const std::string& key) const {
  auto it = val.find(key);
  return it == val.end() ? NAN : it->second;
}

void check_loop_config(const LoopConfig& c) {
  const std::string& who = c.who;
  SX_CHECK(!c.out_dir.empty(), who, ": an output folder is needed");
  SX_CHECK(c.epochs >= 1, who, ": epochs must be >= 1, got ", c.epochs);
  SX_CHECK(c.nan_policy == "stop" || c.nan_policy == "skip", who, ": nan policy must be stop or skip, got '",
           c.nan_policy, "'");
  SX_CHECK(c.val_every >= 1, who, ": val_every must be >= 1, got ", c.val_every);
  SX_CHECK(c.clip_norm >= 0, who, ": clip norm must be >= 0, got ", c.clip_norm);
  SX_CHECK(c.clip_value >= 0, who, ": clip value must be >= 0, got ", c.clip_value);
  SX_CHECK(c.probe_steps >= 0, who, ": probe steps must be >= 0, got ", c.probe_steps);
  SX_CHECK(!c.dry_run || c.probe_steps > 0, who, ": a dry run needs the cost probe (probe steps > 0)");
  SX_CHECK(c.zero == 0 || c.zero == 1, who, ": zero must be 0 or 1 (ZeRO stage 1), got ", c.zero);
}

namespace {

LoopResult run_loop(Task& task, const LoopConfig& cfg, bool resume) {
  check_loop_config(cfg);
  const std::string& who = cfg.who;
  const TaskInfo info = task.info();
  nn::Module& model = task.model();
  dist::ProcessGroup* group = cfg.group && cfg.group->size() > 1 ? cfg.group.get() : nullptr;
  const int world = group ? group->size() : 1;
  const bool rank0 = !group || group->rank() == 0;  // the one rank that writes and shows progress
  const bool writes = rank0 && !cfg.dry_run;
  const bool progress = cfg.progress && rank0;
  if (writes) run_files::create_run_folder(cfg.out_dir);
  const std::string out = cfg.out_dir;
  run_files::RunLog log(writes ? out + "/train.log" : std::string());  // a dry run writes nothing

  const int64_t spe = task.steps_per_epoch();
  SX_CHECK(spe > 0, who, ": the training set yields no batch");
  const int64_t total_steps = cfg.epochs * spe;

  std::vector<Tensor> params = model.trainable_parameters();
  SX_CHECK(!params.empty(), who, ": the model has no trainable parameter");
  std::vector<optim::ParamGroup> groups;
  if (cfg.no_decay_norm_bias) groups = optim::split_no_decay(params);
  else groups.push_back(optim::ParamGroup{params});
  auto opt = optim::make_optimizer(cfg.optimizer, groups, cfg.lr, cfg.weight_decay, cfg.momentum, cfg.nesterov);
  auto sched = optim::make_scheduler(cfg.schedule, cfg.lr, total_steps, cfg.warmup_steps, cfg.milestones);
  CheckpointManager mgr(out, cfg.keep_last);

  TrainState st;
  std::vector<EpochLog> history;
  Metadata config_json = task.checkpoint_metadata();
  if (group) config_json["world_size"] = std::to_string(world);
  if (group && cfg.zero == 1) config_json["zero"] = "1";
  Metadata ckpt_meta = config_json;  // grows with what validations add (Validation::checkpoint)
  if (resume) {
    SX_CHECK(file_exists(mgr.last_path()), "--resume: no checkpoint at ", mgr.last_path());
    LoadedCheckpoint lc = load_checkpoint(mgr.last_path(), model, opt.get());
    auto ws = lc.metadata.find("config.world_size");
    const int saved_world = ws == lc.metadata.end() ? 1 : std::stoi(ws->second);
    SX_CHECK(saved_world == world, "--resume: ", mgr.last_path(), " was trained on ", saved_world,
             " rank(s), this run has ", world, "; resume with the same number of processes (the epoch's shards and "
             "the position in them depend on it)");
    st = lc.state;
    for (const std::string& k : info.resumed_metadata) {
      auto it = lc.metadata.find("config." + k);
      if (it != lc.metadata.end()) ckpt_meta[k] = it->second;
    }
    history = read_history_csv(out + "/history.csv", info.val_columns, st.step);
    log.line(run_files::resumed_line(mgr.last_path(), st));
  } else {
    std::string line = "start: " + (info.label.empty() ? std::string() : info.label + ", ") +
                       std::to_string(cfg.epochs) + " epochs x " + std::to_string(spe) + " steps, optimizer " +
                       cfg.optimizer + ", lr " + fmt("%g", cfg.lr) + ", schedule " + cfg.schedule + ", device " +
                       cfg.device.str();
    for (const auto& [k, v] : cfg.config) line += ", " + k + " " + v;
    log.line(line);
  }

  // Data parallelism: rank 0's weights and buffers everywhere, then the gradient buckets.
  std::unique_ptr<dist::Bucketer> buckets;
  if (group) {
    NoGradGuard ng;
    for (auto& [name, t] : model.state_dict()) group->broadcast(t, 0);
    buckets = std::make_unique<dist::Bucketer>(*group, opt->params(), cfg.dist_bucket_bytes);
  }
  std::unique_ptr<ZeroShard> zero;  // ZeRO-1: this rank keeps and updates only its shard of the state
  if (group && cfg.zero == 1) {
    zero = std::make_unique<ZeroShard>(*group, *opt);
    zero->keep_own_state();
  }
  // Stop signals (SIGINT/SIGTERM on one rank stops all): two slots of an all-reduce, "a rank was
  // asked to stop" and "by SIGTERM"; a rank that got no signal itself takes the agreed one, so every
  // rank stops at the same step with the same exit code.
  auto stop_slots = [&](double* out) {
    const int sig = stop_requested() ? stop_signal() : 0;
    out[0] = sig != 0 ? world : 0.0;
    out[1] = sig == SIGTERM ? world : 0.0;
  };
  auto agree_stop = [&](const double* avg) {
    if (avg[0] <= 0) return false;
    if (!stop_requested()) request_stop(avg[1] > 0 ? SIGTERM : SIGINT);
    return true;
  };
  auto any_stop = [&]() {
    if (!group) return stop_requested();
    Tensor t = Tensor::empty({2}, DType::Float64);
    stop_slots(t.data<double>());
    group->all_reduce(t, dist::ReduceOp::Avg);
    return agree_stop(t.data<double>());
  };

  StopSignals signals;
  LoopResult res;
  const auto t_start = Clock::now();
  auto save = [&](bool is_best) {
    if (zero) zero->gather_state();  // checkpoints hold the whole state (every rank takes part)
    if (writes) mgr.save(model, opt.get(), sched.get(), st, ckpt_meta, is_best);
    if (zero) zero->keep_own_state();
  };
  auto finish = [&]() {
    res.steps = st.step;
    res.history = history;
    res.best_metric = st.best_metric > -1e299 ? st.best_metric : NAN;
    res.seconds = seconds_since(t_start);
    res.optimizer_state_numel = 0;
    for (const auto& [name, t] : opt->state_tensors()) res.optimizer_state_numel += t.numel();
    return res;
  };
  auto stop_for_signal = [&]() {
    save(false);
    res.interrupted = true;
    res.exit_code = exit_code_for_signal(stop_signal());
    log.line("stopped by signal " + std::to_string(stop_signal()) + " at step " + std::to_string(st.step) +
             "; checkpoint " + mgr.last_path());
    return finish();
  };

  // The cost probe: the wall time of each of the first steps (data loading included), then the report.
  std::vector<double> probe_times;
  if (cfg.probe_steps > 0) reset_peak_memory(cfg.device);
  const int64_t last_step = cfg.max_steps > 0 ? std::min(total_steps, cfg.max_steps) : total_steps;

  for (int64_t epoch = st.epoch; epoch < cfg.epochs; ++epoch) {
    const int64_t left = task.start_epoch(epoch, st.batch_in_epoch);
    model.train();
    std::unique_ptr<io::ProgressBar> bar;
    if (progress)
      bar = std::make_unique<io::ProgressBar>(left, "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg.epochs));
    const auto t_epoch = Clock::now();
    double images = 0, lr = opt->lr();
    std::map<std::string, double> term_sum;
    int64_t term_steps = 0;
    auto t_last = Clock::now();  // the end of the previous step (the probe's clock)
    while (task.next_batch()) {
      lr = sched->apply(*opt, st.step);
      StepLoss sl = task.step();
      // The step's one host read: the total and every term, gathered on the device first.
      std::vector<Tensor> scalars = {sl.total.detach().reshape({1})};
      for (const auto& [name, t] : sl.terms) scalars.push_back(t.detach().reshape({1}).to(sl.total.dtype()));
      std::vector<double> values = (scalars.size() == 1 ? scalars[0] : cat(scalars, 0)).to_vector();
      bool stop_now = false;
      if (group) {
        // The ranks' mean loss and terms (what one process with the whole batch would log) and the
        // stop flag, in one small all-reduce: every rank takes the same NaN and stop decisions.
        const size_t n = values.size();
        Tensor v = Tensor::empty({static_cast<int64_t>(n) + 2}, DType::Float64);
        for (size_t k = 0; k < n; ++k) v.data<double>()[k] = values[k];
        stop_slots(v.data<double>() + n);
        group->all_reduce(v, dist::ReduceOp::Avg);
        values = v.to_vector();
        stop_now = agree_stop(values.data() + n);
        values.resize(n);
      } else {
        stop_now = stop_requested();
      }
      const double lv = values[0];
      if (!std::isfinite(lv)) {
        const std::string where = step_where(st, epoch);
        if (cfg.nan_policy == "stop") {
          log.line("non-finite loss " + fmt("%g", lv) + " at " + where + "; stopping");
          throw NonFiniteLossError(sx::detail::cat("non-finite loss (", lv, ") at ", where,
                                                   "; lower the learning rate, or use --nan skip to skip such steps"));
        }
        ++res.nan_skipped;
        log.line("non-finite loss " + fmt("%g", lv) + " at " + where + "; step skipped (" +
                 std::to_string(res.nan_skipped) + " so far)");
        SX_CHECK(res.nan_skipped <= cfg.max_nan_skips, "more than ", cfg.max_nan_skips,
                 " non-finite losses (the last at ", where, "); stopping");
        opt->zero_grad();
        res.step_losses.push_back(lv);
        ++st.batch_in_epoch;
        if (bar) bar->update(1, "loss nan (skipped " + std::to_string(res.nan_skipped) + ")");
        t_last = Clock::now();
        continue;
      }
      sl.total.backward();
      if (buckets) buckets->finish();  // the averaged gradients, before clipping and the step
      if (cfg.clip_value > 0) optim::clip_grad_value(opt->params(), cfg.clip_value);
      if (cfg.clip_norm > 0) optim::clip_grad_norm(opt->params(), cfg.clip_norm);
      if (zero) zero->drop_foreign_grads();
      opt->step();
      if (zero) zero->broadcast_params();
      opt->zero_grad();
      for (size_t k = 0; k < sl.terms.size(); ++k) term_sum[sl.terms[k].first] += values[k + 1];
      ++term_steps;
      ++st.step;
      ++st.batch_in_epoch;
      st.epoch_loss_sum += lv;
      ++st.epoch_loss_count;
      res.step_losses.push_back(lv);
      images += static_cast<double>(sl.images);
      if (bar) {
        const double secs = seconds_since(t_epoch), rate = secs > 0 ? images / secs : 0.0;
        bar->update(1, "loss " + fmt("%.4f", lv) + " lr " + fmt("%.2e", lr) + " " +
                           fmt(rate >= 10 ? "%.1f" : "%.2f", rate) + " img/s");
      }
      if (!res.probed && cfg.probe_steps > 0) {
        probe_times.push_back(seconds_since(t_last));
        if (static_cast<int64_t>(probe_times.size()) == cfg.probe_steps || st.step >= last_step) {
          LoopConfig shown = cfg;
          shown.progress = progress;  // rank 0 prints the estimate
          res.cost = probe_report(shown, model, probe_times, sl.images, spe, last_step - st.step, cfg.epochs - epoch,
                                  bar != nullptr);
          res.probed = true;
          log.line(format_cost(res.cost, cfg.epochs - epoch));
          if (cfg.dry_run) {
            if (bar) bar->finish();
            res.dry_run = true;
            return finish();
          }
        }
      }
      t_last = Clock::now();
      // The step hooks: periodic checkpoint, stop signal, step budget.
      if (cfg.ckpt_every > 0 && st.step % cfg.ckpt_every == 0) save(false);
      if (stop_now) {
        if (bar) bar->finish();
        return stop_for_signal();
      }
      if (cfg.max_steps > 0 && st.step >= cfg.max_steps) {
        if (bar) bar->finish();
        save(false);
        log.line("reached max steps " + std::to_string(cfg.max_steps) + "; checkpoint " + mgr.last_path());
        return finish();
      }
    }
    if (bar) bar->finish();

    EpochLog rec;
    rec.epoch = epoch + 1;
    rec.step = st.step;
    rec.train_loss = st.epoch_loss_count > 0 ? st.epoch_loss_sum / static_cast<double>(st.epoch_loss_count) : NAN;
    rec.lr = lr;
    rec.seconds = seconds_since(t_epoch);
    for (const auto& [k, v] : term_sum) rec.terms[k] = term_steps > 0 ? v / static_cast<double>(term_steps) : NAN;
    st.epoch = epoch + 1;
    st.batch_in_epoch = 0;
    st.epoch_loss_sum = 0;
    st.epoch_loss_count = 0;

    if (cfg.precise_bn_batches > 0) {
      // Before anything evaluates or saves this epoch's weights: BatchNorm statistics of these
      // weights, not the moving average of earlier ones (train/loop/precise_bn.h).
      task.start_bn(epoch);
      const int64_t used = recompute_batchnorm_statistics(model, cfg.precise_bn_batches, [&] { return task.bn_forward(); });
      if (used > 0) log.line("precise BN: statistics recomputed over " + std::to_string(used) + " batches");
    }

    bool is_best = false;
    Validation v;
    if (task.can_validate() && ((epoch + 1) % cfg.val_every == 0 || epoch + 1 == cfg.epochs)) {
      v = task.validate();
      res.val_images_here = v.images_here;
      model.train();
      for (const auto& n : v.notes) log.line(n);
      for (const auto& [k, x] : v.checkpoint) ckpt_meta[k] = x;
      rec.val = v.values;
      if (v.scored && (v.metric > st.best_metric || (v.metric == st.best_metric && v.loss < st.best_loss))) {
        st.best_metric = v.metric;
        if (!std::isnan(v.loss)) st.best_loss = v.loss;
        st.best_step = st.step;
        is_best = true;
      }
      if (!v.scored && v.best_anyway) is_best = true;
    }
    history.push_back(rec);
    save(is_best || (!v.scored && epoch + 1 == cfg.epochs));

    std::string line = "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg.epochs) + " step " +
                       std::to_string(st.step) + " train_loss " + fmt("%.4f", rec.train_loss);
    for (const auto& [k, x] : rec.terms) line += " " + k + " " + fmt("%.4f", x);
    line += " lr " + fmt("%.3e", lr) + " time " + fmt("%.1fs", rec.seconds);
    if (v.scored) line += v.summary + (is_best ? " best" : "");
    log.line(line);
    if (progress) std::fprintf(stderr, "%s\n", line.c_str());

    if (!writes) {
      ++res.epochs_done;
      if (any_stop()) return stop_for_signal();
      continue;
    }
    io::Json js = task.metrics_head();
    js["epoch"] = st.epoch;
    js["step"] = st.step;
    js["best"] = task.best_json(st);
    if (v.scored) js["val"] = v.json;
    io::Json& cj = js["config"] = io::Json::object();
    for (const auto& [k, x] : config_json) cj[k] = x;
    js["history"] = history_json(history, info.val_columns);
    io::write_json_atomic(out + "/metrics.json", js);
    io::write_file_atomic(out + "/history.csv", history_csv(history, info.val_columns));
    std::vector<double> ep, loss, metric;
    for (const auto& r : history) {
      ep.push_back(static_cast<double>(r.epoch));
      loss.push_back(r.train_loss);
      metric.push_back(r.get(info.metric_column));
    }
    run_files::write_loss_plot(out + "/loss.png", info.plot_title, info.metric_name, ep, loss, metric,
                               info.plot_min_points);

    ++res.epochs_done;
    if (any_stop()) return stop_for_signal();
  }
  finish();
  log.line("done: " + std::to_string(st.step) + " steps in " + fmt("%.1fs", res.seconds) +
           (!std::isnan(res.best_metric) ? ", best val " + info.metric_name + " " + fmt("%.4f", res.best_metric) : std::string()));
  return res;
}

}  // namespace

LoopResult train_loop(Task& task, const LoopConfig& cfg, bool resume) {
  dist::ProcessGroup* group = cfg.group && cfg.group->size() > 1 ? cfg.group.get() : nullptr;
  if (!group) return run_loop(task, cfg, resume);
  try {
    return run_loop(task, cfg, resume);
  } catch (const DistError&) {
    throw;  // this rank stops because of another (or a timeout): that one is named already
  } catch (const std::exception& e) {
    group->report_failure(e.what());  // the other ranks stop, naming this one
    throw;
  }
}

}  // namespace sx::train
