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

// ---- which images are abnormal, and their lesions -----------------------------------------------

// One card of the stratified deal: normal, or abnormal with its first lesion's class.
struct Card {
  bool abnormal = false;
  int primary = -1;
};

// Slots are dealt in decks of 32 shuffled cards (the deck's order is a pure function of the seed and
// the deck number): round(32 * normal_fraction) normal cards, the others abnormal with first
// lesions cycling through kPrimary. With the default half normal, each full deck holds 4 Osteophytes
// and 2 of every other class as first lesions, so class counts cannot fall far below their share
// by chance (independent draws would leave a 300-image test split with a handful of a rare class).
Card deal_card(uint64_t seed, int64_t slot, double normal_fraction) {
  constexpr int kDeck = 32;
  const uint64_t deck = static_cast<uint64_t>(slot) / kDeck;
  const int pos = static_cast<int>(static_cast<uint64_t>(slot) % kDeck);
  int perm[kDeck];
  for (int i = 0; i < kDeck; ++i) perm[i] = i;
  Rng D(stream(seed, 4, deck));
  for (int i = kDeck - 1; i > 0; --i) std::swap(perm[i], perm[D.randint(0, i + 1)]);
  const int n_normal = std::clamp(static_cast<int>(std::lround(kDeck * normal_fraction)), 0, kDeck);
  const int card = perm[pos];
  if (card < n_normal) return {};
  // Every class once in the first 7 abnormal cards (fewer abnormal cards still cover them all).
  static const int kPrimary[16] = {kOsteo, kImplant, kSpondy, kForaminal, kDsn,      kCollapse, kOther, kOsteo,
                                   kOsteo, kImplant, kSpondy, kForaminal, kDsn, kCollapse, kOther,    kOsteo};
  return {true, kPrimary[(card - n_normal) % 16]};
}

// The lesion classes of an abnormal image: the card's first lesion, then 0-2 more (classic) or 0-3
// more (realistic, where abnormal spines tend to show several signs) drawn with the release's box
// counts to the power 0.35, in class order (Osteophytes, Surgical implant,
// Spondylolysthesis, Foraminal stenosis, Disc space narrowing, Vertebral collapse, Other lesions).
// Only Osteophytes may repeat.
std::vector<int> choose_events(Rng& R, const Card& card, bool realistic) {
  static const double kWeights[kNumCls] = {27.1, 8.33, 7.20, 8.07, 10.9, 7.07, 8.48};
  std::vector<int> events;
  if (!card.abnormal) return events;
  events.push_back(card.primary);
  const int extra = realistic ? (R.u() < 0.75) + (R.u() < 0.4) + (R.u() < 0.15) : (R.u() < 0.55) + (R.u() < 0.25);
  double total = 0;
  for (double w : kWeights) total += w;
  for (int e = 0; e < extra; ++e) {
    double r = R.u() * total;
    int c = 0;
    while (c < kNumCls - 1 && r >= kWeights[c]) r -= kWeights[c++];
    if (c != kOsteo && std::find(events.begin(), events.end(), c) != events.end()) continue;
    events.push_back(c);
  }
  return events;
}

// The DICOM attributes of a rendered image (codec, photometric, window, ...), drawn from R.
void finish_dicom(Rng& R, SynthImage& out, double pixel_spacing);

// The classic style (see synth.h).
SynthImage render_classic(uint64_t seed, int64_t index, int size, const Card& card) {
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
  const std::vector<int> events = vis.empty() ? std::vector<int>{} : choose_events(R, card, false);
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
      a.slip = -a.hw * static_cast<float>(R.u(0.7, 0.9));  // 35-45% of the body's depth (grade II)
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

  finish_dicom(R, out, 0.14 * 2400.0 / H);
  return out;
}

void finish_dicom(Rng& R, SynthImage& out, double pixel_spacing) {
  DicomWriteSpec& sp = out.spec;
  sp.rows = out.rows;
  sp.columns = out.columns;
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
  sp.pixel_spacing = pixel_spacing;
  out.stored = out.display;
  if (mono1)
    for (auto& v : out.stored) v = static_cast<uint16_t>(4095 - v);
}

// =================================================================================================
// The realistic style (see synth.h): a lateral lumbar radiograph at the release's scale.
//
// Conventions: the patient faces left (anterior = -x), y points down (cranial = top). Lengths are
// written in "release pixels" (0.14 mm, an image about 2,500 rows high) and multiplied by u =
// size / 2500. The image is a sum of densities: soft tissue (~0.1-0.3), bone added on top (~0.3 in a
// vertebral body), metal (>= 1, on a canvas of its own, saturates). Lesions are drawn at their real sizes, which makes most
// of them a few pixels wide at the 128-160 px the demo trains on; kSign (below) sets their contrast.
// =================================================================================================

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

// Lesion contrast: the style's one knob of difficulty. It multiplies the density each sign adds or
// removes (never its size or shape). At 1, the signs have about the density a radiograph gives them
// (a spur as dense as the body's bone, sclerosis 0.7 of it, ...), and the demo's stage-1 recipe
// (ResNet-18 from scratch, 60 steps at 128 px, where a spur is 2-5 px) reached AUROC 0.69 on the
// test split: a yardstick that shows little. At 2 it reached 0.87 (README: the measurements).
constexpr float kSign = 2.0f;

