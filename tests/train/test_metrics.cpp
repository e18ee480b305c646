// Metrics against hand-worked cases (the examples of scikit-learn's documentation) and against a
// fixture computed independently with numpy (scripts/fixtures/train_metrics.py).
#include <gtest/gtest.h>

#include <random>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tensor/errors.h"
#include "train/eval/metrics.h"

using namespace sx::metrics;

namespace {

const std::vector<double> kScores{0.1, 0.4, 0.35, 0.8};
const std::vector<int> kLabels{0, 0, 1, 1};

TEST(Metrics, RocCurveSklearnExample) {
  // sklearn.metrics.roc_curve([0,0,1,1], [0.1,0.4,0.35,0.8], drop_intermediate=False)
  RocCurve c = roc_curve(kScores, kLabels);
  std::vector<double> fpr{0, 0, 0.5, 0.5, 1}, tpr{0, 0.5, 0.5, 1, 1}, thr{INFINITY, 0.8, 0.4, 0.35, 0.1};
  ASSERT_EQ(c.fpr.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_DOUBLE_EQ(c.fpr[i], fpr[i]) << i;
    EXPECT_DOUBLE_EQ(c.tpr[i], tpr[i]) << i;
    EXPECT_EQ(c.thresholds[i], thr[i]) << i;
  }
  EXPECT_DOUBLE_EQ(roc_auc(kScores, kLabels), 0.75);
}

TEST(Metrics, AucTiesCountHalf) {
  EXPECT_DOUBLE_EQ(roc_auc({0.5, 0.5}, {0, 1}), 0.5);
  // positive 0.5 vs negatives {0.2, 0.5}: 1 + 0.5; positive 0.9: 2  -> 3.5 / 4
  EXPECT_DOUBLE_EQ(roc_auc({0.2, 0.5, 0.5, 0.9}, {0, 0, 1, 1}), 0.875);
  EXPECT_DOUBLE_EQ(roc_auc({0.9, 0.8, 0.1}, {1, 1, 0}), 1.0);
  EXPECT_DOUBLE_EQ(roc_auc({0.9, 0.8, 0.1}, {0, 0, 1}), 0.0);
}

TEST(Metrics, AucRefusesBadInput) {
  EXPECT_THROW(roc_auc({0.1, 0.2}, {1, 1}), sx::ValueError);
  EXPECT_THROW(roc_auc({0.1, 0.2}, {0, 2}), sx::ValueError);
  EXPECT_THROW(roc_auc({0.1}, {0, 1}), sx::ValueError);
  EXPECT_THROW(roc_auc({NAN, 0.2}, {0, 1}), sx::ValueError);
  EXPECT_THROW(roc_auc({}, {}), sx::ValueError);
}

TEST(Metrics, PrecisionRecallSklearnExample) {
  PrCurve c = precision_recall_curve(kScores, kLabels);
  std::vector<double> p{0.5, 2.0 / 3.0, 0.5, 1, 1}, r{1, 1, 0.5, 0.5, 0}, t{0.1, 0.35, 0.4, 0.8};
  ASSERT_EQ(c.precision.size(), 5u);
  ASSERT_EQ(c.thresholds.size(), 4u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_DOUBLE_EQ(c.precision[i], p[i]) << i;
    EXPECT_DOUBLE_EQ(c.recall[i], r[i]) << i;
  }
  for (size_t i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(c.thresholds[i], t[i]);
  EXPECT_NEAR(average_precision(kScores, kLabels), 0.8333333333333333, 1e-15);
}

TEST(Metrics, YoudenAndThresholdMetrics) {
  // J = tpr - fpr: 0.5 at 0.8, 0 at 0.4, 0.5 at 0.35, 0 at 0.1 -> first maximum, 0.8
  EXPECT_DOUBLE_EQ(youden_threshold(kScores, kLabels), 0.8);
  BinaryMetrics m = binary_metrics_at(kScores, kLabels, 0.35);
  EXPECT_EQ(m.cm.tp, 2);
  EXPECT_EQ(m.cm.fp, 1);
  EXPECT_EQ(m.cm.tn, 1);
  EXPECT_EQ(m.cm.fn, 0);
  EXPECT_DOUBLE_EQ(m.sensitivity, 1.0);
  EXPECT_DOUBLE_EQ(m.specificity, 0.5);
  EXPECT_DOUBLE_EQ(m.precision, 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(m.f1, 0.8);
  EXPECT_DOUBLE_EQ(m.accuracy, 0.75);
  // nothing predicted positive: precision and F1 are 0, not NaN
  BinaryMetrics none = binary_metrics_at(kScores, kLabels, 2.0);
  EXPECT_EQ(none.precision, 0.0);
  EXPECT_EQ(none.f1, 0.0);
  EXPECT_DOUBLE_EQ(none.specificity, 1.0);
}

TEST(Metrics, Percentile) {
  // numpy.percentile([1, 2, 3, 4], [0, 25, 50, 97.5, 100]) = 1, 1.75, 2.5, 3.925, 4
  std::vector<double> v{4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(percentile(v, 0), 1.0);
  EXPECT_DOUBLE_EQ(percentile(v, 25), 1.75);
  EXPECT_DOUBLE_EQ(percentile(v, 50), 2.5);
  EXPECT_NEAR(percentile(v, 97.5), 3.925, 1e-12);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 4.0);
}

// The bootstrap CI: deterministic for a seed, brackets the estimate, and its width agrees with the
// Hanley-McNeil standard error of the AUROC (2 * 1.96 * SE) within 25% for a large sample.
TEST(Metrics, BootstrapCi) {
  std::vector<double> s;
  std::vector<int> y;
  uint64_t state = 12345;
  auto next = [&] {  // a tiny LCG; the values only need to be spread out
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(state >> 11) / 9007199254740992.0;
  };
  const int n = 1000;
  for (int i = 0; i < n; ++i) {
    int label = next() < 0.5;
    double u1 = std::max(next(), 1e-12), u2 = next();
    double z = std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    s.push_back(z + 1.0 * label);
    y.push_back(label);
  }
  BootstrapCI a = roc_auc_bootstrap(s, y, 2000, 7);
  BootstrapCI b = roc_auc_bootstrap(s, y, 2000, 7);
  BootstrapCI c = roc_auc_bootstrap(s, y, 2000, 8);
  EXPECT_EQ(a.lo, b.lo);
  EXPECT_EQ(a.hi, b.hi);
  EXPECT_NE(a.lo, c.lo);
  EXPECT_DOUBLE_EQ(a.estimate, roc_auc(s, y));
  EXPECT_LT(a.lo, a.estimate);
  EXPECT_GT(a.hi, a.estimate);
  double A = a.estimate;
  double P = 0;
  for (int v : y) P += v;
  double N = n - P;
  double q1 = A / (2 - A), q2 = 2 * A * A / (1 + A);
  double se = std::sqrt((A * (1 - A) + (P - 1) * (q1 - A * A) + (N - 1) * (q2 - A * A)) / (P * N));
  double width = a.hi - a.lo;
  EXPECT_NEAR(width, 2 * 1.959964 * se, 0.25 * 2 * 1.959964 * se) << "width " << width << " se " << se;
  EXPECT_EQ(a.samples, 2000);
}

TEST(Metrics, DetectionApHandCase) {
  // 3 ground-truth objects; ranked detections TP, FP, TP -> precision 1, 1/2, 2/3; recall 1/3, 1/3, 2/3
  RankedPr r = pr_from_ranked({0.9, 0.8, 0.7}, {1, 0, 1}, 3);
  ASSERT_EQ(r.recall.size(), 3u);
  EXPECT_DOUBLE_EQ(r.recall[2], 2.0 / 3.0);
  // VOC all-point: envelope 1, 2/3, 2/3 -> 1/3 * 1 + 1/3 * 2/3
  EXPECT_NEAR(ap_all_points(r), 1.0 / 3.0 + 2.0 / 9.0, 1e-12);
  // COCO 101: recall thresholds 0..0.33 (34 points) -> 1, 0.34..0.66 (33 points) -> 2/3, rest 0
  EXPECT_NEAR(ap_coco101(r), (34 * 1.0 + 33 * (2.0 / 3.0)) / 101.0, 1e-12);
  EXPECT_EQ(ap_coco101(pr_from_ranked({}, {}, 5)), 0.0);
  EXPECT_THROW(pr_from_ranked({0.5, 0.4}, {1, 1}, 1), sx::ValueError);
}

TEST(Metrics, PrecisionEnvelopeStepsIsTheCurveTheApIsComputedFrom) {
  // Same hand case: TP, FP, TP of 3 objects. Envelope 1 over recall (0, 1/3], 2/3 over (1/3, 2/3],
  // then precision 0 beyond the highest recall reached.
  RankedPr r = pr_from_ranked({0.9, 0.8, 0.7}, {1, 0, 1}, 3);
  StepCurve c = precision_envelope_steps(r);
  const std::vector<double> rx = {0.0, 1.0 / 3.0, 1.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0};
  const std::vector<double> py = {1.0, 1.0, 2.0 / 3.0, 2.0 / 3.0, 0.0};
  ASSERT_EQ(c.recall.size(), rx.size());
  for (size_t i = 0; i < rx.size(); ++i) {
    EXPECT_NEAR(c.recall[i], rx[i], 1e-12) << i;
    EXPECT_NEAR(c.precision[i], py[i], 1e-12) << i;
  }
  EXPECT_TRUE(precision_envelope_steps(pr_from_ranked({}, {}, 5)).recall.empty());
}

TEST(Metrics, PrecisionEnvelopeStepsAreAxisAlignedAndMatchBothAps) {
  // Seeded random rankings: every segment horizontal or vertical, precision never rises along
  // recall, the area under the steps is the all-point AP, and sampling the steps at recall k/100
  // (the height of the first horizontal segment reaching it) gives COCO's 101-point AP.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    int n = 1 + static_cast<int>(rng() % 40);
    std::vector<double> scores(n);
    std::vector<int> tp(n);
    int ntp = 0;
    for (int i = 0; i < n; ++i) {
      scores[i] = static_cast<double>(rng() % 1000) / 1000.0;
      tp[i] = static_cast<int>(rng() % 2);
      ntp += tp[i];
    }
    int64_t num_gt = ntp + static_cast<int64_t>(rng() % 4);
    if (num_gt == 0) num_gt = 1;
    RankedPr r = pr_from_ranked(scores, tp, num_gt);
    StepCurve c = precision_envelope_steps(r);
    ASSERT_FALSE(c.recall.empty());
    EXPECT_EQ(c.recall.front(), 0.0);
    EXPECT_EQ(c.precision.back(), 0.0);
    double area = 0;
    for (size_t i = 0; i + 1 < c.recall.size(); ++i) {
      const bool horizontal = c.precision[i] == c.precision[i + 1];
      const bool vertical = c.recall[i] == c.recall[i + 1];
      ASSERT_TRUE(horizontal || vertical) << "trial " << trial << " segment " << i << " is diagonal";
      EXPECT_LE(c.precision[i + 1], c.precision[i]);
      EXPECT_GE(c.recall[i + 1], c.recall[i]);
      if (horizontal) area += (c.recall[i + 1] - c.recall[i]) * c.precision[i];
    }
    EXPECT_NEAR(area, ap_all_points(r), 1e-12) << "trial " << trial;
    double sum = 0;
    for (int k = 0; k <= 100; ++k) {
      const double t = static_cast<double>(k) * (1.0 / 100.0);  // as ap_coco101 (np.linspace)
      for (size_t i = 0; i + 1 < c.recall.size(); ++i)
        if (c.precision[i] == c.precision[i + 1] && c.recall[i + 1] > c.recall[i] && c.recall[i + 1] >= t) {
          sum += c.precision[i];
          break;
        }
    }
    EXPECT_NEAR(sum / 101.0, ap_coco101(r), 1e-12) << "trial " << trial;
  }
}

struct Case {
  std::string name;
  std::vector<double> scores;
  std::vector<int> labels;
  int64_t num_gt = -1;
  std::map<std::string, double> ref;
};

std::vector<Case> load_cases() {
  std::ifstream f(std::string(SX_TEST_DATA_DIR) + "/train/metrics_cases.txt");
  EXPECT_TRUE(f.good()) << "missing fixture tests/data/train/metrics_cases.txt";
  std::vector<Case> out;
  Case cur;
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream is(line);
    std::string key;
    is >> key;
    if (key == "case") {
      cur = Case();
      is >> cur.name;
    } else if (key == "scores") {
      double v;
      while (is >> v) cur.scores.push_back(v);
    } else if (key == "labels") {
      int v;
      while (is >> v) cur.labels.push_back(v);
    } else if (key == "num_gt") {
      is >> cur.num_gt;
    } else if (key == "end") {
      out.push_back(cur);
    } else if (!key.empty()) {
      double v;
      is >> v;
      cur.ref[key] = v;
    }
  }
  return out;
}

TEST(Metrics, AgreesWithNumpyFixture) {
  auto cases = load_cases();
  ASSERT_EQ(cases.size(), 8u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    if (c.num_gt < 0) {
      EXPECT_NEAR(roc_auc(c.scores, c.labels), c.ref.at("auc"), 1e-14);
      EXPECT_NEAR(average_precision(c.scores, c.labels), c.ref.at("ap"), 1e-12);
      EXPECT_EQ(youden_threshold(c.scores, c.labels), c.ref.at("youden"));
      // the trapezoidal area under roc_curve equals the rank-sum AUROC
      RocCurve r = roc_curve(c.scores, c.labels);
      double area = 0;
      for (size_t i = 1; i < r.fpr.size(); ++i) area += (r.fpr[i] - r.fpr[i - 1]) * (r.tpr[i] + r.tpr[i - 1]) / 2;
      EXPECT_NEAR(area, c.ref.at("auc"), 1e-12);
    } else {
      RankedPr r = pr_from_ranked(c.scores, c.labels, c.num_gt);
      EXPECT_NEAR(ap_coco101(r), c.ref.at("coco101"), 1e-12);
      EXPECT_NEAR(ap_all_points(r), c.ref.at("voc"), 1e-12);
    }
  }
}

TEST(Metrics, JsonNumber) {
  EXPECT_EQ(json_number(0.5), "0.5");
  EXPECT_EQ(json_number(0.1), "0.1");
  EXPECT_EQ(json_number(NAN), "null");
  EXPECT_EQ(json_number(INFINITY), "null");
  EXPECT_EQ(std::stod(json_number(1.0 / 3.0)), 1.0 / 3.0);
}

}  // namespace

