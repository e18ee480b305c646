// The drawing kit of the synthetic radiographs (io/synth.h): a float "density" canvas and the
// signed distance functions (negative inside, in pixels) the two styles draw with.
//
// A pixel's coverage is clamp(0.5 - sdf, 0, 1), which anti-aliases edges to about one pixel; a
// lesion's box is the extent of the pixels its own shapes cover by at least one half (BoxAcc), so
// boxes are tight by construction. Internal to io/synth*.cpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "tensor/random_math.h"

namespace sx::io::synth_detail {

// ---- canvas and shapes ------------------------------------------------------------------------

struct BoxAcc {
  int x0 = 1 << 30, y0 = 1 << 30, x1 = -1, y1 = -1;
  void add(int x, int y) {
    x0 = std::min(x0, x);
    y0 = std::min(y0, y);
    x1 = std::max(x1, x);
    y1 = std::max(y1, y);
  }
  void add(const BoxAcc& o) {
    if (o.empty()) return;
    add(o.x0, o.y0);
    add(o.x1, o.y1);
  }
  bool empty() const { return x1 < x0; }
};

struct V2 {
  float x, y;
};

enum class Op { Add, Set };

struct Canvas {
  int w, h;
  std::vector<float> d;
  Canvas(int w_, int h_) : w(w_), h(h_), d(static_cast<size_t>(w_) * h_, 0.0f) {}

