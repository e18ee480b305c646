// Data-parallel training across processes, through MPI (run by CTest under
// `mpirun --allow-run-as-root --oversubscribe -np 2`, see tests/CMakeLists.txt; it also runs, as one
// rank, without mpirun).
//
//   DistSampler   : across the ranks every image of an epoch exactly once; same seed, same shards.
//   DistBuckets   : a recording process group sees bucket all-reduces launched before backward ends,
//                   in bucket order, every parameter exactly once per step (an unused one included).
//   DistTrain     : 2 ranks x batch B == 1 rank x batch 2B after N steps of the one training loop
//                   (parameters to 1e-5 relative, loss histories), SGD and AdamW; rank 1 starts from
//                   other weights, which the loop's broadcast replaces by rank 0's.
//   DistTrain.RetinaNet...: the same for a small RetinaNet (FrozenBatchNorm: exact) on synthetic
//                   radiographs, through the detector task's sharded loader (repeat-factor sampling
//                   and flips included).
//   DistFailure.* : (their own mpirun each, selected by --gtest_filter) a rank that throws mid-epoch
//                   or hangs: the other stops within the timeout with a DistError naming the rank or
//                   the timeout. Each prints a DIST-FAILURE-OK line that CTest looks for.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

#include "io/dataset.h"
#include "io/safetensors.h"
#include "io/synth.h"
#include "models/anchors.h"
#include "layers/linear.h"
#include "tensor/autograd.h"
#include "tensor/dist/bucketer.h"
#include "tensor/dist/process_group.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "train/loop/loop.h"
#include "train/tasks/det_train.h"

using namespace sx;
using namespace sx::train;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<dist::ProcessGroup> world(double timeout_s = 60) {
  return dist::init_process_group("auto", timeout_s, Device::cpu());
}

