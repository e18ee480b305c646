// AutoAugment for detection, policy v2: the table, the operations on a grey float image and its
// boxes, and the per-image choice of a sub-policy. See autoaugment.h for the semantics and the
// rules for boxes; the reference is the VinDr-SpineXR authors' NumPy/PIL port of Zoph et al.'s code.
#include "io/autoaugment.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>

#include "tensor/errors.h"

namespace sx::io {

AutoAugmentPolicy parse_autoaugment_policy(const std::string& s) {
  if (s == "none") return AutoAugmentPolicy::None;
  if (s == "v2") return AutoAugmentPolicy::V2;
  SX_THROW(ValueError, "unknown AutoAugment policy '", s, "' (expected none or v2)");
}

const char* autoaugment_policy_name(AutoAugmentPolicy p) { return p == AutoAugmentPolicy::V2 ? "v2" : "none"; }

const char* aug_op_name(AugOp op) {
  switch (op) {
    case AugOp::AutoContrast: return "AutoContrast";
    case AugOp::Equalize: return "Equalize";
    case AugOp::Solarize: return "Solarize";
    case AugOp::SolarizeAdd: return "SolarizeAdd";
    case AugOp::Color: return "Color";
    case AugOp::Contrast: return "Contrast";
    case AugOp::Brightness: return "Brightness";
    case AugOp::Sharpness: return "Sharpness";
    case AugOp::Cutout: return "Cutout";
    case AugOp::BBoxCutout: return "BBox_Cutout";
    case AugOp::RotateBBox: return "Rotate_BBox";
    case AugOp::TranslateYBBox: return "TranslateY_BBox";
    case AugOp::ShearXBBox: return "ShearX_BBox";
    case AugOp::ShearYBBox: return "ShearY_BBox";
  }
  return "?";
}

const std::vector<SubPolicy>& autoaugment_policy_v2() {
  using O = AugOp;
  static const std::vector<SubPolicy> v2 = {
      {{O::Color, 0.0, 6}, {O::Cutout, 0.6, 8}, {O::Sharpness, 0.4, 8}},
      {{O::RotateBBox, 0.4, 8}, {O::Sharpness, 0.4, 2}, {O::RotateBBox, 0.8, 10}},
      {{O::TranslateYBBox, 1.0, 8}, {O::AutoContrast, 0.8, 2}},
      {{O::AutoContrast, 0.4, 6}, {O::ShearXBBox, 0.8, 8}, {O::Brightness, 0.0, 10}},
      {{O::SolarizeAdd, 0.2, 6}, {O::Contrast, 0.0, 10}, {O::AutoContrast, 0.6, 0}},
      {{O::Cutout, 0.2, 0}, {O::Solarize, 0.8, 8}, {O::Color, 1.0, 4}},
      {{O::TranslateYBBox, 0.0, 4}, {O::Equalize, 0.6, 8}, {O::Solarize, 0.0, 10}},
      {{O::TranslateYBBox, 0.2, 2}, {O::ShearYBBox, 0.8, 8}, {O::RotateBBox, 0.8, 8}},
      {{O::Cutout, 0.8, 8}, {O::Brightness, 0.8, 8}, {O::Cutout, 0.2, 2}},
      {{O::Color, 0.8, 4}, {O::TranslateYBBox, 1.0, 6}, {O::RotateBBox, 0.6, 6}},
      {{O::RotateBBox, 0.6, 10}, {O::BBoxCutout, 1.0, 4}, {O::Cutout, 0.2, 8}},
      {{O::RotateBBox, 0.0, 0}, {O::Equalize, 0.6, 6}, {O::ShearYBBox, 0.6, 8}},
      {{O::Brightness, 0.8, 8}, {O::AutoContrast, 0.4, 2}, {O::Brightness, 0.2, 2}},
      {{O::TranslateYBBox, 0.4, 8}, {O::Solarize, 0.4, 6}, {O::SolarizeAdd, 0.2, 10}},
      {{O::Contrast, 1.0, 10}, {O::SolarizeAdd, 0.2, 8}, {O::Equalize, 0.2, 4}},
  };
  return v2;
}

const std::vector<SubPolicy>& autoaugment_policy(AutoAugmentPolicy p) {
  SX_CHECK(p != AutoAugmentPolicy::None, "autoaugment_policy: no table for policy 'none'");
  return autoaugment_policy_v2();
}

double autoaugment_pixel_scale(int width, int height) {
  SX_CHECK(width > 0 && height > 0, "autoaugment: empty image ", width, "x", height);
  return std::min(width, height) / 800.0;
}

namespace aa {
namespace {

float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

// Blends every pixel towards `degenerate` (PIL Image.blend(degenerate, img, f)), clipped.
void blend_with(GreyF& img, const std::function<float(size_t)>& degenerate, float f) {
  for (size_t i = 0; i < img.px.size(); ++i) {
    const float d = degenerate(i);
    img.px[i] = clamp01(d + f * (img.px[i] - d));
  }
}

// Keys' cubic convolution weight (a = -0.5, PIL's BICUBIC).
float cubic(float t) {
  t = std::fabs(t);
  const float a = -0.5f;
  if (t < 1.0f) return ((a + 2.0f) * t - (a + 3.0f)) * t * t + 1.0f;
  if (t < 2.0f) return (((t - 5.0f) * t + 8.0f) * t - 4.0f) * a;
  return 0.0f;
}

enum class Interp { Nearest, Bicubic };

// Resamples by an inverse map: output pixel centre p -> input point q (continuous coordinates);
// q outside the image gives kFill.
GreyF warp(const GreyF& src, const std::function<std::array<double, 2>(double, double)>& inverse, Interp interp) {
  GreyF out(src.width, src.height, kFill);
  const int W = src.width, H = src.height;
  for (int y = 0; y < H; ++y) {
    for (int x = 0; x < W; ++x) {
      const auto q = inverse(x + 0.5, y + 0.5);
      if (!(q[0] >= 0 && q[0] < W && q[1] >= 0 && q[1] < H)) continue;
      float v;
      if (interp == Interp::Nearest) {
        v = src.at(static_cast<int>(q[0]), static_cast<int>(q[1]));
      } else {
        const double u = q[0] - 0.5, w = q[1] - 0.5;
        const int i0 = static_cast<int>(std::floor(u)), j0 = static_cast<int>(std::floor(w));
        const float tu = static_cast<float>(u - i0), tw = static_cast<float>(w - j0);
        float acc = 0.0f;
        for (int dj = -1; dj <= 2; ++dj) {
          const int jj = std::min(std::max(j0 + dj, 0), H - 1);
          const float wy = cubic(tw - dj);
          float row = 0.0f;
          for (int di = -1; di <= 2; ++di) row += cubic(tu - di) * src.at(std::min(std::max(i0 + di, 0), W - 1), jj);
          acc += wy * row;
        }
        v = clamp01(acc);
      }
      out.px[static_cast<size_t>(y) * W + x] = v;
    }
  }
  return out;
}

// Each box becomes the axis-aligned box of its four corners under `forward`, then clipped.
void map_boxes(std::vector<Box>& boxes, int W, int H, const std::function<std::array<double, 2>(double, double)>& forward) {
  for (Box& b : boxes) {
    double x1 = 1e30, y1 = 1e30, x2 = -1e30, y2 = -1e30;
    for (const auto& c : {std::array<double, 2>{b.x1, b.y1}, {b.x2, b.y1}, {b.x1, b.y2}, {b.x2, b.y2}}) {
      const auto p = forward(c[0], c[1]);
      x1 = std::min(x1, p[0]), x2 = std::max(x2, p[0]);
      y1 = std::min(y1, p[1]), y2 = std::max(y2, p[1]);
    }
    b.x1 = static_cast<float>(x1), b.y1 = static_cast<float>(y1);
    b.x2 = static_cast<float>(x2), b.y2 = static_cast<float>(y2);
  }
  clip_boxes(boxes, W, H);
}

}  // namespace

void clip_boxes(std::vector<Box>& boxes, int width, int height) {
  std::vector<Box> kept;
  const float W = static_cast<float>(width), H = static_cast<float>(height);
  for (Box b : boxes) {
    if (b.x2 < 0 || b.y2 < 0 || b.x1 > W || b.y1 > H) continue;  // wholly outside
    b.x1 = std::max(b.x1, 0.0f), b.y1 = std::max(b.y1, 0.0f);
    b.x2 = std::min(b.x2, W), b.y2 = std::min(b.y2, H);
    if (b.x2 - b.x1 <= 0 || b.y2 - b.y1 <= 0) continue;  // no area left
    kept.push_back(b);
  }
  boxes.swap(kept);
}

void autocontrast(GreyF& img) {
  if (img.px.empty()) return;
  const auto [lo, hi] = std::minmax_element(img.px.begin(), img.px.end());
  const float a = *lo, b = *hi;
  if (!(b > a)) return;
  for (float& v : img.px) v = clamp01((v - a) / (b - a));
}

void equalize(GreyF& img) {
  // PIL ImageOps.equalize on the 256 grey levels the reference's 8-bit image has.
  std::array<int64_t, 256> hist{};
  std::vector<uint8_t> level(img.px.size());
  for (size_t i = 0; i < img.px.size(); ++i) {
    level[i] = static_cast<uint8_t>(std::lround(clamp01(img.px[i]) * 255.0f));
    ++hist[level[i]];
  }
  int64_t total = 0, last = 0, nonzero = 0;
  for (int64_t h : hist) {
    if (h) last = h, ++nonzero;
    total += h;
  }
  if (nonzero <= 1) return;
  const int64_t step = (total - last) / 255;
  if (step == 0) return;
  std::array<float, 256> lut{};
  int64_t n = step / 2;
  for (int i = 0; i < 256; ++i) {
    lut[i] = static_cast<float>(std::min<int64_t>(255, n / step)) / 255.0f;
    n += hist[i];
  }
  for (size_t i = 0; i < img.px.size(); ++i) img.px[i] = lut[level[i]];
}

void solarize(GreyF& img, float threshold) {
  for (float& v : img.px)
    if (v >= threshold) v = 1.0f - v;
}

void solarize_add(GreyF& img, float addition, float threshold) {
  for (float& v : img.px)
    if (v < threshold) v = clamp01(v + addition);
}

void contrast(GreyF& img, float factor) {
  if (img.px.empty()) return;
  double sum = 0;
  for (float v : img.px) sum += v;
  const float mean = static_cast<float>(sum / img.px.size());
  blend_with(img, [mean](size_t) { return mean; }, factor);
}

void brightness(GreyF& img, float factor) {
  blend_with(img, [](size_t) { return 0.0f; }, factor);
}

void sharpness(GreyF& img, float factor) {
  // PIL's SMOOTH filter (3x3 ones, centre 5, / 13); the border pixels stay as they are.
  const int W = img.width, H = img.height;
  GreyF smooth = img;
  for (int y = 1; y + 1 < H; ++y)
    for (int x = 1; x + 1 < W; ++x) {
      float s = 4.0f * img.at(x, y);
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) s += img.at(x + dx, y + dy);
      smooth.px[static_cast<size_t>(y) * W + x] = s / 13.0f;
    }
  blend_with(img, [&smooth](size_t i) { return smooth.px[i]; }, factor);
}

void fill_rect(GreyF& img, int cx, int cy, int pad_x, int pad_y, float fill) {
  const int x0 = std::max(0, cx - pad_x), x1 = std::min(img.width, cx + pad_x);
  const int y0 = std::max(0, cy - pad_y), y1 = std::min(img.height, cy + pad_y);
  for (int y = y0; y < y1; ++y)
    std::fill(img.px.begin() + static_cast<size_t>(y) * img.width + x0,
              img.px.begin() + static_cast<size_t>(y) * img.width + x1, fill);
}

void translate(GreyF& img, std::vector<Box>& boxes, int dx, int dy) {
  img = warp(img, [dx, dy](double x, double y) { return std::array<double, 2>{x - dx, y - dy}; }, Interp::Nearest);
  map_boxes(boxes, img.width, img.height, [dx, dy](double x, double y) { return std::array<double, 2>{x + dx, y + dy}; });
}

void rotate(GreyF& img, std::vector<Box>& boxes, double degrees) {
  const double a = degrees * M_PI / 180.0, c = std::cos(a), s = std::sin(a);
  const double cx = img.width / 2.0, cy = img.height / 2.0;
  // Counter-clockwise on screen (y down): d -> (c dx + s dy, -s dx + c dy); the inverse is the transpose.
  img = warp(img, [=](double x, double y) {
        const double dx = x - cx, dy = y - cy;
        return std::array<double, 2>{cx + c * dx - s * dy, cy + s * dx + c * dy};
      }, Interp::Nearest);
  map_boxes(boxes, img.width, img.height, [=](double x, double y) {
    const double dx = x - cx, dy = y - cy;
    return std::array<double, 2>{cx + c * dx + s * dy, cy - s * dx + c * dy};
  });
}

void shear_x(GreyF& img, std::vector<Box>& boxes, double level) {
  img = warp(img, [level](double x, double y) { return std::array<double, 2>{x + level * y, y}; }, Interp::Bicubic);
  map_boxes(boxes, img.width, img.height, [level](double x, double y) { return std::array<double, 2>{x - level * y, y}; });
}

void shear_y(GreyF& img, std::vector<Box>& boxes, double level) {
  img = warp(img, [level](double x, double y) { return std::array<double, 2>{x, y + level * x}; }, Interp::Bicubic);
  map_boxes(boxes, img.width, img.height, [level](double x, double y) { return std::array<double, 2>{x, y - level * x}; });
}

}  // namespace aa

