// Synchronised BatchNorm and sharded validation across processes, through MPI (run by CTest under
// `mpirun --allow-run-as-root --oversubscribe -np 2`, see tests/CMakeLists.txt; it also runs, as one
// rank, without mpirun).
//
//   SyncBatchNorm.*     : conv -> BatchNorm2d -> linear in float64. 2 ranks x batch B, converted with
//                         convert_sync_batchnorm, against this process alone with the batch of 2B and
//                         plain BatchNorm: outputs, input gradients, summed parameter gradients and
//                         running statistics to 1e-9 relative. The negative control: the same 2 ranks
//                         without sync differ.
//   ShardedValidation.* : the classifier (with sync BN, through the one training loop and its
//                         gradient buckets) and a small RetinaNet: each rank ran only its strided share
//                         of the validation batches (counted), and the recorded metrics are exactly
//                         those of one process validating the same weights over the whole set.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>

#include "io/dataset.h"
#include "io/json.h"
#include "io/synth.h"
#include "layers/batchnorm.h"
#include "layers/conv.h"
#include "layers/linear.h"
#include "models/anchors.h"
#include "tensor/autograd.h"
#include "tensor/dist/process_group.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "train/tasks/cls_source.h"
#include "train/tasks/cls_train.h"
#include "train/tasks/det_train.h"

using namespace sx;
using namespace sx::train;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<dist::ProcessGroup> world() { return dist::init_process_group("auto", 60, Device::cpu()); }

