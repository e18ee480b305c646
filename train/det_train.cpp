#include "train/det_train.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/json.h"
#include "io/progress.h"
#include "models/faster_rcnn.h"
#include "models/retinanet.h"
#include "tensor/autograd.h"
#include "tensor/errors.h"
#include "tensor/ops.h"
#include "train/optim.h"
#include "train/precise_bn.h"
#include "train/run_files.h"
#include "train/scheduler.h"
#include "train/signals.h"

namespace sx::train {

using run_files::fmt;
using run_files::RunLog;
using Clock = std::chrono::steady_clock;

// ---- factories -----------------------------------------------------------------------------------
std::shared_ptr<models::DetectionModel> make_detector(const std::string& name, const models::DetectorOptions& o) {
  if (name == "retinanet") return models::make_retinanet(o);
  if (name == "faster_rcnn" || name == "faster-rcnn" || name == "frcnn") return models::make_faster_rcnn(o);
  SX_THROW(ValueError, "unknown detector '", name, "' (expected retinanet or faster_rcnn)");
}

Metadata detector_metadata(const models::DetectionModel& m) {
  Metadata md = models::detector_options_to_metadata(m.options());
  md["det.model"] = m.model_name();
  return md;
}

io::LoaderOptions detection_loader_options(int size, int channels, int batch, bool augment, double hflip,
                                           double scale_min, double scale_max, double rfs_threshold,
                                           uint64_t seed, int workers) {
  io::LoaderOptions lo;
  lo.batch_size = batch;
  lo.workers = workers;
  lo.seed = seed;
  lo.augment = augment;
  lo.sampling = !augment ? io::SamplingMode::Sequential
                         : (rfs_threshold > 0 ? io::SamplingMode::RepeatFactor : io::SamplingMode::Shuffle);
  lo.rfs_threshold = rfs_threshold > 0 ? rfs_threshold : 0.1;
  lo.transform.size = size;
  lo.transform.channels = channels;
  lo.transform.hflip_prob = augment ? hflip : 0.0;
  lo.transform.scale_min = augment ? scale_min : 1.0;
  lo.transform.scale_max = augment ? scale_max : 1.0;
  lo.transform.mean = 0.0f;  // the models normalise inside
  lo.transform.std = 1.0f;
  return lo;
}

models::ImageList to_image_list(const io::Batch& b, Device device) {
  models::ImageList il;
  il.tensor = b.images.to(device);
  for (const auto& t : b.targets) il.image_sizes.push_back({t.resized_height, t.resized_width});
  return il;
}
std::vector<models::ImageTargets> to_targets(const io::Batch& b, Device device) {
  std::vector<models::ImageTargets> out;
  for (const auto& t : b.targets) out.push_back({t.boxes.to(device), t.labels.to(device)});
  return out;
}

namespace {

const char* kHistoryHeader = "epoch,step,train_loss,lr,seconds,val_map50,val_map_voc50";

std::string history_csv(const std::vector<DetEpochRecord>& h) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : h)
    rows.push_back({std::to_string(r.epoch), std::to_string(r.step), metrics::json_number(r.train_loss),
                    metrics::json_number(r.lr), metrics::json_number(r.seconds), metrics::json_number(r.val_map50),
                    metrics::json_number(r.val_map_voc50)});
  return run_files::csv_table(kHistoryHeader, rows);
}

// Lines that do not hold 7 numbers ("null" reads as NaN) are passed over.
std::vector<DetEpochRecord> read_history_csv(const std::string& path, int64_t max_step) {
  std::vector<DetEpochRecord> out;
  auto num = [](const std::string& s) { return s == "null" || s.empty() ? NAN : std::stod(s); };
  for (const std::string& line : run_files::read_csv_data_lines(path)) {
    std::vector<std::string> c = run_files::split_csv_line(line);
    if (c.size() != 7) continue;
    DetEpochRecord r;
    try {
      r.epoch = std::stoll(c[0]);
      r.step = std::stoll(c[1]);
      r.train_loss = num(c[2]);
      r.lr = num(c[3]);
      r.seconds = num(c[4]);
      r.val_map50 = num(c[5]);
      r.val_map_voc50 = num(c[6]);
    } catch (const std::exception&) {
      continue;
    }
    if (r.step <= max_step) out.push_back(r);
  }
  return out;
}

}  // namespace

