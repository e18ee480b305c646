// CPU NMS: the candidate pipeline (score threshold, stable sort, top-k) and two greedy sweeps that
// make identical decisions. With categories, a box is only ever tested against boxes of its own
// category (no coordinate-offset trick: it breaks on negative coordinates and rounds large ones).
//
// Naive (torchvision's CPU kernel): boxes in score order; each box not yet suppressed is kept and
// then tested against every later box, marking those with IoU > threshold. With few suppressions
// (sparse scenes, the common case after a score threshold) this is ~N^2/2 IoUs: 1.25e9 for 50k boxes.
//
// Fast (uniform grid): the greedy rule can be read the other way round: box j is kept iff no box
// kept before it has IoU > threshold with it. IoU > threshold >= 0 needs a positive overlap, and two
// boxes with a positive overlap both cover some common cell of any grid whose cell index is a
// monotone function of the coordinate. So each kept box is written into the cells it covers
// (coordinates and area stored inline, cache friendly), and a candidate is tested only against the
// kept boxes in its own cells. Cells are about the size of a typical box, so a candidate meets only
// its neighbours: O(N * local density) instead of O(N^2), with the very same IoU arithmetic and
// order, hence the same kept set. It needs finite coordinates and threshold >= 0 (otherwise the
// naive loop runs). Boxes with zero or negative width/height have no positive overlap with anything,
// so they are kept without a test and never stored.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "kernels/nms/nms.h"
#include "kernels/nms/nms_math.h"

namespace sx::kernels::cpu {
namespace {

template <class T>
struct SortedBoxes {
  std::vector<T> x1, y1, x2, y2, area;
  std::vector<int64_t> cat;  // category per box, empty when there is only one
  bool same_cat(int64_t i, int64_t j) const { return cat.empty() || cat[i] == cat[j]; }
};

// Greedy sweep, torchvision's loop. Returns positions (into the sorted arrays) of kept boxes.
template <class T>
std::vector<int64_t> greedy_naive(const SortedBoxes<T>& b, double thr, int64_t max_out) {
  const int64_t n = static_cast<int64_t>(b.x1.size());
  std::vector<uint8_t> suppressed(n, 0);
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < n; ++i) {
    if (suppressed[i]) continue;
    keep.push_back(i);
    if (max_out > 0 && static_cast<int64_t>(keep.size()) >= max_out) break;
    const T ix1 = b.x1[i], iy1 = b.y1[i], ix2 = b.x2[i], iy2 = b.y2[i], ia = b.area[i];
    for (int64_t j = i + 1; j < n; ++j) {
      if (suppressed[j] || !b.same_cat(i, j)) continue;
      if (nmsmath::suppresses(ix1, iy1, ix2, iy2, ia, b.x1[j], b.y1[j], b.x2[j], b.y2[j], b.area[j],
                              thr))
        suppressed[j] = 1;
    }
  }
  return keep;
}

template <class T>
struct Cell {
  std::vector<T> v;         // 5 values per kept box: x1 y1 x2 y2 area
  std::vector<int64_t> c;   // its category (with categories only)
};

template <class T>
std::vector<int64_t> greedy_grid(const SortedBoxes<T>& b, double thr, int64_t max_out) {
  const int64_t n = static_cast<int64_t>(b.x1.size());
  std::vector<int64_t> keep;
  if (n == 0) return keep;
  // Extent and typical size of the "solid" boxes (positive width and height).
  double minx = INFINITY, miny = INFINITY, maxx = -INFINITY, maxy = -INFINITY;
  std::vector<double> sizes;
  sizes.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    if (!(b.x2[i] > b.x1[i] && b.y2[i] > b.y1[i])) continue;
    minx = std::min(minx, double(b.x1[i]));
    miny = std::min(miny, double(b.y1[i]));
    maxx = std::max(maxx, double(b.x2[i]));
    maxy = std::max(maxy, double(b.y2[i]));
    sizes.push_back(std::max(double(b.x2[i]) - b.x1[i], double(b.y2[i]) - b.y1[i]));
  }
  if (sizes.empty()) {  // nothing can overlap: every box is kept
    for (int64_t i = 0; i < n && (max_out <= 0 || (int64_t)keep.size() < max_out); ++i) keep.push_back(i);
    return keep;
  }
  auto mid = sizes.begin() + sizes.size() / 2;
  std::nth_element(sizes.begin(), mid, sizes.end());
  double cell = std::max(*mid, 1e-12);
  const double ex = std::max(maxx - minx, 1e-12), ey = std::max(maxy - miny, 1e-12);
  // At most ~2 cells per box overall (memory) and at most 4096 per axis.
  const double max_cells = std::max(16.0, 2.0 * double(n));
  while ((ex / cell + 1) * (ey / cell + 1) > max_cells) cell *= 1.5;
  const int64_t gx = std::min<int64_t>(4096, static_cast<int64_t>(ex / cell) + 1);
  const int64_t gy = std::min<int64_t>(4096, static_cast<int64_t>(ey / cell) + 1);
  const double inv = 1.0 / cell;
  auto cx = [&](double x) {
    double c = std::floor((x - minx) * inv);
    return static_cast<int64_t>(std::min(std::max(c, 0.0), double(gx - 1)));
  };
  auto cy = [&](double y) {
    double c = std::floor((y - miny) * inv);
    return static_cast<int64_t>(std::min(std::max(c, 0.0), double(gy - 1)));
  };
  std::vector<Cell<T>> cells(static_cast<size_t>(gx * gy));
  for (int64_t j = 0; j < n; ++j) {
    const T jx1 = b.x1[j], jy1 = b.y1[j], jx2 = b.x2[j], jy2 = b.y2[j], ja = b.area[j];
    const bool solid = jx2 > jx1 && jy2 > jy1;
    if (solid) {
      const int64_t c0 = cx(jx1), c1 = cx(jx2), r0 = cy(jy1), r1 = cy(jy2);
      bool sup = false;
      for (int64_t r = r0; r <= r1 && !sup; ++r) {
        for (int64_t c = c0; c <= c1 && !sup; ++c) {
          const std::vector<T>& v = cells[r * gx + c].v;
          const std::vector<int64_t>& vc = cells[r * gx + c].c;
          const size_t m = v.size();
          for (size_t k = 0; k < m; k += 5) {
            if (!vc.empty() && vc[k / 5] != b.cat[j]) continue;
            if (nmsmath::suppresses(v[k], v[k + 1], v[k + 2], v[k + 3], v[k + 4], jx1, jy1, jx2, jy2,
                                    ja, thr)) {
              sup = true;
              break;
            }
          }
        }
      }
      if (sup) continue;
      for (int64_t r = r0; r <= r1; ++r)
        for (int64_t c = c0; c <= c1; ++c) {
          std::vector<T>& v = cells[r * gx + c].v;
          v.insert(v.end(), {jx1, jy1, jx2, jy2, ja});
          if (!b.cat.empty()) cells[r * gx + c].c.push_back(b.cat[j]);
        }
    }
    keep.push_back(j);
    if (max_out > 0 && static_cast<int64_t>(keep.size()) >= max_out) break;
  }
  return keep;
}

