// The detectors as a task of the training loop, their data loader options, and inference over a data
// view (predict_detections; sharded across ranks for validation: predict_detections_sharded).
#include "train/tasks/det_train.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include <nlohmann/json.hpp>

#include "io/json.h"
#include "io/progress.h"
#include "models/faster_rcnn.h"
#include "models/retinanet.h"
#include "models/sparse_rcnn.h"
#include "tensor/autograd.h"
#include "tensor/dist/gather.h"
#include "tensor/errors.h"
#include "tensor/ops.h"
#include "train/loop/run_files.h"

namespace sx::train {

using run_files::fmt;

// ---- factories -----------------------------------------------------------------------------------
std::shared_ptr<models::DetectionModel> make_detector(const std::string& name, const models::DetectorOptions& o) {
  if (name == "retinanet") return models::make_retinanet(o);
  if (name == "faster_rcnn" || name == "faster-rcnn" || name == "frcnn") return models::make_faster_rcnn(o);
  if (name == "sparse_rcnn" || name == "sparse-rcnn") return models::make_sparse_rcnn(o);
  SX_THROW(ValueError, "unknown detector '", name, "' (expected retinanet, faster_rcnn or sparse_rcnn)");
}

bool detector_uses_anchors(const std::string& name) { return name != "sparse_rcnn" && name != "sparse-rcnn"; }

Metadata detector_metadata(const models::DetectionModel& m) {
  Metadata md = models::detector_options_to_metadata(m.options());
  md["det.model"] = m.model_name();
  return md;
}

io::LoaderOptions detection_loader_options(int size, int channels, int batch, bool augment, double hflip,
                                           double scale_min, double scale_max, double rfs_threshold,
                                           uint64_t seed, int workers, int min_size) {
  io::LoaderOptions lo;
  lo.batch_size = batch;
  lo.workers = workers;
  lo.seed = seed;
  lo.augment = augment;
  lo.sampling = !augment ? io::SamplingMode::Sequential
                         : (rfs_threshold > 0 ? io::SamplingMode::RepeatFactor : io::SamplingMode::Shuffle);
  lo.rfs_threshold = rfs_threshold > 0 ? rfs_threshold : 0.1;
  lo.transform.size = size;
  if (min_size > 0) {
    lo.transform.mode = io::ResizeMode::Shortest;
    lo.transform.size = min_size;
    lo.transform.max_size = size;
  }
  lo.transform.channels = channels;
  lo.transform.hflip_prob = augment ? hflip : 0.0;
  lo.transform.scale_min = augment ? scale_min : 1.0;
  lo.transform.scale_max = augment ? scale_max : 1.0;
  lo.transform.mean = 0.0f;  // the models normalise inside
  lo.transform.std = 1.0f;
  return lo;
}

void set_detection_augment(io::LoaderOptions& lo, const std::string& mode, double hflip, double scale_min,
                           double scale_max) {
  io::TransformOptions& t = lo.transform;
  t.autoaugment = io::AutoAugmentPolicy::None;
  t.hflip_prob = hflip;
  t.scale_min = t.scale_max = 1.0;
  if (mode == "none") {
    t.hflip_prob = 0.0;
  } else if (mode == "flip-scale") {
    t.scale_min = scale_min;
    t.scale_max = scale_max;
  } else if (mode == "autoaugment-v2") {
    t.autoaugment = io::AutoAugmentPolicy::V2;
  } else {
    SX_THROW(ValueError, "--augment: unknown mode '", mode, "' (expected none, flip-scale or autoaugment-v2)");
  }
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

namespace {

void put_boxes(dist::ByteWriter& w, const std::vector<eval::EvalBox>& boxes) {
  w.put<uint64_t>(boxes.size());
  for (const eval::EvalBox& b : boxes) {
    for (double v : {b.x1, b.y1, b.x2, b.y2, b.score}) w.put<double>(v);
    w.put<int32_t>(b.label);
  }
}

std::vector<eval::EvalBox> get_boxes(dist::ByteReader& r) {
  std::vector<eval::EvalBox> boxes(r.get<uint64_t>());
  for (eval::EvalBox& b : boxes) {
    for (double* v : {&b.x1, &b.y1, &b.x2, &b.y2, &b.score}) *v = r.get<double>();
    b.label = r.get<int32_t>();
  }
  return boxes;
}

}  // namespace

std::vector<DetPrediction> predict_detections_sharded(models::DetectionModel& model, const DetData& data,
                                                      Device device, dist::ProcessGroup& group, int64_t& here) {
  DetData shard = data;
  shard.loader.shard_rank = group.rank();
  shard.loader.shard_count = group.size();
  shard.loader.shard_wrap = false;
  const std::vector<DetPrediction> mine = predict_detections(model, shard, device, false);
  here = static_cast<int64_t>(mine.size());
  dist::ByteWriter w;
  for (const DetPrediction& p : mine) {
    w.put_string(p.image_id);
    for (int v : {p.image_label, p.orig_width, p.orig_height}) w.put<int32_t>(v);
    put_boxes(w, p.gt);
    put_boxes(w, p.dets);
  }
  const std::vector<std::string> all = dist::all_gather_bytes(group, w.bytes(), device);
  std::vector<dist::ByteReader> readers(all.begin(), all.end());
  // Global batch g (of batch_size images, the last one shorter) came from rank g mod W.
  const int64_t n = static_cast<int64_t>(data.pool.size()), B = data.loader.batch_size, W = group.size();
  std::vector<DetPrediction> out;
  for (int64_t g = 0; g * B < n; ++g) {
    dist::ByteReader& r = readers[static_cast<size_t>(g % W)];
    for (int64_t i = g * B; i < std::min(n, (g + 1) * B); ++i) {
      DetPrediction p;
      p.image_id = r.get_string();
      p.image_label = r.get<int32_t>();
      p.orig_width = r.get<int32_t>();
      p.orig_height = r.get<int32_t>();
      p.gt = get_boxes(r);
      p.dets = get_boxes(r);
      out.push_back(std::move(p));
    }
  }
  for (size_t k = 0; k < readers.size(); ++k)
    SX_CHECK(readers[k].done(), "sharded validation: rank ", k, " sent more predictions than its batches hold");
  return out;
}

std::vector<eval::ImageEval> to_image_evals(const std::vector<DetPrediction>& preds) {
  std::vector<eval::ImageEval> out;
  out.reserve(preds.size());
  for (const auto& p : preds) out.push_back({p.image_id, p.gt, p.dets});
  return out;
}

// ---- training -------------------------------------------------------------------------------------
namespace {

// The detectors as a task of the training loop (train/loop/loop.h).
class DetTask : public Task {
 public:
  DetTask(models::DetectionModel& model, const DetTrainConfig& cfg, const DetData& train, const DetData* val)
      : model_(model), cfg_(cfg), train_(train), val_(val), loader_(*train.dataset, train.pool, train.loader) {
    metadata_ = detector_metadata(model_);
    for (const auto& [k, v] : cfg_.config) metadata_[k] = v;
    loader_.start_epoch(0);
    // With repeat-factor sampling the epoch length varies a little; the schedule uses epoch 0's.
    steps_per_epoch_ = loader_.num_batches();
  }

  nn::Module& model() override { return model_; }
  TaskInfo info() const override {
    TaskInfo i;
    i.label = model_.model_name();
    i.metric_name = "mAP@0.5";
    i.metric_column = "val_map50";
    i.val_columns = {"val_map50", "val_map_voc50"};
    i.plot_title = "Detector training";
    i.plot_min_points = 2;
    return i;
  }
  Metadata checkpoint_metadata() const override { return metadata_; }

  int64_t steps_per_epoch() override { return steps_per_epoch_; }
  int64_t start_epoch(int64_t epoch, int64_t first_batch) override {
    loader_.start_epoch(epoch);
    for (int64_t k = 0; k < first_batch && loader_.next(batch_); ++k) {
    }  // resume: skip the batches already trained on (same order: a function of seed and epoch)
    return loader_.num_batches() - first_batch;
  }
  bool next_batch() override { return loader_.next(batch_); }
  StepLoss step() override {
    models::ImageList il = to_image_list(batch_, cfg_.device);
    auto losses = model_.losses(il, to_targets(batch_, cfg_.device));
    StepLoss sl;
    for (const auto& [name, l] : losses) {
      sl.total = sl.total.defined() ? add(sl.total, l) : l;
      sl.terms.emplace_back(name, l);
    }
    sl.images = il.batch();
    return sl;
  }

  // Precise BN over the epoch's first batches, in training order and augmentation.
  void start_bn(int64_t epoch) override {
    bn_loader_ = std::make_unique<io::DataLoader>(*train_.dataset, train_.pool, train_.loader);
    bn_loader_->start_epoch(epoch);
  }
  bool bn_forward() override {
    if (!bn_loader_->next(bn_batch_)) return false;
    model_.losses(to_image_list(bn_batch_, cfg_.device), to_targets(bn_batch_, cfg_.device));
    return true;
  }

  bool can_validate() const override { return val_ && val_->dataset && !val_->pool.empty(); }
  Validation validate() override {
    Validation v;
    std::vector<DetPrediction> preds;
    if (cfg_.group && cfg_.group->size() > 1) {
      preds = predict_detections_sharded(model_, *val_, cfg_.device, *cfg_.group, v.images_here);
    } else {
      preds = predict_detections(model_, *val_, cfg_.device, false);
      v.images_here = static_cast<int64_t>(preds.size());
    }
    eval::DetEvalConfig ec;
    ec.class_names = cfg_.class_names;
    const eval::DetEvalResult vr = eval::evaluate_detections(to_image_evals(preds), ec);
    v.scored = true;
    v.metric = std::isfinite(vr.map50) ? vr.map50 : 0.0;
    v.values = {{"val_map50", vr.map50}, {"val_map_voc50", vr.map_voc50}};
    v.json = eval::det_eval_json(vr);
    v.summary = " val_mAP@0.5 " + fmt("%.4f", vr.map50) + " val_VOC_AP50 " + fmt("%.4f", vr.map_voc50);
    return v;
  }

  io::Json metrics_head() const override { return {{"model", model_.model_name()}}; }
  io::Json best_json(const TrainState& st) const override {
    return {{"val_map50", st.best_metric > -1e299 ? st.best_metric : NAN}, {"step", st.best_step}};
  }

 private:
  models::DetectionModel& model_;
  const DetTrainConfig& cfg_;
  const DetData& train_;
  const DetData* val_;
  Metadata metadata_;
  io::DataLoader loader_;
  int64_t steps_per_epoch_ = 0;
  io::Batch batch_, bn_batch_;
  std::unique_ptr<io::DataLoader> bn_loader_;
};

}  // namespace

DetTrainer::DetTrainer(models::DetectionModel& model, DetTrainConfig cfg) : model_(model), cfg_(std::move(cfg)) {
  check_loop_config(cfg_);
  if (cfg_.class_names.empty())
    cfg_.class_names = {"Osteophytes",        "Surgical implant",   "Spondylolysthesis", "Foraminal stenosis",
                        "Disc space narrowing", "Vertebral collapse", "Other lesions"};
}

DetTrainResult DetTrainer::fit(const DetData& train, const DetData* val, bool resume) {
  SX_CHECK(train.dataset != nullptr && !train.pool.empty(), cfg_.who, ": empty training set");
  model_.to(cfg_.device);
  DetTask task(model_, cfg_, train, val);
  LoopResult r = train_loop(task, cfg_, resume);
  DetTrainResult res;
  static_cast<RunOutcome&>(res) = std::move(r);
  res.best_map50 = std::isnan(r.best_metric) ? -1 : r.best_metric;
  for (const EpochLog& e : r.history) {
    DetEpochRecord d;
    d.epoch = e.epoch;
    d.step = e.step;
    d.train_loss = e.train_loss;
    d.lr = e.lr;
    d.seconds = e.seconds;
    d.loss_parts = e.terms;
    const double m = e.get("val_map50"), mv = e.get("val_map_voc50");
    d.val_map50 = std::isnan(m) ? -1 : m;
    d.val_map_voc50 = std::isnan(mv) ? -1 : mv;
    res.history.push_back(std::move(d));
  }
  return res;
}

}  // namespace sx::train
