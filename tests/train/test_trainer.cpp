// The classifier training loop: a tiny ResNet learns a synthetic task, a resumed run reproduces
// the uninterrupted one bit for bit on the CPU, signals checkpoint and stop, NaN losses stop or
// are skipped, and the run folder holds what trainer.h promises.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "io/atomic_file.h"
#include "io/synth.h"
#include "layers/module.h"
#include "layers/layers.h"
#include "models/resnet.h"
#include "tensor/errors.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "train/checkpoint.h"
#include "train/cls_data.h"
#include "train/cls_source.h"
#include "train/signals.h"
#include "train/trainer.h"

using namespace sx;
using namespace sx::train;
namespace fs = std::filesystem;

namespace {

std::string temp_dir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("sx_test_trainer_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

// M grey 32x32 images of noise; the abnormal half carries a bright 6x6 square at a random place.
struct Synthetic {
  Tensor images, labels;
};
Synthetic make_synthetic(int64_t m, uint64_t seed) {
  Generator g(seed);
  const int64_t S = 32;
  Tensor img = Tensor::empty({m, 1, S, S});
  Tensor lab = Tensor::empty({m});
  float* p = img.data<float>();
  float* l = lab.data<float>();
  for (int64_t i = 0; i < m; ++i) {
    bool abnormal = i % 2 == 1;
    l[i] = abnormal ? 1.f : 0.f;
    float* im = p + i * S * S;
    for (int64_t k = 0; k < S * S; ++k) im[k] = static_cast<float>(0.4 * g.normal());
    if (abnormal) {
      int64_t y0 = g.randint(2, S - 8), x0 = g.randint(2, S - 8);
      for (int64_t y = y0; y < y0 + 6; ++y)
        for (int64_t x = x0; x < x0 + 6; ++x) im[y * S + x] += 1.5f;
    }
  }
  return {img, lab};
}

std::shared_ptr<models::ResNet> tiny_resnet() {
  models::ResNetConfig c;
  c.depth = 18;
  c.in_channels = 1;
  c.num_classes = 1;
  c.seed = 5;
  return models::make_resnet("resnet18", c);
}

ClsTrainConfig base_config(const std::string& dir) {
  ClsTrainConfig c;
  c.epochs = 3;
  c.lr = 0.02;
  c.optimizer = "sgd";
  c.momentum = 0.9;
  c.weight_decay = 1e-4;
  c.schedule = "cosine";
  c.warmup_steps = 2;
  c.bootstrap = 200;
  c.out_dir = dir;
  c.progress = false;
  c.config = {{"arch", "resnet18"}, {"size", "32"}};
  return c;
}

// Stated: after 2 epochs (8 steps of 16 images) on 64 synthetic 32x32 images, a ResNet-18 reaches
// a validation AUROC above 0.8 on 32 held-out images (chance is 0.5).
TEST(Trainer, TinyResNetLearnsAboveChance) {
  std::string dir = temp_dir("learn");
  Synthetic tr = make_synthetic(64, 1), va = make_synthetic(32, 2);
  InMemoryClsSource train(tr.images, tr.labels, 16, true, true, 11);
  InMemoryClsSource val(va.images, va.labels, 16, false, false, 0);
  auto model = tiny_resnet();
  ClsTrainConfig cfg = base_config(dir);
  cfg.epochs = 2;
  ClsTrainer trainer(*model, cfg);
  ClsTrainResult r = trainer.fit(train, &val);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.steps, 8);
  ASSERT_EQ(r.history.size(), 2u);
  std::printf("validation AUROC per epoch: %.3f %.3f\n", r.history[0].val_auroc, r.history[1].val_auroc);
  EXPECT_GT(r.best_auroc, 0.8) << "validation AUROC per epoch: " << r.history[0].val_auroc << ", "
                               << r.history[1].val_auroc;
  // the run folder
  for (const char* f : {"last.safetensors", "best.safetensors", "metrics.json", "history.csv", "train.log", "loss.png"})
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
  std::string mj = io::read_file(dir + "/metrics.json");
  EXPECT_NE(mj.find("\"auroc\""), std::string::npos);
  EXPECT_NE(mj.find("\"history\""), std::string::npos);
  EXPECT_EQ(read_checkpoint_metadata(dir + "/last.safetensors").at("step"), "8");
  EXPECT_EQ(read_checkpoint_metadata(dir + "/best.safetensors").count("config.val_threshold"), 1u);
  // evaluation from the best checkpoint reproduces the best AUROC
  auto fresh = tiny_resnet();
  load_model_weights(dir + "/best.safetensors", *fresh);
  ClsPredictions p = predict_cls(*fresh, val, Device::cpu());
  ClsMetrics m = compute_cls_metrics(p, 100, 0);
  EXPECT_NEAR(m.auroc, r.best_auroc, 1e-12);
  EXPECT_GE(m.at_threshold.sensitivity + m.at_threshold.specificity - 1, 0.0);
  fs::remove_all(dir);
}

// A small CNN with batch norm (running statistics are state too): conv-bn-relu x2, pool, linear.
class SmallCnn : public nn::Module {
 public:
  SmallCnn() : Module("SmallCnn") {
    Generator g(17);
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(1, 8, 3, 2, 1, 1, 1, false, &g));
    bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(8));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(8, 16, 3, 2, 1, 1, 1, false, &g));
    bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(16));
    pool = register_module("pool", std::make_shared<nn::AdaptiveAvgPool2d>(1, 1));
    fc = register_module("fc", std::make_shared<nn::Linear>(16, 1, true, &g));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = relu(bn1->forward(conv1->forward(x)));
    h = relu(bn2->forward(conv2->forward(h)));
    h = pool->forward(h);
    return fc->forward(h.reshape({h.size(0), 16}));
  }
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2;
  std::shared_ptr<nn::AdaptiveAvgPool2d> pool;
  std::shared_ptr<nn::Linear> fc;
};

