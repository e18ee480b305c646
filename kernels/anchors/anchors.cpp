// Anchor generation: base anchors on the host (a handful of numbers), grids on the device.
#include "kernels/anchors/anchors.h"

#include <cmath>

#include "kernels/anchors/anchors_math.h"
#include "tensor/dispatch.h"

namespace sx::kernels {

const std::vector<double>& AnchorConfig::ratios(int64_t level) const {
  SX_CHECK(aspect_ratios.size() == 1 || aspect_ratios.size() == sizes.size(), "anchors: ", sizes.size(),
           " size tuples but ", aspect_ratios.size(), " aspect-ratio tuples");
  SX_CHECK(level >= 0 && level < num_levels(), "anchors: level ", level, " out of range [0, ", num_levels(), ")");
  return aspect_ratios.size() == 1 ? aspect_ratios[0] : aspect_ratios[level];
}

AnchorConfig retinanet_anchor_config(double base_size, int64_t num_levels, std::vector<double> ratios) {
  AnchorConfig c;
  for (int64_t l = 0; l < num_levels; ++l) {
    const double x = base_size * std::pow(2.0, static_cast<double>(l));
    c.sizes.push_back({x, std::floor(x * std::pow(2.0, 1.0 / 3.0)), std::floor(x * std::pow(2.0, 2.0 / 3.0))});
  }
  c.aspect_ratios = {std::move(ratios)};
  return c;
}

AnchorConfig fasterrcnn_anchor_config(double base_size, int64_t num_levels, std::vector<double> ratios) {
  SX_CHECK(base_size > 0 && num_levels >= 1, "faster_rcnn_anchors: bad base size ", base_size, " or level count ",
           num_levels);
  AnchorConfig c;
  double s = base_size;
  for (int64_t l = 0; l < num_levels; ++l, s *= 2) {
    c.sizes.push_back({s});
    c.aspect_ratios.push_back(ratios);
  }
  return c;
}

Tensor base_anchors(const std::vector<double>& sizes, const std::vector<double>& ratios) {
  SX_CHECK(!sizes.empty() && !ratios.empty(), "base_anchors: sizes and aspect ratios must be non-empty");
  const int64_t S = static_cast<int64_t>(sizes.size()), R = static_cast<int64_t>(ratios.size());
  Tensor out = Tensor::empty({R * S, 4}, DType::Float32);
  float* o = out.data<float>();
  for (int64_t r = 0; r < R; ++r) {
    SX_CHECK(ratios[r] > 0, "base_anchors: aspect ratios must be > 0, got ", ratios[r]);
    // float32 throughout, as torchvision (sizes and ratios become float32 tensors).
    const float hr = std::sqrt(static_cast<float>(ratios[r]));
    const float wr = 1.0f / hr;
    for (int64_t s = 0; s < S; ++s) {
      SX_CHECK(sizes[s] > 0, "base_anchors: anchor sizes must be > 0, got ", sizes[s]);
      const float sz = static_cast<float>(sizes[s]);
      const float w = wr * sz, h = hr * sz;
      float* a = o + 4 * (r * S + s);
      a[0] = std::nearbyint(-w / 2.0f);
      a[1] = std::nearbyint(-h / 2.0f);
      a[2] = std::nearbyint(w / 2.0f);
      a[3] = std::nearbyint(h / 2.0f);
    }
  }
  return out;
}

Tensor grid_anchors(const Tensor& base, int64_t grid_h, int64_t grid_w, int64_t stride_h,
                    int64_t stride_w, Device device) {
  SX_CHECK(base.dim() == 2 && base.size(1) == 4 && base.dtype() == DType::Float32 && base.device().is_cpu(),
           "grid_anchors: base must be a float32 CPU [A, 4] tensor, got ", shape_str(base.shape()));
  SX_CHECK(grid_h >= 0 && grid_w >= 0 && stride_h >= 0 && stride_w >= 0,
           "grid_anchors: negative grid or stride (", grid_h, "x", grid_w, ", stride ", stride_h, "x",
           stride_w, ")");
  Tensor b = base.contiguous();
  return backend<AnchorsBackend>(device, "grid_anchors")
      .grid_anchors(b, grid_h, grid_w, stride_h, stride_w, device);
}

std::vector<int64_t> anchors_per_location(const AnchorConfig& c) {
  std::vector<int64_t> n;
  for (int64_t l = 0; l < c.num_levels(); ++l) n.push_back(static_cast<int64_t>(c.sizes[l].size() * c.ratios(l).size()));
  return n;
}

std::vector<Tensor> generate_anchor_levels(const AnchorConfig& config, std::pair<int64_t, int64_t> image_size,
                                           const std::vector<std::pair<int64_t, int64_t>>& feature_sizes,
                                           Device device) {
  SX_CHECK(config.num_levels() == static_cast<int64_t>(feature_sizes.size()), "generate_anchors: ",
           config.sizes.size(), " anchor levels but ", feature_sizes.size(), " feature maps");
  std::vector<Tensor> levels;
  for (int64_t l = 0; l < config.num_levels(); ++l) {
    const auto [gh, gw] = feature_sizes[l];
    SX_CHECK(gh >= 0 && gw >= 0, "generate_anchors: negative feature size ", gh, "x", gw);
    const int64_t sh = gh > 0 ? image_size.first / gh : 0, sw = gw > 0 ? image_size.second / gw : 0;
    levels.push_back(grid_anchors(base_anchors(config.sizes[l], config.ratios(l)), gh, gw, sh, sw, device));
  }
  return levels;
}

Tensor generate_anchors(const AnchorConfig& config, std::pair<int64_t, int64_t> image_size,
                        const std::vector<std::pair<int64_t, int64_t>>& feature_sizes, Device device) {
  const std::vector<Tensor> levels = generate_anchor_levels(config, image_size, feature_sizes, device);
  int64_t total = 0;
  for (const Tensor& t : levels) total += t.size(0);
  Tensor out = Tensor::empty({total, 4}, DType::Float32, device);
  int64_t row = 0;
  for (const Tensor& t : levels) {
    if (t.size(0) > 0) out.narrow(0, row, t.size(0)).copy_(t);
    row += t.size(0);
  }
  return out;
}

namespace cpu {
Tensor grid_anchors(const Tensor& base, int64_t grid_h, int64_t grid_w, int64_t stride_h, int64_t stride_w,
                    Device /*device: the CPU*/) {
  const int64_t A = base.size(0), n = grid_h * grid_w * A;
  Tensor out = Tensor::empty({n, 4}, DType::Float32);
  const float* b = base.data<float>();
  float* o = out.data<float>();
  for (int64_t i = 0; i < n; ++i) anchormath::anchor(i, b, A, grid_w, stride_h, stride_w, o + 4 * i);
  return out;
}
}  // namespace cpu

const AnchorsBackend AnchorsBackend::cpu = {cpu::grid_anchors};
}  // namespace sx::kernels
