// Panels, heat maps and bar charts: the building blocks of `spinexr explain`'s pictures (plot.h).
// A picture there is usually several panels (one per FPN level, per step of NMS, ...) laid out with
// tile(), each with a caption strip, over a grey radiograph scaled with grey_canvas(); heat maps are
// blended over it with mix() and heat_color(); the focal-loss split is a grouped bar chart.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "tensor/errors.h"
#include "train/eval/plot.h"

namespace sx::plot {

void Canvas::paste(const Canvas& src, int x, int y) {
  for (int r = 0; r < src.height(); ++r)
    for (int c = 0; c < src.width(); ++c) set(x + c, y + r, src.get(c, r));
}

Color mix(Color a, Color b, double t) {
  t = std::isfinite(t) ? std::clamp(t, 0.0, 1.0) : 0.0;
  auto ch = [t](uint8_t u, uint8_t v) { return static_cast<uint8_t>(std::lround(u + t * (double(v) - u))); };
  return {ch(a.r, b.r), ch(a.g, b.g), ch(a.b, b.b)};
}

Color heat_color(double t) {
  if (!std::isfinite(t)) return kGrey;
  static const Color kStops[5] = {{0, 0, 4}, {87, 16, 110}, {188, 55, 84}, {249, 142, 9}, {252, 255, 164}};
  t = std::clamp(t, 0.0, 1.0) * 4.0;
  const int k = std::min(3, static_cast<int>(t));
  return mix(kStops[k], kStops[k + 1], t - k);
}

Canvas grey_canvas(const uint8_t* grey, int width, int height, double scale) {
  SX_CHECK(grey != nullptr && width > 0 && height > 0 && scale > 0, "grey_canvas: bad image ", width, "x", height,
           " or scale ", scale);
  const int w = std::max(1, static_cast<int>(std::lround(width * scale)));
  const int h = std::max(1, static_cast<int>(std::lround(height * scale)));
  Canvas cv(w, h, kBlack);
  uint8_t* dst = cv.data();
  for (int y = 0; y < h; ++y) {
    const int sy = std::min(height - 1, static_cast<int>(y / scale));
    for (int x = 0; x < w; ++x) {
      const int sx = std::min(width - 1, static_cast<int>(x / scale));
      const uint8_t v = grey[static_cast<size_t>(sy) * width + sx];
      uint8_t* p = dst + 3 * (static_cast<size_t>(y) * w + x);
      p[0] = p[1] = p[2] = v;
    }
  }
  return cv;
}

Canvas captioned(const Canvas& c, const std::string& caption, int scale) {
  if (caption.empty()) return c;
  const int strip = Canvas::text_height(caption, scale) + 8;
  Canvas out(std::max(c.width(), Canvas::text_width(caption, scale) + 8), c.height() + strip, kWhite);
  out.text(4, 4, caption, kBlack, scale);
  out.paste(c, 0, strip);
  return out;
}

Canvas tile(const std::vector<Canvas>& panels, int columns, int gap, Color background) {
  SX_CHECK(!panels.empty() && columns > 0 && gap >= 0, "tile: need panels and columns > 0");
  const int n = static_cast<int>(panels.size());
  const int rows = (n + columns - 1) / columns;
  std::vector<int> col_w(columns, 0), row_h(rows, 0);
  for (int i = 0; i < n; ++i) {
    col_w[i % columns] = std::max(col_w[i % columns], panels[i].width());
    row_h[i / columns] = std::max(row_h[i / columns], panels[i].height());
  }
  int W = gap, H = gap;
  for (int w : col_w) W += w + gap;
  for (int h : row_h) H += h + gap;
  Canvas out(W, H, background);
  int y = gap;
  for (int r = 0; r < rows; ++r) {
    int x = gap;
    for (int c = 0; c < columns && r * columns + c < n; ++c) {
      out.paste(panels[r * columns + c], x, y);
      x += col_w[c] + gap;
    }
    y += row_h[r] + gap;
  }
  return out;
}

Canvas render_bars(const BarChart& chart) {
  const int G = static_cast<int>(chart.groups.size()), S = static_cast<int>(chart.series.size());
  SX_CHECK(G > 0 && S > 0, "render_bars: need groups and series");
  double lo = 0, hi = 0;
  for (const auto& s : chart.series) {
    SX_CHECK(static_cast<int>(s.values.size()) == G, "render_bars: series '", s.label, "' has ", s.values.size(),
             " values for ", G, " groups");
    for (double v : s.values)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (chart.ymax > 0) hi = chart.ymax;
  else hi = hi > 0 ? hi * 1.12 : 1.0;
  if (lo < 0) lo *= 1.12;
  // The axes come from an empty line plot over [0, G] x [lo, hi]; its x ticks are covered by the
  // group names.
  LinePlot p;
  p.title = chart.title;
  p.ylabel = chart.ylabel;
  p.xmin = 0;
  p.xmax = G;
  p.ymin = lo;
  p.ymax = hi;
  p.width = chart.width;
  p.height = chart.height;
  p.ticks = 6;
  p.grid = true;
  PlotFrame fr;
  Canvas cv = render(p, &fr);
  cv.fill_rect(fr.left - 2, fr.bottom + 2, fr.right + 8, chart.height - 1, kWhite);  // drop the numeric x ticks
  cv.rect(fr.left, fr.top, fr.right, fr.bottom, kBlack);
  const double group_w = 1.0, bar_w = 0.8 / S;
  for (int g = 0; g < G; ++g) {
    for (int s = 0; s < S; ++s) {
      const double v = chart.series[s].values[g];
      if (!std::isfinite(v)) continue;
      const double x0 = g * group_w + 0.1 + s * bar_w;
      int px0 = fr.px(x0) + 1, px1 = fr.px(x0 + bar_w) - 1;
      int py0 = fr.py(std::max(v, 0.0)), py1 = fr.py(std::min(v, 0.0));
      cv.fill_rect(px0, py0, std::max(px0, px1), py1, chart.series[s].color);
      if (chart.value_labels) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.3g", v);
        cv.text((px0 + px1 - Canvas::text_width(buf)) / 2, py0 - 10, buf, kBlack);
      }
    }
    const std::string& name = chart.groups[g];
    cv.text((fr.px(g + 0.5) - Canvas::text_width(name) / 2), fr.bottom + 7, name, kBlack);
  }
  // legend, top right inside the frame
  int tw = 0;
  for (const auto& s : chart.series) tw = std::max(tw, Canvas::text_width(s.label));
  const int row_h = 12, bw = 8 + 12 + 6 + tw + 8, bh = 6 + row_h * S + 2;
  const int bx1 = fr.right - 8, bx0 = bx1 - bw, by0 = fr.top + 8;
  cv.fill_rect(bx0, by0, bx1, by0 + bh, kWhite);
  cv.rect(bx0, by0, bx1, by0 + bh, kGrey);
  for (int s = 0; s < S; ++s) {
    const int y = by0 + 6 + s * row_h;
    cv.fill_rect(bx0 + 8, y, bx0 + 18, y + 7, chart.series[s].color);
    cv.text(bx0 + 26, y, chart.series[s].label, kBlack);
  }
  return cv;
}

}  // namespace sx::plot