SynthImage render_realistic(uint64_t seed, int64_t index, int size, const Card& card) {
  Rng R(stream(seed, 1, static_cast<uint64_t>(index)));
  const float u = size / 2500.0f;  // image pixels per release pixel
  const int H = std::max(32, static_cast<int>(std::lround(size * R.u(0.9, 1.16))));
  const int W = std::max(24, static_cast<int>(std::lround(size * R.u(0.5, 0.66))));
  Canvas cv(W, H);  // soft tissue and bone
  Canvas mc(W, H);  // metal, kept apart: it alone may saturate the detector
  const uint64_t tex_seed = stream(seed, 5, static_cast<uint64_t>(index));
  const ValueNoise trab_fine(tex_seed, 7 * u, 22 * u), trab_coarse(tex_seed + 1, 28 * u, 28 * u),
      edge_noise(tex_seed + 2, 14 * u, 14 * u);
  auto trab = [&](float x, float y) { return 0.6f * trab_fine(x, y) + 0.4f * trab_coarse(x, y); };

  // ---- soft tissue: a thick body seen from the side ------------------------------------------
  // Density grows with the path length through the body: an elliptical cross-section between the
  // anterior skin (often beyond the left edge) and the back's skin, beyond which there is air. It
  // is rendered on a coarse grid (it is smooth) and interpolated.
  const float x_front = W * static_cast<float>(R.u(-0.25, 0.06)), x_back = W * static_cast<float>(R.u(0.86, 1.02));
  const float back_wave = W * static_cast<float>(R.u(0.01, 0.04)), back_phase = static_cast<float>(R.u(0, 6.28));
  const float tissue = static_cast<float>(R.u(0.17, 0.27));
  const float muscle_x = W * static_cast<float>(R.u(0.68, 0.78));
  const ValueNoise mottle(tex_seed + 3, 260 * u, 260 * u), mottle2(tex_seed + 4, 70 * u, 70 * u);
  {
    const int step = std::max(1, static_cast<int>(8 * u + 0.5f));
    const int gw = W / step + 2, gh = H / step + 2;
    std::vector<float> g(static_cast<size_t>(gw) * gh);
    for (int j = 0; j < gh; ++j)
      for (int i = 0; i < gw; ++i) {
        const float x = (i + 0.5f) * step, y = (j + 0.5f) * step;
        const float xb = x_back + back_wave * std::sin(6.28f * y / H + back_phase);
        const float t = (x - x_front) / std::max(xb - x_front, 1.0f);  // 0..1 across the body
        float thick = t > 0 && t < 1 ? std::pow(4 * t * (1 - t), 0.6f) : 0.0f;
        thick *= 1 + 0.08f * mottle(x, y) + 0.04f * mottle2(x, y);
        const float m = (x - muscle_x) / (0.09f * W);  // the back muscles: a broad bulge
        g[static_cast<size_t>(j) * gw + i] = 0.03f + tissue * thick + 0.03f * std::exp(-m * m) * (t < 1);
      }
    for (int y = 0; y < H; ++y) {
      const float fy = std::clamp((y + 0.5f) / step - 0.5f, 0.0f, gh - 1.001f);
      const int j = static_cast<int>(fy);
      const float ty = fy - j;
      float* row = cv.d.data() + static_cast<size_t>(y) * W;
      for (int x = 0; x < W; ++x) {
        const float fx = std::clamp((x + 0.5f) / step - 0.5f, 0.0f, gw - 1.001f);
        const int i = static_cast<int>(fx);
        const float tx = fx - i;
        const float* g0 = g.data() + static_cast<size_t>(j) * gw + i;
        const float* g1 = g0 + gw;
        row[x] = (g0[0] + (g0[1] - g0[0]) * tx) * (1 - ty) + (g1[0] + (g1[1] - g1[0]) * tx) * ty;
      }
    }
  }

  // ---- the lumbar column ---------------------------------------------------------------------
  // Lordosis: the centre line x(y) = x0 + amp * sin(freq * y + phase); bodies tilt with it. Levels
  // are generated from above the top edge so that shifting the column down (collapse, narrowing)
  // never uncovers the top.
  const float amp = static_cast<float>(R.u(0.015, 0.05)) * H, freq = static_cast<float>(R.u(1.6, 2.8)) / H,
              phase = static_cast<float>(R.u(0, 6.28));
  const float x0 = W * static_cast<float>(R.u(0.40, 0.47));
  auto xc = [&](float y) { return x0 + amp * std::sin(freq * y + phase); };
  const float bone = static_cast<float>(R.u(0.26, 0.33));  // bone density of this patient
  const float body_h = 210 * u * static_cast<float>(R.u(0.92, 1.08)), disc_h = 72 * u * static_cast<float>(R.u(0.85, 1.15));
  const float depth = 300 * u * static_cast<float>(R.u(0.9, 1.1));
  std::vector<Body> bodies;
  std::vector<float> disc;  // nominal height of the disc below body i
  for (float y = -1.6f * (body_h + disc_h) + static_cast<float>(R.u(0, 1)) * (body_h + disc_h); y < H + body_h + disc_h;) {
    Body b;
    const float hh = 0.5f * body_h * static_cast<float>(R.u(0.94, 1.06));
    b.cy = y + hh;
    b.cx = xc(b.cy);
    b.hx = 0.5f * depth * static_cast<float>(R.u(0.95, 1.05));
    b.ha = hh * static_cast<float>(R.u(0.97, 1.03));
    b.hp = hh * static_cast<float>(R.u(0.95, 1.02));
    b.waist = b.hx * static_cast<float>(R.u(0.02, 0.06));
    b.r = 0.1f * hh;
    b.density = bone * static_cast<float>(R.u(0.95, 1.05));
    b.set_angle(local_angle(amp, freq, phase, b.cy) * 0.85f);
    bodies.push_back(b);
    disc.push_back(disc_h * static_cast<float>(R.u(0.82, 1.18)));  // normal variation
    y = b.cy + hh + disc.back();
  }
  const int NB = static_cast<int>(bodies.size());
  auto inside = [&](const Body& b, float margin) {
    const float e = std::max(b.ha, b.hp) + 0.5f * b.hx * std::fabs(b.sa);
    return b.cy - e > margin * H && b.cy + e < (1 - margin) * H;
  };
  // Lesion sites: level i (body i, the disc below it, body i + 1), both bodies well inside.
  std::vector<int> vis;
  for (int i = 0; i + 1 < NB; ++i)
    if (inside(bodies[i], 0.04f) && inside(bodies[i + 1], 0.04f)) vis.push_back(i);

  // ---- choose lesions --------------------------------------------------------------------------
  const std::vector<int> events = vis.empty() ? std::vector<int>{} : choose_events(R, card, true);
  std::vector<int> used(NB, 0);  // bodies already changed by a structural lesion
  struct Plan {
    int cls, v;
  };
  std::vector<Plan> plan;
  for (int c : events) {
    const bool structural = c != kOsteo && c != kOther;
    int v = -1;
    for (int tries = 0; tries < 16 && v < 0; ++tries) {
      const int i = vis[R.randint(0, static_cast<int>(vis.size()))];
      if (!structural || (!used[i] && !used[i + 1])) v = i;
    }
    if (v < 0) continue;
    if (structural) used[v] = used[v + 1] = 1;
    plan.push_back({c, v});
  }

  // ---- structural lesions change the column before it is drawn --------------------------------
  std::vector<float> shift_x(NB, 0.0f), shift_y(NB, 0.0f);
  std::vector<int> vacuum(NB, 0);
  for (const Plan& p : plan) {
    Body& a = bodies[p.v];
    if (p.cls == kDsn) {
      // Disc space narrowing: the disc keeps 25-50% of its height; the column above sinks.
      const float keep = static_cast<float>(R.u(0.25, 0.5));
      const float lost = disc[p.v] * (1 - keep);
      disc[p.v] *= keep;
      for (int j = 0; j <= p.v; ++j) shift_y[j] += lost;
      vacuum[p.v] = R.u() < 0.3;
    } else if (p.cls == kCollapse) {
      // Vertebral collapse (compression fracture): the anterior wall loses 20-50% of its height,
      // the posterior wall 3-20% (a wedge), the upper endplate dips, the body widens by 8-18%.
      const float fa = static_cast<float>(R.u(0.5, 0.8)), fp = static_cast<float>(R.u(0.8, 0.97));
      const float lost = (a.ha * (1 - fa) + a.hp * (1 - fp));  // mean height lost (sum of halves)
      a.ha *= fa, a.hp *= fp;
      a.hx *= static_cast<float>(R.u(1.08, 1.18));
      a.dip = static_cast<float>(R.u(0.08, 0.2)) * a.ha;
      a.density *= 1.0f + 0.3f * kSign;  // impacted trabeculae: a denser body
      shift_y[p.v] += 0.5f * lost;
      for (int j = 0; j < p.v; ++j) shift_y[j] += lost;
    } else if (p.cls == kSpondy) {
      // Spondylolisthesis: everything above the disc slips forward by 15-35% of the body depth
      // (Meyerding grades I-II).
      const float slip_x = -2 * a.hx * static_cast<float>(R.u(0.15, 0.35));
      for (int j = 0; j <= p.v; ++j) shift_x[j] += slip_x;
    }
  }
  for (int j = 0; j < NB; ++j) bodies[j].cx += shift_x[j], bodies[j].cy += shift_y[j];

  // ---- confounders: things on a normal radiograph that are not lesions ---------------------------
  // Bowel gas (dark, in front of the spine and sometimes over it), ribs at the top, the iliac
  // crest at the bottom, a lead side marker in a corner.
  const int n_gas = R.randint(3, 11);
  for (int k = 0; k < n_gas; ++k) {
    const V2 c{static_cast<float>(R.u(0.0, x0 + 0.05 * W)), static_cast<float>(R.u(0.05, 0.95)) * H};
    const float rx = static_cast<float>(R.u(40, 160)) * u, ry = rx * static_cast<float>(R.u(0.5, 1.2));
    const float depth_gas = static_cast<float>(R.u(0.03, 0.08));
    const Ellipse e{c, rx, ry, static_cast<float>(R.u(-0.6, 0.6))};
    shade(cv, c.x - rx - ry, c.y - rx - ry, c.x + rx + ry, c.y + rx + ry,
          [&](float x, float y) { return e(x, y) - 0.35f * std::min(rx, ry); },  // soft edge
          [&](float, float, float s) { return -depth_gas * std::min(1.0f, -s / (0.5f * std::min(rx, ry)) + 0.2f); }, Op::Add);
  }
  if (R.u() < 0.5) {  // lower ribs, crossing the top of the image from the back
    const int n = R.randint(1, 4);
    for (int k = 0; k < n; ++k) {
      const float r = static_cast<float>(R.u(900, 1300)) * u;
      const V2 c{x0 + static_cast<float>(R.u(100, 500)) * u, static_cast<float>(R.u(0.0, 0.15)) * H - r * 0.95f + k * 150 * u};
      const ArcBand rib{c, r, static_cast<float>(R.u(18, 26)) * u, 0.6f, 2.0f};
      shade(cv, 0, 0, W, std::min<float>(H, c.y + r + 40 * u), rib, [&](float, float, float) { return 0.05f; }, Op::Add);
    }
  }
  if (R.u() < 0.6) {  // the iliac crest over the lowest levels
    const float r = static_cast<float>(R.u(700, 1000)) * u;
    const V2 c{x0 + static_cast<float>(R.u(50, 350)) * u, H * static_cast<float>(R.u(0.85, 1.0)) + r * 0.75f};
    const ArcBand crest{c, r, static_cast<float>(R.u(25, 40)) * u, -2.7f, -0.5f};
    shade(cv, 0, c.y - r - 60 * u, W, H, crest, [&](float, float, float) { return 0.07f; }, Op::Add);
  }
  if (R.u() < 0.7) {  // a lead "L" marker: metal, but not an implant
    const float s = static_cast<float>(R.u(50, 80)) * u;
    const float mx = R.u() < 0.5 ? static_cast<float>(R.u(0.04, 0.15)) * W : static_cast<float>(R.u(0.8, 0.92)) * W;
    const float my = R.u() < 0.5 ? static_cast<float>(R.u(0.03, 0.1)) * H : static_cast<float>(R.u(0.85, 0.95)) * H;
    const RoundRect stem{{mx, my}, 0.18f * s, 0.6f * s, 0.05f * s, 0}, foot{{mx + 0.25f * s, my + 0.45f * s}, 0.43f * s, 0.15f * s, 0.05f * s, 0};
    auto metal = [](float, float, float) { return 1.3f; };
    shade(mc, mx - s, my - s, mx + s, my + s, [&](float x, float y) { return std::min(stem(x, y), foot(x, y)); }, metal, Op::Add);
  }

  // ---- posterior elements and foramina ------------------------------------------------------
  // Each level: a pedicle from the upper back of the body, an articular pillar (superior and
  // inferior processes with the facet joints), a lamina with the spinous process further back.
  // Between two pedicles, in front of the facet joint, lies the intervertebral foramen: a dark
  // keyhole (wider at the top) where the nerve root leaves.
  auto post_value = [&](const Body& b) {
    return [&, d = b.density](float x, float y, float) { return d * (0.5f + 0.1f * trab(x, y)); };
  };
  for (int i = 0; i < NB; ++i) {
    const Body& b = bodies[i];
    const float hh = b.hp;
    const V2 p0 = b.world(b.hx - 15 * u, -0.38f * hh), p1 = b.world(b.hx + 95 * u, -0.3f * hh);
    const Taper pedicle{p0, p1, 40 * u, 44 * u};
    const V2 s0 = b.world(b.hx + 105 * u, -hh - 15 * u), s1 = b.world(b.hx + 125 * u, hh + 35 * u);
    const Taper pillar{s0, s1, 30 * u, 38 * u};
    const V2 l0 = b.world(b.hx + 140 * u, 0.05f * hh), l1 = b.world(b.hx + 390 * u, 0.35f * hh);
    const Taper spinous{l0, l1, 62 * u, 36 * u};
    float bx0 = 1e30f, by0 = 1e30f, bx1 = -1e30f, by1 = -1e30f;
    for (V2 q : {p0, p1, s0, s1, l0, l1})
      bx0 = std::min(bx0, q.x), by0 = std::min(by0, q.y), bx1 = std::max(bx1, q.x), by1 = std::max(by1, q.y);
    const float m = 70 * u;
    shade(cv, bx0 - m, by0 - m, bx1 + m, by1 + m,
          [&](float x, float y) { return std::min(std::min(pedicle(x, y), pillar(x, y)), spinous(x, y)) + 3 * u * edge_noise(x, y); },
          post_value(b), Op::Add);
  }
  // Foramen i lies between body i and body i + 1; its box is the foraminal stenosis box.
  struct Foramen {
    V2 c;
    float rx, ry, angle;
    float operator()(float x, float y) const {
      const float ca = std::cos(angle), sa = std::sin(angle), px = x - c.x, py = y - c.y;
      const float lx = ca * px + sa * py, ly = -sa * px + ca * py;
      const float rxl = rx * (1.0f - 0.3f * std::clamp(ly / ry, -1.0f, 1.0f));  // keyhole: wide on top
      const float qx = lx / rxl, qy = ly / ry;
      return (std::sqrt(qx * qx + qy * qy) - 1.0f) * std::min(rxl, ry);
    }
  };
  // Carving: inside the keyhole the posterior elements give way to soft tissue (root and fat).
  std::vector<Foramen> foramina(NB);
  std::vector<BoxAcc> foramen_acc(NB);
  for (int i = 0; i + 1 < NB; ++i) {
    const Body& a = bodies[i];
    const Body& b = bodies[i + 1];
    const V2 pa = a.world(a.hx, -0.3f * a.hp), pb = b.world(b.hx, -0.3f * b.hp);
    Foramen f{{0.5f * (pa.x + pb.x) + 40 * u, 0.5f * (pa.y + pb.y) + 8 * u}, 37 * u * static_cast<float>(R.u(0.9, 1.1)),
              50 * u * static_cast<float>(R.u(0.9, 1.1)), 0.5f * (a.angle + b.angle)};
    foramina[i] = f;
    const float floor_v = 0.05f + tissue * 0.9f;
    shade(cv, f.c.x - 2 * f.rx, f.c.y - 2 * f.ry, f.c.x + 2 * f.rx, f.c.y + 2 * f.ry, f,
          [&](float, float, float) { return floor_v; }, Op::Set, &foramen_acc[i]);
  }

  // ---- bodies and discs ----------------------------------------------------------------------
  // A body: cancellous bone with trabecular texture, a cortical rim (brighter within ~10 px of the
  // outline, the endplates included). A disc: soft tissue slightly denser than its surroundings,
  // in the space between two endplates.
  const float rim_w = std::max(1.0f, 11 * u);
  for (int i = 0; i + 1 < NB; ++i) {
    const Body& a = bodies[i];
    const Body& b = bodies[i + 1];
    const V2 q0 = a.world(-a.hx * 0.98f, a.ha), q1 = a.world(a.hx * 0.98f, a.hp), q2 = b.world(b.hx * 0.98f, -b.hp),
             q3 = b.world(-b.hx * 0.98f, -b.ha);
    const Convex d({q0, q1, q2, q3});
    float bx0, by0, bx1, by1;
    d.bounds(&bx0, &by0, &bx1, &by1);
    shade(cv, bx0, by0, bx1, by1, [&](float x, float y) { return d(x, y) - 4 * u; },
          [&](float, float, float) { return 0.025f; }, Op::Add);
  }
  for (Body& b : bodies) {
    const float e = b.extent();
    const float d = b.density;
    shade(cv, b.cx - e, b.cy - e, b.cx + e, b.cy + e, b,
          [&](float x, float y, float s) {
            const float rimf = std::max(0.0f, 1.0f - (-s) / rim_w);
            return d * (1.0f + 0.13f * trab(x, y) + 0.45f * rimf);
          },
          Op::Add, &b.acc);
  }

  // ---- lesions ---------------------------------------------------------------------------------
  std::vector<Lesion> lesions;
  // Osteophyte: a beak of bone growing out of a vertebral corner, outward and toward the disc (a
  // "claw" when it curls over the disc). The polygon also overlaps the corner inside the body,
  // which it makes denser (marginal sclerosis). Sizes: the release's median box is 74 x 82 px.
  auto spur = [&](const Body& b, float sx, float sy, float w, float h, float strength, BoxAcc* acc) {
    const V2 E = b.corner_local(sx, sy);
    std::vector<V2> pts;
    for (V2 o : {V2{-0.4f, -0.55f}, V2{0.3f, -0.25f}, V2{0.6f, 0.45f}, V2{-0.4f, 0.1f}})
      pts.push_back(b.world(E.x + sx * o.x * w, E.y + sy * o.y * h));
    const Convex tri(pts);
    float bx0, by0, bx1, by1;
    tri.bounds(&bx0, &by0, &bx1, &by1);
    const float d = b.density * strength;
    shade(cv, bx0, by0, bx1, by1, [&](float x, float y) { return tri(x, y) + 3 * u * edge_noise(x, y); },
          [&](float x, float y, float) {
            // Full bone density where the spur sticks out; over the body only a little more
            // (the corner's marginal sclerosis), not a second layer of bone.
            const float in = std::clamp(0.5f - b(x, y) / (6 * u + 0.5f), 0.0f, 1.0f);
            return d * (1.0f - 0.7f * in) * (0.95f + 0.15f * trab(x, y));
          },
          Op::Add, acc);
  };
  // Normal variant: small corner lips that a radiologist does not call osteophytes (no box).
  if (R.u() < 0.5) {
    const int n = R.randint(1, 4);
    for (int k = 0; k < n; ++k) {
      const Body& b = bodies[R.randint(0, NB)];
      spur(b, R.u() < 0.75 ? -1.0f : 1.0f, R.u() < 0.5 ? -1.0f : 1.0f, static_cast<float>(R.u(18, 30)) * u,
           static_cast<float>(R.u(20, 32)) * u, 0.8f, nullptr);
    }
  }
  auto lognormal = [&](float median, float sigma) { return median * std::exp(sigma * static_cast<float>(R.normal())); };
  for (const Plan& p : plan) {
    Body& a = bodies[p.v];
    Body& b = bodies[p.v + 1];
    switch (p.cls) {
      case kOsteo: {
        // 2-7 spurs on corners of the level's two bodies and their neighbours, mostly anterior.
        const int n = 2 + (R.u() < 0.7) + (R.u() < 0.5) + (R.u() < 0.3) + (R.u() < 0.15) + (R.u() < 0.08);
        std::vector<std::pair<int, int>> spots;
        for (int k = 0; k < n; ++k) {
          const int vi = std::clamp(p.v + R.randint(-1, 3), vis.front(), vis.back() + 1);
          int corner = R.randint(0, 4);                    // 0 ant-up, 1 ant-down, 2 post-up, 3 post-down
          if (corner >= 2 && R.u() < 0.6) corner -= 2;     // mostly anterior
          if (std::find(spots.begin(), spots.end(), std::make_pair(vi, corner)) != spots.end()) continue;
          spots.push_back({vi, corner});
          // Size: a common lognormal factor and a smaller one for the shape (no needles).
          const float scale = lognormal(1.0f, 0.38f);
          const float w = std::clamp(74 * scale * lognormal(1.0f, 0.18f), 32.0f, 220.0f) * u;
          const float h = std::clamp(82 * scale * lognormal(1.0f, 0.25f), 36.0f, 300.0f) * u;
          Lesion les{kOsteo, {}};
          spur(bodies[vi], corner < 2 ? -1.0f : 1.0f, corner % 2 == 0 ? -1.0f : 1.0f, w, h, kSign, &les.acc);
          lesions.push_back(les);
        }
        break;
      }
      case kDsn: {
        // Disc space narrowing (already squeezed above) with subchondral sclerosis: a denser band
        // under each endplate facing the disc; sometimes a vacuum phenomenon (a gas cleft). The box
        // spans the disc and the two bands, over most of the disc's depth.
        Lesion les{kDsn, {}};
        const float t = std::max(1.5f, static_cast<float>(R.u(18, 30)) * u);
        const float x_a = -a.hx * static_cast<float>(R.u(0.6, 0.85)), x_p = a.hx * static_cast<float>(R.u(0.4, 0.7));
        for (int k = 0; k < 2; ++k) {
          const Body& v = k == 0 ? a : b;
          const float yy = k == 0 ? v.half_height(0.5f * (x_a + x_p)) - 0.5f * t : -v.half_height(0.5f * (x_a + x_p)) + 0.5f * t;
          const RoundRect band{v.world(0.5f * (x_a + x_p), yy), 0.5f * (x_p - x_a), 0.5f * t, 0.4f * t, v.angle};
          const float e = band.extent();
          const float d = v.density;
          shade(cv, band.c.x - e, band.c.y - e, band.c.x + e, band.c.y + e, band,
                [&](float x, float y, float) { return d * kSign * (0.7f + 0.15f * trab(x, y)); }, Op::Add, &les.acc);
        }
        if (vacuum[p.v]) {
          const V2 g0 = a.world(-0.5f * a.hx, a.half_height(-0.5f * a.hx) + 0.5f * disc[p.v]),
                   g1 = a.world(0.3f * a.hx, a.half_height(0.3f * a.hx) + 0.5f * disc[p.v]);
          const Taper gas{g0, g1, 4 * u, 3 * u};
          shade(cv, std::min(g0.x, g1.x) - 10 * u, std::min(g0.y, g1.y) - 10 * u, std::max(g0.x, g1.x) + 10 * u,
                std::max(g0.y, g1.y) + 10 * u, gas, [&](float, float, float) { return -0.12f * kSign; }, Op::Add);
        }
        lesions.push_back(les);
        break;
      }
      case kImplant: {
        // Posterior fusion: pedicle screws (threaded shanks, tulip heads) through the pedicles of 2 or
        // 3 consecutive bodies into their front halves, a rod through the heads, sometimes an
        // interbody cage (radiolucent, with metal marker beads) in the fused disc.
        Lesion les{kImplant, {}};
        int last = p.v + 1;
        if (R.u() < 0.4 && p.v + 2 < NB && inside(bodies[p.v + 2], 0.04f) && !used[p.v + 2]) last = p.v + 2;
        const float metal = 1.3f;
        std::vector<V2> heads;
        for (int i = p.v; i <= last; ++i) {
          const Body& v = bodies[i];
          const float hh = v.hp;
          const V2 head = v.world(v.hx + 70 * u, -0.32f * hh), tip = v.world(0.15f * v.hx, -0.14f * hh);
          const Taper screw{head, tip, 19 * u, 12 * u};
          const float pitch = std::max(2.0f, 13 * u);
          shade(mc, std::min(head.x, tip.x) - 30 * u, std::min(head.y, tip.y) - 30 * u, std::max(head.x, tip.x) + 30 * u,
                std::max(head.y, tip.y) + 30 * u, screw,
                [&](float x, float y, float s) {
                  const float thread = 0.5f + 0.5f * std::sin(6.2832f * screw.along(x, y) / pitch);
                  return metal * (1.0f - 0.25f * thread * std::clamp(1.0f + s / (5 * u), 0.0f, 1.0f));
                },
                Op::Add, &les.acc);
          const RoundRect tulip{v.world(v.hx + 92 * u, -0.32f * hh), 26 * u, 30 * u, 8 * u, v.angle};
          shade(mc, tulip.c.x - 50 * u, tulip.c.y - 50 * u, tulip.c.x + 50 * u, tulip.c.y + 50 * u, tulip,
                [&](float, float, float) { return metal; }, Op::Add, &les.acc);
          heads.push_back(tulip.c);
        }
        for (size_t k = 0; k + 1 < heads.size(); ++k) {
          V2 r0 = heads[k], r1 = heads[k + 1];
          if (k == 0) r0.y -= 60 * u;
          if (k + 2 == heads.size()) r1.y += 60 * u;
          const Taper rod{r0, r1, 15 * u, 15 * u};
          shade(mc, std::min(r0.x, r1.x) - 20 * u, r0.y - 20 * u, std::max(r0.x, r1.x) + 20 * u, r1.y + 20 * u, rod,
                [&](float, float, float) { return metal; }, Op::Add, &les.acc);
        }
        if (R.u() < 0.4) {
          const V2 c = a.world(0, a.half_height(0) + 0.5f * disc[p.v]);
          const RoundRect cage{c, 0.55f * a.hx, 0.4f * disc[p.v], 4 * u, a.angle};
          shade(cv, c.x - a.hx, c.y - a.hx, c.x + a.hx, c.y + a.hx, cage, [&](float, float, float) { return 0.04f; }, Op::Add);
          for (float fx : {-0.3f, 0.45f}) {
            const V2 m = a.world(fx * a.hx, a.half_height(fx * a.hx) + 0.5f * disc[p.v]);
            const Ellipse bead{m, 6 * u + 0.6f, 6 * u + 0.6f, 0};
            shade(mc, m.x - 10 * u - 2, m.y - 10 * u - 2, m.x + 10 * u + 2, m.y + 10 * u + 2, bead,
                  [&](float, float, float) { return metal; }, Op::Add, &les.acc);
          }
        }
        lesions.push_back(les);
        break;
      }
      case kSpondy: {
        // The slip itself was applied to the column; the box spans the step: the lower part of the
        // body above, the disc, the upper part of the body below, front to back over both.
        const float ya = a.cy + 0.25f * a.ha, yb = b.cy - 0.25f * b.ha;
        Lesion les{kSpondy, {}};
        les.acc.add(std::min(a.acc.x0, b.acc.x0), std::clamp(static_cast<int>(ya), 0, H - 1));
        les.acc.add(std::max(a.acc.x1, b.acc.x1), std::clamp(static_cast<int>(yb), 0, H - 1));
        lesions.push_back(les);
        break;
      }
      case kCollapse: {
        // The wedge-shaped, denser body was drawn above; here the fracture line: a sclerotic band
        // of impacted bone under the depressed upper endplate.
        const float t = std::max(1.5f, 22 * u);
        const float yy = -a.half_height(0) + a.dip + 0.5f * t + rim_w;
        const RoundRect band{a.world(0, yy), 0.8f * a.hx, 0.5f * t, 0.4f * t, a.angle};
        const float e = band.extent();
        const float d = a.density;
        shade(cv, band.c.x - e, band.c.y - e, band.c.x + e, band.c.y + e, band,
              [&](float x, float y, float) { return d * kSign * (0.6f + 0.15f * trab(x, y)); }, Op::Add);
        lesions.push_back({kCollapse, a.acc});
        break;
      }
      case kForaminal: {
        // Foraminal stenosis: bone grows into the keyhole, from the back of the endplates (a
        // posterior osteophyte) or from a hypertrophic facet, leaving a narrow slit.
        const Foramen& f = foramina[p.v];
        const bool from_front = R.u() < 0.5;
        const float ca = std::cos(f.angle), sa = std::sin(f.angle);
        const float off = (from_front ? -1.0f : 1.0f) * f.rx * static_cast<float>(R.u(0.9, 1.3));
        const V2 c{f.c.x + ca * off - sa * f.ry * 0.2f, f.c.y + sa * off + ca * f.ry * 0.2f};
        const Ellipse blob{c, f.rx * static_cast<float>(R.u(1.1, 1.5)), f.ry * static_cast<float>(R.u(0.8, 1.1)), f.angle};
        const float d = a.density;
        shade(cv, c.x - 2 * f.ry, c.y - 2 * f.ry, c.x + 2 * f.ry, c.y + 2 * f.ry,
              [&](float x, float y) { return std::max(blob(x, y) + 4 * u * edge_noise(x, y), f(x, y)); },
              [&](float x, float y, float) { return d * kSign * (0.9f + 0.15f * trab(x, y)); }, Op::Add);
        lesions.push_back({kForaminal, foramen_acc[p.v]});
        break;
      }
      case kOther: {
        // One of: a sclerotic focus (bone island, blastic metastasis), a lytic focus (lytic
        // metastasis, myeloma), each with an irregular margin and clipped to the body; or a Schmorl's
        // node (disc herniated through an endplate: a rounded notch with a sclerotic rim).
        Body& v = R.u() < 0.5 ? a : b;
        const double kind = R.u();
        Lesion les{kOther, {}};
        if (kind < 0.8) {
          const float rad = std::min(static_cast<float>(R.u(70, 100)) * u, 0.85f * std::min(v.hx, v.ha));
          const V2 c = v.world(static_cast<float>(R.u(-0.35, 0.35)) * v.hx, static_cast<float>(R.u(-0.2, 0.2)) * v.ha);
          const float sign = kind < 0.45 ? 1.0f : -1.0f;
          const float d = v.density;
          const Ellipse e{c, rad, rad * static_cast<float>(R.u(0.85, 1.15)), static_cast<float>(R.u(0, 3.14))};
          shade(cv, c.x - 1.3f * rad, c.y - 1.3f * rad, c.x + 1.3f * rad, c.y + 1.3f * rad,
                [&](float x, float y) { return std::max(e(x, y) + 0.12f * rad * edge_noise(x, y), v(x, y)); },
                [&](float x, float y, float s) {
                  const float core = std::min(1.0f, -s / (0.35f * rad) + 0.25f);  // soft margin
                  return d * (sign > 0 ? 0.8f * kSign : -std::min(0.6f * kSign, 0.75f)) * core * (1.0f + 0.25f * trab(x, y));
                },
                Op::Add, &les.acc);
        } else {
          const float sy = R.u() < 0.5 ? -1.0f : 1.0f;
          const float lx = static_cast<float>(R.u(-0.3, 0.3)) * v.hx;
          const V2 c = v.world(lx, sy * v.half_height(lx));
          const float rad = static_cast<float>(R.u(50, 70)) * u;
          const Ellipse halo{c, 1.45f * rad, 1.2f * rad, v.angle}, notch{c, rad, 0.8f * rad, v.angle};
          const float d = v.density;
          shade(cv, c.x - 2 * rad, c.y - 2 * rad, c.x + 2 * rad, c.y + 2 * rad,
                [&](float x, float y) { return std::max(halo(x, y), v(x, y)); },
                [&](float, float, float) { return d * kSign * 0.7f; }, Op::Add, &les.acc);
          shade(cv, c.x - 2 * rad, c.y - 2 * rad, c.x + 2 * rad, c.y + 2 * rad,
                [&](float x, float y) { return std::max(notch(x, y), v(x, y)); },
                [&](float, float, float) { return -d * (1.0f + 0.7f * kSign); }, Op::Add);
        }
        lesions.push_back(les);
        break;
      }
    }
  }

  // ---- detector blur, quantum noise, quantisation -------------------------------------------
  // A binomial blur (the detector's MTF); stored value = offset + gain * (shoulder(density) + metal)
  // + noise whose standard deviation grows with the square root of the signal (photon counting).
  // The shoulder (the top of the processing curve) keeps overlapping bone below saturation; only
  // metal saturates.
  for (Canvas* layer : {&cv, &mc}) {
    std::vector<float> tmp(layer->d.size());
    for (int y = 0; y < H; ++y) {
      const float* r = layer->d.data() + static_cast<size_t>(y) * W;
      float* t = tmp.data() + static_cast<size_t>(y) * W;
      for (int x = 0; x < W; ++x) t[x] = 0.25f * r[std::max(x - 1, 0)] + 0.5f * r[x] + 0.25f * r[std::min(x + 1, W - 1)];
    }
    for (int y = 0; y < H; ++y) {
      const float* up = tmp.data() + static_cast<size_t>(std::max(y - 1, 0)) * W;
      const float* m = tmp.data() + static_cast<size_t>(y) * W;
      const float* dn = tmp.data() + static_cast<size_t>(std::min(y + 1, H - 1)) * W;
      float* o = layer->d.data() + static_cast<size_t>(y) * W;
      for (int x = 0; x < W; ++x) o[x] = 0.25f * up[x] + 0.5f * m[x] + 0.25f * dn[x];
    }
  }
  SynthImage out;
  out.rows = H;
  out.columns = W;
  out.display.resize(cv.d.size());
  const float offset = static_cast<float>(R.u(150, 350)), gain = static_cast<float>(R.u(2700, 3200));
  const float quantum = static_cast<float>(R.u(25, 60));
  uint64_t s = stream(seed, 2, static_cast<uint64_t>(index)) | 1;
  for (size_t i = 0; i < cv.d.size(); ++i) {
    float acc = 0;  // a sum of 4 uniforms: close to a normal with sd 0.577
    for (int k = 0; k < 2; ++k) {
      s ^= s >> 12, s ^= s << 25, s ^= s >> 27;
      const uint64_t r = s * 0x2545F4914F6CDD1DULL;
      acc += static_cast<float>(r >> 40) * (1.0f / 16777216.0f) + static_cast<float>((r >> 16) & 0xffffff) * (1.0f / 16777216.0f);
    }
    float dens = std::max(cv.d[i], 0.0f);
    if (dens > 0.8f) dens = 0.8f + 0.25f * std::tanh((dens - 0.8f) / 0.25f);
    dens += mc.d[i];
    const float v = offset + gain * dens + quantum * std::sqrt(0.2f + dens) * (acc - 2.0f) * 1.73f;
    out.display[i] = static_cast<uint16_t>(std::lround(std::clamp(v, 0.0f, 4095.0f)));
  }
  for (const Lesion& l : lesions) {
    if (l.acc.empty()) continue;
    Box bx;
    bx.x1 = static_cast<float>(l.acc.x0);
    bx.y1 = static_cast<float>(l.acc.y0);
    bx.x2 = static_cast<float>(l.acc.x1 + 1);
    bx.y2 = static_cast<float>(l.acc.y1 + 1);
    bx.label = l.cls;
    out.boxes.push_back(bx);
  }
  finish_dicom(R, out, 0.14 * 2500.0 / size);
  return out;
}

}  // namespace

