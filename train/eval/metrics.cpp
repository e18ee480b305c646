// Metrics: see metrics.h for the conventions (they follow scikit-learn and pycocotools).
//
// AUROC is computed from score groups rather than from the curve: sort once by score (descending),
// group equal scores, and for every negative count the positives ranked strictly above it plus one
// half of those tied with it. That sum divided by P*N is the Mann-Whitney estimate of
// P(score_pos > score_neg) + 0.5 P(tie), which equals the trapezoidal area under the ROC curve
// with one diagonal segment per tied group. The sum is exact in integers (halves counted as
// doubled integers), so the result is the exactly rounded quotient.
//
// The bootstrap reuses the groups: a resample is a vector of multiplicities over the original
// samples, so each resample costs O(n) (n draws + one walk over the groups) instead of a sort.
#include "train/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <numeric>

#include <nlohmann/json.hpp>

#include "io/json.h"
#include "tensor/errors.h"
#include "tensor/random_math.h"

namespace sx::metrics {
namespace {

void check_inputs(const char* what, const std::vector<double>& scores, const std::vector<int>& labels) {
  SX_CHECK(scores.size() == labels.size(), what, ": scores and labels differ in length (", scores.size(),
           " vs ", labels.size(), ")");
  for (size_t i = 0; i < labels.size(); ++i)
    SX_CHECK(labels[i] == 0 || labels[i] == 1, what, ": labels must be 0 or 1, got ", labels[i],
             " at index ", i);
  for (size_t i = 0; i < scores.size(); ++i)
    SX_CHECK(!std::isnan(scores[i]), what, ": score ", i, " is NaN");
}

// Indices sorted by score, descending; stable so equal scores keep input order.
std::vector<int64_t> order_desc(const std::vector<double>& scores) {
  std::vector<int64_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  return idx;
}

// Groups of equal scores in descending order: group_of[i] for every sample i, and the count.
struct Groups {
  std::vector<int64_t> group_of;
  int64_t count = 0;
};
Groups make_groups(const std::vector<double>& scores) {
  Groups g;
  g.group_of.assign(scores.size(), 0);
  auto idx = order_desc(scores);
  for (size_t k = 0; k < idx.size(); ++k) {
    if (k > 0 && scores[idx[k]] != scores[idx[k - 1]]) ++g.count;
    g.group_of[idx[k]] = g.count;
  }
  if (!idx.empty()) ++g.count;
  return g;
}

// AUROC from per-group weighted positive/negative counts (groups in descending score order).
// Returns NaN when one class is absent.
double auc_from_groups(const std::vector<int64_t>& pos, const std::vector<int64_t>& neg) {
  int64_t P = 0, N = 0;
  // twice the Mann-Whitney U, to keep the half-credit of ties integral
  long double u2 = 0;
  int64_t cum_pos = 0;
  for (size_t g = 0; g < pos.size(); ++g) {
    u2 += static_cast<long double>(neg[g]) * static_cast<long double>(2 * cum_pos + pos[g]);
    cum_pos += pos[g];
    P += pos[g];
    N += neg[g];
  }
  if (P == 0 || N == 0) return std::numeric_limits<double>::quiet_NaN();
  return static_cast<double>(u2 / (2.0L * static_cast<long double>(P) * static_cast<long double>(N)));
}

// sklearn's _binary_clf_curve: cumulative tp/fp at each distinct threshold, descending.
void binary_clf_curve(const std::vector<double>& scores, const std::vector<int>& labels,
                      std::vector<double>& fps, std::vector<double>& tps, std::vector<double>& thr) {
  auto idx = order_desc(scores);
  double tp = 0, fp = 0;
  for (size_t k = 0; k < idx.size(); ++k) {
    if (labels[idx[k]]) tp += 1;
    else fp += 1;
    bool last_of_group = (k + 1 == idx.size()) || scores[idx[k + 1]] != scores[idx[k]];
    if (last_of_group) {
      tps.push_back(tp);
      fps.push_back(fp);
      thr.push_back(scores[idx[k]]);
    }
  }
}

}  // namespace

RocCurve roc_curve(const std::vector<double>& scores, const std::vector<int>& labels) {
  check_inputs("roc_curve", scores, labels);
  std::vector<double> fps, tps, thr;
  binary_clf_curve(scores, labels, fps, tps, thr);
  double P = tps.empty() ? 0 : tps.back(), N = fps.empty() ? 0 : fps.back();
  SX_CHECK(P > 0 && N > 0, "roc_curve: needs both classes, got ", P, " positives and ", N, " negatives");
  RocCurve c;
  c.fpr.push_back(0);
  c.tpr.push_back(0);
  c.thresholds.push_back(std::numeric_limits<double>::infinity());
  for (size_t k = 0; k < thr.size(); ++k) {
    c.fpr.push_back(fps[k] / N);
    c.tpr.push_back(tps[k] / P);
    c.thresholds.push_back(thr[k]);
  }
  return c;
}

double roc_auc(const std::vector<double>& scores, const std::vector<int>& labels) {
  check_inputs("roc_auc", scores, labels);
  Groups g = make_groups(scores);
  std::vector<int64_t> pos(g.count, 0), neg(g.count, 0);
  for (size_t i = 0; i < labels.size(); ++i) (labels[i] ? pos : neg)[g.group_of[i]]++;
  double auc = auc_from_groups(pos, neg);
  if (std::isnan(auc)) {
    int64_t P = std::accumulate(pos.begin(), pos.end(), int64_t{0});
    SX_THROW(ValueError, "roc_auc: needs both classes, got ", P, " positives and ",
             static_cast<int64_t>(labels.size()) - P, " negatives");
  }
  return auc;
}

double percentile(std::vector<double> values, double q) {
  SX_CHECK(!values.empty(), "percentile: no values");
  SX_CHECK(q >= 0 && q <= 100, "percentile: q must be in [0, 100], got ", q);
  std::sort(values.begin(), values.end());
  double pos = q / 100.0 * static_cast<double>(values.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, values.size() - 1);
  double frac = pos - static_cast<double>(lo);
  // numpy's _lerp: a + (b - a) * t, switched to b - (b - a) * (1 - t) for t >= 0.5
  double a = values[lo], b = values[hi], d = b - a;
  return frac >= 0.5 ? b - d * (1.0 - frac) : a + d * frac;
}

BootstrapCI roc_auc_bootstrap(const std::vector<double>& scores, const std::vector<int>& labels,
                              int64_t samples, uint64_t seed, double level) {
  check_inputs("roc_auc_bootstrap", scores, labels);
  SX_CHECK(samples > 0, "roc_auc_bootstrap: samples must be positive, got ", samples);
  SX_CHECK(level > 0 && level < 1, "roc_auc_bootstrap: level must be in (0, 1), got ", level);
  BootstrapCI ci;
  ci.level = level;
  ci.estimate = roc_auc(scores, labels);  // also refuses a single class
  const int64_t n = static_cast<int64_t>(scores.size());
  Groups g = make_groups(scores);
  std::vector<int64_t> pos(g.count), neg(g.count);
  std::vector<double> aucs;
  aucs.reserve(samples);
  uint64_t counter = 0;
  // A resample with one class is redrawn; cap the redraws so a hopeless input cannot spin forever
  // (with n >= 2 and both classes present, the chance of a one-class resample is at most 2^(1-n)).
  const int64_t max_skips = 100 * samples + 1000;
  while (static_cast<int64_t>(aucs.size()) < samples) {
    std::fill(pos.begin(), pos.end(), 0);
    std::fill(neg.begin(), neg.end(), 0);
    for (int64_t j = 0; j < n; ++j) {
      int64_t i = static_cast<int64_t>(rng::uniform(seed, counter++) * static_cast<double>(n));
      if (i >= n) i = n - 1;
      (labels[i] ? pos : neg)[g.group_of[i]]++;
    }
    double auc = auc_from_groups(pos, neg);
    if (std::isnan(auc)) {
      SX_CHECK(++ci.skipped <= max_skips, "roc_auc_bootstrap: too many one-class resamples (", ci.skipped, ")");
      continue;
    }
    aucs.push_back(auc);
  }
  ci.samples = samples;
  ci.lo = percentile(aucs, 100.0 * (1.0 - level) / 2.0);
  ci.hi = percentile(aucs, 100.0 * (1.0 + level) / 2.0);
  return ci;
}

Confusion confusion_at(const std::vector<double>& scores, const std::vector<int>& labels, double threshold) {
  check_inputs("confusion_at", scores, labels);
  Confusion c;
  for (size_t i = 0; i < scores.size(); ++i) {
    bool pred = scores[i] >= threshold;
    if (labels[i]) (pred ? c.tp : c.fn)++;
    else (pred ? c.fp : c.tn)++;
  }
  return c;
}

BinaryMetrics binary_metrics_at(const std::vector<double>& scores, const std::vector<int>& labels,
                                double threshold) {
  BinaryMetrics m;
  m.threshold = threshold;
  m.cm = confusion_at(scores, labels, threshold);
  auto ratio = [](int64_t a, int64_t b) { return b == 0 ? 0.0 : static_cast<double>(a) / static_cast<double>(b); };
  const auto& c = m.cm;
  m.sensitivity = ratio(c.tp, c.tp + c.fn);
  m.specificity = ratio(c.tn, c.tn + c.fp);
  m.precision = ratio(c.tp, c.tp + c.fp);
  m.f1 = ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn);
  m.accuracy = ratio(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn);
  return m;
}

