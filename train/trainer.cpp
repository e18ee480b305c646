// The classifier training loop; see trainer.h for the order of operations and the run folder.
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/json.h"
#include "io/progress.h"
#include "layers/loss.h"
#include "tensor/autograd.h"
#include "tensor/errors.h"
#include "tensor/ops.h"
#include "train/optim.h"
#include "train/plot.h"
#include "train/precise_bn.h"
#include "train/run_files.h"
#include "train/scheduler.h"
#include "train/signals.h"

namespace sx::train {
using run_files::fmt;
using run_files::RunLog;

Tensor cls_loss(const Tensor& logits, const Tensor& labels, double pos_weight) {
  SX_CHECK(logits.dim() == 1 || (logits.dim() == 2 && logits.size(1) == 1),
           "cls_loss: logits must be [N] or [N, 1], got ", shape_str(logits.shape()));
  Tensor l = logits.dim() == 2 ? logits.reshape({logits.size(0)}) : logits;
  SX_CHECK(labels.dim() == 1 && labels.size(0) == l.size(0), "cls_loss: labels must be [", l.size(0), "], got ",
           shape_str(labels.shape()));
  Tensor t = labels.to(l.device(), l.dtype());
  Tensor pw;
  if (pos_weight != 1.0) pw = Tensor::full({1}, pos_weight, l.dtype(), l.device());
  return nn::binary_cross_entropy_with_logits(l, t, pw, nn::Reduction::Mean);
}

ClsPredictions predict_cls(nn::Module& model, ClsBatchSource& source, Device device, bool progress,
                           double temperature) {
  SX_CHECK(temperature > 0 && std::isfinite(temperature), "predict_cls: temperature must be > 0, got ", temperature);
  bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  ClsPredictions p;
  source.start_epoch(0, 0);
  std::unique_ptr<io::ProgressBar> bar;
  if (progress) bar = std::make_unique<io::ProgressBar>(source.num_batches(), "predict");
  double loss_sum = 0;
  ClsBatch b;
  while (source.next(b)) {
    Tensor logits = model.forward(b.images.to(device));
    int64_t n = logits.size(0);
    Tensor raw = logits.reshape({n});
    Tensor l = temperature == 1.0 ? raw : mul(raw, 1.0 / temperature);
    Tensor t = b.labels.to(l.device(), l.dtype());
    loss_sum += nn::binary_cross_entropy_with_logits(l, t, Tensor(), nn::Reduction::Sum).item();
    auto raw_logits = raw.to_vector();
    auto probs = sigmoid(l).to_vector();
    auto labels = b.labels.to_vector();
    SX_CHECK(static_cast<int64_t>(probs.size()) == n && static_cast<int64_t>(labels.size()) == n,
             "predict_cls: batch of ", n, " logits but ", labels.size(), " labels");
    for (int64_t i = 0; i < n; ++i) {
      p.logits.push_back(raw_logits[i]);
      p.probs.push_back(probs[i]);
      p.labels.push_back(labels[i] >= 0.5 ? 1 : 0);
      p.ids.push_back(i < static_cast<int64_t>(b.ids.size()) ? b.ids[i] : std::to_string(p.ids.size()));
    }
    if (bar) bar->update(1);
  }
  if (bar) bar->finish();
  p.mean_loss = p.probs.empty() ? 0.0 : loss_sum / static_cast<double>(p.probs.size());
  model.train(was_training);
  return p;
}

ClsMetrics compute_cls_metrics(const ClsPredictions& p, int64_t bootstrap, uint64_t seed, double threshold) {
  ClsMetrics m;
  m.n = static_cast<int64_t>(p.probs.size());
  for (int v : p.labels) m.positives += v;
  m.mean_loss = p.mean_loss;
  SX_CHECK(m.positives > 0 && m.positives < m.n, "classification metrics need both classes; got ", m.positives,
           " abnormal and ", m.n - m.positives, " normal images");
  m.auroc = metrics::roc_auc(p.probs, p.labels);
  if (bootstrap > 0) {
    m.ci = metrics::roc_auc_bootstrap(p.probs, p.labels, bootstrap, seed);
  } else {
    m.ci.estimate = m.ci.lo = m.ci.hi = m.auroc;
  }
  if (threshold < 0) {
    m.threshold = metrics::youden_threshold(p.probs, p.labels);
    m.threshold_source = "youden";
  } else {
    m.threshold = threshold;
    m.threshold_source = "given";
  }
  m.at_threshold = metrics::binary_metrics_at(p.probs, p.labels, m.threshold);
  m.calibration = metrics::calibration(p.probs, p.labels, 15);
  return m;
}

double checkpoint_temperature(const std::string& ckpt_path) {
  Metadata md = read_checkpoint_metadata(ckpt_path);
  auto it = md.find("config.temperature");
  if (it == md.end()) return 1.0;
  char* end = nullptr;
  const double t = std::strtod(it->second.c_str(), &end);
  if (it->second.empty() || *end != '\0' || !(t > 0) || !std::isfinite(t))
    SX_THROW(IOError, ckpt_path, ": config.temperature must be a positive number, got '", it->second, "'");
  return t;
}

namespace {

void metrics_fields(io::Json& w, const ClsMetrics& m) {
  const auto& t = m.at_threshold;
  w["n"] = m.n;
  w["positives"] = m.positives;
  w["auroc"] = m.auroc;
  w["auroc_ci95"] = {m.ci.lo, m.ci.hi};
  w["bootstrap_samples"] = m.ci.samples;
  w["threshold"] = m.threshold;
  w["threshold_source"] = m.threshold_source;
  w["sensitivity"] = t.sensitivity;
  w["specificity"] = t.specificity;
  w["precision"] = t.precision;
  w["f1"] = t.f1;
  w["accuracy"] = t.accuracy;
  w["confusion"] = {{"tp", t.cm.tp}, {"fp", t.cm.fp}, {"tn", t.cm.tn}, {"fn", t.cm.fn}};
  w["mean_loss"] = m.mean_loss;
  w["ece"] = m.calibration.ece;
  w["ece_bins"] = static_cast<int64_t>(m.calibration.bins.size());
}

// history.csv: epoch,step,train_loss,val_loss,val_auroc,lr,seconds (numbers with 17 significant digits)
const char* kHistoryHeader = "epoch,step,train_loss,val_loss,val_auroc,lr,seconds";

std::string g17(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

std::string history_csv(const std::vector<EpochRecord>& h) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : h)
    rows.push_back({std::to_string(r.epoch), std::to_string(r.step), g17(r.train_loss), g17(r.val_loss),
                    g17(r.val_auroc), g17(r.lr), g17(r.seconds)});
  return run_files::csv_table(kHistoryHeader, rows);
}

std::vector<EpochRecord> read_history_csv(const std::string& path, int64_t max_step) {
  std::vector<EpochRecord> out;
  for (const std::string& line : run_files::read_csv_data_lines(path)) {
    std::istringstream is(line);
    EpochRecord r;
    char c;
    if (!(is >> r.epoch >> c >> r.step >> c >> r.train_loss >> c >> r.val_loss >> c >> r.val_auroc >> c >> r.lr >> c >>
          r.seconds))
      SX_THROW(IOError, path, ": malformed line '", line, "'");
    if (r.step <= max_step) out.push_back(r);
  }
  return out;
}

}  // namespace

