// `spinexr explain`: every topic runs on a tiny synthetic dataset with a fresh small model, writes
// its pictures (decodable, the right size) and its JSON, and the numbers it reports agree with the
// library called directly: the anchors' per-level counts with the matcher on the model's anchors,
// matching's best IoUs with a brute-force IoU maximum, focal's split with the kernel's total and
// the model's own loss, RoIAlign's sampling weights with roi_align_forward, the NMS replay with
// batched_nms, the rule's kept boxes with DecisionRule.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/dataset.h"
#include "io/image_io.h"
#include "io/json.h"
#include "io/synth.h"
#include "kernels/box_ops/box_ops.h"
#include "models/anchors.h"
#include "models/faster_rcnn.h"
#include "models/retinanet.h"
#include "tensor/autograd.h"
#include "tensor/errors.h"
#include "tensor/ops.h"
#include "train/app/explain/explain.h"
#include "train/app/explain/explain_common.h"
#include "train/eval/decision_rule.h"
#include "train/loop/checkpoint.h"
#include "train/app/predict.h"
#include "train/tasks/cls_data.h"
#include "train/tasks/det_train.h"

namespace sx::train::explain {
namespace {

namespace fs = std::filesystem;

class Explain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = (fs::temp_directory_path() / ("sx_test_explain_" + std::to_string(::getpid()))).string();
    fs::remove_all(root_);
    fs::create_directories(root_);
    io::SynthOptions so;
    so.out = root_ + "/data";
    so.images = 8;
    so.size = 128;
    so.seed = 5;
    so.threads = 1;
    so.progress = false;
    io::synthesize_dataset(so);
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  static ExplainOptions options(const std::string& name, const std::string& model = "retinanet") {
    ExplainOptions o;
    o.data = root_ + "/data";
    o.out = root_ + "/out_" + name;
    o.model = model;
    o.size = 128;
    o.batch = 2;
    o.det.arch = "resnet18";
    o.det.in_channels = 1;
    o.det.fpn_channels = 32;
    o.det.image_mean = {0.449};
    o.det.image_std = {0.226};
    o.det.score_thresh = 0.0;
    o.det.anchor_sizes = model == "retinanet" ? models::retinanet_anchors(16).sizes
                                              : std::vector<std::vector<double>>{{16}, {32}, {64}, {128}, {256}};
    return o;
  }

  // Each picture decodes and is at least as large as the (padded) image it is drawn over.
  static void expect_pictures(const ExplainResult& r, size_t n, int min_w, int min_h) {
    ASSERT_EQ(r.pngs.size(), n);
    for (const auto& p : r.pngs) {
      ASSERT_TRUE(fs::exists(p)) << p;
      io::GreyImage im = io::read_image(p);
      EXPECT_GE(im.width, min_w) << p;
      EXPECT_GE(im.height, min_h) << p;
    }
    ASSERT_TRUE(fs::exists(r.json_path));
    io::Json back = io::read_json_file(r.json_path);
    EXPECT_EQ(back["topic"], r.json["topic"]);
    EXPECT_FALSE(r.text.empty());
  }

  // The image and model as explain sees them, rebuilt here for the direct calls.
  static std::pair<Scene, LoadedModel> scene(const ExplainOptions& o) {
    Scene s = open_scene(o);
    LoadedModel m = load_model(o, "test", "", s.ds.classes().num_classes());
    load_pixels(s, m.size, 1, m.min_size);
    return {std::move(s), std::move(m)};
  }

