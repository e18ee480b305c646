// The detector trainer: a short RetinaNet run on a few synthetic radiographs writes its checkpoint,
// metrics.json and history; --resume continues exactly (the losses of a run interrupted after 2
// steps and resumed equal the uninterrupted run's); predict_detections maps boxes back to
// original pixels; the factory refuses unknown models.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io/synth.h"
#include "models/anchors.h"
#include "train/tasks/det_train.h"
#include "train/loop/precise_bn.h"
#include "train/app/predict.h"

namespace sx::train {
namespace {

namespace fs = std::filesystem;

struct TinyRun {
  fs::path root;
  io::Dataset ds;
  std::vector<int64_t> pool;
  TinyRun() {
    root = fs::temp_directory_path() / ("sx_test_det_train_" + std::to_string(::getpid()));
    fs::remove_all(root);
    fs::create_directories(root);
    io::SynthOptions so;
    so.out = (root / "data").string();
    so.images = 8;
    so.size = 128;
    so.seed = 5;
    so.threads = 1;
    so.progress = false;
    so.normal_fraction = 0.25;
    io::synthesize_dataset(so);
    io::DatasetOptions dopt;
    dopt.split = "train";
    ds = io::Dataset::open(so.out, dopt);
    for (int64_t i = 0; i < ds.size(); ++i) pool.push_back(i);
  }
  ~TinyRun() { fs::remove_all(root); }
};

models::DetectorOptions tiny_options() {
  models::DetectorOptions o;
  o.arch = "resnet18";
  o.in_channels = 1;
  o.fpn_channels = 16;
  o.trainable_layers = 1;
  o.anchor_sizes = models::retinanet_anchors(16).sizes;
  o.image_mean = {0.5};
  o.image_std = {0.25};
  o.seed = 2;
  return o;
}

DetTrainConfig tiny_config(const std::string& out, int64_t max_steps) {
  DetTrainConfig c;
  c.epochs = 2;
  c.lr = 0.005;
  c.warmup_steps = 1;
  c.max_steps = max_steps;
  c.out_dir = out;
  c.progress = false;
  c.seed = 4;
  c.config = {{"size", "64"}};
  return c;
}

TEST(DetTrainer, ShortRunWritesFilesAndResumesExactly) {
  TinyRun run;
  ASSERT_GE(run.ds.size(), 4);
  DetData data{&run.ds, run.pool, detection_loader_options(64, 1, 2, true, 0.5, 0.9, 1.1, 0.1, 7, 0)};

  // Uninterrupted: 4 steps.
  auto a = make_detector("retinanet", tiny_options());
  DetTrainer ta(*a, tiny_config((run.root / "a").string(), 4));
  DetTrainResult ra = ta.fit(data, nullptr, false);
  ASSERT_EQ(ra.steps, 4);
  ASSERT_EQ(ra.step_losses.size(), 4u);
  for (double l : ra.step_losses) EXPECT_TRUE(std::isfinite(l));
  EXPECT_TRUE(fs::exists(run.root / "a" / "last.safetensors"));
  EXPECT_TRUE(fs::exists(run.root / "a" / "train.log"));

  // Interrupted after 2 steps, then resumed to 4 (a fresh model: everything comes from the file).
  auto b = make_detector("retinanet", tiny_options());
  DetTrainer tb(*b, tiny_config((run.root / "b").string(), 2));
  DetTrainResult rb1 = tb.fit(data, nullptr, false);
  ASSERT_EQ(rb1.steps, 2);
  auto b2 = make_detector("retinanet", tiny_options());
  DetTrainer tb2(*b2, tiny_config((run.root / "b").string(), 4));
  DetTrainResult rb2 = tb2.fit(data, nullptr, true);
  ASSERT_EQ(rb2.steps, 4);
  ASSERT_EQ(rb2.step_losses.size(), 2u);
  // Deterministic on the CPU: the same losses to the last bit, and the same bytes in every tensor
  // of the final checkpoint (weights, optimizer state).
  EXPECT_EQ(rb1.step_losses[0], ra.step_losses[0]);
  EXPECT_EQ(rb1.step_losses[1], ra.step_losses[1]);
  EXPECT_EQ(rb2.step_losses[0], ra.step_losses[2]);
  EXPECT_EQ(rb2.step_losses[1], ra.step_losses[3]);
  {
    auto ca = safetensors::load((run.root / "a" / "last.safetensors").string());
    auto cb = safetensors::load((run.root / "b" / "last.safetensors").string());
    ASSERT_EQ(ca.tensors.size(), cb.tensors.size());
    for (size_t k = 0; k < ca.tensors.size(); ++k) {
      const auto& [na, ta] = ca.tensors[k];
      const auto& [nb, tb] = cb.tensors[k];
      ASSERT_EQ(na, nb);
      ASSERT_EQ(ta.shape(), tb.shape()) << na;
      ASSERT_EQ(ta.dtype(), tb.dtype()) << na;
      Tensor a = ta.contiguous(), b = tb.contiguous();
      EXPECT_EQ(std::memcmp(a.data_ptr(), b.data_ptr(), a.numel() * dtype_size(a.dtype())), 0) << na;
    }
  }

  // The checkpoint rebuilds the detector by itself (predict's loader) with the same weights.
  auto back = load_detector_checkpoint((run.root / "a" / "last.safetensors").string(), Device::cpu());
  EXPECT_EQ(back->model_name(), "retinanet");
  EXPECT_EQ(back->options().fpn_channels, 16);
  EXPECT_EQ(checkpoint_input_size((run.root / "a" / "last.safetensors").string()), 64);
  EXPECT_EQ(checkpoint_min_size((run.root / "a" / "last.safetensors").string()), 0);  // no config.min_size: longest side
  auto wa = a->state_dict(), wb = back->state_dict();
  ASSERT_EQ(wa.size(), wb.size());
  EXPECT_EQ(wa.at("head.classification_head.cls_logits.bias").to_vector(),
            wb.at("head.classification_head.cls_logits.bias").to_vector());
}

TEST(DetTrainer, FullEpochsWriteMetricsWithValidation) {
  TinyRun run;
  DetData data{&run.ds, run.pool, detection_loader_options(64, 1, 4, true, 0.5, 1.0, 1.0, 0, 1, 0)};
  DetData val{&run.ds, run.pool, detection_loader_options(64, 1, 4, false, 0, 1, 1, 0, 1, 0)};
  models::DetectorOptions o = tiny_options();
  o.score_thresh = 0.0;  // an untrained detector scores under 0.05: keep its boxes so mAP has input
  auto m = make_detector("retinanet", o);
  DetTrainConfig c = tiny_config((run.root / "c").string(), 0);
  c.epochs = 1;
  DetTrainer t(*m, c);
  DetTrainResult r = t.fit(data, &val, false);
  EXPECT_EQ(r.epochs_done, 1);
  ASSERT_EQ(r.history.size(), 1u);
  // The recorded validation mAP is the evaluation of the final weights on the validation view
  // (recomputed here from scratch; deterministic on the CPU, so equal to the last bit).
  eval::DetEvalConfig ec;
  ec.class_names = run.ds.classes().class_names();
  const eval::DetEvalResult again = eval::evaluate_detections(to_image_evals(predict_detections(*m, val, Device::cpu())), ec);
  EXPECT_GT(again.num_dets, 0);
  EXPECT_GT(again.num_gt, 0);
  EXPECT_TRUE(std::isfinite(again.map50));
  EXPECT_EQ(r.history[0].val_map50, again.map50);
  EXPECT_TRUE(r.history[0].loss_parts.count("classification"));
  std::ifstream f(run.root / "c" / "metrics.json");
  std::stringstream ss;
  ss << f.rdbuf();
  EXPECT_NE(ss.str().find("\"map50\""), std::string::npos);
  EXPECT_NE(ss.str().find("\"bbox_regression\""), std::string::npos);
  EXPECT_TRUE(fs::exists(run.root / "c" / "best.safetensors"));
  EXPECT_TRUE(fs::exists(run.root / "c" / "history.csv"));
}

TEST(DetTrainer, PredictionsAreInOriginalPixels) {
  TinyRun run;
  // An untrained RetinaNet scores ~0.01 (prior 0.01), under the 0.05 default: keep every box so the
  // loop below has boxes to check (the exact mapping is pinned in test_det_mapping.cpp).
  models::DetectorOptions o = tiny_options();
  o.score_thresh = 0.0;
  auto m = make_detector("retinanet", o);
  DetData data{&run.ds, run.pool, detection_loader_options(64, 1, 3, false, 0, 1, 1, 0, 1, 0)};
  auto preds = predict_detections(*m, data, Device::cpu(), false, 5);
  ASSERT_EQ(preds.size(), 5u);
  for (size_t i = 0; i < preds.size(); ++i) {
    const auto& s = run.ds.sample(run.pool[i]);
    EXPECT_EQ(preds[i].image_id, s.image_id);
    EXPECT_EQ(preds[i].gt.size(), s.boxes.size());
    EXPECT_GT(preds[i].orig_width, 64);  // synthesised at 128 rows: boxes come back scaled up
    ASSERT_FALSE(preds[i].dets.empty());
    // Boxes clipped to the 64-px input come back clipped to the original image, and some reach
    // beyond 64 px (they were scaled up, not left in input pixels).
    double max_x2 = 0;
    for (const auto& d : preds[i].dets) max_x2 = std::max(max_x2, static_cast<double>(d.x2));
    EXPECT_GT(max_x2, 64.0);
    for (const auto& d : preds[i].dets) {
      EXPECT_GE(d.x1, -1e-3);
      EXPECT_LE(d.x2, preds[i].orig_width + 1e-3);
      EXPECT_LE(d.y2, preds[i].orig_height + 1e-3);
    }
  }
  EXPECT_THROW(make_detector("yolo", tiny_options()), ValueError);
}

// --min-size (the vindr preset's Detectron2 resizing): the shortest side to min_size, the longest
// capped at size; without it the longest side is resized to size.
TEST(DetTrainer, MinSizeResizesTheShortestSideCappedAtTheSize) {
  const io::LoaderOptions lo = detection_loader_options(1333, 1, 2, false, 0, 1, 1, 0, 0, 0, 800);
  EXPECT_EQ(lo.transform.mode, io::ResizeMode::Shortest);
  EXPECT_EQ(lo.transform.size, 800);
  EXPECT_EQ(lo.transform.max_size, 1333);
  EXPECT_FLOAT_EQ(io::resize_scale(1172, 1485, lo.transform), 800.0f / 1172);   // long side 1014 < 1333
  EXPECT_FLOAT_EQ(io::resize_scale(1470, 2949, lo.transform), 1333.0f / 2949);  // capped
  const io::LoaderOptions longest = detection_loader_options(1333, 1, 2, false, 0, 1, 1, 0, 0, 0);
  EXPECT_EQ(longest.transform.mode, io::ResizeMode::Longest);
  EXPECT_FLOAT_EQ(io::resize_scale(1172, 1485, longest.transform), 1333.0f / 1485);
}

// --augment: none, flip-scale (the default: flip and random scale) and autoaugment-v2 (the policy
// plus the flip, no random scale, as the VinDr-SpineXR authors' mapper).
TEST(DetTrainer, AugmentModesSetTheLoaderAugmentation) {
  io::LoaderOptions lo = detection_loader_options(64, 1, 2, true, 0.5, 0.8, 1.2, 0, 0, 0);
  set_detection_augment(lo, "flip-scale", 0.5, 0.8, 1.2);
  EXPECT_EQ(lo.transform.hflip_prob, 0.5);
  EXPECT_EQ(lo.transform.scale_min, 0.8);
  EXPECT_EQ(lo.transform.scale_max, 1.2);
  EXPECT_EQ(lo.transform.autoaugment, io::AutoAugmentPolicy::None);
  set_detection_augment(lo, "autoaugment-v2", 0.5, 0.8, 1.2);
  EXPECT_EQ(lo.transform.hflip_prob, 0.5);
  EXPECT_EQ(lo.transform.scale_min, 1.0);
  EXPECT_EQ(lo.transform.scale_max, 1.0);
  EXPECT_EQ(lo.transform.autoaugment, io::AutoAugmentPolicy::V2);
  set_detection_augment(lo, "none", 0.5, 0.8, 1.2);
  EXPECT_EQ(lo.transform.hflip_prob, 0.0);
  EXPECT_EQ(lo.transform.scale_max, 1.0);
  EXPECT_EQ(lo.transform.autoaugment, io::AutoAugmentPolicy::None);
  EXPECT_THROW(set_detection_augment(lo, "autoaugment-v0", 0.5, 1, 1), ValueError);
}

}  // namespace
}  // namespace sx::train

