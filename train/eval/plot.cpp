// Raster plots: see plot.h. Lines use Bresenham's algorithm (integer error term, one pixel per
// step along the major axis) stamped with a square brush of the requested thickness.
#include "train/eval/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "io/image_io.h"
#include "tensor/errors.h"
#include "train/eval/font5x7.h"

namespace sx::plot {

Color palette(int i) {
  static const Color kTab10[10] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},
                                   {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127},
                                   {188, 189, 34},  {23, 190, 207}};
  return kTab10[((i % 10) + 10) % 10];
}

Canvas::Canvas(int width, int height, Color bg) : w_(width), h_(height) {
  SX_CHECK(width > 0 && height > 0 && int64_t(width) * height <= (int64_t(1) << 28),
           "Canvas: bad size ", width, "x", height);
  rgb_.resize(static_cast<size_t>(width) * height * 3);
  for (size_t i = 0; i < rgb_.size(); i += 3) {
    rgb_[i] = bg.r;
    rgb_[i + 1] = bg.g;
    rgb_[i + 2] = bg.b;
  }
  reset_clip();
}

Color Canvas::get(int x, int y) const {
  SX_CHECK(x >= 0 && y >= 0 && x < w_ && y < h_, "Canvas::get: (", x, ", ", y, ") outside ", w_, "x", h_);
  const uint8_t* p = &rgb_[(static_cast<size_t>(y) * w_ + x) * 3];
  return {p[0], p[1], p[2]};
}

void Canvas::set(int x, int y, Color c) {
  if (x < cx0_ || y < cy0_ || x > cx1_ || y > cy1_) return;
  uint8_t* p = &rgb_[(static_cast<size_t>(y) * w_ + x) * 3];
  p[0] = c.r;
  p[1] = c.g;
  p[2] = c.b;
}

void Canvas::clip(int x0, int y0, int x1, int y1) {
  cx0_ = std::max(0, std::min(x0, x1));
  cy0_ = std::max(0, std::min(y0, y1));
  cx1_ = std::min(w_ - 1, std::max(x0, x1));
  cy1_ = std::min(h_ - 1, std::max(y0, y1));
}
void Canvas::reset_clip() {
  cx0_ = cy0_ = 0;
  cx1_ = w_ - 1;
  cy1_ = h_ - 1;
}

void Canvas::brush(int x, int y, Color c, int t) {
  int lo = -(t - 1) / 2, hi = t / 2;
  for (int dy = lo; dy <= hi; ++dy)
    for (int dx = lo; dx <= hi; ++dx) set(x + dx, y + dy, c);
}

namespace {
// Calls f(x, y, k) for each pixel of the Bresenham line, k = index along the line.
template <class F>
void bresenham(int x0, int y0, int x1, int y1, F f) {
  // Lines far outside the canvas (a curve point mapped to +-1e9) are shortened first.
  const int kLim = 1 << 20;
  x0 = std::clamp(x0, -kLim, kLim);
  x1 = std::clamp(x1, -kLim, kLim);
  y0 = std::clamp(y0, -kLim, kLim);
  y1 = std::clamp(y1, -kLim, kLim);
  int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
  int dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
  int err = dx + dy, k = 0;
  while (true) {
    f(x0, y0, k++);
    if (x0 == x1 && y0 == y1) break;
    int e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y0 += sy;
    }
  }
}
}  // namespace

void Canvas::line(int x0, int y0, int x1, int y1, Color c, int thickness) {
  bresenham(x0, y0, x1, y1, [&](int x, int y, int) { brush(x, y, c, thickness); });
}

void Canvas::dashed_line(int x0, int y0, int x1, int y1, Color c, int thickness, int dash) {
  dash = std::max(1, dash);
  bresenham(x0, y0, x1, y1, [&](int x, int y, int k) {
    if ((k / dash) % 2 == 0) brush(x, y, c, thickness);
  });
}

