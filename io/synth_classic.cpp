// The classic style of the synthetic radiographs (see io/synth.h): a gently curved column of
// vertebral bodies with bright rims, posterior elements and dark foramina, and lesions with
// distinct, high-contrast signatures. Densities (0 = air, ~0.6 = vertebral body, >= 1 = metal)
// become 12-bit stored values as 150 + 3700 * density + noise.
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "io/synth_internal.h"

namespace sx::io::synth_detail {
namespace {

struct Vertebra {
  float cx, cy, hw, hh, angle;
  bool collapsed = false;
  float slip = 0;  // x shift (negative: anterior)
  BoxAcc acc;      // drawn extent
};

}  // namespace

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

}  // namespace sx::io::synth_detail
