// The classifier: its loss, predictions, metrics, and the task the training loop runs (cls_train.h).
#include "train/tasks/cls_train.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/json.h"
#include "io/progress.h"
#include "layers/loss.h"
#include "tensor/autograd.h"
#include "tensor/dist/gather.h"
#include "tensor/errors.h"
#include "tensor/ops.h"
#include "train/eval/plot.h"
#include "train/loop/run_files.h"

namespace sx::train {
using run_files::fmt;

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

namespace {

// One batch's outputs: predict_cls's unit, and what a rank sends in sharded validation.
struct BatchOutputs {
  std::vector<double> logits, probs;
  std::vector<int> labels;
  std::vector<std::string> ids;  // may be shorter than labels (a source without ids)
  double loss_sum = 0;           // BCE summed over the batch
};

std::vector<BatchOutputs> predict_batches(nn::Module& model, ClsBatchSource& source, Device device, bool progress,
                                          double temperature) {
  SX_CHECK(temperature > 0 && std::isfinite(temperature), "predict_cls: temperature must be > 0, got ", temperature);
  bool was_training = model.is_training();
  model.eval();
  NoGradGuard ng;
  std::vector<BatchOutputs> out;
  source.start_epoch(0, 0);
  std::unique_ptr<io::ProgressBar> bar;
  if (progress) bar = std::make_unique<io::ProgressBar>(source.num_batches(), "predict");
  ClsBatch b;
  while (source.next(b)) {
    Tensor logits = model.forward(b.images.to(device));
    int64_t n = logits.size(0);
    Tensor raw = logits.reshape({n});
    Tensor l = temperature == 1.0 ? raw : mul(raw, 1.0 / temperature);
    Tensor t = b.labels.to(l.device(), l.dtype());
    BatchOutputs o;
    o.loss_sum = nn::binary_cross_entropy_with_logits(l, t, Tensor(), nn::Reduction::Sum).item();
    o.logits = raw.to_vector();
    o.probs = sigmoid(l).to_vector();
    const auto labels = b.labels.to_vector();
    SX_CHECK(static_cast<int64_t>(o.probs.size()) == n && static_cast<int64_t>(labels.size()) == n,
             "predict_cls: batch of ", n, " logits but ", labels.size(), " labels");
    for (double v : labels) o.labels.push_back(v >= 0.5 ? 1 : 0);
    o.ids.assign(b.ids.begin(), b.ids.begin() + std::min<int64_t>(n, static_cast<int64_t>(b.ids.size())));
    out.push_back(std::move(o));
    if (bar) bar->update(1);
  }
  if (bar) bar->finish();
  model.train(was_training);
  return out;
}

// The batches, in order, as one set of predictions (the loss summed batch by batch, as one pass would).
ClsPredictions join_batches(const std::vector<BatchOutputs>& batches, double temperature) {
  ClsPredictions p;
  double loss_sum = 0;
  for (const BatchOutputs& o : batches) {
    loss_sum += o.loss_sum;
    for (size_t i = 0; i < o.labels.size(); ++i) {
      p.logits.push_back(o.logits[i]);
      p.probs.push_back(o.probs[i]);
      p.labels.push_back(o.labels[i]);
      p.ids.push_back(i < o.ids.size() ? o.ids[i] : std::to_string(p.ids.size()));
    }
  }
  p.mean_loss = p.probs.empty() ? 0.0 : loss_sum / static_cast<double>(p.probs.size());
  p.temperature = temperature;
  return p;
}

}  // namespace

ClsPredictions predict_cls_sharded(nn::Module& model, ClsBatchSource& source, Device device,
                                   dist::ProcessGroup& group, int64_t& here) {
  const std::vector<BatchOutputs> mine = predict_batches(model, source, device, false, 1.0);
  dist::ByteWriter w;
  here = 0;
  w.put<uint64_t>(mine.size());
  for (const BatchOutputs& o : mine) {
    w.put<uint64_t>(o.labels.size());
    w.put<uint64_t>(o.ids.size());
    w.put<double>(o.loss_sum);
    for (size_t i = 0; i < o.labels.size(); ++i) {
      w.put<double>(o.logits[i]);
      w.put<double>(o.probs[i]);
      w.put<int32_t>(o.labels[i]);
    }
    for (const std::string& id : o.ids) w.put_string(id);
    here += static_cast<int64_t>(o.labels.size());
  }
  const std::vector<std::string> all = dist::all_gather_bytes(group, w.bytes(), device);
  std::vector<dist::ByteReader> readers;
  std::vector<uint64_t> left;
  for (const std::string& bytes : all) {
    readers.emplace_back(bytes);
    left.push_back(readers.back().get<uint64_t>());
  }
  std::vector<BatchOutputs> batches;
  const int W = group.size();
  for (int64_t g = 0; left[static_cast<size_t>(g % W)] > 0; ++g) {
    dist::ByteReader& r = readers[static_cast<size_t>(g % W)];
    --left[static_cast<size_t>(g % W)];
    BatchOutputs o;
    const uint64_t n = r.get<uint64_t>(), nid = r.get<uint64_t>();
    o.loss_sum = r.get<double>();
    for (uint64_t i = 0; i < n; ++i) {
      o.logits.push_back(r.get<double>());
      o.probs.push_back(r.get<double>());
      o.labels.push_back(r.get<int32_t>());
    }
    for (uint64_t i = 0; i < nid; ++i) o.ids.push_back(r.get_string());
    batches.push_back(std::move(o));
  }
  for (size_t k = 0; k < readers.size(); ++k)
    SX_CHECK(left[k] == 0 && readers[k].done(), "sharded validation: rank ", k, "'s predictions do not follow the "
             "strided split of the batches (", left[k], " batches left over)");
  return join_batches(batches, 1.0);
}

ClsPredictions predict_cls(nn::Module& model, ClsBatchSource& source, Device device, bool progress,
                           double temperature) {
  return join_batches(predict_batches(model, source, device, progress, temperature), temperature);
}

ClsPredictions ensemble_cls_predictions(const std::vector<ClsPredictions>& members) {
  SX_CHECK(!members.empty(), "ensemble_cls_predictions: no members");
  if (members.size() == 1) return members[0];
  const ClsPredictions& first = members[0];
  const size_t n = first.probs.size();
  for (size_t m = 0; m < members.size(); ++m) {
    const ClsPredictions& p = members[m];
    SX_CHECK(p.logits.size() == n && p.probs.size() == n && p.labels.size() == n && p.ids.size() == n,
             "ensemble: member ", m + 1, " has ", p.probs.size(), " predictions, member 1 has ", n);
    SX_CHECK(p.temperature > 0 && std::isfinite(p.temperature), "ensemble: member ", m + 1, " has temperature ",
             p.temperature);
    for (size_t i = 0; i < n; ++i)
      SX_CHECK(p.ids[i] == first.ids[i] && p.labels[i] == first.labels[i], "ensemble: member ", m + 1,
               " differs from member 1 at image ", i, " ('", p.ids[i], "' vs '", first.ids[i], "')");
  }
  ClsPredictions e;
  e.ids = first.ids;
  e.labels = first.labels;
  double loss = 0;
  for (size_t i = 0; i < n; ++i) {
    double z = 0;
    for (const ClsPredictions& p : members) z += p.logits[i] / p.temperature;
    z /= static_cast<double>(members.size());
    e.logits.push_back(z);
    e.probs.push_back(1.0 / (1.0 + std::exp(-z)));
    // BCE with logits, in the stable form
    loss += (z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z))) - (e.labels[i] ? z : 0.0);
  }
  e.mean_loss = n ? loss / static_cast<double>(n) : 0.0;
  return e;
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