  static std::string root_;
};
std::string Explain::root_;

TEST_F(Explain, AnchorCountsEqualTheMatcher) {
  for (const std::string model : {"retinanet", "faster_rcnn"}) {
    ExplainOptions o = options("anchors_" + model, model);
    ExplainResult r = run_explain("anchors", o);
    expect_pictures(r, 1, 128, 128);
    auto [s, m] = scene(o);
    ASSERT_EQ(s.label, 1);  // the first abnormal image
    ASSERT_FALSE(s.gt.empty());
    EXPECT_EQ(r.json["image_id"], s.image_id);
    // Direct: the model's anchors for this padded size, matched by models::match_boxes.
    NoGradGuard ng;
    std::vector<Tensor> anchors;
    double hi = 0.5, lo = 0.4;
    models::ImageList il = scene_images(s);
    if (model == "retinanet") {
      anchors = dynamic_cast<models::RetinaNet&>(*m.model).forward_heads(il).anchors;
    } else {
      hi = 0.7, lo = 0.3;
      auto& f = dynamic_cast<models::FasterRCNN&>(*m.model);
      std::vector<std::pair<int64_t, int64_t>> grids;
      for (const auto& t : f.features(il)) grids.push_back({t.size(2), t.size(3)});
      anchors = f.rpn->anchor_generator().grid_anchors(grids, {s.pad_h, s.pad_w}, Device::cpu());
    }
    EXPECT_EQ(r.json["matcher"]["positive_iou"].get<double>(), hi);
    EXPECT_EQ(r.json["matcher"]["negative_iou"].get<double>(), lo);
    const std::vector<double> match =
        models::match_boxes(kernels::box_iou(gt_boxes_tensor(s), cat(anchors, 0)), hi, lo, true).to_vector();
    ASSERT_EQ(r.json["levels"].size(), anchors.size());
    int64_t off = 0, total_pos = 0;
    for (size_t l = 0; l < anchors.size(); ++l) {
      int64_t pos = 0, ign = 0, neg = 0;
      for (int64_t k = 0; k < anchors[l].size(0); ++k) {
        const double v = match[off + k];
        pos += v >= 0, ign += v == -2, neg += v == -1;
      }
      off += anchors[l].size(0);
      const auto& j = r.json["levels"][l];
      EXPECT_EQ(j["anchors"].get<int64_t>(), anchors[l].size(0)) << model << " level " << l;
      EXPECT_EQ(j["positive"].get<int64_t>(), pos) << model << " level " << l;
      EXPECT_EQ(j["ignored"].get<int64_t>(), ign) << model << " level " << l;
      EXPECT_EQ(j["negative"].get<int64_t>(), neg) << model << " level " << l;
      total_pos += pos;
    }
    EXPECT_GE(total_pos, static_cast<int64_t>(s.gt.size()));  // every box keeps at least one anchor
  }
}

TEST_F(Explain, MatchingBestIouIsTheBruteForceMaximum) {
  ExplainOptions o = options("matching");
  ExplainResult r = run_explain("matching", o);
  expect_pictures(r, 1, 128, 128);
  auto [s, m] = scene(o);
  NoGradGuard ng;
  auto anchors = dynamic_cast<models::RetinaNet&>(*m.model).forward_heads(scene_images(s)).anchors;
  ASSERT_EQ(r.json["boxes"].size(), s.gt.size());
  for (size_t g = 0; g < s.gt.size(); ++g) {
    const GtBox& b = s.gt[g];
    double best = -1;
    for (size_t l = 0; l < anchors.size(); ++l) {
      const std::vector<double> a = anchors[l].to_vector();
      double lv = -1;  // brute force: every anchor's IoU by the textbook formula
      for (size_t k = 0; k < a.size(); k += 4) {
        const double iw = std::max(0.0, std::min(b.x2, a[k + 2]) - std::max(b.x1, a[k]));
        const double ih = std::max(0.0, std::min(b.y2, a[k + 3]) - std::max(b.y1, a[k + 1]));
        const double inter = iw * ih;
        const double uni = (b.x2 - b.x1) * (b.y2 - b.y1) + (a[k + 2] - a[k]) * (a[k + 3] - a[k + 1]) - inter;
        lv = std::max(lv, inter / uni);
      }
      EXPECT_NEAR(r.json["boxes"][g]["best_per_level"][l]["iou"].get<double>(), lv, 1e-5) << "box " << g << " level " << l;
      best = std::max(best, lv);
    }
    EXPECT_NEAR(r.json["boxes"][g]["best_iou"].get<double>(), best, 1e-5);
    EXPECT_EQ(r.json["boxes"][g]["low_quality_only"].get<bool>(), best < 0.5 - 1e-6);
    EXPECT_GE(r.json["boxes"][g]["anchors_matched"].get<int64_t>(), 0);
  }
}

TEST_F(Explain, FocalSplitAddsUpToTheKernelAndTheModelLoss) {
  ExplainOptions o = options("focal");
  ExplainResult r = run_explain("focal", o);
  ASSERT_EQ(r.pngs.size(), 2u);
  EXPECT_EQ(io::read_image(r.pngs[0]).width, 720);  // the bar chart
  EXPECT_EQ(io::read_image(r.pngs[1]).width, 640);  // the curves
  EXPECT_EQ(r.json["batch"].size(), 2u);
  const auto& rows = r.json["losses"];
  ASSERT_EQ(rows.size(), 4u);
  for (const auto& row : rows) {
    const double sum = row["easy_negatives"].get<double>() + row["hard_negatives"].get<double>() +
                       row["positives"].get<double>();
    EXPECT_NEAR(sum, row["total_from_kernel"].get<double>(), 1e-5 * row["total_from_kernel"].get<double>());
    if (row["gamma"].get<double>() == 2.0) {  // RetinaNet's gamma: its own classification loss
      EXPECT_NEAR(row["total_from_kernel"].get<double>(), r.json["model_classification_loss"].get<double>(),
                  1e-4 * r.json["model_classification_loss"].get<double>());
    }
  }
  // CE is dominated by easy negatives; gamma 2 hands the loss to the positives.
  EXPECT_GT(rows[0]["easy_negatives"].get<double>(), rows[0]["positives"].get<double>());
  EXPECT_LT(rows[2]["easy_negatives"].get<double>(), rows[2]["positives"].get<double>());
  EXPECT_GT(r.json["anchors"]["positives"].get<int64_t>(), 0);
  // The curves: CE at p_t = 0.5 is log 2; gamma 2 multiplies it by 0.25.
  EXPECT_NEAR(r.json["curves_at"]["CE (gamma 0)"]["loss"][1].get<double>(), std::log(2.0), 1e-6);
  EXPECT_NEAR(r.json["curves_at"]["gamma 2"]["loss"][1].get<double>(), 0.25 * std::log(2.0), 1e-6);
  // focal needs a RetinaNet: a fresh Faster R-CNN request still builds one.
  EXPECT_NE(r.json["model"].get<std::string>().find("retinanet"), std::string::npos);
}

TEST_F(Explain, HeadsAndRpnDrawEveryLevel) {
  ExplainResult h = run_explain("heads", options("heads"));
  expect_pictures(h, 1, 3 * 128, 2 * 128);  // 5 levels, 3 per row
  ASSERT_EQ(h.json["levels"].size(), 5u);
  for (const auto& l : h.json["levels"]) {
    EXPECT_LE(l["min"].get<double>(), l["max"].get<double>());
    EXPECT_NEAR(l["mean"].get<double>(), 0.01, 0.005);  // a fresh head predicts the prior
  }
  ExplainResult hf = run_explain("heads", options("heads_frcnn", "faster_rcnn"));
  EXPECT_EQ(hf.json["score"], "objectness");
  ExplainResult r = run_explain("rpn", options("rpn", "faster_rcnn"));
  expect_pictures(r, 2, 2 * 128, 128);
  int64_t before = 0, after = 0;
  for (const auto& l : r.json["proposals"]["per_level"]) {
    before += l["before_nms"].get<int64_t>();
    after += l["after_nms"].get<int64_t>();
    EXPECT_LE(l["after_nms"].get<int64_t>(), l["before_nms"].get<int64_t>());
  }
  EXPECT_EQ(before, r.json["proposals"]["before_nms"].get<int64_t>());
  EXPECT_EQ(after, r.json["proposals"]["after_nms"].get<int64_t>());
  EXPECT_GT(after, 0);
}

TEST_F(Explain, RoiAlignWeightsReproduceTheKernel) {
  ExplainResult r = run_explain("roi-align", options("roi", "faster_rcnn"));
  expect_pictures(r, 1, 128, 128);
  const auto& bin = r.json["bin_shown"];
  const auto& geo = r.json["geometry"]["grid"];
  const double count = std::max(1, geo[0].get<int>() * geo[1].get<int>());
  ASSERT_EQ(bin["samples"].size(), static_cast<size_t>(count));
  double acc = 0;
  for (const auto& smp : bin["samples"]) {
    double wsum = 0;
    for (const auto& nb : smp["neighbours"]) {
      acc += nb["weight"].get<double>() * nb["feature"].get<double>();
      wsum += nb["weight"].get<double>();
    }
    EXPECT_NEAR(wsum, 1.0, 1e-5);  // bilinear weights of an inside sample sum to one
  }
  EXPECT_NEAR(acc / count, bin["value_from_kernel"].get<double>(), 1e-5 * std::max(1.0, std::fabs(acc / count)));
  EXPECT_LE(r.json["max_abs_diff_vs_kernel"].get<double>(), 1e-5);
  EXPECT_EQ(r.json["roi_align_output"].size(), 49u);
  EXPECT_EQ(r.json["roi_pool_output"].size(), 49u);
  EXPECT_THROW(run_explain("bogus", options("bogus")), ValueError);
}

TEST_F(Explain, UsesACheckpointAndRefusesTheWrongKind) {
  ExplainOptions o = options("ckpt");
  models::DetectorOptions d = o.det;
  d.seed = 11;
  d.score_thresh = 0.05;  // what train-det stores by default
  auto det = make_detector("retinanet", d);
  Metadata md = detector_metadata(*det);
  md["config.size"] = "96";
  const std::string ckpt = root_ + "/retinanet.safetensors";
  save_checkpoint(ckpt, *det, nullptr, nullptr, TrainState{}, md);
  o.ckpt = ckpt;
  o.size = 0;  // the checkpoint's size
  ExplainResult r = run_explain("heads", o);
  EXPECT_EQ(r.json["input_size"].get<int>(), 96);
  EXPECT_FALSE(r.json["fresh_model"].get<bool>());
  EXPECT_EQ(r.json["padded"][0].get<int>(), 96);
  // The stored threshold (0.05) leaves a fresh head's ~0.01 scores no box; an override shows them.
  EXPECT_EQ(run_explain("nms", o).json["candidates_used"].get<int64_t>(), 0);
  o.ckpt_score_thresh = 0.0;
  EXPECT_EQ(run_explain("nms", o).json["candidates_used"].get<int64_t>(), o.candidates);
  o.ckpt_score_thresh = -1;
  try {
    run_explain("roi-align", o);
    FAIL() << "roi-align accepted a RetinaNet checkpoint";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("faster_rcnn"), std::string::npos) << e.what();
  }
}

