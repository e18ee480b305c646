// The training presets (train/app/cli/presets.h): `--preset vindr` against the authors' published
// configuration (tests/data/train/vindr_published_configs.txt, transcribed from their repository), the
// command line winning over a preset, and the iteration budget turned into epochs.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tensor/errors.h"
#include "train/app/cli/cli.h"
#include "train/app/cli/presets.h"

using namespace sx;
using namespace sx::cli;

namespace {

// command -> "file key" -> value
std::map<std::string, std::map<std::string, std::string>> read_published() {
  std::ifstream f(std::string(SX_TEST_DATA_DIR) + "/train/vindr_published_configs.txt");
  EXPECT_TRUE(f.good());
  std::map<std::string, std::map<std::string, std::string>> out;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream is(line);
    std::string cmd, file, key, value;
    is >> cmd >> file >> key >> value;
    out[cmd][key] = value;
  }
  return out;
}

std::map<std::string, std::string> preset_map(const Preset& p) {
  std::map<std::string, std::string> m;
  for (const auto& v : p.values) m[v.option] = v.value;
  return m;
}

// "5000,7500" of 10000 -> "0.5,0.75": the milestones as fractions of the run.
std::string fractions(const std::string& steps, double max_iter) {
  std::string out, tok;
  std::istringstream is(steps);
  while (std::getline(is, tok, ',')) {
    std::ostringstream os;
    os << std::stod(tok) / max_iter;
    out += (out.empty() ? "" : ",") + os.str();
  }
  return out;
}

double num(const std::string& s) { return std::stod(s); }

}  // namespace

TEST(Presets, VindrClassifierMatchesThePublishedConfiguration) {
  auto pub = read_published().at("train-cls");
  Preset p = find_preset("vindr", "train-cls");
  auto m = preset_map(p);
  EXPECT_EQ(num(m.at("size")), num(pub.at("MODEL.CLASSIFIER.INPUT_SIZE")));
  EXPECT_EQ(num(m.at("batch")), num(pub.at("SOLVER.IMS_PER_BATCH")));
  EXPECT_EQ(num(m.at("lr")), num(pub.at("SOLVER.BASE_LR")));
  EXPECT_EQ(m.at("schedule"), "multistep");
  EXPECT_EQ(m.at("milestones"), fractions(pub.at("SOLVER.STEPS"), num(pub.at("SOLVER.MAX_ITER"))));
  EXPECT_EQ(p.iterations, num(pub.at("SOLVER.MAX_ITER")));
  EXPECT_EQ(pub.at("SOLVER.CLIP_GRADIENTS.ENABLED"), "True");
  EXPECT_EQ(pub.at("SOLVER.CLIP_GRADIENTS.CLIP_TYPE"), "value");
  EXPECT_EQ(num(m.at("clip-value")), num(pub.at("SOLVER.CLIP_GRADIENTS.CLIP_VALUE")));
  EXPECT_EQ(m.count("clip"), 0u) << "value clipping, not norm clipping";
  EXPECT_EQ(num(m.at("momentum")), num(pub.at("SOLVER.MOMENTUM")));
  EXPECT_EQ(num(m.at("weight-decay")), num(pub.at("SOLVER.WEIGHT_DECAY")));
  EXPECT_EQ(num(m.at("warmup")), num(pub.at("SOLVER.WARMUP_ITERS")));
  EXPECT_EQ(num(m.at("bootstrap")), num(pub.at("CLASSIFICATION.BOOTSTRAP_SAMPLES")));
  EXPECT_EQ(num(m.at("seed")), num(pub.at("SEED")));
  for (const auto& v : p.values) EXPECT_FALSE(v.source.empty()) << v.option;
}