void Canvas::rect(int x0, int y0, int x1, int y1, Color c, int thickness) {
  if (x0 > x1) std::swap(x0, x1);
  if (y0 > y1) std::swap(y0, y1);
  for (int t = 0; t < std::max(1, thickness); ++t) {
    int a = x0 + t, b = y0 + t, cc = x1 - t, d = y1 - t;
    if (a > cc || b > d) break;
    for (int x = a; x <= cc; ++x) {
      set(x, b, c);
      set(x, d, c);
    }
    for (int y = b; y <= d; ++y) {
      set(a, y, c);
      set(cc, y, c);
    }
  }
}

void Canvas::fill_rect(int x0, int y0, int x1, int y1, Color c) {
  if (x0 > x1) std::swap(x0, x1);
  if (y0 > y1) std::swap(y0, y1);
  x0 = std::max(x0, cx0_);
  y0 = std::max(y0, cy0_);
  x1 = std::min(x1, cx1_);
  y1 = std::min(y1, cy1_);
  for (int y = y0; y <= y1; ++y)
    for (int x = x0; x <= x1; ++x) set(x, y, c);
}

void Canvas::text(int x, int y, const std::string& s, Color c, int scale) {
  scale = std::max(1, scale);
  int cx = x, cy = y;
  for (char ch : s) {
    if (ch == '\n') {
      cx = x;
      cy += kCellH * scale;
      continue;
    }
    const uint8_t* g = glyph(ch);
    for (int col = 0; col < kGlyphW; ++col)
      for (int row = 0; row < kGlyphH; ++row)
        if (g[col] >> row & 1)
          for (int a = 0; a < scale; ++a)
            for (int b = 0; b < scale; ++b) set(cx + col * scale + b, cy + row * scale + a, c);
    cx += kCellW * scale;
  }
}

void Canvas::text_vertical(int x, int y, const std::string& s, Color c, int scale) {
  // Quarter turn counter-clockwise: glyph column `col` goes up (y decreasing), glyph row `row`
  // goes right (x increasing); the text advances upwards from (x, y).
  scale = std::max(1, scale);
  int base = y;
  for (char ch : s) {
    const uint8_t* g = glyph(ch);
    for (int col = 0; col < kGlyphW; ++col)
      for (int row = 0; row < kGlyphH; ++row)
        if (g[col] >> row & 1)
          for (int a = 0; a < scale; ++a)
            for (int b = 0; b < scale; ++b) set(x + row * scale + b, base - col * scale - a, c);
    base -= kCellW * scale;
  }
}

int Canvas::text_width(const std::string& s, int scale) {
  int best = 0, cur = 0;
  for (char ch : s) {
    if (ch == '\n') {
      best = std::max(best, cur);
      cur = 0;
    } else {
      ++cur;
    }
  }
  best = std::max(best, cur);
  return best == 0 ? 0 : (best * kCellW - 1) * std::max(1, scale);
}

int Canvas::text_height(const std::string& s, int scale) {
  int lines = 1 + static_cast<int>(std::count(s.begin(), s.end(), '\n'));
  return (lines * kCellH - 1) * std::max(1, scale);
}

void Canvas::save_png(const std::string& path) const { io::write_png(path, rgb_.data(), w_, h_, 3); }

// ---- line plots ---------------------------------------------------------------------------------

int PlotFrame::px(double x) const {
  double t = (x - xmin) / (xmax - xmin);
  return left + static_cast<int>(std::lround(std::clamp(t, -1e3, 1e3) * (right - left)));
}
int PlotFrame::py(double y) const {
  double t = (y - ymin) / (ymax - ymin);
  return bottom - static_cast<int>(std::lround(std::clamp(t, -1e3, 1e3) * (bottom - top)));
}

std::vector<double> nice_ticks(double lo, double hi, int n) {
  std::vector<double> out;
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {lo};
  n = std::max(1, n);
  double raw = (hi - lo) / n;
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double f = raw / mag;
  double step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
  double first = std::ceil(lo / step - 1e-9) * step;
  for (int k = 0; k < 1000; ++k) {
    double v = first + k * step;
    if (v > hi + step * 1e-9) break;
    out.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  }
  return out;
}