// An uninterrupted run against one stopped after 4 steps (mid-epoch) and resumed: the losses of
// every step and the final weights and batch-norm statistics are bit-identical on the CPU.
TEST(Trainer, ResumeIsBitIdentical) {
  Synthetic tr = make_synthetic(48, 3), va = make_synthetic(16, 4);
  auto cfg_for = [&](const std::string& dir) {
    ClsTrainConfig c = base_config(dir);
    c.epochs = 2;  // 3 steps per epoch
    c.bootstrap = 0;
    return c;
  };
  std::string da = temp_dir("resume_a"), db = temp_dir("resume_b");
  InMemoryClsSource ta(tr.images, tr.labels, 16, true, true, 21), va_a(va.images, va.labels, 16, false, false, 0);
  auto ma = std::make_shared<SmallCnn>();
  ClsTrainResult ra = ClsTrainer(*ma, cfg_for(da)).fit(ta, &va_a);
  ASSERT_EQ(ra.step_losses.size(), 6u);

  InMemoryClsSource tb(tr.images, tr.labels, 16, true, true, 21), va_b(va.images, va.labels, 16, false, false, 0);
  auto mb = std::make_shared<SmallCnn>();
  ClsTrainConfig c1 = cfg_for(db);
  c1.max_steps = 4;
  ClsTrainResult r1 = ClsTrainer(*mb, c1).fit(tb, &va_b);
  EXPECT_EQ(r1.steps, 4);
  auto mc = std::make_shared<SmallCnn>();  // a new process would start from scratch
  InMemoryClsSource tc(tr.images, tr.labels, 16, true, true, 21), va_c(va.images, va.labels, 16, false, false, 0);
  ClsTrainResult r2 = ClsTrainer(*mc, cfg_for(db)).fit(tc, &va_c, /*resume=*/true);
  EXPECT_EQ(r2.steps, 6);
  std::vector<double> joined = r1.step_losses;
  joined.insert(joined.end(), r2.step_losses.begin(), r2.step_losses.end());
  ASSERT_EQ(joined.size(), ra.step_losses.size());
  for (size_t i = 0; i < joined.size(); ++i) EXPECT_EQ(joined[i], ra.step_losses[i]) << "step " << i;
  auto sa = ma->state_dict(), sc = mc->state_dict();
  for (const auto& [name, t] : sa) EXPECT_EQ(t.to_vector(), sc.at(name).to_vector()) << name;
  // the history was carried over: both epochs, same values
  ASSERT_EQ(r2.history.size(), 2u);
  EXPECT_EQ(r2.history[1].train_loss, ra.history[1].train_loss);
  EXPECT_EQ(r2.history[1].val_auroc, ra.history[1].val_auroc);
  fs::remove_all(da);
  fs::remove_all(db);
}