// ---- inference ------------------------------------------------------------------------------------
std::vector<DetPrediction> predict_detections(models::DetectionModel& model, const DetData& data, Device device,
                                              bool progress, int64_t limit) {
  SX_CHECK(data.dataset != nullptr, "predict_detections: no dataset");
  io::LoaderOptions lo = data.loader;
  lo.augment = false;
  lo.sampling = io::SamplingMode::Sequential;
  lo.drop_last = false;
  std::vector<int64_t> pool = data.pool;
  if (limit >= 0 && static_cast<int64_t>(pool.size()) > limit) pool.resize(limit);
  std::vector<DetPrediction> out;
  if (pool.empty()) return out;
  io::DataLoader loader(*data.dataset, pool, lo);
  loader.start_epoch(0);
  model.eval();
  NoGradGuard ng;
  std::unique_ptr<io::ProgressBar> bar;
  if (progress) bar = std::make_unique<io::ProgressBar>(static_cast<int64_t>(pool.size()), "detect");
  io::Batch b;
  while (loader.next(b)) {
    auto dets = model.detect(to_image_list(b, device));
    for (size_t i = 0; i < b.targets.size(); ++i) {
      const auto& t = b.targets[i];
      DetPrediction p;
      p.image_id = t.image_id;
      p.image_label = t.image_label;
      p.orig_width = t.orig_width;
      p.orig_height = t.orig_height;
      const double sx = t.scale_x > 0 ? t.scale_x : 1.0, sy = t.scale_y > 0 ? t.scale_y : 1.0;
      const double rw = t.resized_width;
      auto unmap = [&](double x1, double y1, double x2, double y2, eval::EvalBox& e) {
        if (t.flipped) {  // never during inference, but undo it if a caller asked for it
          double a = rw - x2, c = rw - x1;
          x1 = a;
          x2 = c;
        }
        e.x1 = x1 / sx;
        e.y1 = y1 / sy;
        e.x2 = x2 / sx;
        e.y2 = y2 / sy;
      };
      // Ground truth from the dataset in original pixels (exact, not through the resize).
      const io::Sample& s = data.dataset->sample(t.index);
      for (const auto& bx : s.boxes) {
        eval::EvalBox e;
        e.x1 = bx.x1;
        e.y1 = bx.y1;
        e.x2 = bx.x2;
        e.y2 = bx.y2;
        e.label = bx.label;
        p.gt.push_back(e);
      }
      const auto& d = dets[i];
      auto bv = d.boxes.to_vector(), sv = d.scores.to_vector(), lv = d.labels.to_vector();
      for (int64_t k = 0; k < d.size(); ++k) {
        eval::EvalBox e;
        unmap(bv[k * 4], bv[k * 4 + 1], bv[k * 4 + 2], bv[k * 4 + 3], e);
        e.score = sv[k];
        e.label = static_cast<int>(lv[k]);
        p.dets.push_back(e);
      }
      out.push_back(std::move(p));
    }
    if (bar) bar->update(static_cast<int64_t>(b.targets.size()));
  }
  if (bar) bar->finish();
  return out;
}

std::vector<eval::ImageEval> to_image_evals(const std::vector<DetPrediction>& preds) {
  std::vector<eval::ImageEval> out;
  out.reserve(preds.size());
  for (const auto& p : preds) out.push_back({p.image_id, p.gt, p.dets});
  return out;
}