std::string tick_label(double v) {
  char buf[64];
  for (int d = 0; d <= 6; ++d) {
    std::snprintf(buf, sizeof buf, "%.*f", d, v);
    if (std::fabs(std::strtod(buf, nullptr) - v) <= 1e-9 * std::max(1.0, std::fabs(v))) break;
  }
  return buf;
}

Canvas render(const LinePlot& p, PlotFrame* frame_out) {
  Canvas cv(p.width, p.height, kWhite);
  PlotFrame fr;
  fr.xmin = p.xmin;
  fr.xmax = p.xmax;
  fr.ymin = p.ymin;
  fr.ymax = p.ymax;
  if (p.auto_range) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (const auto& s : p.series) {
      for (double v : s.x)
        if (std::isfinite(v)) x0 = std::min(x0, v), x1 = std::max(x1, v);
      for (double v : s.y)
        if (std::isfinite(v)) y0 = std::min(y0, v), y1 = std::max(y1, v);
    }
    if (std::isfinite(x0)) {
      if (x1 == x0) x1 = x0 + 1;
      if (y1 == y0) y1 = y0 + 1, y0 -= 1;
      double pad = 0.05 * (y1 - y0);
      fr.xmin = x0;
      fr.xmax = x1;
      fr.ymin = y0 - pad;
      fr.ymax = y1 + pad;
    }
  }
  if (!(fr.xmax > fr.xmin)) fr.xmax = fr.xmin + 1;
  if (!(fr.ymax > fr.ymin)) fr.ymax = fr.ymin + 1;

  auto xt = nice_ticks(fr.xmin, fr.xmax, p.ticks), yt = nice_ticks(fr.ymin, fr.ymax, p.ticks);
  int ylab_w = 0;
  for (double v : yt) ylab_w = std::max(ylab_w, Canvas::text_width(tick_label(v)));
  fr.left = 14 + (p.ylabel.empty() ? 0 : 12) + ylab_w;
  fr.top = p.title.empty() ? 12 : 12 + 2 * kCellH + 6;
  fr.right = p.width - 16;
  fr.bottom = p.height - 1 - (12 + kCellH + (p.xlabel.empty() ? 0 : kCellH + 6));
  SX_CHECK(fr.right - fr.left > 10 && fr.bottom - fr.top > 10, "plot: ", p.width, "x", p.height,
           " is too small for the axes and labels");

  // grid and ticks
  for (double v : xt) {
    int x = fr.px(v);
    if (p.grid) cv.line(x, fr.top, x, fr.bottom, kLightGrey);
    cv.line(x, fr.bottom, x, fr.bottom + 4, kBlack);
    std::string s = tick_label(v);
    cv.text(x - Canvas::text_width(s) / 2, fr.bottom + 7, s, kBlack);
  }
  for (double v : yt) {
    int y = fr.py(v);
    if (p.grid) cv.line(fr.left, y, fr.right, y, kLightGrey);
    cv.line(fr.left - 4, y, fr.left, y, kBlack);
    std::string s = tick_label(v);
    cv.text(fr.left - 7 - Canvas::text_width(s), y - kGlyphH / 2, s, kBlack);
  }
  if (!p.title.empty()) cv.text((p.width - Canvas::text_width(p.title, 2)) / 2, 6, p.title, kBlack, 2);
  if (!p.xlabel.empty())
    cv.text((fr.left + fr.right - Canvas::text_width(p.xlabel)) / 2, fr.bottom + 9 + kCellH + 4, p.xlabel, kBlack);
  if (!p.ylabel.empty())
    cv.text_vertical(2, (fr.top + fr.bottom + Canvas::text_width(p.ylabel)) / 2, p.ylabel, kBlack);

  // curves, clipped to the frame
  cv.clip(fr.left, fr.top, fr.right, fr.bottom);
  for (const auto& s : p.series) {
    SX_CHECK(s.x.size() == s.y.size(), "plot: series '", s.label, "' has ", s.x.size(), " x and ", s.y.size(),
             " y values");
    bool have_prev = false;
    int px0 = 0, py0 = 0;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
        have_prev = false;  // a gap
        continue;
      }
      int px = fr.px(s.x[i]), py = fr.py(s.y[i]);
      if (have_prev) {
        if (s.dashed) cv.dashed_line(px0, py0, px, py, s.color, s.thickness);
        else cv.line(px0, py0, px, py, s.color, s.thickness);
      } else if (s.x.size() == 1) {
        cv.fill_rect(px - 2, py - 2, px + 2, py + 2, s.color);
      }
      px0 = px;
      py0 = py;
      have_prev = true;
    }
  }
  cv.reset_clip();
  cv.rect(fr.left, fr.top, fr.right, fr.bottom, kBlack);

  // legend (bottom right of the frame)
  std::vector<const Series*> named;
  for (const auto& s : p.series)
    if (!s.label.empty()) named.push_back(&s);
  if (!named.empty()) {
    int tw = 0;
    for (auto* s : named) tw = std::max(tw, Canvas::text_width(s->label));
    int row_h = kCellH + 4, bw = 8 + 20 + 6 + tw + 8, bh = 6 + row_h * static_cast<int>(named.size()) + 2;
    int bx1 = fr.right - 8, by1 = fr.bottom - 8, bx0 = bx1 - bw, by0 = by1 - bh;
    if (p.legend_top_left) {
      bx0 = fr.left + 8;
      by0 = fr.top + 8;
      bx1 = bx0 + bw;
      by1 = by0 + bh;
    }
    cv.fill_rect(bx0, by0, bx1, by1, kWhite);
    cv.rect(bx0, by0, bx1, by1, kGrey);
    for (size_t i = 0; i < named.size(); ++i) {
      int y = by0 + 6 + static_cast<int>(i) * row_h;
      int ym = y + kGlyphH / 2;
      if (named[i]->dashed) cv.dashed_line(bx0 + 8, ym, bx0 + 28, ym, named[i]->color, 2, 4);
      else cv.line(bx0 + 8, ym, bx0 + 28, ym, named[i]->color, 2);
      cv.text(bx0 + 34, y, named[i]->label, kBlack);
    }
  }
  if (frame_out) *frame_out = fr;
  return cv;
}

