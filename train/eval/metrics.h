// Evaluation metrics for binary classification and for ranked detections.
//
// Everything here works on plain std::vector<double> scores and 0/1 labels: the evaluation code
// moves predictions to the host once and computes metrics there (n is at most a few thousand
// images or a few hundred thousand detections).
//
// Conventions (the same as scikit-learn, so results can be checked against it):
//   - A sample is predicted positive when score >= threshold.
//   - roc_curve: one point per distinct score, thresholds in decreasing order, starting at the
//     point (fpr 0, tpr 0) whose threshold is +inf (sklearn's drop_intermediate=False).
//   - roc_auc: the trapezoidal area under that curve. Tied scores produce one diagonal segment, so a
//     tie between a positive and a negative counts one half (the Mann-Whitney U statistic with
//     mid-ranks), exactly as sklearn.metrics.roc_auc_score.
//   - precision_recall_curve / average_precision: as sklearn (AP = sum_k (R_k - R_{k-1}) P_k,
//     no interpolation).
//   - Detection AP (pr_from_ranked + ap_coco101 / ap_all_points): COCO's 101-point interpolated
//     precision and the VOC2010+ all-point interpolation, for the detection evaluation.
//
// Degenerate inputs are refused with a ValueError (AUROC needs both classes), except where the
// definition has an obvious value (empty detection list: AP 0).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sx::metrics {

// ---- ROC ------------------------------------------------------------------------------------
struct RocCurve {
  std::vector<double> fpr, tpr, thresholds;  // same length; thresholds[0] = +inf
};
// labels: 0 or 1 (anything else is refused). Throws unless both classes are present.
RocCurve roc_curve(const std::vector<double>& scores, const std::vector<int>& labels);
double roc_auc(const std::vector<double>& scores, const std::vector<int>& labels);

// Percentile bootstrap confidence interval of the AUROC: `samples` resamples of the n pairs with
// replacement, drawn with the counter-based generator (tensor/random_math.h) from `seed`, so the
// interval is the same on every machine. Resamples holding only one class are redrawn (counted in
// `skipped`). lo/hi are the (1-level)/2 and (1+level)/2 percentiles with linear interpolation
// (numpy.percentile's default).
struct BootstrapCI {
  double estimate = 0, lo = 0, hi = 0, level = 0.95;
  int64_t samples = 0, skipped = 0;
};
BootstrapCI roc_auc_bootstrap(const std::vector<double>& scores, const std::vector<int>& labels,
                              int64_t samples = 10000, uint64_t seed = 0, double level = 0.95);

// numpy.percentile(values, q) with linear interpolation; q in [0, 100]. values need not be sorted.
double percentile(std::vector<double> values, double q);

// ---- threshold metrics ----------------------------------------------------------------------
struct Confusion {
  int64_t tp = 0, fp = 0, tn = 0, fn = 0;
};
Confusion confusion_at(const std::vector<double>& scores, const std::vector<int>& labels, double threshold);

struct BinaryMetrics {
  double threshold = 0;
  Confusion cm;
  double sensitivity = 0;  // recall of positives, tp / (tp + fn); 0 when there are no positives
  double specificity = 0;  // tn / (tn + fp); 0 when there are no negatives
  double precision = 0;    // tp / (tp + fp); 0 when nothing is predicted positive
  double f1 = 0;           // 2 tp / (2 tp + fp + fn); 0 when that is 0/0
  double accuracy = 0;
};
BinaryMetrics binary_metrics_at(const std::vector<double>& scores, const std::vector<int>& labels,
                                double threshold);

// The threshold maximising Youden's J = sensitivity + specificity - 1 = tpr - fpr over the ROC
// thresholds (the +inf point excluded); on ties the highest threshold (the first, as np.argmax).
double youden_threshold(const std::vector<double>& scores, const std::vector<int>& labels);