double youden_threshold(const std::vector<double>& scores, const std::vector<int>& labels) {
  RocCurve c = roc_curve(scores, labels);
  size_t best = 1;
  double best_j = -std::numeric_limits<double>::infinity();
  for (size_t k = 1; k < c.thresholds.size(); ++k) {
    double j = c.tpr[k] - c.fpr[k];
    if (j > best_j) {
      best_j = j;
      best = k;
    }
  }
  return c.thresholds[best];
}

PrCurve precision_recall_curve(const std::vector<double>& scores, const std::vector<int>& labels) {
  check_inputs("precision_recall_curve", scores, labels);
  SX_CHECK(!scores.empty(), "precision_recall_curve: no samples");
  std::vector<double> fps, tps, thr;
  binary_clf_curve(scores, labels, fps, tps, thr);
  const double P = tps.back();
  PrCurve c;
  for (size_t k = thr.size(); k-- > 0;) {
    double ps = tps[k] + fps[k];
    c.precision.push_back(ps > 0 ? tps[k] / ps : 0.0);
    c.recall.push_back(P > 0 ? tps[k] / P : 1.0);  // sklearn: recall 1 everywhere without positives
    c.thresholds.push_back(thr[k]);
  }
  c.precision.push_back(1.0);
  c.recall.push_back(0.0);
  return c;
}

