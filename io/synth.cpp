// Synthetic lateral spine radiographs in the VinDr-SpineXR release format (see synth.h).
//
// Drawing works on a float "density" canvas (0 = air, ~0.6 = vertebral body, >= 1 = metal). Every
// shape is given by a signed distance function (negative inside, in pixels); a pixel's coverage is
// clamp(0.5 - sdf, 0, 1), which anti-aliases edges to about one pixel. A lesion's box is the extent
// of the pixels its own shapes cover by at least one half, so boxes are tight by construction.
// Densities become 12-bit stored values as 150 + 3700 * density + noise.
#include "io/synth.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>

#include "io/atomic_file.h"
#include "io/progress.h"
#include "tensor/errors.h"
#include "tensor/random_math.h"

namespace sx::io {
namespace {

// ---- randomness: counter-based, one stream per (seed, purpose, index) ---------------------------

struct Rng {
  uint64_t seed, c = 0;
  explicit Rng(uint64_t s) : seed(s) {}
  double u() { return sx::rng::uniform(seed, c++); }
  double u(double a, double b) { return a + (b - a) * u(); }
  int randint(int lo, int hi) { return lo + static_cast<int>(u() * (hi - lo)); }  // [lo, hi)
  double normal() {
    double a = std::max(u(), 1e-300), b = u();
    return std::sqrt(-2.0 * std::log(a)) * std::cos(6.283185307179586 * b);
  }
  uint64_t bits() { return sx::rng::bits(seed, c++); }
};

uint64_t stream(uint64_t seed, uint64_t purpose, uint64_t index) {
  return sx::rng::mix64(sx::rng::mix64(seed ^ (purpose * 0x9e3779b97f4a7c15ULL)) + index * 0xd1b54a32d192ed03ULL);
}

std::string hex_id(uint64_t a, uint64_t b) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
  return buf;
}

// A DICOM UID under the "2.25." (UUID-derived) root: digits only, < 64 characters.
std::string uid_from(uint64_t a, uint64_t b) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "2.25.%llu%llu", static_cast<unsigned long long>(a >> 1),
                static_cast<unsigned long long>(b >> 4));
  return buf;
}

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

// ---- the scene --------------------------------------------------------------------------------

enum Cls { kOsteo = 0, kImplant, kSpondy, kForaminal, kDsn, kCollapse, kOther, kNumCls };

struct Vertebra {
  float cx, cy, hw, hh, angle;
  bool collapsed = false;
  float slip = 0;  // x shift (negative: anterior)
  BoxAcc acc;      // drawn extent
};

struct Lesion {
  int cls;
  BoxAcc acc;
};

float local_angle(float amp, float freq, float phase, float y) {
  return std::atan(amp * freq * std::cos(freq * y + phase));
}

}  // namespace

