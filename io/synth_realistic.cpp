// The realistic style of the synthetic radiographs (see io/synth.h): a lateral lumbar radiograph at
// the release's scale. This file builds the lumbar column, its posterior elements and foramina,
// and draws the lesions; the soft tissue, the confounders and the exposure are in
// io/synth_realistic_scene.cpp.
//
// Conventions: the patient faces left (anterior = -x), y points down (cranial = top). Lengths are
// written in "release pixels" (0.14 mm, an image about 2,500 rows high) and multiplied by u =
// size / 2500. The image is a sum of densities: soft tissue (~0.1-0.3), bone added on top (~0.3 in a
// vertebral body), metal (>= 1, on a canvas of its own, saturates). Lesions are drawn at their real sizes, which makes most
// of them a few pixels wide at the 128-160 px the demo trains on; kSign (below) sets their contrast.
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "io/synth_internal.h"

namespace sx::io::synth_detail {
namespace {

// Lesion contrast: the style's one knob of difficulty. It multiplies the density each sign adds or
// removes (never its size or shape). At 1, the signs have about the density a radiograph gives them
// (a spur as dense as the body's bone, sclerosis 0.7 of it, ...), and the demo's stage-1 recipe
// (ResNet-18 from scratch, 60 steps at 128 px, where a spur is 2-5 px) reached AUROC 0.69 on the
// test split: a yardstick that shows little. At 2 it reached 0.87 (README: the measurements).
constexpr float kSign = 2.0f;

}  // namespace

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

  // ---- soft tissue: a thick body seen from the side (synth_realistic_scene.cpp) ----------------
  const float tissue = draw_soft_tissue(R, cv, tex_seed, u);

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

  // ---- confounders: things on a normal radiograph that are not lesions (synth_realistic_scene.cpp)
  draw_confounders(R, cv, mc, x0, u);

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

  // ---- detector blur, quantum noise, quantisation (synth_realistic_scene.cpp) -------------------
  SynthImage out;
  expose(R, seed, index, cv, mc, out);
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

}  // namespace sx::io::synth_detail
