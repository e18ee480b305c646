// The one training loop (train/loop/loop.h) with a task written here: how a new model plugs in. A
// linear model learns y = 2x - 1 with two loss terms; the run records each term, validates, keeps
// the best checkpoint, and a resumed run reads the history of earlier versions' files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "layers/linear.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "train/loop/loop.h"

using namespace sx;
using namespace sx::train;
namespace fs = std::filesystem;

namespace {

std::string temp_dir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("sx_test_loop_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// 4 batches of 8 points x in [-1, 1], target 2x - 1; the order is a function of (epoch, batch).
class LineTask : public Task {
 public:
  LineTask() : model_(1, 1, true, &gen_) {}
  nn::Module& model() override { return model_; }
  TaskInfo info() const override {
    TaskInfo i;
    i.metric_name = "-mse";
    i.metric_column = "val_neg_mse";
    i.val_columns = {"val_neg_mse"};
    return i;
  }
  Metadata checkpoint_metadata() const override { return {{"task", "line"}}; }
  int64_t steps_per_epoch() override { return 4; }
  int64_t start_epoch(int64_t epoch, int64_t first_batch) override {
    epoch_ = epoch;
    batch_ = first_batch;
    return 4 - first_batch;
  }
  bool next_batch() override {
    if (batch_ >= 4) return false;
    x_ = Tensor::empty({8, 1});
    float* p = x_.data<float>();
    for (int i = 0; i < 8; ++i) p[i] = static_cast<float>(std::sin(1.0 + epoch_ * 31.0 + batch_ * 7.0 + i * 1.3));
    ++batch_;
    return true;
  }
  StepLoss step() override {
    Tensor err = sub(model_.forward(x_), add(mul(x_, 2.0), -1.0));
    Tensor mse = mean(mul(err, err));
    Tensor l1 = mul(mean(abs(err)), 0.1);
    return {add(mse, l1), {{"mse", mse}, {"l1", l1}}, 8};
  }
  void start_bn(int64_t) override {}
  bool bn_forward() override { return false; }
  bool can_validate() const override { return true; }
  Validation validate() override {
    Tensor x = Tensor::empty({5, 1});
    for (int i = 0; i < 5; ++i) x.data<float>()[i] = -1.0f + 0.5f * i;
    Tensor err = sub(model_.forward(x), add(mul(x, 2.0), -1.0));
    const double neg_mse = -mean(mul(err, err)).item();
    Validation v;
    v.scored = true;
    v.metric = neg_mse;
    v.values["val_neg_mse"] = neg_mse;
    v.json = {{"neg_mse", neg_mse}};
    v.summary = " val_neg_mse " + std::to_string(neg_mse);
    return v;
  }
  io::Json best_json(const TrainState& st) const override { return {{"val_neg_mse", st.best_metric}}; }

 private:
  Generator gen_{3};
  nn::Linear model_;
  int64_t epoch_ = 0, batch_ = 0;
  Tensor x_;
};

LoopConfig line_config(const std::string& out) {
  LoopConfig c;
  c.who = "line";
  c.epochs = 6;
  c.lr = 0.1;
  c.momentum = 0.5;
  c.schedule = "constant";
  c.out_dir = out;
  c.progress = false;
  return c;
}

TEST(TrainLoop, ATaskWrittenOutsideTheLibraryTrainsAndRecordsItsTerms) {
  const std::string out = temp_dir("terms");
  LineTask task;
  LoopResult r = train_loop(task, line_config(out));
  ASSERT_EQ(r.steps, 24);
  ASSERT_EQ(r.history.size(), 6u);
  EXPECT_LT(r.history.back().train_loss, 0.2 * r.history.front().train_loss);
  // Each term's epoch mean is recorded, and they add up to the training loss.
  for (const auto& e : r.history) {
    ASSERT_EQ(e.terms.size(), 2u);
    EXPECT_NEAR(e.terms.at("mse") + e.terms.at("l1"), e.train_loss, 1e-6 * (1 + e.train_loss));
  }
  // Validation every epoch; the best is the highest metric, and it is in metrics.json.
  double best = -1e300;
  for (const auto& e : r.history) best = std::max(best, e.get("val_neg_mse"));
  EXPECT_EQ(r.best_metric, best);
  const std::string csv = read_text(out + "/history.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "epoch,step,train_loss,l1,mse,lr,seconds,val_neg_mse");
  auto js = nlohmann::json::parse(read_text(out + "/metrics.json"));
  EXPECT_EQ(js["config"]["task"], "line");
  EXPECT_EQ(js["history"].size(), 6u);
  EXPECT_TRUE(js["history"][0].contains("mse"));
  EXPECT_TRUE(js["val"].contains("neg_mse"));
  for (const char* f : {"last.safetensors", "best.safetensors", "train.log", "loss.png"})
    EXPECT_TRUE(fs::exists(fs::path(out) / f)) << f;
}

TEST(TrainLoop, ResumeIsExactAndReadsHistoryFilesOfEarlierVersions) {
  const std::string a = temp_dir("a"), b = temp_dir("b");
  LineTask ta;
  LoopResult ra = train_loop(ta, line_config(a));

  LoopConfig c1 = line_config(b);
  c1.max_steps = 10;  // stops in epoch 3 (schedule unchanged: it spans epochs x steps_per_epoch)
  LineTask tb;
  ASSERT_EQ(train_loop(tb, c1).steps, 10);
  // The classifier's history.csv before the one loop: other column order, "nan" cells. Its two
  // epochs are read by the header's names.
  io::write_file_atomic(b + "/history.csv",
                        "epoch,step,train_loss,val_loss,val_neg_mse,lr,seconds\n"
                        "1,4,0.5,nan,-0.25,0.1,1.5\n"
                        "2,8,0.25,nan,-0.125,0.1,1.5\n");
  LineTask tb2;
  LoopResult rb = train_loop(tb2, line_config(b), true);
  ASSERT_EQ(rb.steps, 24);
  ASSERT_EQ(rb.history.size(), 6u);
  EXPECT_EQ(rb.history[1].train_loss, 0.25);
  EXPECT_EQ(rb.history[1].get("val_neg_mse"), -0.125);
  EXPECT_TRUE(rb.history[1].terms.count("val_loss"));  // an unknown column is kept as a term
  // The same steps, to the last bit, as the uninterrupted run.
  ASSERT_EQ(rb.step_losses.size(), 14u);
  for (size_t k = 0; k < 14; ++k) EXPECT_EQ(rb.step_losses[k], ra.step_losses[10 + k]) << k;
  EXPECT_EQ(rb.history.back().get("val_neg_mse"), ra.history.back().get("val_neg_mse"));

  // A history line that does not match its header is an error naming the file and line.
  io::write_file_atomic(b + "/history.csv", "epoch,step,train_loss,lr,seconds,val_neg_mse\n1,4,0.5\n");
  LineTask tb3;
  try {
    train_loop(tb3, line_config(b), true);
    FAIL() << "expected an IOError";
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("history.csv:2"), std::string::npos) << e.what();
  }
}

TEST(TrainLoop, NonFiniteLossStopsNamingTheStep) {
  struct NanTask : LineTask {
    StepLoss step() override {
      StepLoss s = LineTask::step();
      if (++n == 3) s.total = mul(s.total, NAN);
      return s;
    }
    int n = 0;
  } task;
  try {
    train_loop(task, line_config(temp_dir("nan")));
    FAIL() << "expected a NonFiniteLossError";
  } catch (const NonFiniteLossError& e) {
    EXPECT_NE(std::string(e.what()).find("step 2 (epoch 1, batch 2)"), std::string::npos) << e.what();
  }
  LoopConfig c = line_config(temp_dir("nan_skip"));
  c.nan_policy = "skip";
  NanTask t2;
  LoopResult r = train_loop(t2, c);
  EXPECT_EQ(r.nan_skipped, 1);
  EXPECT_EQ(r.steps, 23);
  LoopConfig bad = line_config("");
  EXPECT_THROW(check_loop_config(bad), ValueError);
}

}  // namespace

// The cost probe (train/loop/cost_probe.h): the first steps are the run's own, timed; a dry run
// stops after them and writes nothing; a probed run trains exactly like one without the probe.
TEST(TrainLoop, CostProbeTimesTheFirstStepsAndADryRunWritesNothing) {
  const std::string out = temp_dir("probe");
  fs::remove_all(out);
  LineTask task;
  LoopConfig c = line_config(out);
  c.probe_steps = 3;
  c.dry_run = true;
  LoopResult r = train_loop(task, c);
  EXPECT_TRUE(r.dry_run);
  ASSERT_TRUE(r.probed);
  EXPECT_EQ(r.steps, 3);
  EXPECT_FALSE(fs::exists(out)) << "a dry run writes nothing";
  const CostEstimate& e = r.cost;
  EXPECT_EQ(e.probe_steps, 3);
  EXPECT_EQ(e.batch, 8);
  EXPECT_EQ(e.steps_per_epoch, 4);
  EXPECT_EQ(e.steps_left, 6 * 4 - 3);
  EXPECT_GT(e.seconds_per_step, 0);
  EXPECT_DOUBLE_EQ(e.epoch_seconds, 4 * e.seconds_per_step);
  EXPECT_DOUBLE_EQ(e.run_seconds, 21 * e.seconds_per_step);
  EXPECT_DOUBLE_EQ(e.images_per_second, 8 / e.seconds_per_step);
  EXPECT_GT(e.peak_bytes, 0);
  EXPECT_GT(e.device_bytes, e.peak_bytes);
  EXPECT_EQ(e.memory_source, "process peak RSS");
  // Linear(1, 1): 2 float weights; gradients and SGD's momentum buffer add one copy each.
  EXPECT_EQ(e.fixed_bytes, 8 + 8 * 2);

  const std::string a = temp_dir("probe_a"), b = temp_dir("probe_b");
  LineTask ta, tb;
  LoopConfig ca = line_config(a), cb = line_config(b);
  cb.probe_steps = 5;
  LoopResult ra = train_loop(ta, ca), rb = train_loop(tb, cb);
  EXPECT_FALSE(ra.probed);
  EXPECT_TRUE(rb.probed);
  EXPECT_EQ(ra.step_losses, rb.step_losses);
  EXPECT_NE(read_text(b + "/train.log").find("cost probe (5 steps, batch 8)"), std::string::npos);
  LoopConfig bad = line_config(a);
  bad.dry_run = true;
  EXPECT_THROW(train_loop(ta, bad), ValueError);
}

TEST(CostProbe, EstimatesFromTheStepsAfterTheFirstAndNamesABatchThatFits) {
  CostEstimate c = estimate_cost({9.0, 2.0, 4.0}, 4, 100, 1000);
  EXPECT_DOUBLE_EQ(c.seconds_per_step, 3.0);  // the first (warm-up) step is left out
  EXPECT_DOUBLE_EQ(c.images_per_second, 4.0 / 3.0);
  EXPECT_DOUBLE_EQ(c.epoch_seconds, 300.0);
  EXPECT_DOUBLE_EQ(c.run_seconds, 3000.0);
  EXPECT_DOUBLE_EQ(estimate_cost({5.0}, 1, 1, 1).seconds_per_step, 5.0);
  EXPECT_THROW(estimate_cost({}, 1, 1, 1), ValueError);

  EXPECT_EQ(optimizer_state_slots("adamw", 0.9), 2);
  EXPECT_EQ(optimizer_state_slots("sgd", 0.9), 1);
  EXPECT_EQ(optimizer_state_slots("sgd", 0.0), 0);
  EXPECT_EQ(fixed_training_bytes(100, 60, 2), 100 + 60 * 3);

  const int64_t GB = 1000000000;
  // 2 GB fixed, 8 GB for 4 images = 2 GB per image, x 1.2^2 at the largest scale = 2.88 GB;
  // 95% of 16 GB leaves 13.2 GB: 4 images fit, 5 do not.
  EXPECT_EQ(largest_fitting_batch(10 * GB, 2 * GB, 4, 1.2, 16 * GB), 4);
  EXPECT_EQ(largest_fitting_batch(10 * GB, 2 * GB, 4, 1.0, 80 * GB), 37);  // (76 - 2) / 2
  EXPECT_EQ(largest_fitting_batch(10 * GB, 2 * GB, 4, 1.0, 4 * GB), 0);    // not even one image
  EXPECT_THROW(largest_fitting_batch(1 * GB, 2 * GB, 4, 1.0, 4 * GB), ValueError);

  EXPECT_EQ(human_seconds(42), "42.0 s");
  EXPECT_EQ(human_seconds(90), "1.5 min");
  EXPECT_EQ(human_seconds(7200), "2.0 h");
  EXPECT_EQ(human_seconds(86400 * 3), "3.0 days");
  EXPECT_EQ(human_bytes(1500000000), "1.5 GB");
  EXPECT_EQ(human_bytes(2500000), "2.5 MB");
}