namespace {

// An integer uniform in [lo, hi) (lo when the range is empty).
int randint(AugRng& rng, int lo, int hi) {
  if (hi <= lo) return lo;
  return std::min(hi - 1, lo + static_cast<int>(rng.uniform() * (hi - lo)));
}
// The reference flips the sign of a magnitude with probability 1/2.
double random_sign(AugRng& rng) { return rng.uniform() < 0.5 ? -1.0 : 1.0; }
// Colour magnitudes: the PIL enhancement factor 0.1 .. 1.9.
float enhance_factor(int level) { return static_cast<float>(level / 10.0 * 1.8 + 0.1); }

// The pixel columns (or rows) a box covers, inside [0, n).
std::array<int, 2> covered(float a, float b, int n) {
  const int lo = std::min(std::max(static_cast<int>(std::floor(a)), 0), n - 1);
  const int hi = std::min(std::max(static_cast<int>(std::ceil(b)) - 1, lo), n - 1);
  return {lo, hi};
}

void bbox_cutout(GreyF& img, const std::vector<Box>& boxes, int level, AugRng& rng) {
  if (boxes.empty()) return;
  const Box& b = boxes[static_cast<size_t>(randint(rng, 0, static_cast<int>(boxes.size())))];
  const double fraction = level / 10.0 * 0.75;  // of the box size, the whole cutout
  const auto [x0, x1] = covered(b.x1, b.x2, img.width);
  const auto [y0, y1] = covered(b.y1, b.y2, img.height);
  const int pad_x = static_cast<int>(fraction * (x1 - x0 + 1) / 2.0);
  const int pad_y = static_cast<int>(fraction * (y1 - y0 + 1) / 2.0);
  const int cy = randint(rng, y0, y1 + 1), cx = randint(rng, x0, x1 + 1);
  aa::fill_rect(img, cx, cy, pad_x, pad_y, aa::kFill);
}

}  // namespace