std::string temp_dir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("sx_test_dist_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

// ---- the sampler ------------------------------------------------------------------------------
TEST(DistSampler, EveryBatchOnceAcrossTheRanksAndTheSameShardsForTheSameSeed) {
  auto g = world();
  const int W = g->size(), r = g->rank();
  for (int64_t G : {8, 9, 1, 12}) {
    const std::vector<int64_t> mine = io::shard_batches(G, r, W);
    EXPECT_EQ(mine, io::shard_batches(G, r, W));  // deterministic
    Tensor t = Tensor::empty({static_cast<int64_t>(mine.size())}, DType::Int64);
    for (size_t k = 0; k < mine.size(); ++k) t.data<int64_t>()[k] = mine[k];
    Tensor all = g->all_gather(t);  // [W, per rank]: every rank the same number of batches
    std::vector<int> seen(static_cast<size_t>(G), 0);
    const int64_t* p = all.data<int64_t>();
    for (int64_t k = 0; k < all.numel(); ++k) ++seen[static_cast<size_t>(p[k])];
    for (int64_t b = 0; b < G; ++b) {
      if (G % W == 0) EXPECT_EQ(seen[b], 1) << "batch " << b << " of " << G;
      else EXPECT_GE(seen[b], 1) << "batch " << b << " of " << G;  // the last ranks wrap to the first batches
    }
    // Step s of the ranks = the global batches sW .. sW + W - 1 (one process with W x the batch).
    for (size_t s = 0; s < mine.size(); ++s) {
      if (static_cast<int64_t>(s) * W + r < G) {
        EXPECT_EQ(mine[s], static_cast<int64_t>(s) * W + r);
      }
    }
  }
}

// ---- the buckets ------------------------------------------------------------------------------
// One rank that records each launch and whether backward had finished by then.
class RecordingGroup : public dist::ProcessGroup {
 public:
  struct Done : dist::Work {
    void wait() override {}
    bool test() override { return true; }
  };
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string backend() const override { return "recording"; }
  std::shared_ptr<dist::Work> all_reduce_async(Tensor t, dist::ReduceOp) override {
    launches.push_back({t.numel(), backward_done});
    return std::make_shared<Done>();
  }
  void broadcast(const Tensor&, int) override {}
  Tensor all_gather(const Tensor& t) override { return t.unsqueeze(0); }
  void barrier() override {}
  void report_failure(const std::string&) override {}
  std::shared_ptr<dist::ProcessGroup> dup() override { return std::make_shared<RecordingGroup>(); }
  std::vector<std::pair<int64_t, bool>> launches;  // (elements, backward had ended)
  bool backward_done = false;
};

TEST(DistBuckets, LaunchedDuringBackwardInOrderEveryParameterOnceUnusedIncluded) {
  Generator gen(5);
  nn::Linear a(3, 16, true, &gen), b(16, 16, true, &gen), c(16, 1, true, &gen), unused(4, 4, true, &gen);
  std::vector<Tensor> params;
  for (nn::Linear* l : {&a, &unused, &b, &c})
    for (const Tensor& p : l->trainable_parameters()) params.push_back(p);
  RecordingGroup rec;
  dist::Bucketer buckets(rec, params, 64 * 4);  // small buckets: 4 here
  ASSERT_GE(buckets.buckets().size(), 4u);
  std::vector<int> count(params.size(), 0);
  for (const auto& bk : buckets.buckets())
    for (size_t i : bk) ++count[i];
  for (size_t i = 0; i < params.size(); ++i) EXPECT_EQ(count[i], 1) << "parameter " << i << " in one bucket";

  for (int step = 0; step < 2; ++step) {
    rec.launches.clear();
    rec.backward_done = false;
    Tensor x = randn({5, 3}, gen);
    Tensor loss = mean(c.forward(relu(b.forward(relu(a.forward(x))))));
    loss.backward();
    rec.backward_done = true;
    // The bucket of c (the last layer: first to be final) went out before backward ended; the
    // bucket holding `unused` (and those behind it) had to wait for finish().
    ASSERT_FALSE(rec.launches.empty());
    EXPECT_FALSE(rec.launches.front().second);
    const size_t during = rec.launches.size();
    EXPECT_LT(during, buckets.buckets().size());
    buckets.finish();
    EXPECT_EQ(buckets.launched_during_backward(), static_cast<int64_t>(during));
    ASSERT_EQ(rec.launches.size(), buckets.buckets().size()) << "every bucket once per step";
    int64_t elems = 0, expected = 0;
    for (const auto& l : rec.launches) elems += l.first;
    for (const Tensor& p : params) expected += p.numel() + 1;  // values + the had-a-gradient flag
    EXPECT_EQ(elems, expected);
    for (const Tensor& p : unused.trainable_parameters()) EXPECT_FALSE(p.grad().defined()) << "no rank had one";
    for (const Tensor& p : c.trainable_parameters()) EXPECT_TRUE(p.grad().defined());
    for (Tensor& p : params) p.zero_grad();
  }
}

// ---- 2 ranks x B == 1 rank x 2B ---------------------------------------------------------------------
// A small MLP regressing a smooth function of 4 inputs; the epoch's data is a function of (epoch,
// position); the task takes the global batches its shard gives it (io::shard_batches).
class Mlp : public nn::Module {
 public:
  explicit Mlp(Generator* g) {
    l1 = register_module("l1", std::make_shared<nn::Linear>(4, 12, true, g));
    l2 = register_module("l2", std::make_shared<nn::Linear>(12, 12, true, g));
    l3 = register_module("l3", std::make_shared<nn::Linear>(12, 1, true, g));
  }
  Tensor forward(const Tensor& x) override { return l3->forward(tanh(l2->forward(tanh(l1->forward(x))))); }
  std::shared_ptr<nn::Linear> l1, l2, l3;
};

class ShardTask : public Task {
 public:
  static constexpr int64_t kPoints = 48;  // per epoch
  ShardTask(int64_t batch, int rank, int world, int64_t throw_at = -1, int64_t hang_at = -1, int64_t signal_at = -1)
      : gen_(11), model_(&gen_), batch_(batch), rank_(rank), world_(world), throw_at_(throw_at), hang_at_(hang_at),
        signal_at_(signal_at) {}
  nn::Module& model() override { return model_; }
  TaskInfo info() const override {
    TaskInfo i;
    i.metric_name = "-mse";
    i.metric_column = "val_neg_mse";
    i.val_columns = {"val_neg_mse"};
    return i;
  }
  Metadata checkpoint_metadata() const override { return {{"task", "shard"}}; }
  int64_t steps_per_epoch() override { return static_cast<int64_t>(io::shard_batches(kPoints / batch_, rank_, world_).size()); }
  int64_t start_epoch(int64_t epoch, int64_t first_batch) override {
    epoch_ = epoch;
    ids_ = io::shard_batches(kPoints / batch_, rank_, world_);
    k_ = first_batch;
    return static_cast<int64_t>(ids_.size()) - first_batch;
  }
  bool next_batch() override {
    if (k_ >= static_cast<int64_t>(ids_.size())) return false;
    const int64_t g = ids_[static_cast<size_t>(k_++)];
    x_ = Tensor::empty({batch_, 4});
    y_ = Tensor::empty({batch_, 1});
    for (int64_t i = 0; i < batch_; ++i) {
      const double p = static_cast<double>(g * batch_ + i) + 100.0 * epoch_;
      double s = 0;
      for (int j = 0; j < 4; ++j) {
        const double v = std::sin(0.7 * p + 1.3 * j + 0.1 * p * j);
        x_.data<float>()[i * 4 + j] = static_cast<float>(v);
        s += (j + 1) * v;
      }
      y_.data<float>()[i] = static_cast<float>(std::sin(s));
    }
    return true;
  }
  StepLoss step() override {
    ++steps_;
    if (steps_ == throw_at_) SX_THROW(ValueError, "injected failure at step ", steps_);
    if (steps_ == hang_at_) std::this_thread::sleep_for(std::chrono::seconds(4));
    if (steps_ == signal_at_) std::raise(SIGINT);  // the loop's handler records it
    Tensor err = sub(model_.forward(x_), y_);
    return {mean(mul(err, err)), {}, batch_};
  }
  void start_bn(int64_t) override {}
  bool bn_forward() override { return false; }
  bool can_validate() const override { return false; }
  Validation validate() override { return {}; }
  io::Json best_json(const TrainState&) const override { return io::Json::object(); }
  Mlp& mlp() { return model_; }

 private:
  Generator gen_;
  Mlp model_;
  int64_t batch_;
  int rank_, world_;
  int64_t throw_at_, hang_at_, signal_at_, steps_ = 0, epoch_ = 0, k_ = 0;
  std::vector<int64_t> ids_;
  Tensor x_, y_;
};

LoopConfig shard_config(const std::string& out, const std::string& optimizer) {
  LoopConfig c;
  c.who = "shard";
  c.epochs = 2;
  c.lr = optimizer == "sgd" ? 0.05 : 0.01;
  c.optimizer = optimizer;
  c.momentum = 0.9;
  c.weight_decay = 1e-3;
  c.schedule = "cosine";
  c.out_dir = out;
  c.progress = false;
  c.dist_bucket_bytes = 600;  // several buckets
  return c;
}

void expect_same_training(const std::string& optimizer, int zero = 0) {
  auto g = world();
  const int W = g->size();
  const int64_t B = 4;
  // This run: W ranks x B (rank 1 starts from other weights: the broadcast must replace them).
  ShardTask dist_task(B, g->rank(), W);
  if (g->rank() != 0) {
    NoGradGuard ng;
    for (Tensor& p : dist_task.model().trainable_parameters()) p.copy_(add(p, 0.25));
  }
  LoopConfig dc = shard_config(temp_dir("dist_" + optimizer + std::to_string(zero) + std::to_string(g->rank())), optimizer);
  dc.group = g;
  dc.zero = zero;
  LoopResult dr = train_loop(dist_task, dc);
  // The reference, in this process alone: one rank x W*B.
  ShardTask ref_task(B * W, 0, 1);
  const LoopConfig rc = shard_config(temp_dir("ref_" + optimizer + std::to_string(zero)), optimizer);
  LoopResult rr = train_loop(ref_task, rc);

  ASSERT_EQ(dr.steps, rr.steps);
  ASSERT_EQ(dr.step_losses.size(), rr.step_losses.size());
  for (size_t s = 0; s < rr.step_losses.size(); ++s)
    EXPECT_NEAR(dr.step_losses[s], rr.step_losses[s], 1e-5 * std::abs(rr.step_losses[s]) + 1e-7) << "step " << s;
  auto dp = dist_task.model().trainable_parameters(), rp = ref_task.model().trainable_parameters();
  ASSERT_EQ(dp.size(), rp.size());
  for (size_t i = 0; i < dp.size(); ++i) {
    const double diff = max(abs(sub(dp[i], rp[i]))).item(), scale = max(abs(rp[i])).item();
    EXPECT_LE(diff, 1e-5 * scale) << optimizer << " parameter " << i;
    // And every rank holds the same weights.
    Tensor all = g->all_gather(dp[i]);
    for (int r = 1; r < W; ++r) EXPECT_EQ(max(abs(sub(all.select(0, r), all.select(0, 0)))).item(), 0.0);
  }
  EXPECT_EQ(fs::exists(dc.out_dir + "/last.safetensors"), g->rank() == 0) << "only rank 0 writes";
  if (zero == 1 && W > 1) {
    // Each rank kept a shard of the state (together the whole), yet the checkpoint holds all of it,
    // equal to the single run's.
    EXPECT_LT(dr.optimizer_state_numel, rr.optimizer_state_numel);
    Tensor n = Tensor::full({1}, static_cast<double>(dr.optimizer_state_numel), DType::Int64);
    g->all_reduce(n, dist::ReduceOp::Sum);
    EXPECT_EQ(static_cast<int64_t>(n.to_vector()[0]), rr.optimizer_state_numel);
    if (g->rank() == 0) {
      auto mine = safetensors::load(dc.out_dir + "/last.safetensors"), ref = safetensors::load(rc.out_dir + "/last.safetensors");
      int64_t compared = 0;
      for (const auto& [name, t] : ref.tensors) {
        if (name.rfind("optim.", 0) != 0) continue;
        auto it = std::find_if(mine.tensors.begin(), mine.tensors.end(), [&](const auto& e) { return e.first == name; });
        ASSERT_TRUE(it != mine.tensors.end()) << name << " missing from the ZeRO-1 checkpoint";
        const double diff = max(abs(sub(it->second.to(DType::Float64), t.to(DType::Float64)))).item();
        EXPECT_LE(diff, 1e-5 * (max(abs(t.to(DType::Float64))).item() + 1e-6)) << name;
        ++compared;
      }
      EXPECT_GT(compared, 0);
    }
  }
}

TEST(DistTrain, TwoRanksOfBatchBEqualOneRankOfBatch2B_SGD) { expect_same_training("sgd"); }
TEST(DistTrain, TwoRanksOfBatchBEqualOneRankOfBatch2B_AdamW) { expect_same_training("adamw"); }
TEST(DistTrain, Zero1ShardsTheStateAndStillTrainsTheSame_SGD) { expect_same_training("sgd", 1); }
TEST(DistTrain, Zero1ShardsTheStateAndStillTrainsTheSame_AdamW) { expect_same_training("adamw", 1); }

TEST(DistTrain, RetinaNetTwoRanksOfBatch1EqualOneRankOfBatch2) {
  auto g = world();
  const int W = g->size();
  const fs::path root = temp_dir("retina_" + std::to_string(g->rank()));
  io::SynthOptions so;
  so.out = (root / "data").string();
  so.images = 8;
  so.size = 128;
  so.seed = 5;
  so.threads = 1;
  so.progress = false;
  so.normal_fraction = 0.25;
  io::synthesize_dataset(so);  // the same bytes on every rank
  io::DatasetOptions dopt;
  dopt.split = "train";
  io::Dataset ds = io::Dataset::open(so.out, dopt);
  std::vector<int64_t> pool;
  for (int64_t i = 0; i < ds.size(); ++i) pool.push_back(i);
  models::DetectorOptions o;
  o.arch = "resnet18";
  o.in_channels = 1;
  o.fpn_channels = 16;
  o.trainable_layers = 1;
  o.anchor_sizes = models::retinanet_anchors(16).sizes;
  o.image_mean = {0.5};
  o.image_std = {0.25};
  o.seed = 2;
  auto run = [&](int per_rank_batch, std::shared_ptr<dist::ProcessGroup> group, const std::string& name) {
    auto m = make_detector("retinanet", o);
    DetTrainConfig c;
    c.epochs = 2;
    c.lr = 0.005;
    c.warmup_steps = 1;
    c.max_steps = 3;
    c.out_dir = (root / name).string();
    c.progress = false;
    c.seed = 4;
    c.config = {{"size", "64"}};
    c.group = group;
    // Longest side 64, no scale jitter (the batch's padded size then does not depend on the split),
    // flips and repeat-factor sampling on.
    DetData data{&ds, pool, detection_loader_options(64, 1, per_rank_batch, true, 0.5, 1.0, 1.0, 0.5, 7, 0)};
    if (group) {
      data.loader.shard_rank = group->rank();
      data.loader.shard_count = group->size();
    }
    DetTrainResult r = DetTrainer(*m, c).fit(data, nullptr, false);
    return std::make_pair(m, r);
  };
  auto [dm, dr] = run(1, g, "dist");
  auto [rm, rr] = run(W, nullptr, "ref");
  ASSERT_EQ(dr.steps, 3);
  ASSERT_EQ(dr.step_losses.size(), rr.step_losses.size());
  for (size_t s = 0; s < rr.step_losses.size(); ++s)
    EXPECT_NEAR(dr.step_losses[s], rr.step_losses[s], 1e-5 * std::abs(rr.step_losses[s])) << "step " << s;
  auto dp = dm->trainable_parameters(), rp = rm->trainable_parameters();
  ASSERT_EQ(dp.size(), rp.size());
  for (size_t i = 0; i < dp.size(); ++i) {
    const double diff = max(abs(sub(dp[i], rp[i]))).item(), scale = max(abs(rp[i])).item();
    EXPECT_LE(diff, 1e-5 * scale + 1e-8) << "parameter " << i;
  }
}

// SIGINT on rank 1 only: both ranks stop after the same step, rank 0 writes the one checkpoint.
TEST(DistTrain, SigintOnOneRankStopsAllWithOneCheckpoint) {
  auto g = world();
  ShardTask task(4, g->rank(), g->size(), -1, -1, g->rank() == g->size() - 1 ? 3 : -1);
  LoopConfig c = shard_config(temp_dir("sigint" + std::to_string(g->rank())), "sgd");
  c.group = g;
  LoopResult r = train_loop(task, c);
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(r.exit_code, 130);
  EXPECT_EQ(r.steps, 3);
  EXPECT_EQ(fs::exists(c.out_dir + "/last.safetensors"), g->rank() == 0);
}

// ---- faults (each in its own mpirun: the job ends with them) -------------------------------------
TEST(DistFailure, ARankThatThrowsIsNamedByTheOthers) {
  auto g = world(5.0);
  if (g->size() < 2) GTEST_SKIP() << "needs 2 ranks";
  ShardTask task(4, g->rank(), g->size(), g->rank() == 1 ? 3 : -1);
  const auto t0 = std::chrono::steady_clock::now();
  LoopConfig c = shard_config(temp_dir("fail" + std::to_string(g->rank())), "sgd");
  c.group = g;
  try {
    train_loop(task, c);
    FAIL() << "rank " << g->rank() << " should have stopped";
  } catch (const DistError& e) {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(g->rank(), 0);
    EXPECT_NE(std::string(e.what()).find("rank 1 failed: injected failure at step 3"), std::string::npos) << e.what();
    EXPECT_LT(secs, 5.0);
    if (!HasFailure()) std::printf("DIST-FAILURE-OK rank 0 stopped after %.2f s: %s\n", secs, e.what());
  } catch (const ValueError& e) {
    EXPECT_EQ(g->rank(), 1);
    EXPECT_NE(std::string(e.what()).find("injected failure"), std::string::npos);
  }
  std::fflush(stdout);
}

TEST(DistFailure, ARankThatHangsTimesOut) {
  auto g = world(1.0);
  if (g->size() < 2) GTEST_SKIP() << "needs 2 ranks";
  ShardTask task(4, g->rank(), g->size(), -1, g->rank() == 1 ? 2 : -1);
  LoopConfig c = shard_config(temp_dir("hang" + std::to_string(g->rank())), "sgd");
  c.group = g;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    train_loop(task, c);
    FAIL() << "rank " << g->rank() << " should have stopped";
  } catch (const DistError& e) {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_NE(std::string(e.what()).find("within 1 s"), std::string::npos) << e.what();
    if (g->rank() == 0) {
      EXPECT_LT(secs, 3.0);
      if (!HasFailure()) std::printf("DIST-FAILURE-OK rank 0 stopped after %.2f s: %s\n", secs, e.what());
    }
  }
  std::fflush(stdout);
}

}  // namespace