SynthImage render_synthetic(uint64_t seed, int64_t index, int size, double normal_fraction) {
  SX_CHECK(size >= 64 && size <= 8192, "synth: size must be in [64, 8192], got ", size);
  Rng R(stream(seed, 1, static_cast<uint64_t>(index)));
  const int H = size;
  int W = static_cast<int>(std::lround(H * R.u(0.62, 0.85) / 2.0)) * 2;
  const float h = static_cast<float>(H);
  Canvas cv(W, H);

  // Soft tissue: a broad body silhouette with low-frequency variation.
  const float body_c = W * static_cast<float>(R.u(0.45, 0.55)), body_w = W * static_cast<float>(R.u(0.38, 0.48));
  const float tissue = static_cast<float>(R.u(0.16, 0.26)), tilt = static_cast<float>(R.u(-0.06, 0.06));
  const float f1 = static_cast<float>(R.u(2.0, 5.0)), p1 = static_cast<float>(R.u(0, 6.28));
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      float t = (x - body_c - tilt * (y - H / 2.0f)) / body_w;
      float prof = std::exp(-t * t * t * t);
      cv.d[static_cast<size_t>(y) * W + x] = 0.05f + tissue * prof * (1.0f + 0.12f * std::sin(f1 * y / h + p1));
    }

  // Spine geometry: centre line x(y) = x0 + amp * sin(freq * y + phase) (a lordotic curve).
  const float amp = static_cast<float>(R.u(0.02, 0.07)) * h, freq = static_cast<float>(R.u(2.0, 3.5)) / h,
              phase = static_cast<float>(R.u(0, 6.28));
  const float x0 = W * static_cast<float>(R.u(0.40, 0.50));
  auto xc = [&](float y) { return x0 + amp * std::sin(freq * y + phase); };
  const float pitch = h * static_cast<float>(R.u(0.155, 0.185));
  const float body_hw = h * static_cast<float>(R.u(0.095, 0.11));
  std::vector<Vertebra> vs;
  for (float y = -pitch * static_cast<float>(R.u(0.1, 0.9)); y < h + pitch; y += pitch) {
    Vertebra v;
    v.cy = y;
    v.cx = xc(y);
    v.hh = pitch * static_cast<float>(R.u(0.34, 0.38));
    v.hw = body_hw * static_cast<float>(R.u(0.95, 1.05));
    v.angle = local_angle(amp, freq, phase, y) * 0.8f;
    vs.push_back(v);
  }
  // Fully visible vertebrae (lesions go there), as indices i with a neighbour below (i+1).
  std::vector<int> vis;
  for (int i = 0; i + 1 < static_cast<int>(vs.size()); ++i)
    if (vs[i].cy - vs[i].hh > 0.02f * h && vs[i + 1].cy + vs[i + 1].hh < 0.98f * h) vis.push_back(i);

  // ---- choose lesions -----------------------------------------------------------------------
  // Event weights: the release's box counts to the power 0.35, in class order
  // (Osteophytes, Surgical implant, Spondylolysthesis, Foraminal stenosis, Disc space narrowing,
  // Vertebral collapse, Other lesions).
  static const double kWeights[kNumCls] = {27.1, 8.33, 7.20, 8.07, 10.9, 7.07, 8.48};
  const bool abnormal = !vis.empty() && R.u() >= normal_fraction;
  std::vector<int> events;
  if (abnormal) {
    int n_ev = 1 + (R.u() < 0.55) + (R.u() < 0.25);
    double total = 0;
    for (double w : kWeights) total += w;
    for (int e = 0; e < n_ev; ++e) {
      double r = R.u() * total;
      int c = 0;
      while (c < kNumCls - 1 && r >= kWeights[c]) r -= kWeights[c++];
      if (c != kOsteo && std::find(events.begin(), events.end(), c) != events.end()) continue;
      events.push_back(c);
    }
  }
  std::vector<int> used(vs.size(), 0);  // vertebrae already altered by a structural lesion
  auto pick_vertebra = [&](bool structural) -> int {
    for (int tries = 0; tries < 12; ++tries) {
      int i = vis[R.randint(0, static_cast<int>(vis.size()))];
      if (!structural || (!used[i] && !used[i + 1])) return i;
    }
    return -1;
  };
  struct Plan {
    int cls, v;
  };
  std::vector<Plan> plan;
  for (int c : events) {
    bool structural = c == kSpondy || c == kDsn || c == kCollapse || c == kImplant;
    int v = pick_vertebra(structural);
    if (v < 0) continue;
    if (structural) used[v] = used[v + 1] = 1;
    plan.push_back({c, v});
  }

  // Structural changes before drawing.
  for (const Plan& p : plan) {
    Vertebra& a = vs[p.v];
    Vertebra& b = vs[p.v + 1];
    if (p.cls == kCollapse) {
      a.collapsed = true;
    } else if (p.cls == kSpondy) {
      a.slip = -a.hw * static_cast<float>(R.u(0.35, 0.5));
    } else if (p.cls == kDsn) {
      float gap = (b.cy - b.hh) - (a.cy + a.hh);
      float grow = gap * 0.38f;  // both bodies grow into the disc: the gap keeps ~25%
      a.hh += grow / 2, a.cy += grow / 2;
      b.hh += grow / 2, b.cy -= grow / 2;
    }
  }

  // ---- draw the spine -----------------------------------------------------------------------
  const float rim = std::max(1.5f, 0.012f * h);
  for (size_t i = 0; i < vs.size(); ++i) {
    Vertebra& v = vs[i];
    const float cx = v.cx + v.slip;
    if (v.collapsed) {
      // Wedge: anterior (left) height 40%, posterior 70% of normal; wider and dense.
      float ca = std::cos(v.angle), sa = std::sin(v.angle);
      float hw = v.hw * 1.15f, ha = v.hh * 0.42f, hp = v.hh * 0.68f;
      auto rot = [&](float dx, float dy) { return V2{cx + ca * dx - sa * dy, v.cy + sa * dx + ca * dy}; };
      Convex q({rot(-hw, -ha), rot(hw, -hp), rot(hw, hp), rot(-hw, ha)});
      float bx0, by0, bx1, by1;
      q.bounds(&bx0, &by0, &bx1, &by1);
      cv.paint(bx0, by0, bx1, by1, q, Op::Set, 0.86f, &v.acc);
    } else {
      RoundRect body{{cx, v.cy}, v.hw, v.hh, 0.18f * v.hh, v.angle};
      float e = body.extent();
      cv.paint(cx - e, v.cy - e, cx + e, v.cy + e, body, Op::Add, 0.34f, &v.acc);
      // Cortical rim: a band just inside the outline.
      auto band = [&](float x, float y) { return std::fabs(body(x, y) + rim) - rim * 0.6f; };
      cv.paint(cx - e, v.cy - e, cx + e, v.cy + e, band, Op::Add, 0.12f);
    }
    // Posterior elements (right of the body) and the foramen between this level and the next.
    Ellipse post{{v.cx + v.hw + 0.075f * h, v.cy}, 0.06f * h, 0.055f * h, v.angle};
    cv.paint(post.c.x - 0.07f * h, post.c.y - 0.07f * h, post.c.x + 0.07f * h, post.c.y + 0.07f * h, post, Op::Add, 0.16f);
  }
  // Foramina: dark ovals between consecutive posterior elements.
  std::vector<Ellipse> foramina(vs.size());
  for (size_t i = 0; i + 1 < vs.size(); ++i) {
    float fy = (vs[i].cy + vs[i + 1].cy) / 2, fx = (vs[i].cx + vs[i + 1].cx) / 2 + vs[i].hw + 0.05f * h;
    foramina[i] = Ellipse{{fx, fy}, 0.028f * h, 0.045f * h, 0.0f};
    cv.paint(fx - 0.05f * h, fy - 0.06f * h, fx + 0.05f * h, fy + 0.06f * h, foramina[i], Op::Add, -0.12f);
  }

  // ---- draw the lesions ---------------------------------------------------------------------
  std::vector<Lesion> lesions;
  for (const Plan& p : plan) {
    Vertebra& a = vs[p.v];
    Vertebra& b = vs[p.v + 1];
    switch (p.cls) {
      case kOsteo: {
        int n = 1 + (R.u() < 0.6) + (R.u() < 0.4) + (R.u() < 0.25) + (R.u() < 0.1);
        std::vector<std::pair<int, int>> spots;  // (vertebra, corner)
        for (int k = 0; k < n; ++k) {
          int vi = vis[R.randint(0, static_cast<int>(vis.size()))] + R.randint(0, 2);
          int corner = R.randint(0, 4);  // 0 ant-top, 1 ant-bottom, 2 post-top, 3 post-bottom
          if (corner >= 2 && R.u() < 0.6) corner -= 2;  // mostly anterior
          if (std::find(spots.begin(), spots.end(), std::make_pair(vi, corner)) != spots.end()) continue;
          spots.push_back({vi, corner});
          Vertebra& v = vs[vi];
          const float sx = corner < 2 ? -1.0f : 1.0f, sy = (corner % 2 == 0) ? -1.0f : 1.0f;
          const float ex = v.cx + v.slip + sx * v.hw, ey = v.cy + sy * v.hh * (v.collapsed ? 0.5f : 1.0f);
          const float L = h * static_cast<float>(R.u(0.085, 0.11)), Hh = h * static_cast<float>(R.u(0.085, 0.11));
          // A spur: base along the body's side near the corner, tip pointing out and toward the disc.
          Convex tri({V2{ex + sx * 0.01f * h, ey - sy * 0.6f * Hh}, V2{ex + sx * 0.01f * h, ey - sy * 0.05f * Hh},
                      V2{ex + sx * L, ey + sy * 0.4f * Hh}});
          Lesion les{kOsteo, {}};
          float bx0, by0, bx1, by1;
          tri.bounds(&bx0, &by0, &bx1, &by1);
          cv.paint(bx0, by0, bx1, by1, tri, Op::Set, 0.9f, &les.acc);
          lesions.push_back(les);
        }
        break;
      }
      case kDsn: {
        // Bright sclerotic endplates on both sides of the narrowed disc.
        Lesion les{kDsn, {}};
        float y_top = a.cy + a.hh, y_bot = b.cy - b.hh;
        for (int k = 0; k < 2; ++k) {
          const Vertebra& v = k == 0 ? a : b;
          float yy = k == 0 ? y_top - 0.012f * h : y_bot + 0.012f * h;
          RoundRect plate{{v.cx, yy}, v.hw * 1.02f, 0.016f * h, 0.01f * h, v.angle};
          float e = plate.extent();
          cv.paint(v.cx - e, yy - e, v.cx + e, yy + e, plate, Op::Set, 0.95f, &les.acc);
        }
        lesions.push_back(les);
        break;
      }
      case kImplant: {
        // Pedicle screws through this vertebra and the one below, joined by a posterior rod.
        Lesion les{kImplant, {}};
        int last = std::min(p.v + 1 + (R.u() < 0.75 ? 1 : 0), static_cast<int>(vs.size()) - 1);
        if (vs[last].cy + vs[last].hh > 0.98f * h) last = p.v + 1;
        float rod_x = 0;
        std::vector<V2> heads;
        for (int i = p.v; i <= last; ++i) {
          const Vertebra& v = vs[i];
          V2 tip{v.cx - v.hw * 0.3f, v.cy + 0.01f * h}, head{v.cx + v.hw + 0.065f * h, v.cy - 0.015f * h};
          Capsule screw{tip, head, 0.014f * h};
          cv.paint(std::min(tip.x, head.x) - 0.02f * h, std::min(tip.y, head.y) - 0.02f * h,
                   std::max(tip.x, head.x) + 0.02f * h, std::max(tip.y, head.y) + 0.02f * h, screw, Op::Set, 1.25f, &les.acc);
          heads.push_back(head);
          rod_x += head.x / (last - p.v + 1);
        }
        Capsule rod{{rod_x, heads.front().y - 0.03f * h}, {rod_x, heads.back().y + 0.03f * h}, 0.011f * h};
        cv.paint(rod_x - 0.02f * h, rod.a.y - 0.02f * h, rod_x + 0.02f * h, rod.b.y + 0.02f * h, rod, Op::Set, 1.25f, &les.acc);
        lesions.push_back(les);
        break;
      }
      case kSpondy: {
        Lesion les{kSpondy, {}};
        les.acc.add(a.acc);
        BoxAcc lower = b.acc;  // upper half of the vertebra below: the step is in the box
        lower.y1 = std::min(lower.y1, static_cast<int>(b.cy));
        les.acc.add(lower);
        lesions.push_back(les);
        break;
      }
      case kCollapse: {
        lesions.push_back({kCollapse, a.acc});
        break;
      }
      case kForaminal: {
        // Bony overgrowth filling the foramen: a bright lumpy blob.
        const Ellipse& f = foramina[p.v];
        Lesion les{kForaminal, {}};
        Ellipse blob{f.c, 0.045f * h, 0.052f * h, static_cast<float>(R.u(-0.4, 0.4))};
        cv.paint(f.c.x - 0.06f * h, f.c.y - 0.06f * h, f.c.x + 0.06f * h, f.c.y + 0.06f * h, blob, Op::Set, 0.88f, &les.acc);
        Ellipse core{f.c, 0.015f * h, 0.02f * h, 0.0f};
        cv.paint(f.c.x - 0.03f * h, f.c.y - 0.03f * h, f.c.x + 0.03f * h, f.c.y + 0.03f * h, core, Op::Set, 0.55f);
        lesions.push_back(les);
        break;
      }
      case kOther: {
        // Sclerotic lesion with a lytic ring: bright disc, dark annulus, bright core.
        const Vertebra& v = R.u() < 0.5 ? a : b;
        float r = h * static_cast<float>(R.u(0.075, 0.09));
        V2 c{v.cx + v.slip + static_cast<float>(R.u(-0.3, 0.3)) * v.hw, v.cy + static_cast<float>(R.u(-0.2, 0.2)) * v.hh};
        Lesion les{kOther, {}};
        Ellipse outer{c, r, r, 0.0f};
        cv.paint(c.x - r, c.y - r, c.x + r, c.y + r, outer, Op::Set, 0.9f, &les.acc);
        auto ring = [&](float x, float y) { return std::fabs(outer(x, y) + 0.35f * r) - 0.14f * r; };
        cv.paint(c.x - r, c.y - r, c.x + r, c.y + r, ring, Op::Set, 0.15f);
        lesions.push_back(les);
        break;
      }
    }
  }

  // ---- blur, noise, quantise ----------------------------------------------------------------
  {
    std::vector<float> tmp(cv.d.size());
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        const float* r = cv.d.data() + static_cast<size_t>(y) * W;
        float l = r[std::max(x - 1, 0)], m = r[x], rr = r[std::min(x + 1, W - 1)];
        tmp[static_cast<size_t>(y) * W + x] = 0.25f * l + 0.5f * m + 0.25f * rr;
      }
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        float u = tmp[static_cast<size_t>(std::max(y - 1, 0)) * W + x], m = tmp[static_cast<size_t>(y) * W + x],
              dn = tmp[static_cast<size_t>(std::min(y + 1, H - 1)) * W + x];
        cv.d[static_cast<size_t>(y) * W + x] = 0.25f * u + 0.5f * m + 0.25f * dn;
      }
  }
  SynthImage out;
  out.rows = H;
  out.columns = W;
  out.display.resize(cv.d.size());
  uint64_t s = stream(seed, 2, static_cast<uint64_t>(index)) | 1;
  const float noise = static_cast<float>(R.u(40, 80));
  for (size_t i = 0; i < cv.d.size(); ++i) {
    // xorshift64*: cheap per-pixel noise (sum of 4 uniforms ~ a normal with sd 0.577).
    float acc = 0;
    for (int k = 0; k < 2; ++k) {
      s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
      uint64_t r = s * 0x2545F4914F6CDD1DULL;
      acc += static_cast<float>(r >> 40) * (1.0f / 16777216.0f) + static_cast<float>((r >> 16) & 0xffffff) * (1.0f / 16777216.0f);
    }
    float v = 150.0f + 3700.0f * cv.d[i] + noise * (acc - 2.0f) * 1.73f;
    out.display[i] = static_cast<uint16_t>(std::lround(std::clamp(v, 0.0f, 4095.0f)));
  }

  for (const Lesion& l : lesions) {
    if (l.acc.empty()) continue;
    Box b;
    b.x1 = static_cast<float>(l.acc.x0);
    b.y1 = static_cast<float>(l.acc.y0);
    b.x2 = static_cast<float>(l.acc.x1 + 1);
    b.y2 = static_cast<float>(l.acc.y1 + 1);
    b.label = l.cls;
    out.boxes.push_back(b);
  }

  // ---- DICOM attributes ---------------------------------------------------------------------
  DicomWriteSpec& sp = out.spec;
  sp.rows = H;
  sp.columns = W;
  sp.bits_allocated = 16;
  sp.bits_stored = 12;
  double cu = R.u();
  sp.codec = cu < 0.8 ? DicomCodec::Jpeg2000Lossless : (cu < 0.9 ? DicomCodec::ExplicitLE : DicomCodec::JpegLsLossless);
  const bool mono1 = R.u() < 0.15;
  sp.photometric = mono1 ? "MONOCHROME1" : "MONOCHROME2";
  sp.write_window = R.u() < 0.9;
  if (R.u() < 0.5) {
    sp.window_center = 2047.5;
    sp.window_width = 4095;
  } else {
    sp.window_center = std::round(R.u(1950, 2200));
    sp.window_width = std::round(R.u(3800, 4095));
  }
  // MONOCHROME1 stores 4095 - v: the mirrored window (centre c -> 4096 - c in the standard's
  // convention) shows the same picture.
  if (mono1) sp.window_center = 4096 - sp.window_center;
  sp.write_modality = R.u() < 0.3;
  sp.modality = "CR";
  sp.sop_class_uid = R.u() < 0.7 ? "1.2.840.10008.5.1.4.1.1.1" : "1.2.840.10008.5.1.4.1.1.1.1";
  sp.sex = R.u() < 0.5 ? "F" : "M";
  char age[16];
  std::snprintf(age, sizeof age, "%03dY", R.randint(25, 85));
  sp.age = age;
  sp.pixel_spacing = 0.14 * 2400.0 / H;
  out.stored = out.display;
  if (mono1)
    for (auto& v : out.stored) v = static_cast<uint16_t>(4095 - v);
  return out;
}