void apply_aug_op(AugOp op, int level, GreyF& img, std::vector<Box>& boxes, AugRng& rng, double pixel_scale) {
  SX_CHECK(level >= 0 && level <= 10, "autoaugment: level must be in 0..10, got ", level);
  switch (op) {
    case AugOp::AutoContrast: aa::autocontrast(img); break;
    case AugOp::Equalize: aa::equalize(img); break;
    case AugOp::Solarize: aa::solarize(img, static_cast<int>(level / 10.0 * 256) / 255.0f); break;
    case AugOp::SolarizeAdd: aa::solarize_add(img, static_cast<int>(level / 10.0 * 110) / 255.0f, 128.0f / 255.0f); break;
    case AugOp::Color: break;  // a grey image is its own grey version (see the header)
    case AugOp::Contrast: aa::contrast(img, enhance_factor(level)); break;
    case AugOp::Brightness: aa::brightness(img, enhance_factor(level)); break;
    case AugOp::Sharpness: aa::sharpness(img, static_cast<float>(1.0 + enhance_factor(level) * random_sign(rng))); break;
    case AugOp::Cutout: {
      const int pad = static_cast<int>(level / 10.0 * 100.0 * pixel_scale);
      const int cy = randint(rng, 0, img.height), cx = randint(rng, 0, img.width);
      aa::fill_rect(img, cx, cy, pad, pad, aa::kFill);
      break;
    }
    case AugOp::BBoxCutout: bbox_cutout(img, boxes, level, rng); break;
    case AugOp::RotateBBox: aa::rotate(img, boxes, level / 10.0 * 30.0 * random_sign(rng)); break;
    case AugOp::TranslateYBBox: {
      // The reference's translate by p samples row y + p: the content moves by -p.
      const double p = level / 10.0 * 250.0 * pixel_scale * random_sign(rng);
      aa::translate(img, boxes, 0, -static_cast<int>(std::lround(p)));
      break;
    }
    case AugOp::ShearXBBox: aa::shear_x(img, boxes, level / 10.0 * 0.3 * random_sign(rng)); break;
    case AugOp::ShearYBBox: aa::shear_y(img, boxes, level / 10.0 * 0.3 * random_sign(rng)); break;
  }
}

void apply_sub_policy(const SubPolicy& sp, GreyF& img, std::vector<Box>& boxes, AugRng& rng, double pixel_scale) {
  GreyF img0 = img;
  std::vector<Box> boxes0 = boxes;
  for (const PolicyStep& s : sp)
    if (rng.uniform() < s.prob) apply_aug_op(s.op, s.level, img, boxes, rng, pixel_scale);
  if (!boxes0.empty() && boxes.empty()) {  // every box lost: keep the image as it was
    img = std::move(img0);
    boxes = std::move(boxes0);
  }
}

int apply_autoaugment(AutoAugmentPolicy p, GreyF& img, std::vector<Box>& boxes, AugRng& rng, double pixel_scale) {
  if (p == AutoAugmentPolicy::None) return -1;
  const std::vector<SubPolicy>& table = autoaugment_policy(p);
  const int k = randint(rng, 0, static_cast<int>(table.size()));
  apply_sub_policy(table[static_cast<size_t>(k)], img, boxes, rng, pixel_scale);
  return k;
}

}  // namespace sx::io