Canvas render_roc(const std::vector<double>& fpr, const std::vector<double>& tpr, const std::string& label,
                  double op_fpr, double op_tpr, const std::string& title) {
  LinePlot p;
  p.title = title;
  p.xlabel = "False positive rate (1 - specificity)";
  p.ylabel = "True positive rate (sensitivity)";
  p.width = 560;
  p.height = 560;
  Series chance;
  chance.label = "chance";
  chance.x = {0, 1};
  chance.y = {0, 1};
  chance.color = kGrey;
  chance.thickness = 1;
  chance.dashed = true;
  Series roc;
  roc.label = label;
  roc.x = fpr;
  roc.y = tpr;
  roc.color = palette(0);
  p.series = {chance, roc};
  PlotFrame fr;
  Canvas cv = render(p, &fr);
  if (op_fpr >= 0 && op_tpr >= 0) {
    int x = fr.px(op_fpr), y = fr.py(op_tpr);
    cv.rect(x - 4, y - 4, x + 4, y + 4, palette(3), 2);
  }
  return cv;
}

Canvas render_reliability(const std::vector<ReliabilityBin>& bins, const std::string& label, const std::string& title) {
  LinePlot p;
  p.title = title;
  p.xlabel = "Predicted probability (bin)";
  p.ylabel = "Observed fraction abnormal";
  p.width = 560;
  p.height = 560;
  Series diag;
  diag.label = "perfectly calibrated";
  diag.x = {0, 1};
  diag.y = {0, 1};
  diag.color = kGrey;
  diag.thickness = 1;
  diag.dashed = true;
  Series model;  // observed fraction at each non-empty bin's mean predicted probability
  model.label = label;
  model.color = palette(3);
  for (const auto& b : bins)
    if (b.count > 0) {
      model.x.push_back(b.mean_prob);
      model.y.push_back(b.frac_positive);
    }
  p.series = {diag, model};
  p.legend_top_left = true;  // where a calibrated model's bars are lowest
  PlotFrame fr;
  Canvas cv = render(p, &fr);
  // Bars (the observed fraction over each non-empty bin, with its image count above), then the
  // diagonal and the model's line drawn again on top of them.
  const Color bar{198, 219, 239}, edge{107, 174, 214};
  for (const auto& b : bins) {
    if (b.count == 0) continue;
    const int x0 = fr.px(b.lo) + 1, x1 = fr.px(b.hi) - 1, y0 = fr.py(b.frac_positive), y1 = fr.py(0.0);
    if (x1 <= x0) continue;
    if (y1 > y0) {
      cv.fill_rect(x0, y0, x1, y1, bar);
      cv.rect(x0, y0, x1, y1, edge, 1);
    }
    const std::string n = std::to_string(b.count);
    cv.text((x0 + x1 - Canvas::text_width(n)) / 2, std::max(fr.top + 2, y0 - 10), n, kBlack);
  }
  cv.dashed_line(fr.px(0), fr.py(0), fr.px(1), fr.py(1), kGrey, 1);
  for (size_t i = 0; i + 1 < model.x.size(); ++i)
    cv.line(fr.px(model.x[i]), fr.py(model.y[i]), fr.px(model.x[i + 1]), fr.py(model.y[i + 1]), palette(3), 2);
  for (size_t i = 0; i < model.x.size(); ++i) {
    const int x = fr.px(model.x[i]), y = fr.py(model.y[i]);
    cv.fill_rect(x - 3, y - 3, x + 3, y + 3, palette(3));
  }
  return cv;
}