std::string g17(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
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

void write_roc_curves_png(const std::string& path, const std::vector<RocEntry>& curves, const std::string& title) {
  plot::LinePlot lp;
  lp.title = title;
  lp.xlabel = "False positive rate";
  lp.ylabel = "True positive rate";
  plot::Series chance;
  chance.x = {0, 1};
  chance.y = {0, 1};
  chance.color = plot::kGrey;
  chance.thickness = 1;
  chance.dashed = true;
  lp.series.push_back(chance);
  for (size_t i = 0; i < curves.size(); ++i) {
    SX_CHECK(curves[i].preds != nullptr, "write_roc_curves_png: curve ", i, " has no predictions");
    metrics::RocCurve roc = metrics::roc_curve(curves[i].preds->probs, curves[i].preds->labels);
    plot::Series s;
    s.label = curves[i].name + " AUC " + fmt("%.3f", curves[i].auroc);
    s.x = roc.fpr;
    s.y = roc.tpr;
    s.color = plot::palette(static_cast<int>(i));
    s.thickness = i + 1 == curves.size() ? 3 : 1;
    lp.series.push_back(s);
  }
  plot::render(lp).save_png(path);
}

namespace {

// The classifier as a task of the training loop (train/loop/loop.h).
class ClsTask : public Task {
 public:
  // With several ranks the validation source is sharded from here on (each rank its strided share
  // of the batches; validate() gathers the predictions).
  ClsTask(nn::Module& model, const ClsTrainConfig& cfg, ClsBatchSource& train, ClsBatchSource* val,
          ClsBatchSource* bn_source)
      : model_(model), cfg_(cfg), train_(train), val_(val), bn_(bn_source) {
    if (val_ && cfg_.group && cfg_.group->size() > 1) val_->shard(cfg_.group->rank(), cfg_.group->size());
  }

  nn::Module& model() override { return model_; }
  TaskInfo info() const override {
    TaskInfo i;
    i.metric_name = "AUROC";
    i.metric_column = "val_auroc";
    i.val_columns = {"val_loss", "val_auroc"};
    i.plot_title = "Training";
    i.plot_min_points = 1;
    i.resumed_metadata = {"val_threshold", "temperature"};
    return i;
  }
  Metadata checkpoint_metadata() const override { return cfg_.config; }

  int64_t steps_per_epoch() override { return train_.num_batches(); }
  int64_t start_epoch(int64_t epoch, int64_t first_batch) override {
    train_.start_epoch(epoch, first_batch);
    return train_.num_batches() - first_batch;
  }
  bool next_batch() override { return train_.next(batch_); }
  StepLoss step() override {
    Tensor x = batch_.images.to(cfg_.device);
    Tensor logits = model_.forward(x);
    return {cls_loss(logits, batch_.labels, cfg_.pos_weight), {}, x.size(0)};
  }

  void start_bn(int64_t epoch) override { bn_->start_epoch(epoch, 0); }
  bool bn_forward() override {
    if (!bn_->next(bn_batch_)) return false;
    model_.forward(bn_batch_.images.to(cfg_.device));
    return true;
  }

  bool can_validate() const override { return val_ != nullptr; }
  Validation validate() override {
    Validation v;
    ClsPredictions pv;
    if (cfg_.group && cfg_.group->size() > 1) {
      pv = predict_cls_sharded(model_, *val_, cfg_.device, *cfg_.group, v.images_here);
    } else {
      pv = predict_cls(model_, *val_, cfg_.device, false);
      v.images_here = static_cast<int64_t>(pv.labels.size());
    }
    int64_t pos = 0;
    for (int l : pv.labels) pos += l;
    v.values["val_loss"] = pv.mean_loss;
    if (pos == 0 || pos == static_cast<int64_t>(pv.labels.size())) {
      // No AUROC without both classes: keep going, and let "best" follow the latest epoch.
      v.notes.push_back("warning: the validation set holds " + std::to_string(pv.labels.size()) +
                        " images of one class only; no AUROC, best.safetensors follows the last epoch");
      v.best_anyway = true;
      return v;
    }
    ClsMetrics vm = compute_cls_metrics(pv, cfg_.bootstrap, cfg_.seed);
    v.scored = true;
    v.metric = vm.auroc;
    v.loss = vm.mean_loss;  // the tie-break: the model as trained, before any calibration
    v.values["val_auroc"] = vm.auroc;
    const double raw_ece = vm.calibration.ece, raw_loss = vm.mean_loss;
    double temperature = 1.0;
    if (cfg_.calibrate_temperature) {
      // Fit T on these validation logits; the threshold and the metrics recorded with this
      // checkpoint are then those of the calibrated probabilities sigmoid(logit / T), which is
      // what eval-cls, eval and predict will compute from it.
      temperature = metrics::fit_temperature(pv.logits, pv.labels);
      double loss = 0;
      for (size_t i = 0; i < pv.probs.size(); ++i) {
        const double z = pv.logits[i] / temperature;
        pv.probs[i] = 1.0 / (1.0 + std::exp(-z));
        loss += (z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z))) - (pv.labels[i] ? z : 0.0);
      }
      pv.mean_loss = loss / static_cast<double>(pv.probs.size());
      vm = compute_cls_metrics(pv, cfg_.bootstrap, cfg_.seed);
      v.checkpoint["temperature"] = g17(temperature);
    }
    v.checkpoint["val_threshold"] = g17(vm.threshold);
    metrics_fields(v.json, vm);
    v.summary = " val_loss " + fmt("%.4f", raw_loss) + " val_auroc " + fmt("%.4f", vm.auroc) + " (95% CI " +
                fmt("%.4f", vm.ci.lo) + "-" + fmt("%.4f", vm.ci.hi) + ") val_ece " + fmt("%.4f", raw_ece);
    if (cfg_.calibrate_temperature) {
      // metrics_fields above describe the calibrated probabilities; these, the model as trained
      v.json["temperature"] = temperature;
      v.json["uncalibrated_mean_loss"] = raw_loss;
      v.json["uncalibrated_ece"] = raw_ece;
      v.summary += " temperature " + fmt("%.3f", temperature) + " (ece " + fmt("%.4f", vm.calibration.ece) + ")";
    }
    return v;
  }

  io::Json best_json(const TrainState& st) const override {
    return {{"val_auroc", st.best_metric > -1e299 ? st.best_metric : NAN},
            {"val_loss", std::isfinite(st.best_loss) ? st.best_loss : NAN},
            {"step", st.best_step},
            {"rule", "highest val_auroc; ties: lowest val_loss"}};
  }

 private:
  nn::Module& model_;
  const ClsTrainConfig& cfg_;
  ClsBatchSource& train_;
  ClsBatchSource* val_;
  ClsBatchSource* bn_;
  ClsBatch batch_, bn_batch_;
};

}  // namespace

ClsTrainer::ClsTrainer(nn::Module& model, ClsTrainConfig cfg) : model_(model), cfg_(std::move(cfg)) {
  check_loop_config(cfg_);
}

ClsTrainResult ClsTrainer::fit(ClsBatchSource& train, ClsBatchSource* val, bool resume, ClsBatchSource* bn_source) {
  SX_CHECK(cfg_.precise_bn_batches == 0 || bn_source, cfg_.who, ": precise BN needs a source of training batches");
  ClsTask task(model_, cfg_, train, val, bn_source);
  LoopResult r = train_loop(task, cfg_, resume);
  ClsTrainResult res;
  static_cast<RunOutcome&>(res) = std::move(r);
  res.best_auroc = std::isnan(r.best_metric) ? -1 : r.best_metric;
  for (const EpochLog& e : r.history)
    res.history.push_back({e.epoch, e.step, e.train_loss, e.get("val_loss"), e.get("val_auroc"), e.lr, e.seconds});
  return res;
}

}  // namespace sx::train