namespace sx::metrics {
namespace {

TEST(Calibration, HandCaseAndEce) {
  // 3 bins: [0,1/3) holds 0.1 (y 0) and 0.2 (y 1): mean 0.15, fraction 0.5;
  // [1/3,2/3) holds 0.5 (y 1): gap 0.5; [2/3,1] holds 0.9 and 1.0 (y 1, y 1): mean 0.95, gap 0.05.
  Calibration c = calibration({0.1, 0.2, 0.5, 0.9, 1.0}, {0, 1, 1, 1, 1}, 3);
  ASSERT_EQ(c.bins.size(), 3u);
  EXPECT_EQ(c.bins[0].count, 2);
  EXPECT_NEAR(c.bins[0].mean_prob, 0.15, 1e-12);
  EXPECT_NEAR(c.bins[0].frac_positive, 0.5, 1e-12);
  EXPECT_EQ(c.bins[2].count, 2);
  EXPECT_NEAR(c.ece, (2 * 0.35 + 1 * 0.5 + 2 * 0.05) / 5.0, 1e-12);
  EXPECT_NEAR(c.max_gap, 0.5, 1e-12);
  // perfectly calibrated in every bin: ECE 0
  EXPECT_NEAR(calibration({0.25, 0.25, 0.25, 0.25}, {1, 0, 0, 0}, 15).ece, 0.0, 1e-12);
  // every image at ~0.99, half of them normal (the demo's stage 1 before the fix): one bin, mean
  // 0.9945 against a fraction of 0.5
  EXPECT_NEAR(calibration({0.99, 0.99, 0.999, 0.999}, {0, 0, 1, 1}, 15).ece, 0.9945 - 0.5, 1e-12);
  EXPECT_THROW(calibration({1.5}, {1}), sx::ValueError);
  EXPECT_THROW(calibration({0.5}, {1, 0}), sx::ValueError);
}

TEST(Calibration, TemperatureRecoversTheScaleOfOverconfidentLogits) {
  // Labels drawn from sigmoid(z); the model reports 4 z (over-confident): T ~ 4 undoes it.
  std::mt19937_64 rng(3);
  std::normal_distribution<double> nd(0.0, 2.0);
  std::uniform_real_distribution<double> ud(0.0, 1.0);
  std::vector<double> logits;
  std::vector<int> labels;
  for (int i = 0; i < 20000; ++i) {
    double z = nd(rng);
    labels.push_back(ud(rng) < 1.0 / (1.0 + std::exp(-z)) ? 1 : 0);
    logits.push_back(4.0 * z);
  }
  EXPECT_NEAR(fit_temperature(logits, labels), 4.0, 0.2);
  for (double& z : logits) z /= 8.0;  // now under-confident by 2x: T ~ 0.5
  EXPECT_NEAR(fit_temperature(logits, labels), 0.5, 0.03);
  EXPECT_THROW(fit_temperature({}, {}), sx::ValueError);
  EXPECT_THROW(fit_temperature({NAN}, {1}), sx::ValueError);
}

TEST(Calibration, ProbabilitiesPrintWithEnoughDigits) {
  EXPECT_EQ(format_probability(0.28), "0.2800");
  EXPECT_EQ(format_probability(0.99996), "0.99996");
  EXPECT_EQ(format_probability(0.9999998), "0.9999998");
  EXPECT_EQ(format_probability(1.0), "1.0000");
  EXPECT_EQ(format_probability(0.0), "0.0000");
  EXPECT_EQ(format_probability(0.00002), "0.00002");
  EXPECT_NE(format_probability(0.99996), format_probability(1.0));
}

}  // namespace
}  // namespace sx::metrics