// A linear probe on the flattened image: a cheap model for the control-flow tests.
class Probe : public nn::Module {
 public:
  Probe() : Module("Probe") {
    Generator g(1);
    w = register_parameter("w", mul(randn({32 * 32, 1}, g), 0.01));
    b = register_parameter("b", Tensor::zeros({1}));
  }
  Tensor forward(const Tensor& x) override { return add(matmul(x.reshape({x.size(0), 32 * 32}), w), b); }
  Tensor w, b;
};

// A source that raises SIGTERM while producing batch `at` of the first epoch.
class SignallingSource : public InMemoryClsSource {
 public:
  using InMemoryClsSource::InMemoryClsSource;
  int64_t at = -1;
  bool next(ClsBatch& b) override {
    if (count_++ == at) ::raise(SIGTERM);
    return InMemoryClsSource::next(b);
  }

 private:
  int64_t count_ = 0;
};

TEST(Trainer, SigtermCheckpointsAndResumes) {
  Synthetic tr = make_synthetic(64, 5);
  std::string da = temp_dir("sig_a"), db = temp_dir("sig_b");
  auto cfg_for = [&](const std::string& dir) {
    ClsTrainConfig c = base_config(dir);
    c.epochs = 2;
    return c;
  };
  Probe pa;
  InMemoryClsSource sa(tr.images, tr.labels, 16, true, false, 3);
  ClsTrainResult ra = ClsTrainer(pa, cfg_for(da)).fit(sa, nullptr);

  Probe pb;
  SignallingSource sb(tr.images, tr.labels, 16, true, false, 3);
  sb.at = 2;
  ClsTrainResult r1 = ClsTrainer(pb, cfg_for(db)).fit(sb, nullptr);
  EXPECT_TRUE(r1.interrupted);
  EXPECT_EQ(r1.exit_code, 143);
  EXPECT_EQ(r1.steps, 3);  // the step in flight completed, then the checkpoint
  clear_stop();
  Probe pc;
  InMemoryClsSource sc(tr.images, tr.labels, 16, true, false, 3);
  ClsTrainResult r2 = ClsTrainer(pc, cfg_for(db)).fit(sc, nullptr, true);
  EXPECT_EQ(r2.exit_code, 0);
  std::vector<double> joined = r1.step_losses;
  joined.insert(joined.end(), r2.step_losses.begin(), r2.step_losses.end());
  EXPECT_EQ(joined, ra.step_losses);
  EXPECT_EQ(pc.w.to_vector(), pa.w.to_vector());
  fs::remove_all(da);
  fs::remove_all(db);
}