TEST(Presets, VindrDetectorMatchesThePublishedConfiguration) {
  auto pub = read_published().at("train-det");
  Preset p = find_preset("vindr", "train-det");
  auto m = preset_map(p);
  EXPECT_EQ(num(m.at("min-size")), num(pub.at("INPUT.MIN_SIZE_TRAIN")));
  EXPECT_EQ(num(m.at("size")), num(pub.at("INPUT.MAX_SIZE_TRAIN")));
  EXPECT_EQ(num(m.at("scale-min")), 1.0);  // one MIN_SIZE_TRAIN: no scale jitter
  EXPECT_EQ(num(m.at("scale-max")), 1.0);
  EXPECT_EQ(num(m.at("batch")), num(pub.at("SOLVER.IMS_PER_BATCH")));
  EXPECT_EQ(num(m.at("lr")), num(pub.at("SOLVER.BASE_LR")));
  EXPECT_EQ(m.at("optimizer"), "adamw");
  EXPECT_EQ(pub.at("SOLVER.OPTIMIZER"), "ADAMW");
  EXPECT_EQ(m.at("milestones"), fractions(pub.at("SOLVER.STEPS"), num(pub.at("SOLVER.MAX_ITER"))));
  EXPECT_EQ(p.iterations, num(pub.at("SOLVER.MAX_ITER")));
  EXPECT_EQ(num(m.at("repeat-factor")), num(pub.at("DATALOADER.REPEAT_THRESHOLD")));
  EXPECT_EQ(m.at("augment"), "autoaugment-" + pub.at("SPINE.AUTO_AUGMENT"));
  EXPECT_EQ(m.at("normal-images"), pub.at("DATALOADER.FILTER_EMPTY_ANNOTATIONS") == "True" ? "skip" : "keep");
  EXPECT_EQ(pub.at("SOLVER.CLIP_GRADIENTS.CLIP_TYPE"), "value");
  EXPECT_EQ(num(m.at("clip-value")), num(pub.at("SOLVER.CLIP_GRADIENTS.CLIP_VALUE")));
  EXPECT_EQ(num(m.at("weight-decay")), num(pub.at("SOLVER.WEIGHT_DECAY")));
  EXPECT_EQ(num(m.at("warmup")), num(pub.at("SOLVER.WARMUP_ITERS")));
  EXPECT_EQ(num(m.at("detections")), num(pub.at("TEST.DETECTIONS_PER_IMAGE")));
  EXPECT_EQ(num(m.at("seed")), num(pub.at("SEED")));
}

TEST(Presets, TheCommandLineWinsAndTheBudgetBecomesEpochs) {
  Args args("train-cls", "test");
  args.option("size", "128", "").option("batch", "8", "").option("lr", "0.1", "").option("epochs", "10", "");
  for (const char* o : {"channels", "optimizer", "momentum", "weight-decay", "schedule", "milestones", "warmup",
                        "clip-value", "hflip", "bootstrap", "seed"})
    args.option(o, "x", "");
  add_preset_option(args);
  std::vector<std::string> argv_s = {"--preset", "vindr", "--lr", "0.02"};
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  ASSERT_TRUE(args.parse(static_cast<int>(argv.size()), argv.data()));
  Preset p = find_preset(args.get("preset"), "train-cls");
  const std::string report = apply_preset(p, args);
  EXPECT_EQ(args.get("lr"), "0.02");
  EXPECT_EQ(args.get("size"), "224");
  EXPECT_EQ(args.get("batch"), "32");
  EXPECT_FALSE(args.has("size"));
  EXPECT_NE(report.find("--lr 0.02  (command line; preset 0.01)"), std::string::npos) << report;
  EXPECT_NE(report.find("--size 224  (densenet121.yaml MODEL.CLASSIFIER.INPUT_SIZE)"), std::string::npos) << report;
  // 10,000 iterations of 32 images over 7,550 images: 236 steps per epoch, 43 epochs (10,148 steps).
  const std::string epochs = apply_preset_epochs(p, args, 7550);
  EXPECT_EQ(args.get("epochs"), "43");
  EXPECT_NE(epochs.find("--epochs 43  (10000 iterations"), std::string::npos) << epochs;
  auto cfg = preset_config(p, args);
  ASSERT_FALSE(cfg.empty());
  EXPECT_EQ(cfg[0], (std::pair<std::string, std::string>{"preset", "vindr"}));

  EXPECT_EQ(epochs_for_iterations(10000, 32, 7550), 43);
  EXPECT_EQ(epochs_for_iterations(50000, 4, 3000), 67);  // 750 steps per epoch
  EXPECT_EQ(epochs_for_iterations(10, 32, 10000), 1);
  EXPECT_THROW(epochs_for_iterations(10, 32, 0), ValueError);
  EXPECT_THROW(find_preset("paper", "train-cls"), ValueError);
  EXPECT_TRUE(find_preset("none", "train-det").values.empty());
  EXPECT_THROW(args.set_default("no-such-option", "1"), ValueError);
}
