// Anchor boxes over FPN levels, torchvision.models.detection.anchor_utils.AnchorGenerator semantics.
//
// Base anchors of a level (centred on the origin), for aspect ratios r (= h / w) and sizes s:
//   h_ratio = sqrt(r), w_ratio = 1 / h_ratio, w = w_ratio * s, h = h_ratio * s,
//   anchor = round((-w, -h, w, h) / 2)          (float32, round half to even, like torch.round)
// ordered ratio-major: index = ratio_index * num_sizes + size_index.
// Grid anchors of a level with feature size (gh, gw) and stride (sh, sw) = image_size // feature_size
// (integer division of the padded batch size): anchor (y, x, a) = base[a] + (x*sw, y*sh, x*sw, y*sh),
// ordered location-major (y, then x, then a). Levels are concatenated finest first: [sum_l gh*gw*A, 4].
// An empty feature map contributes no anchors. The same anchors for every image of a batch.
// The models' AnchorGenerator (models/anchors.h) is a thin wrapper over these functions.
#pragma once
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace sx::kernels {

struct AnchorConfig {
  std::vector<std::vector<double>> sizes;          // per level
  std::vector<std::vector<double>> aspect_ratios;  // per level (h / w); a single tuple serves every level
  int64_t num_levels() const { return static_cast<int64_t>(sizes.size()); }
  // The aspect ratios of a level (the single tuple when there is one; checks the counts agree).
  const std::vector<double>& ratios(int64_t level) const;
};

// RetinaNet's default (base_size 32, 5 levels): sizes (x, int(x 2^(1/3)), int(x 2^(2/3))) for
// x = base_size * 2^l (torchvision truncates to int: 32 -> 32, 40, 50), one ratio tuple for every
// level. Another base size scales the anchors (e.g. 16 for small lesions at small image sizes).
AnchorConfig retinanet_anchor_config(double base_size = 32, int64_t num_levels = 5,
                                     std::vector<double> ratios = {0.5, 1.0, 2.0});
// Faster R-CNN FPN default: one size per level {32}, {64}, ..., {512} (base_size doubled per
// level), the ratio tuple repeated for every level.
AnchorConfig fasterrcnn_anchor_config(double base_size = 32, int64_t num_levels = 5,
                                      std::vector<double> ratios = {0.5, 1.0, 2.0});

// Base anchors of one level: [A, 4] float32 on the CPU, A = ratios * sizes (sizes and ratios > 0).
Tensor base_anchors(const std::vector<double>& sizes, const std::vector<double>& aspect_ratios);
// Anchors of one level from its base anchors (CPU [A, 4]), on `device`.
Tensor grid_anchors(const Tensor& base, int64_t grid_h, int64_t grid_w, int64_t stride_h,
                    int64_t stride_w, Device device = Device::cpu());
// Each level's anchors [gh*gw*A_l, 4] on `device`: image_size (h, w) of the padded batch,
// feature_sizes (h, w) per level.
std::vector<Tensor> generate_anchor_levels(const AnchorConfig& config, std::pair<int64_t, int64_t> image_size,
                                           const std::vector<std::pair<int64_t, int64_t>>& feature_sizes,
                                           Device device = Device::cpu());
// All levels concatenated, finest first.
Tensor generate_anchors(const AnchorConfig& config, std::pair<int64_t, int64_t> image_size,
                        const std::vector<std::pair<int64_t, int64_t>>& feature_sizes,
                        Device device = Device::cpu());
// Number of anchors per location of each level.
std::vector<int64_t> anchors_per_location(const AnchorConfig& config);

// The backend functions (tensor/dispatch.h): grid anchors from a checked, contiguous CPU base,
// made on `device`.
struct AnchorsBackend {
  Tensor (*grid_anchors)(const Tensor& base, int64_t grid_h, int64_t grid_w, int64_t stride_h,
                         int64_t stride_w, Device device);
  static const AnchorsBackend cpu, cuda;
};

}  // namespace sx::kernels
