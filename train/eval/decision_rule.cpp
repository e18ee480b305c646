#include "train/eval/decision_rule.h"

#include <cmath>

#include "tensor/errors.h"

namespace sx::eval {

std::vector<int> DecisionRule::kept_indices(double p_abnormal, const std::vector<double>& box_scores) const {
  SX_CHECK(std::isfinite(p_abnormal), "decision rule: abnormal probability must be finite, got ", p_abnormal);
  std::vector<int> kept;
  for (size_t i = 0; i < box_scores.size(); ++i)
    if (keep(p_abnormal, box_scores[i])) kept.push_back(static_cast<int>(i));
  return kept;
}

}  // namespace sx::eval
