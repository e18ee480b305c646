// The realistic style of the synthetic radiographs (see io/synth.h, io/synth_realistic.cpp): what
// surrounds the spine and how the picture is taken. The soft tissue of a thick body seen from the
// side, the confounders every radiograph has (bowel gas, ribs, the iliac crest, a lead marker), and
// the exposure: detector blur, quantum noise and quantisation into 12-bit values.
#include <algorithm>
#include <cmath>
#include <vector>

#include "io/synth_internal.h"

namespace sx::io::synth_detail {

float draw_soft_tissue(Rng& R, Canvas& cv, uint64_t tex_seed, float u) {
  const int W = cv.w, H = cv.h;
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
  return tissue;
}

void draw_confounders(Rng& R, Canvas& cv, Canvas& mc, float x0, float u) {
  const int W = cv.w, H = cv.h;
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
}

void expose(Rng& R, uint64_t seed, int64_t index, Canvas& cv, Canvas& mc, SynthImage& out) {
  const int W = cv.w, H = cv.h;
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
}

}  // namespace sx::io::synth_detail
