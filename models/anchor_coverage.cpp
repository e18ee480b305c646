// Anchor coverage: see anchor_coverage.h (why 2 x 2 grid points per anchor shape give the exact best).
#include "models/anchor_coverage.h"

#include <algorithm>
#include <cmath>

#include "kernels/box_ops/box_ops_math.h"
#include "tensor/errors.h"

namespace sx::models {

AnchorLayout detector_anchor_layout(const std::string& model, double base) {
  SX_CHECK(base >= 0, "anchor base must be >= 0, got ", base);
  const double b = base > 0 ? base : 32.0;
  AnchorLayout L;
  if (model == "retinanet") {
    L.anchors = kernels::retinanet_anchor_config(b, 5);
    L.first_level = 3;
  } else if (model == "faster_rcnn" || model == "faster-rcnn" || model == "frcnn") {
    L.anchors = kernels::fasterrcnn_anchor_config(b, 5);
    L.first_level = 2;
  } else {
    SX_THROW(ValueError, "unknown detector '", model, "' (expected retinanet or faster_rcnn)");
  }
  return L;
}

std::vector<std::pair<int64_t, int64_t>> feature_sizes(const AnchorLayout& layout,
                                                        std::pair<int64_t, int64_t> image_size) {
  SX_CHECK(image_size.first > 0 && image_size.second > 0, "anchor coverage: empty image size ", image_size.first,
           "x", image_size.second);
  auto halve = [](int64_t n, int times) {
    for (int k = 0; k < times; ++k) n = (n + 1) / 2;
    return n;
  };
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t l = 0; l < layout.num_levels(); ++l) {
    const int k = layout.first_level + static_cast<int>(l);
    out.push_back({halve(image_size.first, k), halve(image_size.second, k)});
  }
  return out;
}

namespace {

// One level's anchor shapes (the cell anchors, float32 as the generator makes them) and its grid.
struct LevelGrid {
  std::vector<std::array<float, 4>> cells;
  int64_t gh = 0, gw = 0, sh = 0, sw = 0;
};

std::vector<LevelGrid> level_grids(const AnchorLayout& layout, std::pair<int64_t, int64_t> image_size) {
  const auto fs = feature_sizes(layout, image_size);
  std::vector<LevelGrid> grids;
  for (int64_t l = 0; l < layout.num_levels(); ++l) {
    LevelGrid g;
    const Tensor base = kernels::base_anchors(layout.anchors.sizes[l], layout.anchors.ratios(l)).contiguous();
    const float* p = base.data<float>();
    for (int64_t a = 0; a < base.size(0); ++a) g.cells.push_back({p[4 * a], p[4 * a + 1], p[4 * a + 2], p[4 * a + 3]});
    g.gh = fs[l].first;
    g.gw = fs[l].second;
    g.sh = image_size.first / g.gh;  // the generator's stride: padded size // feature size
    g.sw = image_size.second / g.gw;
    grids.push_back(std::move(g));
  }
  return grids;
}

// The two grid indices around coordinate c on a grid of n points spaced by stride (clamped).
std::array<int64_t, 2> around(float c, int64_t stride, int64_t n) {
  const int64_t lo = std::clamp<int64_t>(static_cast<int64_t>(std::floor(c / static_cast<float>(stride))), 0, n - 1);
  return {lo, std::min<int64_t>(lo + 1, n - 1)};
}

// Best IoU of one box (area `area_b`, as box_iou computes it) over one level's anchors.
float best_on_level(const std::array<float, 4>& b, float area_b, const LevelGrid& g) {
  const float cx = (b[0] + b[2]) / 2, cy = (b[1] + b[3]) / 2;
  const auto xs = around(cx, g.sw, g.gw), ys = around(cy, g.sh, g.gh);
  float best = 0;
  for (const auto& c : g.cells) {
    for (int64_t yi : ys) {
      for (int64_t xi : xs) {
        // The generator's arithmetic: float(int32(x * stride)) + cell (anchors_math.h).
        const float sx = static_cast<float>(static_cast<int32_t>(xi * g.sw));
        const float sy = static_cast<float>(static_cast<int32_t>(yi * g.sh));
        const float a[4] = {sx + c[0], sy + c[1], sx + c[2], sy + c[3]};
        const float area_a = kernels::boxmath::area(a);
        // box_iou(gt, anchors): the ground truth first, as the models call it.
        const float v = kernels::boxmath::iou_c(b[0], b[1], b[2], b[3], area_b, a[0], a[1], a[2], a[3], area_a);
        if (v > best) best = v;
      }
    }
  }
  return best;
}

}  // namespace

std::vector<std::vector<float>> best_anchor_iou(const AnchorLayout& layout, std::pair<int64_t, int64_t> image_size,
                                                const std::vector<std::array<float, 4>>& boxes) {
  const std::vector<LevelGrid> grids = level_grids(layout, image_size);
  std::vector<std::vector<float>> out(boxes.size(), std::vector<float>(grids.size(), 0.0f));
  for (size_t i = 0; i < boxes.size(); ++i) {
    const auto& b = boxes[i];
    SX_CHECK(std::isfinite(b[0]) && std::isfinite(b[1]) && std::isfinite(b[2]) && std::isfinite(b[3]) &&
                 b[2] >= b[0] && b[3] >= b[1],
             "anchor coverage: bad box (", b[0], ", ", b[1], ", ", b[2], ", ", b[3], ")");
    const float area_b = kernels::boxmath::area(b.data());
    for (size_t l = 0; l < grids.size(); ++l) out[i][l] = best_on_level(b, area_b, grids[l]);
  }
  return out;
}

AnchorCoverage summarize_coverage(const std::vector<std::vector<float>>& best_iou, int64_t num_levels) {
  AnchorCoverage c;
  c.boxes = static_cast<int64_t>(best_iou.size());
  c.level_at50.assign(num_levels, 0.0);
  c.level_at40.assign(num_levels, 0.0);
  c.best_level_share.assign(num_levels, 0.0);
  if (best_iou.empty()) return c;
  std::vector<float> best(best_iou.size());
  for (size_t i = 0; i < best_iou.size(); ++i) {
    const auto& r = best_iou[i];
    SX_CHECK(static_cast<int64_t>(r.size()) == num_levels, "anchor coverage: ", r.size(), " levels for box ", i,
             ", expected ", num_levels);
    int64_t arg = 0;
    for (int64_t l = 0; l < num_levels; ++l) {
      c.level_at50[l] += r[l] >= 0.5f;
      c.level_at40[l] += r[l] >= 0.4f;
      if (r[l] > r[arg]) arg = l;
    }
    c.best_level_share[arg] += 1;
    best[i] = r[arg];
    c.at50 += best[i] >= 0.5f;
    c.at40 += best[i] >= 0.4f;
  }
  const double n = static_cast<double>(c.boxes);
  for (int64_t l = 0; l < num_levels; ++l) {
    c.level_at50[l] /= n;
    c.level_at40[l] /= n;
    c.best_level_share[l] /= n;
  }
  c.at50 /= n;
  c.at40 /= n;
  std::sort(best.begin(), best.end());
  const size_t m = best.size() / 2;
  c.median_best_iou = best.size() % 2 ? best[m] : 0.5 * (static_cast<double>(best[m - 1]) + best[m]);
  return c;
}

}  // namespace sx::models
