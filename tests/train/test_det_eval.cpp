// Detection evaluation (train/eval/det_eval.h): hand-computed cases, then pycocotools' COCOeval and the
// VOC devkit's voc_eval on seeded random cases (tests/data/train/coco_eval_cases.txt, made by
// scripts/fixtures/train_coco_eval.py).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tensor/errors.h"
#include "train/eval/det_eval.h"

namespace sx::eval {
namespace {

EvalBox G(double x1, double y1, double x2, double y2, int c = 0) { return {x1, y1, x2, y2, c, 1.0}; }
EvalBox D(double x1, double y1, double x2, double y2, double s, int c = 0) { return {x1, y1, x2, y2, c, s}; }

DetEvalConfig cfg(int classes = 1) {
  DetEvalConfig c;
  for (int i = 0; i < classes; ++i) c.class_names.push_back("c" + std::to_string(i));
  return c;
}

TEST(DetEval, PaperThresholds) {
  auto t = DetEvalConfig::paper_iou_thresholds();
  ASSERT_EQ(t.size(), 7u);
  EXPECT_DOUBLE_EQ(t[0], 0.2);
  EXPECT_NEAR(t[3], 0.35, 1e-12);
  EXPECT_EQ(t[6], 0.5);
}

TEST(DetEval, PerfectDetectionsGiveOne) {
  std::vector<ImageEval> ims = {{"a", {G(0, 0, 10, 10)}, {D(0, 0, 10, 10, 0.9)}},
                                {"b", {G(5, 5, 30, 40)}, {D(5, 5, 30, 40, 0.3)}}};
  auto r = evaluate_detections(ims, cfg());
  for (double a : r.classes[0].ap) EXPECT_DOUBLE_EQ(a, 1.0);
  EXPECT_DOUBLE_EQ(r.map50, 1.0);
  EXPECT_DOUBLE_EQ(r.map_voc50, 1.0);
  EXPECT_EQ(r.num_gt, 2);
  EXPECT_EQ(r.num_dets, 2);
}

TEST(DetEval, DuplicateIsAFalsePositive) {
  // gt A, gt B; detections A (0.9), A again (0.8), B (0.7): ranks TP, FP, TP.
  // precision 1, 1/2, 2/3; recall 1/2, 1/2, 1. Envelope 1, 2/3, 2/3.
  // COCO: recall points 0..0.50 (51 of them) read 1, 0.51..1.00 (50) read 2/3.
  // VOC: 0.5 * 1 + 0.5 * 2/3.
  std::vector<ImageEval> ims = {
      {"a", {G(0, 0, 10, 10), G(50, 50, 70, 70)}, {D(0, 0, 10, 10, 0.9), D(0, 0, 10, 10, 0.8), D(50, 50, 70, 70, 0.7)}}};
  auto r = evaluate_detections(ims, cfg());
  const double p3 = 2.0 / (3.0 + std::numeric_limits<double>::epsilon());
  EXPECT_NEAR(r.classes[0].ap[6], (51.0 + 50.0 * p3) / 101.0, 1e-12);
  EXPECT_NEAR(r.classes[0].ap_voc, 0.5 + 0.5 * 2.0 / 3.0, 1e-12);
  EXPECT_LT(r.map50, 1.0);
}

TEST(DetEval, MissLimitsRecall) {
  std::vector<ImageEval> ims = {{"a", {G(0, 0, 10, 10), G(50, 50, 70, 70)}, {D(0, 0, 10, 10, 0.9)}}};
  auto r = evaluate_detections(ims, cfg());
  EXPECT_NEAR(r.classes[0].ap[6], 51.0 / 101.0, 1e-12);  // recall points 0..0.5 reached
  EXPECT_NEAR(r.classes[0].ap_voc, 0.5, 1e-12);
}

TEST(DetEval, BoxesOnNormalImagesAreFalsePositives) {
  std::vector<ImageEval> abnormal = {{"a", {G(0, 0, 10, 10)}, {D(0, 0, 10, 10, 0.5)}}};
  auto alone = evaluate_detections(abnormal, cfg());
  EXPECT_DOUBLE_EQ(alone.map50, 1.0);
  // A normal image ("No finding": no ground truth) with a higher-scoring box: rank FP then TP,
  // precision 0 then 1/2 at recall 1, so every recall point reads 1/2.
  auto with_normal = abnormal;
  with_normal.push_back({"n", {}, {D(20, 20, 40, 40, 0.9)}});
  auto r = evaluate_detections(with_normal, cfg());
  const double half = 1.0 / (2.0 + std::numeric_limits<double>::epsilon());
  EXPECT_NEAR(r.map50, half, 1e-12);
  EXPECT_NEAR(r.map_voc50, 0.5, 1e-12);
  EXPECT_EQ(r.num_normal_images, 1);
  // A normal-image box scoring below the true positive costs nothing at these recall points.
  with_normal[1].dets[0].score = 0.1;
  EXPECT_DOUBLE_EQ(evaluate_detections(with_normal, cfg()).map50, 1.0);
}

TEST(DetEval, EmptyPredictions) {
  std::vector<ImageEval> ims = {{"a", {G(0, 0, 10, 10)}, {}}, {"n", {}, {}}};
  auto r = evaluate_detections(ims, cfg());
  EXPECT_EQ(r.map50, 0.0);
  EXPECT_EQ(r.map_voc50, 0.0);
  EXPECT_EQ(r.num_dets, 0);
  // Nothing at all: no class has ground truth, mAP undefined.
  auto none = evaluate_detections({{"n", {}, {}}}, cfg());
  EXPECT_TRUE(std::isnan(none.map50));
  auto zero = evaluate_detections({}, cfg());
  EXPECT_TRUE(std::isnan(zero.map50));
  EXPECT_NE(io::json_text(det_eval_json(zero)).find("\"map50\": null"), std::string::npos);  // NaN is written as null
}

TEST(DetEval, ClassWithoutGroundTruthIsLeftOutOfTheMean) {
  // class 0 perfect; class 1 has only a (false) detection and no ground truth; class 2 missed.
  std::vector<ImageEval> ims = {{"a", {G(0, 0, 10, 10, 0), G(30, 30, 50, 50, 2)},
                                 {D(0, 0, 10, 10, 0.9, 0), D(60, 60, 80, 80, 0.95, 1)}}};
  auto r = evaluate_detections(ims, cfg(3));
  EXPECT_DOUBLE_EQ(r.classes[0].ap[6], 1.0);
  EXPECT_TRUE(std::isnan(r.classes[1].ap[6]));
  EXPECT_TRUE(std::isnan(r.classes[1].ap_voc));
  EXPECT_EQ(r.classes[2].ap[6], 0.0);
  EXPECT_DOUBLE_EQ(r.map50, 0.5);
  EXPECT_DOUBLE_EQ(r.map_voc50, 0.5);
}

TEST(DetEval, WrongClassDoesNotMatch) {
  std::vector<ImageEval> ims = {{"a", {G(0, 0, 10, 10, 0)}, {D(0, 0, 10, 10, 0.9, 1)}}};
  auto r = evaluate_detections(ims, cfg(2));
  EXPECT_EQ(r.classes[0].ap[6], 0.0);
}

TEST(DetEval, IouThresholdsEachReported) {
  // IoU 0.42: a true positive at 0.20 .. 0.40, a false positive at 0.45 and 0.50.
  std::vector<ImageEval> ims = {{"a", {G(0, 0, 10, 10)}, {D(0, 0, 10, 4.2, 0.9)}}};
  auto r = evaluate_detections(ims, cfg());
  EXPECT_NEAR(eval_iou(ims[0].gt[0], ims[0].dets[0]), 0.42, 1e-12);
  ASSERT_EQ(r.map.size(), 7u);
  for (int t = 0; t < 5; ++t) EXPECT_DOUBLE_EQ(r.map[t], 1.0) << t;
  EXPECT_EQ(r.map[5], 0.0);
  EXPECT_EQ(r.map[6], 0.0);
  EXPECT_EQ(r.map50, 0.0);
  const io::Json js = det_eval_json(r);
  const double ap40 = js.at("map").at("0.40").get<double>();
  EXPECT_TRUE(ap40 >= 0.9999 && ap40 < 1.0) << js.dump();  // tp / (tp + fp + eps), as COCO
  EXPECT_EQ(js.at("map").at("0.45"), 0.0) << js.dump();
}

TEST(DetEval, CocoGreedyFallsBackVocDoesNot) {
  // gt A and B overlap. det1 = A exactly; det2 overlaps A most (0.905) and B by 0.739.
  // COCO matches det2 to the still-free B (true positive); voc_eval takes the best-overlap gt A,
  // already used, so det2 is a duplicate (false positive).
  std::vector<ImageEval> ims = {{"a", {G(0, 0, 10, 10), G(2, 0, 12, 10)},
                                 {D(0, 0, 10, 10, 0.9), D(0.5, 0, 10.5, 10, 0.8)}}};
  auto r = evaluate_detections(ims, cfg());
  EXPECT_DOUBLE_EQ(r.classes[0].ap[6], 1.0);
  EXPECT_NEAR(r.classes[0].ap_voc, 0.5, 1e-12);
}

TEST(DetEval, MaxDetsCutsPerImageAndClass) {
  std::vector<ImageEval> ims = {{"a", {G(0, 0, 10, 10), G(50, 50, 70, 70)},
                                 {D(0, 0, 10, 10, 0.9), D(50, 50, 70, 70, 0.8)}}};
  auto c = cfg();
  c.max_dets = 1;
  auto r = evaluate_detections(ims, c);
  EXPECT_NEAR(r.classes[0].ap[6], 51.0 / 101.0, 1e-12);
  EXPECT_EQ(r.classes[0].num_dets, 1);
  c.max_dets = 100;
  EXPECT_DOUBLE_EQ(evaluate_detections(ims, c).map50, 1.0);
}

TEST(DetEval, PrCurvesAreDrawnAsTheInterpolatedEnvelope) {
  // The PR picture draws what the AP is computed from: no diagonal segment (a straight line from
  // one operating point to the next is not a curve the AP integrates), and the area under each
  // class's polyline is its all-point AP at IoU 0.5.
  std::vector<ImageEval> ims = {
      {"a", {G(0, 0, 10, 10), G(50, 50, 70, 70)}, {D(0, 0, 10, 10, 0.9), D(0, 0, 10, 10, 0.8), D(50, 50, 70, 70, 0.7)}},
      {"b", {G(0, 0, 20, 20, 1)}, {D(40, 40, 60, 60, 0.9, 1), D(0, 0, 20, 20, 0.4, 1)}},
      {"n", {}, {D(5, 5, 9, 9, 0.95)}}};
  auto r = evaluate_detections(ims, cfg(2));
  auto series = pr_plot_series(r);
  ASSERT_EQ(series.size(), 2u);
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    ASSERT_GE(s.x.size(), 2u);
    double area = 0;
    for (size_t i = 0; i + 1 < s.x.size(); ++i) {
      ASSERT_TRUE(s.x[i] == s.x[i + 1] || s.y[i] == s.y[i + 1]) << s.label << ": diagonal segment " << i;
      if (s.y[i] == s.y[i + 1]) area += (s.x[i + 1] - s.x[i]) * s.y[i];
    }
    EXPECT_NEAR(area, metrics::ap_all_points(r.classes[k].pr_at_50), 1e-12) << s.label;
    EXPECT_NE(s.label.find("AP50"), std::string::npos);
  }
}

TEST(DetEval, RefusesBadInput) {
  EXPECT_THROW(evaluate_detections({{"a", {G(0, 0, 1, 1, 3)}, {}}}, cfg(2)), ValueError);
  EXPECT_THROW(evaluate_detections({{"a", {}, {D(0, 0, 1, 1, NAN)}}}, cfg()), ValueError);
  EXPECT_THROW(evaluate_detections({{"a", {}, {}}, {"a", {}, {}}}, cfg()), ValueError);
  EXPECT_THROW(evaluate_detections({}, DetEvalConfig{}), ValueError);
}

TEST(DetEval, TableListsClasses) {
  std::vector<ImageEval> ims = {{"a", {G(0, 0, 10, 10)}, {D(0, 0, 10, 10, 0.9)}}};
  auto c = cfg();
  c.class_names = {"Osteophytes"};
  std::string t = det_eval_table(evaluate_detections(ims, c));
  EXPECT_NE(t.find("Osteophytes"), std::string::npos);
  EXPECT_NE(t.find("AP50"), std::string::npos);
  EXPECT_NE(t.find("100.00"), std::string::npos);
}

// ---- reference: pycocotools + voc_eval ------------------------------------------------------------

struct RefCase {
  std::vector<ImageEval> images;
  int classes = 0;
  std::vector<std::vector<double>> ap;  // [class][threshold]
  std::vector<double> voc;
};

double parse_num(const std::string& s) { return s == "nan" ? std::nan("") : std::stod(s); }

std::vector<RefCase> load_cases() {
  std::ifstream f(std::string(SX_TEST_DATA_DIR) + "/train/coco_eval_cases.txt");
  EXPECT_TRUE(f.good());
  std::vector<RefCase> cases;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream in(line);
    std::string tag;
    in >> tag;
    if (tag == "case") {
      cases.emplace_back();
      int n;
      in >> n >> cases.back().classes;
      cases.back().ap.assign(cases.back().classes, {});
      cases.back().voc.assign(cases.back().classes, 0);
    } else if (tag == "image") {
      auto& ims = cases.back().images;
      ims.push_back({std::to_string(ims.size()), {}, {}});
    } else if (tag == "g" || tag == "d") {
      EvalBox b;
      in >> b.x1 >> b.y1 >> b.x2 >> b.y2 >> b.label;
      if (tag == "d") {
        in >> b.score;
        cases.back().images.back().dets.push_back(b);
      } else {
        cases.back().images.back().gt.push_back(b);
      }
    } else if (tag == "ap" || tag == "voc") {
      int k;
      in >> k;
      std::string v;
      while (in >> v) {
        if (tag == "ap") cases.back().ap[k].push_back(parse_num(v));
        else cases.back().voc[k] = parse_num(v);
      }
    }
  }
  return cases;
}