std::string temp_dir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("sx_test_syncbn_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

Tensor random_tensor(const Shape& s, uint64_t seed, DType dt, double scale = 1.0, double shift = 0) {
  Generator g(seed);
  Tensor t = Tensor::empty(s, DType::Float64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = (g.uniform() * 2 - 1) * scale + shift;
  return dt == DType::Float64 ? t : t.to(dt);
}

// max |a - b| / max |b| (at least 1e-6: the conv bias before BatchNorm has a gradient of 0, its
// float64 rounding noise is no scale)
double rel_diff(const Tensor& a, const Tensor& b) {
  const double d = max(abs(sub(a, b))).item(), s = max(abs(b)).item();
  return d / std::max(s, 1e-6);
}

// conv -> BatchNorm2d -> ReLU -> linear on the flattened map (`outputs` values per image).
class TinyNet : public nn::Module {
 public:
  TinyNet(int64_t in_channels, int64_t outputs, uint64_t seed) {
    Generator g(seed);
    conv = register_module("conv", std::make_shared<nn::Conv2d>(in_channels, 3, 3, 1, 1, 1, 1, true, &g));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(3));
    fc = register_module("fc", std::make_shared<nn::Linear>(3 * 4 * 4, outputs, true, &g));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = relu(bn->forward(conv->forward(x)));
    return fc->forward(h.reshape({x.size(0), -1}));
  }
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;
  std::shared_ptr<nn::Linear> fc;
};

// ---- SyncBatchNorm: 2 ranks x B == 1 process x 2B ------------------------------------------------
struct Pass {
  Tensor out, grad_x;
  std::vector<Tensor> grads;  // the parameters', in order
};

// Two training steps (forward, backward of sum(out * lw)) on rows [first, first + n) of the data.
std::vector<Pass> two_steps(TinyNet& net, int64_t first, int64_t n, int64_t total) {
  std::vector<Pass> passes;
  for (int step = 0; step < 2; ++step) {
    const Tensor x_all = random_tensor({total, 2, 4, 4}, 21 + step, DType::Float64, 1.5, 0.4);
    const Tensor lw_all = random_tensor({total, 2}, 31 + step, DType::Float64);
    Tensor x = x_all.narrow(0, first, n).contiguous().set_requires_grad();
    Tensor out = net.forward(x);
    sum(mul(out, lw_all.narrow(0, first, n))).backward();
    Pass p{out.detach(), x.grad(), {}};
    for (Tensor& t : net.parameters()) {
      p.grads.push_back(t.grad().clone());
      t.zero_grad();
    }
    passes.push_back(p);
  }
  return passes;
}

TEST(SyncBatchNorm, TwoRanksOfBatchBEqualOneProcessOfBatch2B) {
  auto g = world();
  const int W = g->size(), r = g->rank();
  const int64_t B = 3;
  TinyNet ref(2, 2, 7);
  ref.to(DType::Float64);
  const std::vector<Pass> want = two_steps(ref, 0, W * B, W * B);

  TinyNet net(2, 2, 7);
  net.to(DType::Float64);
  EXPECT_EQ(nn::convert_sync_batchnorm(net, *g), 1);
  const std::vector<Pass> got = two_steps(net, r * B, B, W * B);
  const double tol = 1e-9;
  for (size_t s = 0; s < got.size(); ++s) {
    EXPECT_LE(rel_diff(got[s].out, want[s].out.narrow(0, r * B, B)), tol) << "output, step " << s;
    EXPECT_LE(rel_diff(got[s].grad_x, want[s].grad_x.narrow(0, r * B, B)), tol) << "input gradient, step " << s;
    for (size_t i = 0; i < got[s].grads.size(); ++i) {
      Tensor summed = got[s].grads[i].clone();
      g->all_reduce(summed, dist::ReduceOp::Sum);  // what the buckets do (then / W, as the loss is)
      EXPECT_LE(rel_diff(summed, want[s].grads[i]), tol) << "parameter " << i << ", step " << s;
    }
  }
  EXPECT_LE(rel_diff(net.bn->running_mean, ref.bn->running_mean), tol);
  EXPECT_LE(rel_diff(net.bn->running_var, ref.bn->running_var), tol);
  EXPECT_EQ(net.bn->num_batches_tracked.item<int64_t>(), 2);

  // The negative control: each rank with its own statistics is not the big batch.
  if (W > 1) {
    TinyNet alone(2, 2, 7);
    alone.to(DType::Float64);
    const std::vector<Pass> own = two_steps(alone, r * B, B, W * B);
    EXPECT_GT(rel_diff(own[0].out, want[0].out.narrow(0, r * B, B)), 1e-3);
    EXPECT_GT(rel_diff(own[0].grad_x, want[0].grad_x.narrow(0, r * B, B)), 1e-3);
    EXPECT_GT(rel_diff(alone.bn->running_var, ref.bn->running_var), 1e-4);
  }
}

// ---- sharded validation: the classifier ---------------------------------------------------------
// Images whose brightness carries the label, under a per-image offset as large (so the AUROC is not
// 1 and the bootstrap CI depends on the order of the predictions).
void cls_data(int64_t n, uint64_t seed, Tensor& images, Tensor& labels) {
  Generator gen(seed);
  images = Tensor::empty({n, 1, 4, 4});
  labels = Tensor::empty({n});
  for (int64_t i = 0; i < n; ++i) {
    const float y = gen.uniform() < 0.45 ? 1.0f : 0.0f;
    labels.data<float>()[i] = y;
    const double offset = gen.uniform() * 2 - 1;
    for (int64_t k = 0; k < 16; ++k)
      images.data<float>()[i * 16 + k] =
          static_cast<float>(offset + 0.3 * (gen.uniform() * 2 - 1) + 0.7 * y + 0.1 * (k % 4));
  }
}

ClsTrainConfig cls_config(const std::string& out) {
  ClsTrainConfig c;
  c.who = "cls";
  c.epochs = 2;
  c.lr = 0.05;
  c.momentum = 0.9;
  c.weight_decay = 1e-4;
  c.bootstrap = 50;
  c.seed = 3;
  c.out_dir = out;
  c.progress = false;
  c.dist_bucket_bytes = 256;  // several buckets, launched during backward
  return c;
}

TEST(ShardedValidation, ClassifierWithSyncBnMetricsAreThoseOfOneProcess) {
  auto g = world();
  const int W = g->size(), r = g->rank();
  const int64_t B = 4, n_val = 13, val_batch = 3;
  Tensor xt, yt, xv, yv;
  cls_data(24, 1, xt, yt);
  cls_data(n_val, 2, xv, yv);

  // W ranks x B, sync BN, the training source sharded the way the sampler does (W divides the batches).
  TinyNet net(1, 1, 5);
  EXPECT_EQ(nn::convert_sync_batchnorm(net, *g), 1);
  InMemoryClsSource train(xt, yt, B, true, true, 9);
  train.shard(r, W);
  InMemoryClsSource val(xv, yv, val_batch, false, false, 0);
  ClsTrainConfig dc = cls_config(temp_dir("cls_dist_" + std::to_string(r)));
  dc.group = g;
  const ClsTrainResult dr = ClsTrainer(net, dc).fit(train, &val);

  // This rank ran only its batches r, r + W, ... of the validation set.
  int64_t mine = 0;
  for (int64_t b = r; b * val_batch < n_val; b += W) mine += std::min(val_batch, n_val - b * val_batch);
  EXPECT_EQ(dr.val_images_here, mine);
  Tensor count = Tensor::full({1}, static_cast<double>(dr.val_images_here), DType::Int64);
  g->all_reduce(count, dist::ReduceOp::Sum);
  EXPECT_EQ(count.item<int64_t>(), n_val) << "every validation image exactly once across the ranks";

  // One process validating the same (final) weights over the whole set: the same numbers, exactly.
  InMemoryClsSource whole(xv, yv, val_batch, false, false, 0);
  const ClsPredictions p = predict_cls(net, whole, Device::cpu(), false);
  const ClsMetrics m = compute_cls_metrics(p, dc.bootstrap, dc.seed);
  EXPECT_LT(m.auroc, 1.0) << "a saturated AUROC would not see the order of the predictions";
  EXPECT_GT(m.ci.hi - m.ci.lo, 0.0);
  ASSERT_FALSE(dr.history.empty());
  EXPECT_EQ(dr.history.back().val_auroc, m.auroc);
  EXPECT_EQ(dr.history.back().val_loss, p.mean_loss);
  if (r == 0) {
    const io::Json js = io::read_json_file(dc.out_dir + "/metrics.json");
    EXPECT_EQ(js["val"]["auroc_ci95"][0].get<double>(), m.ci.lo);
    EXPECT_EQ(js["val"]["auroc_ci95"][1].get<double>(), m.ci.hi);
    EXPECT_EQ(js["val"]["threshold"].get<double>(), m.threshold);
    EXPECT_EQ(js["val"]["n"].get<int64_t>(), n_val);
  }
  // The gathered predictions themselves: one process's, image by image, in its order.
  int64_t here = -1;
  const ClsPredictions gathered = predict_cls_sharded(net, val, Device::cpu(), *g, here);
  EXPECT_EQ(here, mine);
  EXPECT_EQ(gathered.ids, p.ids);
  EXPECT_EQ(gathered.logits, p.logits);
  EXPECT_EQ(gathered.labels, p.labels);
  EXPECT_EQ(gathered.mean_loss, p.mean_loss);

  // And sync BN through the loop: the same training as one process with the batch of W x B (float32,
  // 6 steps: the statistics are summed in another order than batch_norm's, so not to the bit, and
  // the one-element fc bias is small (2.4e-5 relative seen); the float64 equivalence, to 1e-9, is
  // SyncBatchNorm.TwoRanksOfBatchBEqualOneProcessOfBatch2B).
  TinyNet ref(1, 1, 5);
  InMemoryClsSource ref_train(xt, yt, B * W, true, true, 9);
  InMemoryClsSource ref_val(xv, yv, val_batch, false, false, 0);
  const ClsTrainResult rr = ClsTrainer(ref, cls_config(temp_dir("cls_ref_" + std::to_string(r)))).fit(ref_train, &ref_val);
  ASSERT_EQ(dr.steps, rr.steps);
  auto dp = net.parameters(), rp = ref.parameters();
  for (size_t i = 0; i < dp.size(); ++i) EXPECT_LE(rel_diff(dp[i], rp[i]), 1e-4) << "parameter " << i;
  EXPECT_LE(rel_diff(net.bn->running_var, ref.bn->running_var), 1e-4);
  EXPECT_NEAR(dr.history.back().val_loss, rr.history.back().val_loss, 1e-4);
}

// ---- sharded validation: RetinaNet --------------------------------------------------------------
TEST(ShardedValidation, RetinaNetMetricsAreThoseOfOneProcess) {
  auto g = world();
  const int W = g->size(), r = g->rank();
  const fs::path root = temp_dir("retina_" + std::to_string(r));
  io::SynthOptions so;
  so.out = (root / "data").string();
  so.images = 10;
  so.test_images = 1;  // the other 9 in the train split
  so.size = 128;
  so.seed = 5;
  so.threads = 1;
  so.progress = false;
  so.normal_fraction = 0.25;
  io::synthesize_dataset(so);  // the same bytes on every rank
  io::DatasetOptions dopt;
  dopt.split = "train";
  io::Dataset ds = io::Dataset::open(so.out, dopt);
  ASSERT_EQ(ds.size(), 9);
  std::vector<int64_t> train_pool{0, 1, 2, 3}, val_pool{4, 5, 6, 7, 8};
  models::DetectorOptions o;
  o.arch = "resnet18";
  o.in_channels = 1;
  o.fpn_channels = 16;
  o.trainable_layers = 1;
  o.anchor_sizes = models::retinanet_anchors(16).sizes;
  o.image_mean = {0.5};
  o.image_std = {0.25};
  o.score_thresh = 0.0;  // keep low-scoring boxes: the comparison then has detections to compare
  o.seed = 2;
  auto model = make_detector("retinanet", o);
  DetTrainConfig c;
  c.epochs = 1;
  c.lr = 0.005;
  c.out_dir = (root / "run").string();
  c.progress = false;
  c.seed = 4;
  c.config = {{"size", "64"}};
  c.class_names = ds.classes().class_names();
  c.group = g;
  DetData train{&ds, train_pool, detection_loader_options(64, 1, 1, true, 0.5, 1.0, 1.0, 0, 7, 0)};
  train.loader.shard_rank = r;
  train.loader.shard_count = W;
  const int64_t val_batch = 2;
  DetData val{&ds, val_pool, detection_loader_options(64, 1, static_cast<int>(val_batch), false, 0, 1, 1, 0, 7, 0)};
  const DetTrainResult dr = DetTrainer(*model, c).fit(train, &val);

  int64_t mine = 0;
  for (int64_t b = r; b * val_batch < 5; b += W) mine += std::min<int64_t>(val_batch, 5 - b * val_batch);
  EXPECT_EQ(dr.val_images_here, mine);

  // The gathered predictions are one process's, image by image; the metrics the run recorded too.
  const std::vector<DetPrediction> whole = predict_detections(*model, val, Device::cpu());
  int64_t here = -1;
  const std::vector<DetPrediction> gathered = predict_detections_sharded(*model, val, Device::cpu(), *g, here);
  EXPECT_EQ(here, mine);
  ASSERT_EQ(gathered.size(), whole.size());
  size_t boxes = 0;
  for (size_t i = 0; i < whole.size(); ++i) {
    EXPECT_EQ(gathered[i].image_id, whole[i].image_id);
    EXPECT_EQ(gathered[i].orig_width, whole[i].orig_width);
    EXPECT_EQ(gathered[i].gt.size(), whole[i].gt.size());
    ASSERT_EQ(gathered[i].dets.size(), whole[i].dets.size()) << "image " << i;
    for (size_t k = 0; k < whole[i].dets.size(); ++k) {
      EXPECT_EQ(gathered[i].dets[k].score, whole[i].dets[k].score);
      EXPECT_EQ(gathered[i].dets[k].x1, whole[i].dets[k].x1);
      EXPECT_EQ(gathered[i].dets[k].label, whole[i].dets[k].label);
    }
    boxes += whole[i].dets.size();
  }
  EXPECT_GT(boxes, 0u) << "nothing detected: the comparison would be empty";
  eval::DetEvalConfig ec;
  ec.class_names = ds.classes().class_names();
  const eval::DetEvalResult vr = eval::evaluate_detections(to_image_evals(whole), ec);
  ASSERT_EQ(dr.history.size(), 1u);
  EXPECT_EQ(dr.history.back().val_map50, std::isnan(vr.map50) ? -1.0 : vr.map50);  // the history's -1: none
  EXPECT_EQ(dr.history.back().val_map_voc50, std::isnan(vr.map_voc50) ? -1.0 : vr.map_voc50);
}

}  // namespace
