#include "io/transforms.h"

#include <algorithm>
#include <cmath>

#include "io/autoaugment.h"
#include "tensor/errors.h"
#include "tensor/random_math.h"

namespace sx::io {

double AugRng::uniform() { return sx::rng::uniform(seed, counter++); }

ResizeMode parse_resize_mode(const std::string& s) {
  if (s == "longest") return ResizeMode::Longest;
  if (s == "shortest") return ResizeMode::Shortest;
  SX_THROW(ValueError, "unknown resize mode '", s, "' (expected longest or shortest)");
}

namespace {

// Weights of a 1-D resampling from n to m samples: for each output i, a contiguous run of inputs
// [first[i], first[i] + count[i]) with weights summing to 1.
struct Weights1D {
  std::vector<int> first, count;
  std::vector<float> w;  // count[i] weights per output, packed at offset[i]
  std::vector<int> offset;
};

Weights1D make_weights(int n, int m) {
  Weights1D W;
  W.first.resize(m);
  W.count.resize(m);
  W.offset.resize(m);
  const double s = static_cast<double>(m) / n;  // output px per input px
  for (int i = 0; i < m; ++i) {
    W.offset[i] = static_cast<int>(W.w.size());
    if (s < 1.0) {
      // Area: output pixel i covers input [i/s, (i+1)/s).
      double a = i / s, b = (i + 1) / s;
      int j0 = static_cast<int>(std::floor(a)), j1 = std::min(n - 1, static_cast<int>(std::ceil(b)) - 1);
      W.first[i] = j0;
      double total = 0;
      for (int j = j0; j <= j1; ++j) {
        double ov = std::min(b, j + 1.0) - std::max(a, static_cast<double>(j));
        if (ov < 0) ov = 0;
        W.w.push_back(static_cast<float>(ov));
        total += ov;
      }
      for (size_t k = W.offset[i]; k < W.w.size(); ++k) W.w[k] = static_cast<float>(W.w[k] / total);
      W.count[i] = j1 - j0 + 1;
    } else {
      // Linear: the centre of output i sits at input coordinate (i + 0.5) / s - 0.5.
      double x = (i + 0.5) / s - 0.5;
      int j0 = static_cast<int>(std::floor(x));
      double f = x - j0;
      int a = std::min(std::max(j0, 0), n - 1), b = std::min(std::max(j0 + 1, 0), n - 1);
      if (a == b) {
        W.first[i] = a;
        W.count[i] = 1;
        W.w.push_back(1.0f);
      } else {
        W.first[i] = a;
        W.count[i] = 2;
        W.w.push_back(static_cast<float>(1 - f));
        W.w.push_back(static_cast<float>(f));
      }
    }
  }
  return W;
}

}  // namespace

void resize_image(const float* src, int w, int h, float* dst, int new_w, int new_h) {
  SX_CHECK(w > 0 && h > 0 && new_w > 0 && new_h > 0, "resize: sizes must be positive, got ", w, "x", h, " -> ", new_w,
           "x", new_h);
  const Weights1D wx = make_weights(w, new_w), wy = make_weights(h, new_h);
  // Rows first (h x new_w), then columns.
  std::vector<float> tmp(static_cast<size_t>(h) * new_w);
  for (int y = 0; y < h; ++y) {
    const float* r = src + static_cast<size_t>(y) * w;
    float* o = tmp.data() + static_cast<size_t>(y) * new_w;
    for (int i = 0; i < new_w; ++i) {
      const float* ww = wx.w.data() + wx.offset[i];
      const float* rr = r + wx.first[i];
      float acc = 0;
      for (int k = 0; k < wx.count[i]; ++k) acc += ww[k] * rr[k];
      o[i] = acc;
    }
  }
  for (int i = 0; i < new_h; ++i) {
    float* o = dst + static_cast<size_t>(i) * new_w;
    const float* ww = wy.w.data() + wy.offset[i];
    std::fill(o, o + new_w, 0.0f);
    for (int k = 0; k < wy.count[i]; ++k) {
      const float* r = tmp.data() + static_cast<size_t>(wy.first[i] + k) * new_w;
      const float c = ww[k];
      for (int x = 0; x < new_w; ++x) o[x] += c * r[x];
    }
  }
}

GreyF resize_image(const GreyF& src, int new_w, int new_h) {
  GreyF out(new_w, new_h);
  resize_image(src.px.data(), src.width, src.height, out.px.data(), new_w, new_h);
  return out;
}

float resize_scale(int w, int h, const TransformOptions& opt) {
  SX_CHECK(w > 0 && h > 0, "resize_scale: empty image ", w, "x", h);
  SX_CHECK(opt.size > 0, "transforms: size must be positive, got ", opt.size);
  if (opt.mode == ResizeMode::Longest) return static_cast<float>(opt.size) / std::max(w, h);
  float s = static_cast<float>(opt.size) / std::min(w, h);
  if (opt.max_size > 0 && std::max(w, h) * s > opt.max_size) s = static_cast<float>(opt.max_size) / std::max(w, h);
  return s;
}

ResizedGeometry resized_geometry(int w, int h, float s, const TransformOptions& opt) {
  SX_CHECK(w > 0 && h > 0, "transforms: empty image ", w, "x", h);
  SX_CHECK(opt.pad_multiple >= 1, "transforms: pad_multiple must be >= 1, got ", opt.pad_multiple);
  ResizedGeometry g;
  g.width = std::max(1, static_cast<int>(std::lround(w * s)));
  g.height = std::max(1, static_cast<int>(std::lround(h * s)));
  // The exact factors realised by the rounding (boxes follow the pixels, not the nominal s).
  g.scale_x = static_cast<float>(g.width) / w;
  g.scale_y = static_cast<float>(g.height) / h;
  int pw = g.width, ph = g.height;
  if (opt.mode == ResizeMode::Longest && opt.pad_square) pw = ph = std::max({opt.size, g.width, g.height});
  g.padded_width = (pw + opt.pad_multiple - 1) / opt.pad_multiple * opt.pad_multiple;
  g.padded_height = (ph + opt.pad_multiple - 1) / opt.pad_multiple * opt.pad_multiple;
  return g;
}

Transformed apply_transforms(const GreyF& img, const std::vector<Box>& boxes, const TransformOptions& opt, AugRng* rng) {
  SX_CHECK(img.width > 0 && img.height > 0, "transforms: empty image ", img.width, "x", img.height);
  SX_CHECK(opt.pad_multiple >= 1, "transforms: pad_multiple must be >= 1, got ", opt.pad_multiple);
  Transformed t;
  float s = resize_scale(img.width, img.height, opt);
  if (rng && (opt.scale_min != 1.0 || opt.scale_max != 1.0)) s *= static_cast<float>(rng->uniform(opt.scale_min, opt.scale_max));
  const ResizedGeometry g = resized_geometry(img.width, img.height, s, opt);
  const int rw = g.width, rh = g.height;
  const float sx = g.scale_x, sy = g.scale_y;
  t.scale = s;
  t.scale_x = sx;
  t.scale_y = sy;
  t.resized_width = rw;
  t.resized_height = rh;
  GreyF r = (rw == img.width && rh == img.height) ? img : resize_image(img, rw, rh);
  t.boxes = boxes;
  for (Box& b : t.boxes) {
    b.x1 *= sx, b.x2 *= sx;
    b.y1 *= sy, b.y2 *= sy;
  }
  if (rng) {
    if (opt.hflip_prob > 0 && rng->uniform() < opt.hflip_prob) {
      t.flipped = true;
      for (int y = 0; y < rh; ++y) std::reverse(r.px.begin() + static_cast<size_t>(y) * rw, r.px.begin() + static_cast<size_t>(y + 1) * rw);
      for (Box& b : t.boxes) {
        float x1 = rw - b.x2, x2 = rw - b.x1;
        b.x1 = x1, b.x2 = x2;
      }
    }
    if (opt.autoaugment != AutoAugmentPolicy::None)
      apply_autoaugment(opt.autoaugment, r, t.boxes, *rng, autoaugment_pixel_scale(rw, rh));
    const float bright = opt.brightness > 0 ? static_cast<float>(rng->uniform(-opt.brightness, opt.brightness)) : 0.0f;
    const float contrast = opt.contrast > 0 ? static_cast<float>(rng->uniform(1 - opt.contrast, 1 + opt.contrast)) : 1.0f;
    const float gamma = opt.gamma > 0 ? static_cast<float>(std::exp(rng->uniform(-opt.gamma, opt.gamma))) : 1.0f;
    if (bright != 0.0f || contrast != 1.0f || gamma != 1.0f) {
      for (float& v : r.px) {
        float u = (v - 0.5f) * contrast + 0.5f + bright;
        u = u < 0 ? 0 : (u > 1 ? 1 : u);
        if (gamma != 1.0f) u = std::pow(u, gamma);
        v = u;
      }
    }
  }
  const int pw = g.padded_width, ph = g.padded_height;
  if (pw == rw && ph == rh) {
    t.image = std::move(r);
  } else {
    t.image = GreyF(pw, ph, 0.0f);
    for (int y = 0; y < rh; ++y)
      std::copy(r.px.begin() + static_cast<size_t>(y) * rw, r.px.begin() + static_cast<size_t>(y + 1) * rw,
                t.image.px.begin() + static_cast<size_t>(y) * pw);
  }
  return t;
}

}  // namespace sx::io