double average_precision(const std::vector<double>& scores, const std::vector<int>& labels) {
  check_inputs("average_precision", scores, labels);
  int64_t P = std::count(labels.begin(), labels.end(), 1);
  SX_CHECK(P > 0, "average_precision: no positive sample among ", labels.size());
  PrCurve c = precision_recall_curve(scores, labels);
  // AP = -sum(diff(recall) * precision[:-1])
  double ap = 0;
  for (size_t k = 0; k + 1 < c.recall.size(); ++k) ap -= (c.recall[k + 1] - c.recall[k]) * c.precision[k];
  return ap;
}

RankedPr pr_from_ranked(const std::vector<double>& scores, const std::vector<int>& is_tp, int64_t num_gt) {
  check_inputs("pr_from_ranked", scores, is_tp);
  SX_CHECK(num_gt >= 0, "pr_from_ranked: num_gt must be >= 0, got ", num_gt);
  int64_t ntp = std::count(is_tp.begin(), is_tp.end(), 1);
  SX_CHECK(ntp <= num_gt, "pr_from_ranked: ", ntp, " true positives but only ", num_gt, " ground-truth objects");
  auto idx = order_desc(scores);
  RankedPr r;
  const double eps = std::numeric_limits<double>::epsilon();  // np.spacing(1), as pycocotools
  double tp = 0, fp = 0;
  for (int64_t i : idx) {
    if (is_tp[i]) tp += 1;
    else fp += 1;
    r.scores.push_back(scores[i]);
    r.recall.push_back(num_gt > 0 ? tp / static_cast<double>(num_gt) : 0.0);
    r.precision.push_back(tp / (tp + fp + eps));
  }
  return r;
}

