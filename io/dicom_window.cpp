// The DICOM reader's windowing (see dicom.h, steps 4-5): modality values to [0, 1] by a chosen
// mode (none, dicom, min-max, percentile), MONOCHROME1 inverted so that bone is bright.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "io/dicom.h"
#include "tensor/errors.h"

namespace sx::io {

WindowMode parse_window_mode(const std::string& s) {
  if (s == "none") return WindowMode::None;
  if (s == "dicom") return WindowMode::Dicom;
  if (s == "minmax" || s == "min-max") return WindowMode::MinMax;
  if (s == "percentile") return WindowMode::Percentile;
  SX_THROW(ValueError, "unknown windowing '", s, "' (expected none, dicom, minmax or percentile)");
}

const char* window_mode_name(WindowMode m) {
  switch (m) {
    case WindowMode::None: return "none";
    case WindowMode::Dicom: return "dicom";
    case WindowMode::MinMax: return "minmax";
    case WindowMode::Percentile: return "percentile";
  }
  return "?";
}

std::vector<float> window_image(const DicomImage& img, const WindowOptions& opt, WindowUsed* used) {
  const size_t n = img.values.size();
  std::vector<float> out(n);
  const float* v = img.values.data();
  WindowUsed u;
  auto linear = [&](double lo, double hi) {
    const double w = hi - lo;
    const float a = w > 0 ? static_cast<float>(1.0 / w) : 0.0f, b = static_cast<float>(lo);
    for (size_t i = 0; i < n; ++i) {
      float t = (v[i] - b) * a;
      out[i] = t < 0 ? 0.0f : (t > 1 ? 1.0f : t);
    }
    u.center = (lo + hi) / 2;
    u.width = w;
  };
  switch (opt.mode) {
    case WindowMode::None:
      linear(img.range_lo, img.range_hi);
      u.source = "none";
      break;
    case WindowMode::MinMax:
      linear(img.min_value, img.max_value);
      u.source = "min-max";
      break;
    case WindowMode::Percentile: {
      SX_CHECK(opt.pct_low >= 0 && opt.pct_low < opt.pct_high && opt.pct_high <= 100, "window: percentiles must satisfy 0 <= low < high <= 100, got ",
               opt.pct_low, ", ", opt.pct_high);
      // On a strided sample of at most ~1M values (enough for a percentile of a radiograph).
      std::vector<float> s;
      size_t step = std::max<size_t>(1, n / (1u << 20));
      s.reserve(n / step + 1);
      for (size_t i = 0; i < n; i += step) s.push_back(v[i]);
      double lo = img.min_value, hi = img.max_value;
      if (!s.empty()) {
        size_t kl = static_cast<size_t>(opt.pct_low / 100.0 * (s.size() - 1));
        size_t kh = static_cast<size_t>(opt.pct_high / 100.0 * (s.size() - 1));
        std::nth_element(s.begin(), s.begin() + kl, s.end());
        lo = s[kl];
        std::nth_element(s.begin(), s.begin() + kh, s.end());
        hi = s[kh];
      }
      linear(lo, hi);
      u.source = "percentile";
      break;
    }
    case WindowMode::Dicom:
      if (!img.voi_lut.empty()) {
        const double scale = 1.0 / (std::ldexp(1.0, img.voi_bits) - 1);
        const int64_t last = static_cast<int64_t>(img.voi_lut.size()) - 1;
        for (size_t i = 0; i < n; ++i) {
          int64_t k = static_cast<int64_t>(std::floor(v[i])) - img.voi_first;
          k = k < 0 ? 0 : (k > last ? last : k);
          out[i] = static_cast<float>(std::min(1.0, img.voi_lut[k] * scale));
        }
        u.source = "voi-lut";
        u.center = img.voi_first + img.voi_lut.size() / 2.0;
        u.width = static_cast<double>(img.voi_lut.size());
      } else if (img.info.has_window) {
        const double c = img.info.window_center, w = img.info.window_width;
        for (size_t i = 0; i < n; ++i) out[i] = dicom_window(v[i], c, w);
        u.center = c;
        u.width = w;
        u.source = "dicom";
      } else {
        linear(img.min_value, img.max_value);
        u.source = "min-max (no window tags)";
      }
      break;
  }
  if (img.info.monochrome1())
    for (size_t i = 0; i < n; ++i) out[i] = 1.0f - out[i];
  if (used) *used = u;
  return out;
}

}  // namespace sx::io