namespace sx::train {
namespace {

// Precise BN in the detector loop (issue 9.1's cause, where trainable BatchNorm is used): after an
// epoch the BatchNorm statistics are those of the final weights over the first training batches.
// Recomputing them again from the same batches with the same weights changes nothing, which the
// moving averages (an average over earlier weights) would not satisfy.
TEST(DetTrainer, PreciseBnRefreshesTrainableBatchNorm) {
  TinyRun run;
  DetData data{&run.ds, run.pool, detection_loader_options(64, 1, 2, true, 0.5, 1.0, 1.0, 0, 1, 0)};
  models::DetectorOptions o = tiny_options();
  o.norm = models::NormKind::BatchNorm;
  o.trainable_layers = 5;
  auto stats_of = [](nn::Module& m) {
    std::vector<float> v;
    for (auto& [name, t] : m.state_dict())
      if (name.find("running_") != std::string::npos)
        for (float x : t.to_vector()) v.push_back(x);
    return v;
  };
  for (int64_t precise : {0, 2}) {
    auto m = make_detector("retinanet", o);
    DetTrainConfig c = tiny_config((run.root / ("p" + std::to_string(precise))).string(), 0);
    c.epochs = 1;
    c.lr = 0.02;
    c.precise_bn_batches = precise;
    DetTrainer(*m, c).fit(data, nullptr, false);
    const std::vector<float> after_fit = stats_of(*m);
    ASSERT_FALSE(after_fit.empty());
    io::DataLoader loader(*data.dataset, data.pool, data.loader);
    loader.start_epoch(0);
    io::Batch b;
    recompute_batchnorm_statistics(*m, 2, [&] {
      if (!loader.next(b)) return false;
      m->losses(to_image_list(b, Device::cpu()), to_targets(b, Device::cpu()));
      return true;
    });
    const std::vector<float> again = stats_of(*m);
    double max_diff = 0;
    for (size_t i = 0; i < again.size(); ++i)
      max_diff = std::max(max_diff, static_cast<double>(std::fabs(again[i] - after_fit[i])) / (1.0 + std::fabs(again[i])));
    std::string log = io::read_file((run.root / ("p" + std::to_string(precise)) / "train.log").string());
    if (precise > 0) {
      EXPECT_NE(log.find("precise BN: statistics recomputed over 2 batches"), std::string::npos) << log;
      EXPECT_LT(max_diff, 1e-5) << "precise BN statistics are not those of the final weights";
    } else {
      EXPECT_EQ(log.find("precise BN"), std::string::npos);
      EXPECT_GT(max_diff, 1e-3) << "the moving averages should lag the weights (else this test shows nothing)";
    }
  }
}

}  // namespace
}  // namespace sx::train