// ---- training -------------------------------------------------------------------------------------
DetTrainer::DetTrainer(models::DetectionModel& model, DetTrainConfig cfg) : model_(model), cfg_(std::move(cfg)) {
  run_files::check_loop_config("train-det", cfg_.out_dir, cfg_.epochs, cfg_.nan_policy, cfg_.val_every, cfg_.clip_norm);
  if (cfg_.class_names.empty())
    cfg_.class_names = {"Osteophytes",        "Surgical implant",   "Spondylolysthesis", "Foraminal stenosis",
                        "Disc space narrowing", "Vertebral collapse", "Other lesions"};
}

DetTrainResult DetTrainer::fit(const DetData& train, const DetData* val, bool resume) {
  SX_CHECK(train.dataset != nullptr && !train.pool.empty(), "train-det: empty training set");
  run_files::create_run_folder(cfg_.out_dir);
  const std::string out = cfg_.out_dir;
  RunLog log(out + "/train.log");

  Metadata config = detector_metadata(model_);
  for (const auto& [k, v] : cfg_.config) config[k] = v;

  io::DataLoader loader(*train.dataset, train.pool, train.loader);
  loader.start_epoch(0);
  const int64_t spe = loader.num_batches();
  SX_CHECK(spe > 0, "train-det: the training set yields no batch");
  // With repeat-factor sampling the epoch length varies a little; the schedule uses epoch 0's.
  const int64_t total_steps = cfg_.max_steps > 0 ? std::min(cfg_.max_steps, cfg_.epochs * spe) : cfg_.epochs * spe;

  model_.to(cfg_.device);
  std::vector<Tensor> params = model_.trainable_parameters();
  SX_CHECK(!params.empty(), "train-det: the model has no trainable parameter");
  std::vector<optim::ParamGroup> groups;
  if (cfg_.no_decay_norm_bias) groups = optim::split_no_decay(params);
  else groups.push_back(optim::ParamGroup{params});
  auto opt = optim::make_optimizer(cfg_.optimizer, groups, cfg_.lr, cfg_.weight_decay, cfg_.momentum, false);
  auto sched = optim::make_scheduler(cfg_.schedule, cfg_.lr, total_steps, cfg_.warmup_steps, cfg_.milestones);
  CheckpointManager mgr(out, cfg_.keep_last);

  TrainState st;
  std::vector<DetEpochRecord> history;
  if (resume) {
    SX_CHECK(file_exists(mgr.last_path()), "--resume: no checkpoint at ", mgr.last_path());
    LoadedCheckpoint lc = load_checkpoint(mgr.last_path(), model_, opt.get());
    st = lc.state;
    history = read_history_csv(out + "/history.csv", st.step);
    log.line(run_files::resumed_line(mgr.last_path(), st));
  } else {
    std::string line = "start: " + model_.model_name() + ", " + std::to_string(cfg_.epochs) + " epochs x " +
                       std::to_string(spe) + " steps, optimizer " + cfg_.optimizer + ", lr " + fmt("%g", cfg_.lr) +
                       ", schedule " + cfg_.schedule + ", device " + cfg_.device.str();
    for (const auto& [k, v] : cfg_.config) line += ", " + k + " " + v;
    log.line(line);
  }

  StopSignals signals;
  DetTrainResult res;
  auto t_start = Clock::now();
  auto save_last = [&]() { mgr.save(model_, opt.get(), sched.get(), st, config, false); };
  auto finish = [&]() {
    res.steps = st.step;
    res.history = history;
    res.best_map50 = st.best_metric > -1e299 ? st.best_metric : -1;
    res.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
    return res;
  };

  for (int64_t epoch = st.epoch; epoch < cfg_.epochs; ++epoch) {
    loader.start_epoch(epoch);
    const int64_t nb = loader.num_batches();
    io::Batch b;
    for (int64_t k = 0; k < st.batch_in_epoch && loader.next(b); ++k) {
    }  // resume: skip the batches already trained on (same order: a function of seed and epoch)
    model_.train();
    std::unique_ptr<io::ProgressBar> bar;
    if (cfg_.progress)
      bar = std::make_unique<io::ProgressBar>(nb - st.batch_in_epoch,
                                              "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg_.epochs));
    auto t_epoch = Clock::now();
    double images = 0, lr = opt->lr();
    std::map<std::string, double> part_sum;
    int64_t part_count = 0;
    while (loader.next(b)) {
      lr = sched->apply(*opt, st.step);
      models::ImageList il = to_image_list(b, cfg_.device);
      auto losses = model_.losses(il, to_targets(b, cfg_.device));
      Tensor total;
      for (const auto& [name, l] : losses) total = total.defined() ? add(total, l) : l;
      const double lv = total.item();
      if (!std::isfinite(lv)) {
        const std::string where = run_files::step_where(st, epoch);
        if (cfg_.nan_policy == "stop") {
          log.line("non-finite loss " + fmt("%g", lv) + " at " + where + "; stopping");
          SX_THROW(ValueError, "non-finite loss (", lv, ") at ", where,
                   "; lower the learning rate, or use --nan skip to skip such steps");
        }
        ++res.nan_skipped;
        log.line("non-finite loss at " + where + "; step skipped (" + std::to_string(res.nan_skipped) + " so far)");
        run_files::skip_step(*opt, st, res.step_losses, lv, res.nan_skipped, cfg_.max_nan_skips, where);
        if (bar) bar->update(1, "loss nan (skipped " + std::to_string(res.nan_skipped) + ")");
        continue;
      }
      total.backward();
      run_files::optimizer_step(*opt, cfg_.clip_norm);
      for (const auto& [name, l] : losses) part_sum[name] += l.item();
      ++part_count;
      run_files::count_step(st, res.step_losses, lv);
      images += static_cast<double>(il.batch());
      if (bar) {
        double secs = std::chrono::duration<double>(Clock::now() - t_epoch).count();
        bar->update(1, "loss " + fmt("%.4f", lv) + " lr " + fmt("%.2e", lr) + " " +
                           fmt("%.2f", secs > 0 ? images / secs : 0.0) + " img/s");
      }
      if (cfg_.ckpt_every > 0 && st.step % cfg_.ckpt_every == 0) save_last();
      if (stop_requested()) {
        if (bar) bar->finish();
        save_last();
        res.interrupted = true;
        res.exit_code = exit_code_for_signal(stop_signal());
        log.line("stopped by signal " + std::to_string(stop_signal()) + " at step " + std::to_string(st.step) +
                 "; checkpoint " + mgr.last_path());
        return finish();
      }
      if (cfg_.max_steps > 0 && st.step >= cfg_.max_steps) {
        if (bar) bar->finish();
        save_last();
        log.line("reached max steps " + std::to_string(cfg_.max_steps) + "; checkpoint " + mgr.last_path());
        return finish();
      }
    }
    if (bar) bar->finish();

    DetEpochRecord rec;
    rec.epoch = epoch + 1;
    rec.step = st.step;
    rec.train_loss = run_files::epoch_mean_loss(st);
    rec.lr = lr;
    rec.seconds = std::chrono::duration<double>(Clock::now() - t_epoch).count();
    for (const auto& [k, v] : part_sum) rec.loss_parts[k] = part_count > 0 ? v / static_cast<double>(part_count) : NAN;
    run_files::end_epoch(st, epoch);

    if (cfg_.precise_bn_batches > 0) {
      // BatchNorm statistics of this epoch's final weights (train/precise_bn.h), over the epoch's
      // first batches in training order and augmentation, before anything evaluates or saves them.
      io::DataLoader bn_loader(*train.dataset, train.pool, train.loader);
      bn_loader.start_epoch(epoch);
      io::Batch bb;
      int64_t used = recompute_batchnorm_statistics(model_, cfg_.precise_bn_batches, [&] {
        if (!bn_loader.next(bb)) return false;
        model_.losses(to_image_list(bb, cfg_.device), to_targets(bb, cfg_.device));
        return true;
      });
      if (used > 0) log.line("precise BN: statistics recomputed over " + std::to_string(used) + " batches");
    }

    bool is_best = false;
    const bool validate = val && val->dataset && !val->pool.empty() &&
                          ((epoch + 1) % cfg_.val_every == 0 || epoch + 1 == cfg_.epochs);
    eval::DetEvalResult vr;
    if (validate) {
      auto preds = predict_detections(model_, *val, cfg_.device, false);
      eval::DetEvalConfig ec2;
      ec2.class_names = cfg_.class_names;
      vr = eval::evaluate_detections(to_image_evals(preds), ec2);
      rec.val_map50 = vr.map50;
      rec.val_map_voc50 = vr.map_voc50;
      const double m = std::isfinite(vr.map50) ? vr.map50 : 0.0;
      if (m > st.best_metric) {
        st.best_metric = m;
        st.best_step = st.step;
        is_best = true;
      }
      model_.train();
    }
    history.push_back(rec);
    mgr.save(model_, opt.get(), sched.get(), st, config, is_best || (!validate && epoch + 1 == cfg_.epochs));
    std::string line = "epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg_.epochs) + " step " +
                       std::to_string(st.step) + " train_loss " + fmt("%.4f", rec.train_loss);
    for (const auto& [k, v] : rec.loss_parts) line += " " + k + " " + fmt("%.4f", v);
    line += " lr " + fmt("%.3e", lr) + " time " + fmt("%.1fs", rec.seconds);
    if (validate)
      line += " val_mAP@0.5 " + fmt("%.4f", vr.map50) + " val_VOC_AP50 " + fmt("%.4f", vr.map_voc50) +
              (is_best ? " best" : "");
    log.line(line);
    if (cfg_.progress) std::fprintf(stderr, "%s\n", line.c_str());

    // metrics.json
    io::Json js = io::Json::object();
    js["model"] = model_.model_name();
    js["epoch"] = st.epoch;
    js["step"] = st.step;
    js["best"] = {{"val_map50", st.best_metric > -1e299 ? st.best_metric : NAN}, {"step", st.best_step}};
    if (validate) js["val"] = eval::det_eval_json(vr);
    io::Json& cj = js["config"] = io::Json::object();
    for (const auto& [k, v] : config) cj[k] = v;
    io::Json& hj = js["history"] = io::Json::array();
    for (const auto& r : history) {
      io::Json h = {{"epoch", r.epoch}, {"step", r.step}, {"train_loss", r.train_loss}};
      for (const auto& [k, v] : r.loss_parts) h[k] = v;
      h["lr"] = r.lr;
      h["seconds"] = r.seconds;
      h["val_map50"] = r.val_map50 >= 0 ? r.val_map50 : NAN;
      h["val_map_voc50"] = r.val_map_voc50 >= 0 ? r.val_map_voc50 : NAN;
      hj.push_back(std::move(h));
    }
    io::write_json_atomic(out + "/metrics.json", js);
    io::write_file_atomic(out + "/history.csv", history_csv(history));
    run_files::write_loss_plot(out + "/loss.png", "Detector training", "mAP@0.5", history, &DetEpochRecord::val_map50,
                               2);

    ++res.epochs_done;
    if (stop_requested()) {
      save_last();
      res.interrupted = true;
      res.exit_code = exit_code_for_signal(stop_signal());
      log.line("stopped by signal " + std::to_string(stop_signal()) + " after epoch " + std::to_string(epoch + 1));
      return finish();
    }
  }
  finish();
  log.line("done: " + std::to_string(st.step) + " steps in " + fmt("%.1fs", res.seconds) +
           (res.best_map50 >= 0 ? ", best val mAP@0.5 " + fmt("%.4f", res.best_map50) : std::string()));
  return res;
}

}  // namespace sx::train