Canvas render_pr(const std::vector<Series>& curves, const std::string& title) {
  LinePlot p;
  p.title = title;
  p.xlabel = "Recall";
  p.ylabel = "Precision";
  p.width = 640;
  p.height = 560;
  p.series = curves;
  for (size_t i = 0; i < p.series.size(); ++i)
    if (p.series[i].color == palette(0) && i > 0) p.series[i].color = palette(static_cast<int>(i));
  return render(p);
}

// ---- boxes ------------------------------------------------------------------------------------

Canvas draw_boxes(const uint8_t* grey, int width, int height, const std::vector<LabeledBox>& boxes,
                  int thickness, int text_scale) {
  SX_CHECK(grey != nullptr || int64_t(width) * height == 0, "draw_boxes: null image");
  Canvas cv(width, height, kBlack);
  uint8_t* dst = cv.data();
  for (size_t i = 0; i < static_cast<size_t>(width) * height; ++i) dst[3 * i] = dst[3 * i + 1] = dst[3 * i + 2] = grey[i];
  for (const auto& b : boxes) {
    if (!std::isfinite(b.x1) || !std::isfinite(b.y1) || !std::isfinite(b.x2) || !std::isfinite(b.y2)) continue;
    auto to_px = [](double v) { return static_cast<int>(std::lround(std::clamp(v, -1e7, 1e7))); };
    int x1 = to_px(b.x1), y1 = to_px(b.y1), x2 = to_px(b.x2), y2 = to_px(b.y2);
    cv.rect(x1, y1, x2, y2, b.color, thickness);
    if (b.text.empty()) continue;
    int tw = Canvas::text_width(b.text, text_scale) + 4, th = Canvas::text_height(b.text, text_scale) + 4;
    int tx = std::max(0, std::min(x1, width - tw));
    int ty = y1 - th >= 0 ? y1 - th : y2 + 1;  // above the box, or below when there is no room
    if (ty + th > height) ty = std::max(0, y1);  // inside, at the top, when neither fits
    cv.fill_rect(tx, ty, tx + tw - 1, ty + th - 1, b.color);
    int lum = (299 * b.color.r + 587 * b.color.g + 114 * b.color.b) / 1000;
    cv.text(tx + 2, ty + 2, b.text, lum > 140 ? kBlack : kWhite, text_scale);
  }
  return cv;
}

}  // namespace sx::plot
