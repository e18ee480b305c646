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
#pragma once
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace sx::kernels {

struct AnchorConfig {
  std::vector<std::vector<double>> sizes;          // per level
  std::vector<std::vector<double>> aspect_ratios;  // per level (h / w)
};

// RetinaNet's default: sizes x * {2^0, 2^(1/3), 2^(2/3)} for x in {32, 64, 128, 256, 512},
// ratios {0.5, 1, 2} on every level.
AnchorConfig retinanet_anchor_config();
// Faster R-CNN FPN default: one size per level {32}, {64}, ..., {512}, ratios {0.5, 1, 2}.
AnchorConfig fasterrcnn_anchor_config();

// Base anchors of one level: [A, 4] float32 on the CPU, A = ratios * sizes.
Tensor base_anchors(const std::vector<double>& sizes, const std::vector<double>& aspect_ratios);
// Anchors of one level from its base anchors (CPU [A, 4]), on `device`.
Tensor grid_anchors(const Tensor& base, int64_t grid_h, int64_t grid_w, int64_t stride_h,
                    int64_t stride_w, Device device = Device::cpu());
// All levels: image_size (h, w) of the padded batch, feature_sizes (h, w) per level.
Tensor generate_anchors(const AnchorConfig& config, std::pair<int64_t, int64_t> image_size,
                        const std::vector<std::pair<int64_t, int64_t>>& feature_sizes,
                        Device device = Device::cpu());
// Number of anchors per location of each level.
std::vector<int64_t> anchors_per_location(const AnchorConfig& config);

namespace cpu {
Tensor grid_anchors(const Tensor& base, int64_t grid_h, int64_t grid_w, int64_t stride_h, int64_t stride_w);
}
namespace cuda {
Tensor grid_anchors(const Tensor& base, int64_t grid_h, int64_t grid_w, int64_t stride_h, int64_t stride_w,
                    Device device);
}

}  // namespace sx::kernels
