// CPU matcher over matcher_math.h: one pass over the columns (anchors), one over the rows (ground
// truths) when low-quality matches are allowed, then one over the anchors to restore them.
#include <vector>

#include "kernels/matcher/matcher.h"
#include "kernels/matcher/matcher_math.h"

namespace sx::kernels::cpu {
namespace {

template <class T>
void match_impl(const T* q, int64_t G, int64_t A, const MatcherParams& p, int64_t* out) {
  if (G == 0) {
    for (int64_t a = 0; a < A; ++a) out[a] = kMatchBelowLow;
    return;
  }
  std::vector<int64_t> all(A);
  for (int64_t a = 0; a < A; ++a) {
    T best;
    matchmath::column_max(q, G, A, a, &best, &all[a]);
    out[a] = matchmath::classify(best, all[a], p.low_threshold, p.high_threshold);
  }
  if (!p.allow_low_quality_matches) return;
  std::vector<T> hq(G);
  for (int64_t g = 0; g < G; ++g) {
    T b = q[g * A];
    for (int64_t a = 1; a < A; ++a)
      if (matchmath::replaces(q[g * A + a], b)) b = q[g * A + a];
    hq[g] = b;
  }
  for (int64_t a = 0; a < A; ++a)
    if (matchmath::is_low_quality_best(q, hq.data(), G, A, a)) out[a] = all[a];
}

}  // namespace

Tensor match_anchors(const Tensor& quality, const MatcherParams& p) {
  const int64_t G = quality.size(0), A = quality.size(1);
  Tensor out = Tensor::empty({A}, DType::Int64);
  if (A == 0) return out;
  SX_DISPATCH_FLOAT(quality.dtype(), "match_anchors", [&] {
    match_impl(quality.data<scalar_t>(), G, A, p, out.data<int64_t>());
  });
  return out;
}

}  // namespace sx::kernels::cpu

namespace sx::kernels {
const MatcherBackend MatcherBackend::cpu = {cpu::match_anchors};
}  // namespace sx::kernels