io::Json cls_metrics_json(const ClsMetrics& m, const Metadata& extra) {
  io::Json w = io::Json::object();
  metrics_fields(w, m);
  for (const auto& [k, v] : extra) w[k] = v;
  return w;
}

void write_cls_metrics_json(const std::string& path, const ClsMetrics& m, const Metadata& extra) {
  io::write_json_atomic(path, cls_metrics_json(m, extra));
}

void write_calibration_png(const std::string& path, const metrics::Calibration& c, const std::string& what) {
  std::vector<plot::ReliabilityBin> bins;
  for (const auto& b : c.bins) bins.push_back({b.lo, b.hi, b.mean_prob, b.frac_positive, b.count});
  plot::render_reliability(bins, "stage 1, ECE " + fmt("%.2f", 100.0 * c.ece) + "%", "Reliability, " + what)
      .save_png(path);
}

ClsTrainer::ClsTrainer(nn::Module& model, ClsTrainConfig cfg) : model_(model), cfg_(std::move(cfg)) {
  run_files::check_loop_config("train", cfg_.out_dir, cfg_.epochs, cfg_.nan_policy, cfg_.val_every, cfg_.clip_norm);
}

ClsTrainResult ClsTrainer::fit(ClsBatchSource& train, ClsBatchSource* val, bool resume, ClsBatchSource* bn_source) {
  SX_CHECK(cfg_.precise_bn_batches == 0 || bn_source, "train: precise BN needs a source of training batches");
  run_files::create_run_folder(cfg_.out_dir);
  const std::string out = cfg_.out_dir;
  RunLog log(out + "/train.log");

  const int64_t spe = train.num_batches();
  SX_CHECK(spe > 0, "train: the training set yields no batch");
  const int64_t total_steps = cfg_.epochs * spe;

  std::vector<Tensor> params = model_.trainable_parameters();
  SX_CHECK(!params.empty(), "train: the model has no trainable parameter");
  std::vector<optim::ParamGroup> groups;
  if (cfg_.no_decay_norm_bias) {
    groups = optim::split_no_decay(params);
  } else {
    groups.push_back(optim::ParamGroup{params});
  }
  auto opt = optim::make_optimizer(cfg_.optimizer, groups, cfg_.lr, cfg_.weight_decay, cfg_.momentum, cfg_.nesterov);
  auto sched = optim::make_scheduler(cfg_.schedule, cfg_.lr, total_steps, cfg_.warmup_steps, cfg_.milestones);
  CheckpointManager mgr(out, cfg_.keep_last);

  TrainState st;
  std::vector<EpochRecord> history;
  // What checkpoints record besides the state: the caller's config and, once validated, the
  // Youden threshold chosen on the validation set at that checkpoint ("val_threshold"), which
  // eval-cls can apply to the test set (--threshold val).
  Metadata ckpt_meta = cfg_.config;
  if (resume) {
    SX_CHECK(file_exists(mgr.last_path()), "--resume: no checkpoint at ", mgr.last_path());
    LoadedCheckpoint lc = load_checkpoint(mgr.last_path(), model_, opt.get());
    st = lc.state;
    auto vt = lc.metadata.find("config.val_threshold");
    if (vt != lc.metadata.end()) ckpt_meta["val_threshold"] = vt->second;
    auto tt = lc.metadata.find("config.temperature");
    if (tt != lc.metadata.end()) ckpt_meta["temperature"] = tt->second;
    history = read_history_csv(out + "/history.csv", st.step);
    log.line(run_files::resumed_line(mgr.last_path(), st));
  } else {
    std::string cfgline = "start: " + std::to_string(cfg_.epochs) + " epochs x " + std::to_string(spe) +
                          " steps, optimizer " + cfg_.optimizer + ", lr " + fmt("%g", cfg_.lr) + ", schedule " +
                          cfg_.schedule + ", device " + cfg_.device.str();
    for (const auto& [k, v] : cfg_.config) cfgline += ", " + k + " " + v;
    log.line(cfgline);
  }

  StopSignals signals;
  ClsTrainResult res;
  auto finish_interrupted = [&](int sig) {
    mgr.save(model_, opt.get(), sched.get(), st, ckpt_meta, false);
    res.interrupted = true;
    res.exit_code = exit_code_for_signal(sig);
    log.line("stopped by signal " + std::to_string(sig) + " at step " + std::to_string(st.step) +
             "; checkpoint " + mgr.last_path());
  };

  auto t_start = std::chrono::steady_clock::now();
  for (int64_t epoch = st.epoch; epoch < cfg_.epochs; ++epoch) {
    train.start_epoch(epoch, st.batch_in_epoch);
    model_.train();
    std::unique_ptr<io::ProgressBar> bar;
    if (cfg_.progress)
      bar = std::make_unique<io::ProgressBar>(spe - st.batch_in_epoch,
                                              "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg_.epochs));
    auto t_epoch = std::chrono::steady_clock::now();
    double images = 0, lr = opt->lr();
    ClsBatch batch;
    while (train.next(batch)) {
      lr = sched->apply(*opt, st.step);
      Tensor x = batch.images.to(cfg_.device);
      Tensor logits = model_.forward(x);
      Tensor loss = cls_loss(logits, batch.labels, cfg_.pos_weight);
      double lv = loss.item();
      if (!std::isfinite(lv)) {
        const std::string where = run_files::step_where(st, epoch);
        if (cfg_.nan_policy == "stop") {
          log.line("non-finite loss " + fmt("%g", lv) + " at " + where + "; stopping");
          throw NonFiniteLossError(sx::detail::cat("non-finite loss (", lv, ") at ", where,
                                                   "; lower the learning rate, or use --nan skip to skip such steps"));
        }
        ++res.nan_skipped;
        log.line("non-finite loss " + fmt("%g", lv) + " at " + where + "; step skipped (" +
                 std::to_string(res.nan_skipped) + " so far)");
        run_files::skip_step(*opt, st, res.step_losses, lv, res.nan_skipped, cfg_.max_nan_skips, where);
        if (bar) bar->update(1, "loss nan (skipped " + std::to_string(res.nan_skipped) + ")");
        continue;
      }
      loss.backward();
      run_files::optimizer_step(*opt, cfg_.clip_norm);
      run_files::count_step(st, res.step_losses, lv);
      images += static_cast<double>(x.size(0));
      if (bar) {
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
        bar->update(1, "loss " + fmt("%.4f", lv) + " lr " + fmt("%.2e", lr) + " " +
                           fmt("%.1f", secs > 0 ? images / secs : 0.0) + " img/s");
      }
      if (cfg_.ckpt_every > 0 && st.step % cfg_.ckpt_every == 0)
        mgr.save(model_, opt.get(), sched.get(), st, ckpt_meta, false);
      if (stop_requested()) {
        if (bar) bar->finish();
        finish_interrupted(stop_signal());
        res.steps = st.step;
        res.history = history;
        return res;
      }
      if (cfg_.max_steps > 0 && st.step >= cfg_.max_steps) {
        if (bar) bar->finish();
        mgr.save(model_, opt.get(), sched.get(), st, ckpt_meta, false);
        log.line("reached max steps " + std::to_string(cfg_.max_steps) + "; checkpoint " + mgr.last_path());
        res.steps = st.step;
        res.history = history;
        return res;
      }
    }
    if (bar) bar->finish();

    EpochRecord rec;
    rec.epoch = epoch + 1;
    rec.step = st.step;
    rec.train_loss = run_files::epoch_mean_loss(st);
    rec.lr = lr;
    rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
    rec.val_loss = NAN;
    rec.val_auroc = NAN;
    run_files::end_epoch(st, epoch);

    if (cfg_.precise_bn_batches > 0) {
      // Before anything evaluates or saves this epoch's weights: BatchNorm statistics of these
      // weights, not the moving average of earlier ones (train/precise_bn.h).
      bn_source->start_epoch(epoch, 0);
      ClsBatch bb;
      int64_t used = recompute_batchnorm_statistics(model_, cfg_.precise_bn_batches, [&] {
        if (!bn_source->next(bb)) return false;
        model_.forward(bb.images.to(cfg_.device));
        return true;
      });
      if (used > 0) log.line("precise BN: statistics recomputed over " + std::to_string(used) + " batches");
    }

    bool is_best = false;
    bool validate = val && ((epoch + 1) % cfg_.val_every == 0 || epoch + 1 == cfg_.epochs);
    double temperature = 1.0;
    ClsMetrics vm;
    double vm_raw_ece = NAN, vm_raw_loss = NAN;
    if (validate) {
      ClsPredictions pv = predict_cls(model_, *val, cfg_.device, false);
      int64_t pos = 0;
      for (int v : pv.labels) pos += v;
      rec.val_loss = pv.mean_loss;
      if (pos == 0 || pos == static_cast<int64_t>(pv.labels.size())) {
        // No AUROC without both classes: keep going, and let "best" follow the latest epoch.
        log.line("warning: the validation set holds " + std::to_string(pv.labels.size()) + " images of one class only; "
                 "no AUROC, best.safetensors follows the last epoch");
        validate = false;
        is_best = true;
      } else {
        vm = compute_cls_metrics(pv, cfg_.bootstrap, cfg_.seed);
        rec.val_auroc = vm.auroc;
        // Best: higher AUROC; on a tie (AUROC saturates at 1.0 early) the lower validation loss.
        if (vm.auroc > st.best_metric || (vm.auroc == st.best_metric && vm.mean_loss < st.best_loss)) {
          st.best_metric = vm.auroc;
          st.best_loss = vm.mean_loss;
          st.best_step = st.step;
          is_best = true;
        }
        vm_raw_ece = vm.calibration.ece;
        if (cfg_.calibrate_temperature) {
          // Fit T on these validation logits; the threshold and the metrics recorded with this
          // checkpoint are then those of the calibrated probabilities sigmoid(logit / T), which
          // is what eval-cls, eval and predict will compute from it.
          temperature = metrics::fit_temperature(pv.logits, pv.labels);
          for (size_t i = 0; i < pv.probs.size(); ++i) pv.probs[i] = 1.0 / (1.0 + std::exp(-pv.logits[i] / temperature));
          double loss = 0;
          for (size_t i = 0; i < pv.probs.size(); ++i) {
            const double z = pv.logits[i] / temperature;
            loss += (z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z))) - (pv.labels[i] ? z : 0.0);
          }
          pv.mean_loss = loss / static_cast<double>(pv.probs.size());
          const double raw_loss = vm.mean_loss;
          vm = compute_cls_metrics(pv, cfg_.bootstrap, cfg_.seed);
          vm_raw_loss = raw_loss;
          ckpt_meta["temperature"] = g17(temperature);
        }
        ckpt_meta["val_threshold"] = g17(vm.threshold);
      }
    }
    history.push_back(rec);
    mgr.save(model_, opt.get(), sched.get(), st, ckpt_meta, is_best || (!val && epoch + 1 == cfg_.epochs));
    std::string line = "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg_.epochs) + " step " +
                       std::to_string(st.step) + " train_loss " + fmt("%.4f", rec.train_loss) + " lr " +
                       fmt("%.3e", lr) + " time " + fmt("%.1fs", rec.seconds);
    if (validate) {
      line += " val_loss " + fmt("%.4f", rec.val_loss) + " val_auroc " + fmt("%.4f", vm.auroc) + " (95% CI " +
              fmt("%.4f", vm.ci.lo) + "-" + fmt("%.4f", vm.ci.hi) + ") val_ece " + fmt("%.4f", vm_raw_ece);
      if (cfg_.calibrate_temperature)
        line += " temperature " + fmt("%.3f", temperature) + " (ece " + fmt("%.4f", vm.calibration.ece) + ")";
      line += is_best ? " best" : "";
    }
    log.line(line);
    if (cfg_.progress) std::fprintf(stderr, "%s\n", line.c_str());

    // metrics.json: the latest validation, the best so far and the history
    io::Json w = io::Json::object();
    w["epoch"] = st.epoch;
    w["step"] = st.step;
    w["best"] = {{"val_auroc", st.best_metric > -1e299 ? st.best_metric : NAN},
                 {"val_loss", std::isfinite(st.best_loss) ? st.best_loss : NAN},
                 {"step", st.best_step},
                 {"rule", "highest val_auroc; ties: lowest val_loss"}};
    if (validate) {
      io::Json& v = w["val"] = io::Json::object();
      metrics_fields(v, vm);
      if (cfg_.calibrate_temperature) {
        // metrics_fields above describe the calibrated probabilities; these, the model as trained
        v["temperature"] = temperature;
        v["uncalibrated_mean_loss"] = vm_raw_loss;
        v["uncalibrated_ece"] = vm_raw_ece;
      }
    }
    io::Json& cj = w["config"] = io::Json::object();
    for (const auto& [k, v] : cfg_.config) cj[k] = v;
    io::Json& hj = w["history"] = io::Json::array();
    for (const auto& r : history)
      hj.push_back({{"epoch", r.epoch}, {"step", r.step}, {"train_loss", r.train_loss}, {"val_loss", r.val_loss},
                    {"val_auroc", r.val_auroc}, {"lr", r.lr}, {"seconds", r.seconds}});
    io::write_json_atomic(out + "/metrics.json", w);
    io::write_file_atomic(out + "/history.csv", history_csv(history));
    run_files::write_loss_plot(out + "/loss.png", "Training", "AUROC", history, &EpochRecord::val_auroc, 1);

    ++res.epochs_done;
    if (stop_requested()) {
      finish_interrupted(stop_signal());
      res.steps = st.step;
      res.history = history;
      return res;
    }
  }
  res.steps = st.step;
  res.best_auroc = st.best_metric > -1e299 ? st.best_metric : -1;
  res.history = history;
  double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  log.line("done: " + std::to_string(st.step) + " steps in " + fmt("%.1fs", total_s) +
           (res.best_auroc >= 0 ? ", best val AUROC " + fmt("%.4f", res.best_auroc) : std::string()));
  return res;
}

}  // namespace sx::train