namespace {

void make_dir(const std::string& p) {
  if (::mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) SX_THROW(IOError, "cannot create folder ", p, ": ", std::strerror(errno));
}

std::string fmt_coord(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

}  // namespace

SynthSummary synthesize_dataset(const SynthOptions& opt) {
  SX_CHECK(!opt.out.empty(), "synth: --out is required");
  SX_CHECK(opt.images >= 1, "synth: --images must be >= 1, got ", opt.images);
  SX_CHECK(opt.test_fraction >= 0 && opt.test_fraction < 1, "synth: test fraction must be in [0, 1), got ", opt.test_fraction);
  auto t0 = std::chrono::steady_clock::now();
  make_dir(opt.out);
  make_dir(opt.out + "/annotations");
  make_dir(opt.out + "/train_images");
  make_dir(opt.out + "/test_images");

  // Studies, series and ids: decided up front (sequential, cheap), images rendered in parallel.
  struct Item {
    std::string image_id, study_id, series_id, rad_id, study_uid, series_uid, sop_uid;
    bool test = false;
  };
  std::vector<Item> items;
  Rng L(stream(opt.seed, 3, 0));
  int64_t studies = 0;
  while (static_cast<int>(items.size()) < opt.images) {
    const int64_t st = studies++;
    const bool test = L.u() < opt.test_fraction;
    const std::string study_id = hex_id(L.bits(), L.bits()), study_uid = uid_from(L.bits(), L.bits());
    static const char* const kRads[3] = {"rad1", "rad2", "rad3"};
    const char* rad = kRads[L.randint(0, 3)];
    int n = 1 + (L.u() < 0.6);
    for (int k = 0; k < n && static_cast<int>(items.size()) < opt.images; ++k) {
      Item it;
      it.study_id = study_id;
      it.study_uid = study_uid;
      it.series_id = hex_id(L.bits(), L.bits());
      it.series_uid = uid_from(L.bits(), L.bits());
      it.image_id = hex_id(L.bits(), L.bits());
      it.sop_uid = uid_from(L.bits(), L.bits());
      it.rad_id = rad;
      it.test = test;
      items.push_back(it);
    }
    (void)st;
  }

  const int N = static_cast<int>(items.size());
  std::vector<std::vector<Box>> boxes(N);
  std::vector<std::string> codecs(N);
  int threads = opt.threads > 0 ? opt.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = std::min(threads, N);
  std::atomic<int> next{0};
  std::mutex err_mu;
  std::string first_error;
  std::unique_ptr<ProgressBar> bar;
  if (opt.progress) bar.reset(new ProgressBar(N, "synth"));
  auto work = [&] {
    for (;;) {
      int i = next.fetch_add(1);
      if (i >= N) return;
      try {
        SynthImage im = render_synthetic(opt.seed, i, opt.size, opt.normal_fraction);
        im.spec.study_uid = items[i].study_uid;
        im.spec.series_uid = items[i].series_uid;
        im.spec.sop_uid = items[i].sop_uid;
        const std::string path = opt.out + (items[i].test ? "/test_images/" : "/train_images/") + items[i].image_id + ".dicom";
        write_dicom(path, im.stored.data(), im.spec);
        boxes[i] = im.boxes;
        codecs[i] = dicom_codec_name(im.spec.codec);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lk(err_mu);
        if (first_error.empty()) first_error = e.what();
        next = N;
        return;
      }
      if (bar) bar->update(1);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (bar) bar->finish();
  if (!first_error.empty()) throw IOError("synth: " + first_error);

  SynthSummary sum;
  sum.studies = studies;
  const auto& names = vindr_detection_classes();
  for (int part = 0; part < 2; ++part) {
    std::ostringstream csv;
    csv << "study_id,series_id,image_id,rad_id,lesion_type,xmin,ymin,xmax,ymax\n";
    for (int i = 0; i < N; ++i) {
      const Item& it = items[i];
      if (it.test != (part == 1)) continue;
      const std::string pre = it.study_id + "," + it.series_id + "," + it.image_id + "," + it.rad_id + ",";
      if (boxes[i].empty()) {
        csv << pre << "No finding,,,,\n";
        ++sum.normal_images;
      }
      for (const Box& b : boxes[i]) {
        csv << pre << names[b.label] << "," << fmt_coord(b.x1) << "," << fmt_coord(b.y1) << "," << fmt_coord(b.x2) << ","
            << fmt_coord(b.y2) << "\n";
        ++sum.boxes_per_class[names[b.label]];
        ++sum.boxes;
      }
      ++(part ? sum.test_images : sum.train_images);
      ++sum.codecs[codecs[i]];
    }
    write_file_atomic(opt.out + (part ? "/annotations/test.csv" : "/annotations/train.csv"), csv.str());
  }
  sum.images = N;
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

}  // namespace sx::io