TEST_F(Explain, NmsReplayKeepsWhatTheKernelKeeps) {
  for (const std::string model : {"retinanet", "faster_rcnn"}) {
    ExplainOptions o = options("nms_" + model, model);
    o.candidates = 30;
    o.frames = 6;
    ExplainResult r = run_explain("nms", o);
    expect_pictures(r, 2, 128, 128);
    EXPECT_EQ(r.json["kept"], r.json["kernel_kept"]);
    EXPECT_EQ(r.json["candidates_used"].get<int64_t>(), 30);
    int64_t before = 0, after = 0;
    for (const auto& c : r.json["per_category"]) before += c["before"].get<int64_t>(), after += c["after"].get<int64_t>();
    EXPECT_EQ(before, 30);
    EXPECT_EQ(after, static_cast<int64_t>(r.json["kept"].size()));
    // Every removed box overlaps its remover by more than the threshold.
    size_t removed = 0;
    for (const auto& st : r.json["steps"])
      for (const auto& rm : st["removed"]) {
        EXPECT_GT(rm["iou"].get<double>(), r.json["iou_threshold"].get<double>() - 1e-6);
        ++removed;
      }
    EXPECT_EQ(removed + r.json["kept"].size(), 30u);
  }
}

TEST_F(Explain, RuleKeepsWhatTheDecisionRuleKeeps) {
  for (double p : {0.5, 0.1}) {
    ExplainOptions o = options("rule");
    o.p_abnormal = p;
    ExplainResult r = run_explain("rule", o);
    expect_pictures(r, 1, 2 * 128, 128);
    std::vector<double> scores;
    for (const auto& d : r.json["detections"]) scores.push_back(d["score"].get<double>());
    ASSERT_FALSE(scores.empty());
    const std::vector<int> want = eval::DecisionRule{}.kept_indices(p, scores);
    EXPECT_EQ(r.json["kept_indices"].get<std::vector<int>>(), want) << "p " << p;
    EXPECT_EQ(r.json["boxes_with_rule"].get<size_t>(), want.size());
    if (p >= 0.28) {
      EXPECT_EQ(want.size(), scores.size());
    }
  }
  // p_abnormal from a classifier checkpoint (stage 1 as predict runs it).
  ExplainOptions oc = options("rule_cls");
  auto cls = make_cls_model("resnet18", 1, 2);
  oc.cls_ckpt = root_ + "/cls.safetensors";
  save_checkpoint(oc.cls_ckpt, *cls, nullptr, nullptr, TrainState{}, {{"arch", "resnet18"}, {"size", "64"}, {"channels", "1"}});
  ExplainResult rc = run_explain("rule", oc);
  const double p = rc.json["p_abnormal"].get<double>();
  auto [s, m] = scene(oc);
  PipelineConfig pc;
  pc.cls_ckpt = oc.cls_ckpt;
  pc.workers = 0;
  pc.progress = false;
  EXPECT_DOUBLE_EQ(p, classify_images(s.ds, {s.index}, pc).probs.at(0));
  std::vector<double> scores;
  for (const auto& d : rc.json["detections"]) scores.push_back(d["score"].get<double>());
  EXPECT_EQ(rc.json["kept_indices"].get<std::vector<int>>(), eval::DecisionRule{}.kept_indices(p, scores));
  EXPECT_NE(rc.json["p_abnormal_from"].get<std::string>().find("cls.safetensors"), std::string::npos);

  ExplainOptions o = options("rule_bad");
  o.image_id = "no-such-image";
  EXPECT_THROW(run_explain("rule", o), ValueError);
}

}  // namespace
}  // namespace sx::train::explain
