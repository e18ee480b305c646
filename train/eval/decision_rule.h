// The paper's decision rule joining the two stages (VinDr-SpineXR, released inference script):
// the classifier's abnormal probability p gates the detector's boxes.
//
//   p >= classifier_threshold (c, 0.28 in the release)  -> keep every detected box
//   p <  c                                              -> keep only boxes with score >= box_threshold (0.5)
//
// So a confident "normal" classifier suppresses the detector's weak boxes (they would be false
// positives on a normal image) without hiding strong findings.
#pragma once
#include <vector>

namespace sx::eval {

struct DecisionRule {
  double classifier_threshold = 0.28;  // c
  double box_threshold = 0.5;          // score a box needs when p < c
  bool enabled = true;                 // false: keep every box (the detector alone)

  // Whether a box with this score survives for an image with abnormal probability p.
  bool keep(double p_abnormal, double box_score) const {
    if (!enabled || p_abnormal >= classifier_threshold) return true;
    return box_score >= box_threshold;
  }
  // Indices (ascending) of the scores that survive.
  std::vector<int> kept_indices(double p_abnormal, const std::vector<double>& box_scores) const;
};

}  // namespace sx::eval
