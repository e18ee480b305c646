// Argument checks and device dispatch for matcher.h.
#include "kernels/matcher/matcher.h"

#include "kernels/box_ops/checks.h"
#include "tensor/dispatch.h"

namespace sx::kernels {

Tensor match_anchors(const Tensor& quality, const MatcherParams& p) {
  detail::check_float(quality, "match_anchors", "quality");
  SX_CHECK(quality.dim() == 2, "match_anchors: quality must be [G, A], got ", shape_str(quality.shape()));
  SX_CHECK(p.low_threshold <= p.high_threshold, "match_anchors: low_threshold ", p.low_threshold,
           " > high_threshold ", p.high_threshold);
  Tensor q = quality.contiguous();
  return backend<MatcherBackend>(q.device(), "match_anchors").match_anchors(q, p);
}

}  // namespace sx::kernels