template <class T>
bool all_finite(const SortedBoxes<T>& b) {
  for (size_t i = 0; i < b.x1.size(); ++i)
    if (!std::isfinite(b.x1[i]) || !std::isfinite(b.y1[i]) || !std::isfinite(b.x2[i]) ||
        !std::isfinite(b.y2[i]) || !std::isfinite(b.area[i]))
      return false;
  return true;
}

}  // namespace

std::pair<Tensor, Tensor> nms_padded(const Tensor& boxes, const Tensor& scores, const Tensor& idxs,
                                     const NmsOptions& o) {
  const int64_t n = boxes.size(0);
  Tensor keep_t = Tensor::empty({n}, DType::Int64);
  Tensor count_t = Tensor::empty({1}, DType::Int64);
  int64_t* keep_out = keep_t.data<int64_t>();
  int64_t kept = 0;
  SX_DISPATCH_FLOAT(boxes.dtype(), "nms", [&] {
    const scalar_t* bp = boxes.data<scalar_t>();
    const scalar_t* sp = scores.data<scalar_t>();
    // 1. Candidates passing the score threshold, 2. stable sort by decreasing score.
    std::vector<int64_t> order;
    order.reserve(n);
    for (int64_t i = 0; i < n; ++i)
      if (!o.score_threshold || sp[i] > static_cast<scalar_t>(*o.score_threshold)) order.push_back(i);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return nmsmath::score_before(sp[a], sp[b]); });
    // 3. Top-k candidates.
    if (o.pre_nms_top_k > 0 && static_cast<int64_t>(order.size()) > o.pre_nms_top_k)
      order.resize(o.pre_nms_top_k);
    const int64_t m = static_cast<int64_t>(order.size());
    // 4. Sorted structure-of-arrays copy with each box's category. (torchvision's coordinate trick,
    // shifting boxes by category * (max coordinate + 1), lets categories collide when coordinates
    // are negative and rounds the shifted boxes when they are large; issue 15.6.)
    const int64_t* ip = idxs.defined() ? idxs.data<int64_t>() : nullptr;
    SortedBoxes<scalar_t> sb;
    for (auto* v : {&sb.x1, &sb.y1, &sb.x2, &sb.y2, &sb.area}) v->resize(m);
    if (ip) sb.cat.resize(m);
    for (int64_t r = 0; r < m; ++r) {
      const int64_t i = order[r];
      const scalar_t x1 = bp[4 * i], y1 = bp[4 * i + 1], x2 = bp[4 * i + 2], y2 = bp[4 * i + 3];
      if (ip) sb.cat[r] = ip[i];
      sb.x1[r] = x1;
      sb.y1[r] = y1;
      sb.x2[r] = x2;
      sb.y2[r] = y2;
      sb.area[r] = (x2 - x1) * (y2 - y1);
    }
    // 5. Greedy suppression.
    std::vector<int64_t> kept_pos;
    if (o.algo == NmsAlgo::Fast && o.iou_threshold >= 0 && all_finite(sb))
      kept_pos = greedy_grid(sb, o.iou_threshold, o.max_output);
    else
      kept_pos = greedy_naive(sb, o.iou_threshold, o.max_output);
    kept = static_cast<int64_t>(kept_pos.size());
    for (int64_t r = 0; r < kept; ++r) keep_out[r] = order[kept_pos[r]];
  });
  for (int64_t r = kept; r < n; ++r) keep_out[r] = -1;
  count_t.data<int64_t>()[0] = kept;
  return {keep_t, count_t};
}

}  // namespace sx::kernels::cpu

namespace sx::kernels {
const NmsBackend NmsBackend::cpu = {cpu::nms_padded};
}  // namespace sx::kernels