TEST(DetEval, MatchesPycocotoolsAndVocEval) {
  auto cases = load_cases();
  ASSERT_EQ(cases.size(), 3u);
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const RefCase& rc = cases[ci];
    auto r = evaluate_detections(rc.images, cfg(rc.classes));
    int with_gt = 0;
    for (int k = 0; k < rc.classes; ++k) {
      ASSERT_EQ(rc.ap[k].size(), 7u);
      for (int t = 0; t < 7; ++t) {
        if (std::isnan(rc.ap[k][t])) {
          EXPECT_TRUE(std::isnan(r.classes[k].ap[t])) << "case " << ci << " class " << k;
        } else {
          EXPECT_NEAR(r.classes[k].ap[t], rc.ap[k][t], 1e-9) << "case " << ci << " class " << k << " thr " << t;
        }
      }
      if (std::isnan(rc.voc[k])) {
        EXPECT_TRUE(std::isnan(r.classes[k].ap_voc));
      } else {
        ++with_gt;
        EXPECT_NEAR(r.classes[k].ap_voc, rc.voc[k], 1e-9) << "case " << ci << " class " << k;
      }
    }
    EXPECT_GT(with_gt, 1);
    EXPECT_GT(r.num_normal_images, 0);
  }
}

}  // namespace
}  // namespace sx::eval