namespace {
std::vector<double> envelope(const std::vector<double>& precision) {
  std::vector<double> pr = precision;
  for (size_t i = pr.size(); i-- > 1;)
    if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
  return pr;
}
}  // namespace

double ap_coco101(const RankedPr& r) {
  SX_CHECK(r.precision.size() == r.recall.size(), "ap_coco101: precision and recall differ in length");
  if (r.recall.empty()) return 0.0;
  std::vector<double> pr = envelope(r.precision);
  double sum = 0;
  for (int k = 0; k <= 100; ++k) {
    double t = static_cast<double>(k) * (1.0 / 100.0);  // np.linspace(0, 1, 101)
    // np.searchsorted(rc, t, side='left'): first index with rc >= t
    auto it = std::lower_bound(r.recall.begin(), r.recall.end(), t);
    if (it != r.recall.end()) sum += pr[static_cast<size_t>(it - r.recall.begin())];
  }
  return sum / 101.0;
}

double ap_all_points(const RankedPr& r) {
  SX_CHECK(r.precision.size() == r.recall.size(), "ap_all_points: precision and recall differ in length");
  if (r.recall.empty()) return 0.0;
  std::vector<double> mrec{0.0}, mpre{0.0};
  mrec.insert(mrec.end(), r.recall.begin(), r.recall.end());
  mpre.insert(mpre.end(), r.precision.begin(), r.precision.end());
  mrec.push_back(1.0);
  mpre.push_back(0.0);
  mpre = envelope(mpre);
  double ap = 0;
  for (size_t i = 0; i + 1 < mrec.size(); ++i)
    if (mrec[i + 1] != mrec[i]) ap += (mrec[i + 1] - mrec[i]) * mpre[i + 1];
  return ap;
}

StepCurve precision_envelope_steps(const RankedPr& r) {
  SX_CHECK(r.precision.size() == r.recall.size(), "precision_envelope_steps: precision and recall differ in length");
  StepCurve c;
  if (r.recall.empty()) return c;
  const std::vector<double> env = envelope(r.precision);
  // Over (previous recall, this recall] the envelope equals env at the first detection reaching
  // this recall; detections that do not raise the recall (false positives) add no step.
  double prev_recall = 0.0;
  c.recall.push_back(0.0);
  c.precision.push_back(env[0]);
  for (size_t i = 0; i < r.recall.size(); ++i) {
    if (r.recall[i] <= prev_recall) continue;
    if (env[i] != c.precision.back()) {  // a vertical drop at prev_recall
      c.recall.push_back(prev_recall);
      c.precision.push_back(env[i]);
    }
    c.recall.push_back(r.recall[i]);  // held until this recall
    c.precision.push_back(env[i]);
    prev_recall = r.recall[i];
  }
  if (c.precision.back() != 0.0) {  // beyond the highest recall reached: precision 0
    c.recall.push_back(prev_recall);
    c.precision.push_back(0.0);
  }
  return c;
}

