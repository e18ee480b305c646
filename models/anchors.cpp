// AnchorGenerator and match_boxes: argument checks, then kernels/anchors and kernels/matcher.
#include "models/anchors.h"

namespace sx::models {

int64_t AnchorGenerator::num_anchors_per_location(int64_t level) const {
  SX_CHECK(level >= 0 && level < num_levels(), "AnchorGenerator: level ", level, " out of range [0, ",
           num_levels(), ")");
  return static_cast<int64_t>(sizes[level].size() * ratios(level).size());
}

Tensor AnchorGenerator::cell_anchors(int64_t level) const {
  const std::vector<double>& r = ratios(level);  // checks the level and the tuple counts
  return kernels::base_anchors(sizes[level], r);
}

std::vector<Tensor> AnchorGenerator::grid_anchors(const std::vector<std::pair<int64_t, int64_t>>& grid_sizes,
                                                  std::pair<int64_t, int64_t> image_size,
                                                  Device device) const {
  SX_CHECK(static_cast<int64_t>(grid_sizes.size()) == num_levels(), "AnchorGenerator: ", grid_sizes.size(),
           " feature maps but anchors for ", num_levels(), " levels");
  for (size_t l = 0; l < grid_sizes.size(); ++l)
    SX_CHECK(grid_sizes[l].first > 0 && grid_sizes[l].second > 0, "AnchorGenerator: empty feature map ",
             grid_sizes[l].first, "x", grid_sizes[l].second, " at level ", l);
  return kernels::generate_anchor_levels(*this, image_size, grid_sizes, device);
}

AnchorGenerator retinanet_anchors(double base_size, int64_t num_levels, std::vector<double> ratios) {
  AnchorGenerator g;
  static_cast<kernels::AnchorConfig&>(g) = kernels::retinanet_anchor_config(base_size, num_levels, std::move(ratios));
  return g;
}

AnchorGenerator retinanet_default_anchors() { return retinanet_anchors(32, 5, {0.5, 1.0, 2.0}); }

Tensor match_boxes(const Tensor& iou, double high, double low, bool allow_low_quality_matches) {
  SX_CHECK(iou.dim() == 2, "match_boxes: IoU matrix must be [G, A], got ", shape_str(iou.shape()));
  SX_CHECK(low <= high, "match_boxes: low threshold ", low, " > high threshold ", high);
  return kernels::match_anchors(iou, kernels::MatcherParams{high, low, allow_low_quality_matches});
}

}  // namespace sx::models