TEST(Trainer, NonFiniteLossStopsNamingTheStepOrIsSkipped) {
  Synthetic tr = make_synthetic(48, 6);
  tr.images.data<float>()[0] = NAN;  // sample 0 poisons whichever batch holds it
  std::string dir = temp_dir("nan");
  Probe p;
  InMemoryClsSource s(tr.images, tr.labels, 16, false, false, 0);  // no shuffle: batch 0 of epoch 1
  ClsTrainConfig c = base_config(dir);
  c.epochs = 2;
  try {
    ClsTrainer(p, c).fit(s, nullptr);
    ADD_FAILURE() << "a NaN loss did not stop the run";
  } catch (const NonFiniteLossError& e) {
    EXPECT_NE(std::string(e.what()).find("step 0 (epoch 1, batch 0)"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
  dir = temp_dir("nan_skip");
  Probe q;
  c.out_dir = dir;
  c.nan_policy = "skip";
  ClsTrainResult r = ClsTrainer(q, c).fit(s, nullptr);
  EXPECT_EQ(r.nan_skipped, 2);  // once per epoch
  EXPECT_EQ(r.steps, 4);
  for (double v : q.w.to_vector()) ASSERT_TRUE(std::isfinite(v));
  c.max_nan_skips = 1;
  c.out_dir = temp_dir("nan_skip2");
  Probe q2;
  EXPECT_THROW(ClsTrainer(q2, c).fit(s, nullptr), ValueError);
  fs::remove_all(dir);
  fs::remove_all(c.out_dir);
}

TEST(Trainer, OneClassValidationIsNotFatal) {
  Synthetic tr = make_synthetic(32, 8);
  Tensor vimg = tr.images.narrow(0, 0, 8).contiguous();
  Tensor vlab = Tensor::zeros({8});
  std::string dir = temp_dir("oneclass");
  Probe p;
  InMemoryClsSource s(tr.images, tr.labels, 16, true, false, 0), v(vimg, vlab, 8, false, false, 0);
  ClsTrainConfig c = base_config(dir);
  c.epochs = 1;
  ClsTrainResult r = ClsTrainer(p, c).fit(s, &v);
  EXPECT_EQ(r.steps, 2);
  EXPECT_TRUE(std::isnan(r.history[0].val_auroc));
  EXPECT_TRUE(std::isfinite(r.history[0].val_loss));
  EXPECT_TRUE(fs::exists(dir + "/best.safetensors"));
  EXPECT_NE(io::read_file(dir + "/train.log").find("one class only"), std::string::npos);
  fs::remove_all(dir);
}

TEST(Trainer, InMemorySourceOrderIsAFunctionOfEpoch) {
  Synthetic tr = make_synthetic(40, 7);
  InMemoryClsSource s(tr.images, tr.labels, 16, true, true, 9);
  EXPECT_EQ(s.num_batches(), 3);
  auto o0 = s.epoch_order(0), o1 = s.epoch_order(1);
  EXPECT_NE(o0, o1);
  EXPECT_EQ(o0, s.epoch_order(0));
  // positioning at batch 1 yields the same batch as reading through batch 0
  ClsBatch a, b;
  s.start_epoch(1, 0);
  s.next(a);
  s.next(a);
  s.start_epoch(1, 1);
  s.next(b);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.images.to_vector(), b.images.to_vector());
}

}  // namespace

// The io/ loader behind ClsBatchSource, on a small synthetic release: the split keeps studies
// apart, labels are 0/1, and positioning at batch k of an epoch gives exactly the batches a full
// read gives from k on (what --resume relies on).
namespace {

TEST(ClsData, LoaderSourcePositionsExactlyForResume) {
  std::string dir = temp_dir("loader");
  sx::io::SynthOptions so;
  so.out = dir + "/ds";
  so.images = 24;
  so.size = 96;
  so.seed = 3;
  so.threads = 2;
  so.progress = false;
  sx::io::synthesize_dataset(so);
  ClsDataOptions d;
  d.root = so.out;
  d.size = 64;
  d.batch = 4;
  d.workers = 2;
  d.val_fraction = 0.25;
  d.seed = 5;
  ClsData data = open_cls_data(d, true);
  ASSERT_FALSE(data.split.train.empty());
  ASSERT_FALSE(data.split.val.empty());
  for (int64_t i : data.split.train)
    for (int64_t j : data.split.val) ASSERT_NE(data.dataset->sample(i).study_id, data.dataset->sample(j).study_id);
  LoaderClsSource full(*data.dataset, data.split.train, cls_loader_options(d, true));
  LoaderClsSource part(*data.dataset, data.split.train, cls_loader_options(d, true));
  ASSERT_GE(full.num_batches(), 3);
  std::vector<ClsBatch> all;
  full.start_epoch(2, 0);
  ClsBatch b;
  while (full.next(b)) all.push_back(b);
  ASSERT_EQ(static_cast<int64_t>(all.size()), full.num_batches());
  EXPECT_EQ(all[0].images.shape(), (Shape{4, 1, 64, 64}));
  for (double v : all[0].labels.to_vector()) EXPECT_TRUE(v == 0.0 || v == 1.0);
  part.start_epoch(2, 2);
  for (size_t k = 2; k < all.size(); ++k) {
    ASSERT_TRUE(part.next(b)) << k;
    EXPECT_EQ(b.ids, all[k].ids) << k;
    EXPECT_EQ(b.images.to_vector(), all[k].images.to_vector()) << k;
  }
  EXPECT_FALSE(part.next(b));
  fs::remove_all(dir);
}

}  // namespace