// ---- precision-recall -----------------------------------------------------------------------
struct PrCurve {
  // sklearn's layout: precision/recall have one more entry than thresholds; thresholds ascend,
  // recall descends, and the curve ends at (recall 0, precision 1).
  std::vector<double> precision, recall, thresholds;
};
PrCurve precision_recall_curve(const std::vector<double>& scores, const std::vector<int>& labels);
// sklearn.metrics.average_precision_score. Throws when there is no positive.
double average_precision(const std::vector<double>& scores, const std::vector<int>& labels);

// Detection-style precision/recall: detections ranked by score (descending, stable on ties, as
// COCO's mergesort), each either a true positive or not, against num_gt ground-truth objects.
// Returns cumulative precision/recall after each detection, in rank order.
struct RankedPr {
  std::vector<double> precision, recall, scores;  // one entry per detection, in rank order
};
RankedPr pr_from_ranked(const std::vector<double>& scores, const std::vector<int>& is_tp, int64_t num_gt);
// COCO: precision made monotone (max over higher recall), sampled at recall 0, 0.01, ..., 1
// (first detection with recall >= r; 0 where none), averaged. num_gt == 0 has no AP: the caller
// decides (COCO reports -1); here it is refused.
double ap_coco101(const RankedPr& pr);
// VOC2010+/all-point: area under the monotone precision envelope.
double ap_all_points(const RankedPr& pr);
// The curve both APs above are computed from, as a polyline to draw: the interpolated precision
// envelope p(r) = max{precision of a detection with recall >= r} as a step function of recall.
// Every segment is horizontal (precision held over a recall interval) or vertical (a drop at a
// recall reached by a true positive); it starts at recall 0 and ends with a drop to precision 0
// at the highest recall reached (beyond it COCO counts precision 0). The area under it is
// ap_all_points(pr); its height at recall k/100 (right-continuous side) is what ap_coco101
// averages. Empty input gives an empty curve.
struct StepCurve {
  std::vector<double> recall, precision;  // polyline vertices, in drawing order
};
StepCurve precision_envelope_steps(const RankedPr& pr);

// ---- calibration ------------------------------------------------------------------------------
// Whether p_abnormal means what it says: of the images given p ~ 0.3, about 30% should be abnormal.
// Binary reliability (torchmetrics' BinaryCalibrationError, norm "l1"): n_bins equal-width bins of
// the positive-class probability, bin k = [k/n, (k+1)/n) (p = 1 in the last); in each bin the mean
// predicted probability ("confidence") and the observed fraction of positives. The expected
// calibration error is sum_k (count_k / N) |confidence_k - fraction_k| (0 = calibrated).
struct CalibrationBin {
  double lo = 0, hi = 0;           // bin edges
  int64_t count = 0;
  double mean_prob = 0;            // mean predicted probability in the bin (0 when empty)
  double frac_positive = 0;        // observed fraction of positives (0 when empty)
};
struct Calibration {
  std::vector<CalibrationBin> bins;
  double ece = 0;                  // expected calibration error
  double max_gap = 0;              // maximum calibration error over non-empty bins
};
Calibration calibration(const std::vector<double>& probs, const std::vector<int>& labels, int n_bins = 15);

// Temperature scaling (Guo et al., 2017), the binary case: the T > 0 minimising the mean BCE of
// sigmoid(logit / T) against the labels. T > 1 softens over-confident logits; T only rescales,
// so the ranking (AUROC) is unchanged. The loss is convex in 1/T; solved by a bracketed
// golden-section search over log T in [1/100, 100] to 1e-6 relative. Throws on empty input or
// non-finite logits.
double fit_temperature(const std::vector<double>& logits, const std::vector<int>& labels);

// A probability printed with enough digits to tell it from its neighbours near 0 and 1: "0.2800",
// "0.99996", "0.9999998" (never "1.0000" for a value below 1 nor "0.0000" above 0).
std::string format_probability(double p);

// ---- JSON helper ----------------------------------------------------------------------------
// A JSON number as nlohmann-json writes it: the shortest text that reads back to the same double
// ("0.5", "0.1", "1.0"), NaN/Inf as null. Also used for the numbers of the detector's history.csv.
std::string json_number(double v);

}  // namespace sx::metrics