SynthStyle parse_synth_style(const std::string& s) {
  if (s == "classic") return SynthStyle::Classic;
  if (s == "realistic") return SynthStyle::Realistic;
  SX_THROW(ValueError, "synth: --style must be classic or realistic, got '", s, "'");
}

const char* synth_style_name(SynthStyle s) { return s == SynthStyle::Realistic ? "realistic" : "classic"; }

int synth_default_size(SynthStyle s) { return s == SynthStyle::Realistic ? 2500 : 512; }

SynthImage render_synthetic(uint64_t seed, int64_t index, int size, double normal_fraction, SynthStyle style,
                            int64_t slot) {
  if (size == 0) size = synth_default_size(style);
  SX_CHECK(size >= 64 && size <= 8192, "synth: size must be in [64, 8192], got ", size);
  SX_CHECK(index >= 0, "synth: image index must be >= 0, got ", index);
  const Card card = deal_card(seed, slot < 0 ? index : slot, normal_fraction);
  return style == SynthStyle::Realistic ? render_realistic(seed, index, size, card)
                                        : render_classic(seed, index, size, card);
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
  SX_CHECK(opt.test_images >= 0 && opt.test_images < opt.images, "synth: --test-images must be in [0, --images), got ",
           opt.test_images, " of ", opt.images);
  SX_CHECK(opt.normal_fraction >= 0 && opt.normal_fraction <= 1, "synth: normal fraction must be in [0, 1], got ",
           opt.normal_fraction);
  auto t0 = std::chrono::steady_clock::now();
  make_dir(opt.out);
  make_dir(opt.out + "/annotations");
  make_dir(opt.out + "/train_images");
  make_dir(opt.out + "/test_images");

  // Studies, series and ids: decided up front (sequential, cheap), images rendered in parallel.
  // With test_images > 0 the train studies come first, then exactly test_images test images (the
  // last study of each split may lose its second image to the count); otherwise each study goes to
  // the test split with probability test_fraction.
  struct Item {
    std::string image_id, study_id, series_id, rad_id, study_uid, series_uid, sop_uid;
    bool test = false;
    int64_t slot = 0;  // rank within its split (test ranks offset), for the deal of cards
  };
  std::vector<Item> items;
  Rng L(stream(opt.seed, 3, 0));
  int64_t studies = 0, n_train = 0, n_test = 0;
  const int train_quota = opt.images - opt.test_images;
  constexpr int64_t kTestSlots = int64_t{1} << 40;
  while (static_cast<int>(items.size()) < opt.images) {
    ++studies;
    const double draw = L.u();
    const bool test = opt.test_images > 0 ? static_cast<int>(items.size()) >= train_quota : draw < opt.test_fraction;
    const int limit = opt.test_images > 0 && !test ? train_quota : opt.images;
    const std::string study_id = hex_id(L.bits(), L.bits()), study_uid = uid_from(L.bits(), L.bits());
    static const char* const kRads[3] = {"rad1", "rad2", "rad3"};
    const char* rad = kRads[L.randint(0, 3)];
    int n = 1 + (L.u() < 0.6);
    for (int k = 0; k < n && static_cast<int>(items.size()) < limit; ++k) {
      Item it;
      it.study_id = study_id;
      it.study_uid = study_uid;
      it.series_id = hex_id(L.bits(), L.bits());
      it.series_uid = uid_from(L.bits(), L.bits());
      it.image_id = hex_id(L.bits(), L.bits());
      it.sop_uid = uid_from(L.bits(), L.bits());
      it.rad_id = rad;
      it.test = test;
      it.slot = test ? kTestSlots + n_test++ : n_train++;
      items.push_back(it);
    }
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
        SynthImage im = render_synthetic(opt.seed, i, opt.size, opt.normal_fraction, opt.style, items[i].slot);
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