Calibration calibration(const std::vector<double>& probs, const std::vector<int>& labels, int n_bins) {
  SX_CHECK(probs.size() == labels.size(), "calibration: ", probs.size(), " probabilities but ", labels.size(),
           " labels");
  SX_CHECK(n_bins >= 1, "calibration: n_bins must be >= 1, got ", n_bins);
  Calibration c;
  c.bins.resize(static_cast<size_t>(n_bins));
  std::vector<double> sum_p(n_bins, 0.0), sum_y(n_bins, 0.0);
  for (size_t i = 0; i < probs.size(); ++i) {
    const double p = probs[i];
    SX_CHECK(p >= 0.0 && p <= 1.0, "calibration: probability ", i, " is ", p, ", outside [0, 1]");
    int k = static_cast<int>(p * n_bins);
    if (k >= n_bins) k = n_bins - 1;  // p = 1
    c.bins[k].count += 1;
    sum_p[k] += p;
    sum_y[k] += labels[i] ? 1.0 : 0.0;
  }
  const double n = static_cast<double>(probs.size());
  for (int k = 0; k < n_bins; ++k) {
    CalibrationBin& b = c.bins[k];
    b.lo = static_cast<double>(k) / n_bins;
    b.hi = static_cast<double>(k + 1) / n_bins;
    if (b.count == 0) continue;
    b.mean_prob = sum_p[k] / static_cast<double>(b.count);
    b.frac_positive = sum_y[k] / static_cast<double>(b.count);
    const double gap = std::fabs(b.mean_prob - b.frac_positive);
    c.ece += static_cast<double>(b.count) / n * gap;
    c.max_gap = std::max(c.max_gap, gap);
  }
  return c;
}

double fit_temperature(const std::vector<double>& logits, const std::vector<int>& labels) {
  SX_CHECK(!logits.empty() && logits.size() == labels.size(), "fit_temperature: ", logits.size(), " logits and ",
           labels.size(), " labels");
  for (size_t i = 0; i < logits.size(); ++i)
    SX_CHECK(std::isfinite(logits[i]), "fit_temperature: logit ", i, " is ", logits[i]);
  // Mean BCE of sigmoid(z / T): softplus(z/T) - y z/T, written stably.
  auto nll = [&](double log_t) {
    const double inv = std::exp(-log_t);
    double s = 0;
    for (size_t i = 0; i < logits.size(); ++i) {
      const double z = logits[i] * inv;
      const double softplus = z > 0 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
      s += softplus - (labels[i] ? z : 0.0);
    }
    return s / static_cast<double>(logits.size());
  };
  // Convex in 1/T, hence unimodal in log T: golden-section search.
  double a = std::log(0.01), b = std::log(100.0);
  const double g = (std::sqrt(5.0) - 1.0) / 2.0;
  double c = b - g * (b - a), d = a + g * (b - a);
  double fc = nll(c), fd = nll(d);
  while (b - a > 1e-6) {
    if (fc <= fd) {
      b = d; d = c; fd = fc;
      c = b - g * (b - a); fc = nll(c);
    } else {
      a = c; c = d; fc = fd;
      d = a + g * (b - a); fd = nll(d);
    }
  }
  return std::exp(0.5 * (a + b));
}

std::string format_probability(double p) {
  char buf[40];
  for (int prec = 4; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*f", prec, p);
    const double back = std::strtod(buf, nullptr);
    const bool hides_one = back == 1.0 && p < 1.0;
    const bool hides_zero = back == 0.0 && p > 0.0;
    // Near 1 (or 0) also show one digit past the first that differs from 9 (or 0): 0.99996, not 0.9999.
    const double dist = std::min(p, 1.0 - p);
    const bool too_coarse = dist > 0 && dist < 1e-3 && std::fabs(back - p) > 0.1 * dist;
    if (!hides_one && !hides_zero && !too_coarse) break;
  }
  return buf;
}

std::string json_number(double v) { return io::Json(v).dump(); }

}  // namespace sx::metrics
