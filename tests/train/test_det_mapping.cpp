// predict_detections maps a detector's boxes (pixels of the resized, unpadded image in the batch)
// back to original pixels, exactly. A scripted detector returns known boxes, so the check does not
// depend on what an untrained network happens to score: every image has detections, and each must
// come back at the position computed here from the original and resized sizes alone (x through
// orig_width / resized_width, y through orig_height / resized_height; the padding of the batch
// tensor plays no part).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <deque>
#include <filesystem>

#include "io/synth.h"
#include "tensor/errors.h"
#include "train/tasks/det_train.h"

namespace sx::train {
namespace {

namespace fs = std::filesystem;

// Emits, for image i of each batch: the whole resized image, a fixed asymmetric box, then the boxes
// queued for that image (the ground truth as the loader resized it).
class ScriptedDetector : public models::DetectionModel {
 public:
  ScriptedDetector() : models::DetectionModel("ScriptedDetector") {}
  std::map<std::string, Tensor> losses(const models::ImageList&, const std::vector<models::ImageTargets>&) override {
    SX_THROW(ValueError, "ScriptedDetector has no losses");
  }
  std::vector<models::Detections> detect(const models::ImageList& il) override {
    std::vector<models::Detections> out;
    for (int64_t i = 0; i < il.batch(); ++i) {
      const auto [h, w] = il.image_sizes[static_cast<size_t>(i)];
      seen_sizes.push_back({h, w});
      padded.push_back({il.tensor.size(2), il.tensor.size(3)});
      std::vector<double> b = {0, 0, static_cast<double>(w), static_cast<double>(h), 3, 5, 11, 29};
      if (queued.empty()) SX_THROW(ValueError, "ScriptedDetector: more images than queued boxes");
      for (double v : queued.front()) b.push_back(v);
      queued.pop_front();
      const int64_t n = static_cast<int64_t>(b.size()) / 4;
      std::vector<double> s(n), l(n);
      for (int64_t k = 0; k < n; ++k) s[k] = 0.9 - 0.01 * k, l[k] = static_cast<double>(k % 7);
      out.push_back({Tensor::from_vector(b, {n, 4}), Tensor::from_vector(s, {n}),
                     Tensor::from_vector(l, {n}, DType::Int64)});
    }
    return out;
  }
  std::string model_name() const override { return "scripted"; }
  const models::DetectorOptions& options() const override { return opt_; }

  std::deque<std::vector<double>> queued;
  std::vector<std::pair<int64_t, int64_t>> seen_sizes, padded;

 private:
  models::DetectorOptions opt_;
};

TEST(DetPredictions, MapKnownBoxesBackToOriginalPixelsExactly) {
  const fs::path root = fs::temp_directory_path() / ("sx_test_det_mapping_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  io::SynthOptions so;
  so.out = (root / "data").string();
  so.images = 8;
  so.size = 128;  // rows; width 0.62-0.85 of that, so images are portrait and widths vary
  so.seed = 11;
  so.threads = 1;
  so.progress = false;
  so.normal_fraction = 0.25;
  io::synthesize_dataset(so);
  io::DatasetOptions dopt;
  dopt.split = "train";
  io::Dataset ds = io::Dataset::open(so.out, dopt);
  ASSERT_GE(ds.size(), 4);
  std::vector<int64_t> pool;
  for (int64_t i = 0; i < ds.size(); ++i) pool.push_back(i);
  // 50 px longest side: neither factor is a power of two, and x and y round differently.
  DetData data{&ds, pool, detection_loader_options(50, 1, 3, false, 0, 1, 1, 0, 1, 0)};

  // The ground truth as the loader resizes it (same options, same order).
  ScriptedDetector det;
  {
    io::DataLoader loader(ds, pool, data.loader);
    loader.start_epoch(0);
    io::Batch b;
    while (loader.next(b))
      for (const auto& t : b.targets) det.queued.push_back(t.boxes.numel() ? t.boxes.to_vector() : std::vector<double>{});
  }
  ASSERT_EQ(det.queued.size(), pool.size());

  auto preds = predict_detections(det, data, Device::cpu());
  ASSERT_EQ(preds.size(), pool.size());
  ASSERT_EQ(det.seen_sizes.size(), pool.size());
  bool some_padding = false, x_and_y_differ = false;
  int64_t gt_boxes = 0;
  for (size_t i = 0; i < preds.size(); ++i) {
    SCOPED_TRACE(testing::Message() << "image " << i);
    const io::Sample& s = ds.sample(pool[i]);
    const auto& p = preds[i];
    EXPECT_EQ(p.image_id, s.image_id);
    const double W = p.orig_width, H = p.orig_height;
    ASSERT_EQ(W, 0.0 + s.width);
    ASSERT_EQ(H, 0.0 + s.height);
    const double rh = static_cast<double>(det.seen_sizes[i].first), rw = static_cast<double>(det.seen_sizes[i].second);
    // The loader's resize: longest side to 50, each side rounded on its own.
    EXPECT_EQ(rh, std::lround(H * 50.0 / std::max(W, H)));
    EXPECT_EQ(rw, std::lround(W * 50.0 / std::max(W, H)));
    some_padding |= det.padded[i].first > rh || det.padded[i].second > rw;
    x_and_y_differ |= std::fabs(W / rw - H / rh) > 1e-3 * (H / rh);
    ASSERT_EQ(p.dets.size(), 2 + s.boxes.size());  // never empty: at least the two scripted boxes
    const double fx = W / rw, fy = H / rh;      // original px per resized px
    const double tol = 1e-5 * std::max(W, H);   // float32 arithmetic on the way
    // The whole resized image is the whole original image (padding excluded).
    EXPECT_NEAR(p.dets[0].x1, 0.0, tol);
    EXPECT_NEAR(p.dets[0].y1, 0.0, tol);
    EXPECT_NEAR(p.dets[0].x2, W, tol);
    EXPECT_NEAR(p.dets[0].y2, H, tol);
    // (3, 5, 11, 29): x through fx, y through fy.
    EXPECT_NEAR(p.dets[1].x1, 3 * fx, tol);
    EXPECT_NEAR(p.dets[1].y1, 5 * fy, tol);
    EXPECT_NEAR(p.dets[1].x2, 11 * fx, tol);
    EXPECT_NEAR(p.dets[1].y2, 29 * fy, tol);
    EXPECT_FLOAT_EQ(p.dets[0].score, 0.9f);
    EXPECT_EQ(p.dets[1].label, 1);
    // The resized ground truth comes back as the original ground truth.
    ASSERT_EQ(p.gt.size(), s.boxes.size());
    for (size_t k = 0; k < s.boxes.size(); ++k) {
      const auto& d = p.dets[2 + k];
      EXPECT_NEAR(d.x1, s.boxes[k].x1, tol) << "box " << k;
      EXPECT_NEAR(d.y1, s.boxes[k].y1, tol) << "box " << k;
      EXPECT_NEAR(d.x2, s.boxes[k].x2, tol) << "box " << k;
      EXPECT_NEAR(d.y2, s.boxes[k].y2, tol) << "box " << k;
      EXPECT_EQ(p.gt[k].x1, s.boxes[k].x1);
      EXPECT_EQ(p.gt[k].y2, s.boxes[k].y2);
      ++gt_boxes;
    }
  }
  // Otherwise this test could not tell a swapped x/y or a padded size from the right mapping.
  EXPECT_TRUE(some_padding);
  EXPECT_TRUE(x_and_y_differ);
  EXPECT_GT(gt_boxes, 0);
  fs::remove_all(root);
}

}  // namespace
}  // namespace sx::train