  // Paints sdf over the box [x0,x1]x[y0,y1] (pixel coordinates, generous).
  template <class F>
  void paint(float x0, float y0, float x1, float y1, F sdf, Op op, float value, BoxAcc* acc = nullptr) {
    int ix0 = std::max(0, static_cast<int>(std::floor(x0)) - 2), iy0 = std::max(0, static_cast<int>(std::floor(y0)) - 2);
    int ix1 = std::min(w - 1, static_cast<int>(std::ceil(x1)) + 2), iy1 = std::min(h - 1, static_cast<int>(std::ceil(y1)) + 2);
    for (int y = iy0; y <= iy1; ++y) {
      float* row = d.data() + static_cast<size_t>(y) * w;
      for (int x = ix0; x <= ix1; ++x) {
        float s = sdf(x + 0.5f, y + 0.5f);
        float c = 0.5f - s;
        if (c <= 0) continue;
        if (c > 1) c = 1;
        if (op == Op::Add) row[x] += c * value;
        else row[x] = row[x] * (1 - c) + c * value;
        if (acc && c >= 0.5f) acc->add(x, y);
      }
    }
  }
};

// Rotated rounded rectangle: centre c, half sizes (hx, hy), corner radius r, angle a (radians).
struct RoundRect {
  V2 c;
  float hx, hy, r, a;
  float operator()(float x, float y) const {
    float ca = std::cos(a), sa = std::sin(a);
    float px = x - c.x, py = y - c.y;
    float qx = std::fabs(ca * px + sa * py) - (hx - r), qy = std::fabs(-sa * px + ca * py) - (hy - r);
    float ox = std::max(qx, 0.0f), oy = std::max(qy, 0.0f);
    return std::sqrt(ox * ox + oy * oy) + std::min(std::max(qx, qy), 0.0f) - r;
  }
  float extent() const { return std::sqrt(hx * hx + hy * hy) + 1; }
};

struct Ellipse {
  V2 c;
  float rx, ry, a;
  float operator()(float x, float y) const {
    float ca = std::cos(a), sa = std::sin(a);
    float px = x - c.x, py = y - c.y;
    float qx = (ca * px + sa * py) / rx, qy = (-sa * px + ca * py) / ry;
    return (std::sqrt(qx * qx + qy * qy) - 1.0f) * std::min(rx, ry);
  }
};

struct Capsule {
  V2 a, b;
  float r;
  float operator()(float x, float y) const {
    float vx = b.x - a.x, vy = b.y - a.y, px = x - a.x, py = y - a.y;
    float t = std::clamp((px * vx + py * vy) / std::max(vx * vx + vy * vy, 1e-6f), 0.0f, 1.0f);
    float dx = px - t * vx, dy = py - t * vy;
    return std::sqrt(dx * dx + dy * dy) - r;
  }
};

// Convex polygon: max of the distances to its edge lines (exact inside, close enough outside).
struct Convex {
  std::vector<V2> v;
  std::vector<V2> n;
  std::vector<float> off;
  explicit Convex(std::vector<V2> pts) : v(std::move(pts)) {
    V2 c{0, 0};
    for (auto p : v) c.x += p.x / v.size(), c.y += p.y / v.size();
    for (size_t i = 0; i < v.size(); ++i) {
      V2 a = v[i], b = v[(i + 1) % v.size()];
      float nx = b.y - a.y, ny = -(b.x - a.x), len = std::sqrt(nx * nx + ny * ny);
      nx /= len, ny /= len;
      if (nx * (c.x - a.x) + ny * (c.y - a.y) > 0) nx = -nx, ny = -ny;  // outward
      n.push_back({nx, ny});
      off.push_back(nx * a.x + ny * a.y);
    }
  }
  float operator()(float x, float y) const {
    float s = -1e30f;
    for (size_t i = 0; i < n.size(); ++i) s = std::max(s, n[i].x * x + n[i].y * y - off[i]);
    return s;
  }
  void bounds(float* x0, float* y0, float* x1, float* y1) const {
    *x0 = *y0 = 1e30f;
    *x1 = *y1 = -1e30f;
    for (auto p : v) *x0 = std::min(*x0, p.x), *y0 = std::min(*y0, p.y), *x1 = std::max(*x1, p.x), *y1 = std::max(*y1, p.y);
  }
};

// ---- the realistic style's texture, painter and shapes ----------------------------------------

// Smooth random field in about [-1, 1]: random values on a lattice of cells blended with smoothstep
// weights (value noise), a pure function of (seed, x, y). Unequal cell sizes give streaks: tall
// cells imitate the vertical trabeculae of a vertebral body.
struct ValueNoise {
  uint64_t seed;
  float icx, icy;
  ValueNoise(uint64_t s, float cell_x, float cell_y)
      : seed(s), icx(1.0f / std::max(cell_x, 0.7f)), icy(1.0f / std::max(cell_y, 0.7f)) {}
  float node(int64_t i, int64_t j) const {
    uint64_t h = sx::rng::mix64(seed ^ (static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ULL) ^
                                (static_cast<uint64_t>(j) * 0xc2b2ae3d27d4eb4fULL));
    return static_cast<float>(h >> 40) * (2.0f / 16777216.0f) - 1.0f;
  }
  float operator()(float x, float y) const {
    const float fx = x * icx, fy = y * icy;
    const float x0 = std::floor(fx), y0 = std::floor(fy);
    float tx = fx - x0, ty = fy - y0;
    tx = tx * tx * (3 - 2 * tx);
    ty = ty * ty * (3 - 2 * ty);
    const int64_t i = static_cast<int64_t>(x0), j = static_cast<int64_t>(y0);
    const float a = node(i, j), b = node(i + 1, j), c = node(i, j + 1), d = node(i + 1, j + 1);
    return (a + (b - a) * tx) + ((c + (d - c) * tx) - (a + (b - a) * tx)) * ty;
  }
};

// Paints `value(x, y, sdf)` times the anti-aliased coverage of sdf over a pixel rectangle, added to
// the canvas (Op::Add) or blended toward it (Op::Set); pixels covered >= 1/2 widen `acc`.
template <class S, class F>
void shade(Canvas& cv, float x0, float y0, float x1, float y1, S sdf, F value, Op op, BoxAcc* acc = nullptr) {
  const int ix0 = std::max(0, static_cast<int>(std::floor(x0)) - 2), iy0 = std::max(0, static_cast<int>(std::floor(y0)) - 2);
  const int ix1 = std::min(cv.w - 1, static_cast<int>(std::ceil(x1)) + 2),
            iy1 = std::min(cv.h - 1, static_cast<int>(std::ceil(y1)) + 2);
  for (int y = iy0; y <= iy1; ++y) {
    float* row = cv.d.data() + static_cast<size_t>(y) * cv.w;
    for (int x = ix0; x <= ix1; ++x) {
      const float px = x + 0.5f, py = y + 0.5f;
      const float s = sdf(px, py);
      float c = 0.5f - s;
      if (c <= 0) continue;
      if (c > 1) c = 1;
      const float v = value(px, py, s);
      if (op == Op::Add) row[x] += c * v;
      else row[x] += c * (v - row[x]);
      if (acc && c >= 0.5f) acc->add(x, y);
    }
  }
}

// A vertebral body in its own frame (x toward the back, y down, origin at its centre): a rounded
// box whose front and back walls are slightly concave (the "waist"), whose half height goes from
// `ha` at the anterior wall to `hp` at the posterior wall (a wedge when they differ), and whose
// upper endplate may dip in the middle (an endplate depression of a compression fracture).
struct Body {
  float cx = 0, cy = 0, angle = 0, ca = 1, sa = 0;
  float hx = 0, ha = 0, hp = 0, waist = 0, dip = 0, r = 0;
  float density = 0.3f;
  BoxAcc acc;
  void set_angle(float a) {
    angle = a;
    ca = std::cos(a);
    sa = std::sin(a);
  }
  V2 local(float x, float y) const {
    const float px = x - cx, py = y - cy;
    return {ca * px + sa * py, -sa * px + ca * py};
  }
  V2 world(float lx, float ly) const { return {cx + ca * lx - sa * ly, cy + sa * lx + ca * ly}; }
  float half_height(float lx) const {
    const float t = std::clamp((lx / hx + 1) * 0.5f, 0.0f, 1.0f);
    return ha + (hp - ha) * t;
  }
  float operator()(float x, float y) const {
    const V2 l = local(x, y);
    const float hh = half_height(l.x);
    const float u = l.x / hx;
    const float top = -hh + dip * std::max(0.0f, 1 - u * u), bot = hh;
    const float mid = 0.5f * (top + bot), yh = 0.5f * (bot - top);
    const float v = (l.y - mid) / yh;
    const float hxl = hx - waist * std::max(0.0f, 1 - v * v);
    const float rr = std::min(r, 0.9f * std::min(hxl, yh));
    const float qx = std::fabs(l.x) - (hxl - rr), qy = std::fabs(l.y - mid) - (yh - rr);
    const float ox = std::max(qx, 0.0f), oy = std::max(qy, 0.0f);
    return std::sqrt(ox * ox + oy * oy) + std::min(std::max(qx, qy), 0.0f) - rr;
  }
  float extent() const { return std::sqrt(hx * hx + std::max(ha, hp) * std::max(ha, hp)) + 4; }
  // A corner of the outline: anterior (sx = -1) or posterior (+1), upper (sy = -1) or lower (+1).
  V2 corner_local(float sx, float sy) const { return {sx * hx, sy * half_height(sx * hx)}; }
};

// Capsule whose radius goes linearly from ra (at a) to rb (at b): a screw shank, a rib, a rod.
struct Taper {
  V2 a, b;
  float ra, rb;
  float operator()(float x, float y) const {
    const float vx = b.x - a.x, vy = b.y - a.y, px = x - a.x, py = y - a.y;
    const float t = std::clamp((px * vx + py * vy) / std::max(vx * vx + vy * vy, 1e-6f), 0.0f, 1.0f);
    const float dx = px - t * vx, dy = py - t * vy;
    return std::sqrt(dx * dx + dy * dy) - (ra + (rb - ra) * t);
  }
  float along(float x, float y) const {  // position along the axis, 0 at a, in pixels
    const float vx = b.x - a.x, vy = b.y - a.y, len = std::sqrt(vx * vx + vy * vy);
    return ((x - a.x) * vx + (y - a.y) * vy) / std::max(len, 1e-6f);
  }
};

// An arc band: the points at distance `r` (+- half_w) from a centre, between two angles.
struct ArcBand {
  V2 c;
  float r, half_w, a0, a1;
  float operator()(float x, float y) const {
    const float dx = x - c.x, dy = y - c.y;
    const float ang = std::atan2(dy, dx);
    const float d = std::fabs(std::sqrt(dx * dx + dy * dy) - r) - half_w;
    const float outside = std::max(a0 - ang, ang - a1);  // angular overshoot (radians)
    return outside > 0 ? std::max(d, outside * r) : d;
  }
};

}  // namespace sx::io::synth_detail
