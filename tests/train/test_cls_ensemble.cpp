// Classifier ensembles (the VinDr-SpineXR authors' rule): the arithmetic of ensemble_cls_predictions
// (mean of the calibrated logits, then the sigmoid), its checks, the A,B,C checkpoint lists, and
// classify_images over a ResNet-18 and a DenseNet-121 checkpoint: the ensemble equals the mean of
// the two members run alone.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numeric>

#include "io/dataset.h"
#include "io/synth.h"
#include "tensor/errors.h"
#include "train/app/predict.h"
#include "train/loop/checkpoint.h"
#include "train/tasks/cls_data.h"
#include "train/tasks/cls_train.h"

namespace sx::train {
namespace {

namespace fs = std::filesystem;

ClsPredictions member(std::vector<double> logits, double temperature) {
  ClsPredictions p;
  p.temperature = temperature;
  for (size_t i = 0; i < logits.size(); ++i) {
    p.ids.push_back("im" + std::to_string(i));
    p.labels.push_back(static_cast<int>(i % 2));
    p.logits.push_back(logits[i]);
    p.probs.push_back(1.0 / (1.0 + std::exp(-logits[i] / temperature)));
  }
  return p;
}

TEST(ClsEnsemble, MeanOfCalibratedLogitsThenSigmoid) {
  ClsPredictions a = member({2.0, -1.0, 0.5}, 1.0), b = member({4.0, 3.0, -3.0}, 2.0), c = member({-1, -1, 1}, 1.0);
  ClsPredictions e = ensemble_cls_predictions({a, b, c});
  ASSERT_EQ(e.probs.size(), 3u);
  // image 0: (2 + 4/2 - 1) / 3 = 1; image 1: (-1 + 1.5 - 1) / 3 = -1/6; image 2: (0.5 - 1.5 + 1) / 3 = 0
  const double z[] = {1.0, -1.0 / 6.0, 0.0};
  double loss = 0;
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(e.logits[i], z[i], 1e-12);
    EXPECT_NEAR(e.probs[i], 1.0 / (1.0 + std::exp(-z[i])), 1e-12);
    // and that is sigmoid(mean_i logit(p_i)) of the members' calibrated probabilities
    double m = 0;
    for (const auto* p : {&a, &b, &c}) m += std::log(p->probs[i] / (1 - p->probs[i]));
    EXPECT_NEAR(e.probs[i], 1.0 / (1.0 + std::exp(-m / 3)), 1e-12);
    const double pr = e.probs[i];
    loss -= e.labels[i] ? std::log(pr) : std::log(1 - pr);
  }
  EXPECT_NEAR(e.mean_loss, loss / 3, 1e-12);
  EXPECT_EQ(e.ids, a.ids);
  EXPECT_EQ(e.labels, a.labels);
  EXPECT_EQ(e.temperature, 1.0);
  // Not the mean of the probabilities: (sigmoid(2) + sigmoid(2) + sigmoid(-1)) / 3 != sigmoid(1)
  EXPECT_GT(std::fabs(e.probs[0] - (a.probs[0] + b.probs[0] + c.probs[0]) / 3), 0.01);
  // One member: itself.
  EXPECT_EQ(ensemble_cls_predictions({b}).probs, b.probs);
}

TEST(ClsEnsemble, MembersMustCoverTheSameImages) {
  ClsPredictions a = member({1, 2, 3}, 1), b = member({1, 2}, 1), c = member({1, 2, 3}, 1);
  EXPECT_THROW(ensemble_cls_predictions({a, b}), ValueError);
  c.ids[1] = "other";
  EXPECT_THROW(ensemble_cls_predictions({a, c}), ValueError);
  EXPECT_THROW(ensemble_cls_predictions({}), ValueError);
}

TEST(ClsEnsemble, CheckpointListsNameTheMissingFile) {
  const fs::path root = fs::temp_directory_path() / ("sx_test_ens_list_" + std::to_string(::getpid()));
  fs::create_directories(root);
  const std::string a = (root / "a.safetensors").string(), b = (root / "b.safetensors").string();
  auto cls = make_cls_model("resnet18", 1, 1);
  save_checkpoint(a, *cls, nullptr, nullptr, TrainState{}, {{"arch", "resnet18"}, {"size", "64"}, {"channels", "1"}});
  fs::copy_file(a, b);
  EXPECT_EQ(parse_cls_checkpoints(a), (std::vector<std::string>{a}));
  EXPECT_EQ(parse_cls_checkpoints(a + "," + b + "," + a), (std::vector<std::string>{a, b, a}));
  const std::string missing = (root / "nope.safetensors").string();
  try {
    parse_cls_checkpoints(a + "," + missing);
    ADD_FAILURE() << "expected an IOError";
  } catch (const IOError& e) {
    EXPECT_EQ(std::string(e.what()), "no classifier checkpoint at '" + missing + "'");
  }
  EXPECT_THROW(parse_cls_checkpoints(a + ",," + b), ValueError);
  EXPECT_THROW(parse_cls_checkpoints(""), ValueError);
  EXPECT_THROW(parse_cls_checkpoints(a + ","), ValueError);
  EXPECT_THROW(make_cls_model("densenet100", 1, 0), ValueError);
  fs::remove_all(root);
}

TEST(ClsEnsemble, ClassifyImagesAveragesAResNetAndADenseNet) {
  const fs::path root = fs::temp_directory_path() / ("sx_test_ens_" + std::to_string(::getpid()));
  fs::remove_all(root);
  io::SynthOptions so;
  so.out = (root / "data").string();
  so.images = 4;
  so.size = 96;
  so.seed = 5;
  so.threads = 1;
  so.progress = false;
  io::synthesize_dataset(so);
  io::DatasetOptions dopt;
  dopt.split = "train";
  io::Dataset ds = io::Dataset::open(so.out, dopt);
  ASSERT_GT(ds.size(), 0);
  std::vector<int64_t> pool(ds.size());
  std::iota(pool.begin(), pool.end(), 0);

  const std::string r = (root / "r18.safetensors").string(), d = (root / "d121.safetensors").string();
  auto r18 = make_cls_model("resnet18", 1, 1);
  save_checkpoint(r, *r18, nullptr, nullptr, TrainState{}, {{"arch", "resnet18"}, {"size", "64"}, {"channels", "1"}});
  auto d121 = make_cls_model("densenet121", 3, 2);
  // a calibrated member at another size and channel count
  save_checkpoint(d, *d121, nullptr, nullptr, TrainState{},
                  {{"arch", "densenet121"}, {"size", "96"}, {"channels", "3"}, {"temperature", "2.5"}});
  PipelineConfig pc;
  pc.workers = 0;
  pc.progress = false;
  pc.cls_ckpt = r;
  ClsPredictions pr = classify_images(ds, pool, pc);
  pc.cls_ckpt = d;
  ClsPredictions pd = classify_images(ds, pool, pc);
  EXPECT_EQ(pd.temperature, 2.5);
  pc.cls_ckpt = r + "," + d;
  std::vector<ClsPredictions> members;
  ClsPredictions pe = classify_images(ds, pool, pc, &members);
  ASSERT_EQ(members.size(), 2u);
  ASSERT_EQ(pe.probs.size(), pool.size());
  for (size_t i = 0; i < pool.size(); ++i) {
    EXPECT_DOUBLE_EQ(members[0].probs[i], pr.probs[i]);
    EXPECT_DOUBLE_EQ(members[1].probs[i], pd.probs[i]);
    const double z = 0.5 * (pr.logits[i] + pd.logits[i] / 2.5);
    EXPECT_NEAR(pe.probs[i], 1.0 / (1.0 + std::exp(-z)), 1e-12);
  }
  fs::remove_all(root);
}

}  // namespace
}  // namespace sx::train
