// Small raster plots without any plotting library: ROC and precision-recall curves, loss curves,
// and predicted boxes drawn over a radiograph. Everything is drawn into an 8-bit RGB Canvas and
// written through io::write_png (atomic).
//
// Drawing primitives: single pixels, Bresenham lines with a square brush (thickness), rectangles,
// filled rectangles, and text from a built-in 5x7 bitmap font (font5x7.h) at an integer scale,
// horizontal or rotated a quarter turn (the y-axis label). Everything outside the canvas (or the
// current clip rectangle) is silently clipped, so callers never need to check coordinates.
//
// A LinePlot maps data coordinates to pixels inside a frame with margins for the tick labels:
//   px = left + (x - xmin) / (xmax - xmin) * (plot_w - 1)
//   py = bottom - (y - ymin) / (ymax - ymin) * (plot_h - 1)      (y grows upwards)
// Ticks are "nice" numbers (1, 2 or 5 times a power of ten) between the limits; curves are clipped
// to the frame; a legend box lists each series' colour and label.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sx::plot {

struct Color {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Color& o) const { return r == o.r && g == o.g && b == o.b; }
  bool operator!=(const Color& o) const { return !(*this == o); }
};
constexpr Color kWhite{255, 255, 255}, kBlack{0, 0, 0}, kGrey{160, 160, 160}, kLightGrey{225, 225, 225};
// A qualitative palette (matplotlib's tab10) cycled by index.
Color palette(int i);

class Canvas {
 public:
  Canvas(int width, int height, Color background = kWhite);
  int width() const { return w_; }
  int height() const { return h_; }
  const std::vector<uint8_t>& rgb() const { return rgb_; }  // row-major, 3 bytes per pixel
  uint8_t* data() { return rgb_.data(); }
  Color get(int x, int y) const;                          // throws ValueError outside
  void set(int x, int y, Color c);                        // clipped

  // Restrict drawing to [x0, x1] x [y0, y1] (inclusive); reset_clip() restores the full canvas.
  void clip(int x0, int y0, int x1, int y1);
  void reset_clip();

  void line(int x0, int y0, int x1, int y1, Color c, int thickness = 1);
  // Every `dash` pixels on, `dash` off (a dashed line), same brush as line().
  void dashed_line(int x0, int y0, int x1, int y1, Color c, int thickness = 1, int dash = 6);
  void rect(int x0, int y0, int x1, int y1, Color c, int thickness = 1);  // outline, inclusive corners
  void fill_rect(int x0, int y0, int x1, int y1, Color c);
  // Text with its top-left corner at (x, y); newline starts a new line. scale >= 1.
  void text(int x, int y, const std::string& s, Color c, int scale = 1);
  // Text rotated a quarter turn counter-clockwise (reads bottom to top), bottom-left at (x, y).
  void text_vertical(int x, int y, const std::string& s, Color c, int scale = 1);
  static int text_width(const std::string& s, int scale = 1);   // longest line
  static int text_height(const std::string& s, int scale = 1);  // all lines

  // Writes an 8-bit RGB PNG atomically (io::write_png).
  void save_png(const std::string& path) const;
  // Copies `src` with its top-left corner at (x, y); what falls outside (or the clip) is dropped.
  void paste(const Canvas& src, int x, int y);

 private:
  void brush(int x, int y, Color c, int thickness);
  int w_, h_;
  int cx0_, cy0_, cx1_, cy1_;
  std::vector<uint8_t> rgb_;
};

struct Series {
  std::string label;
  std::vector<double> x, y;
  Color color = palette(0);
  int thickness = 2;
  bool dashed = false;
};

struct LinePlot {
  std::string title, xlabel, ylabel;
  double xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  bool auto_range = false;  // derive the limits from the data (with a little padding)
  int width = 640, height = 480;
  int ticks = 5;  // about how many ticks per axis
  bool grid = true;
  bool legend_top_left = false;  // default: bottom right of the frame
  std::vector<Series> series;
};

// Pixel geometry of a rendered plot (for tests and for callers adding annotations).
struct PlotFrame {
  int left = 0, top = 0, right = 0, bottom = 0;  // inclusive pixel bounds of the data area
  double xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  int px(double x) const;
  int py(double y) const;
};

// Renders the plot; `frame` (optional) receives the data-area geometry.
Canvas render(const LinePlot& plot, PlotFrame* frame = nullptr);
// "Nice" tick values covering [lo, hi] with about n intervals (1/2/5 x 10^k steps).
std::vector<double> nice_ticks(double lo, double hi, int n);
// Tick label: shortest of %.{0..6}f that shows the value within 1e-9 relative ("0.2", "10", "0.05").
std::string tick_label(double v);

// ROC curve plot: the curve, the chance diagonal (dashed grey), an optional operating point
// (marked with a small square), axes "False positive rate" / "True positive rate".
Canvas render_roc(const std::vector<double>& fpr, const std::vector<double>& tpr, const std::string& label,
                  double op_fpr = -1, double op_tpr = -1, const std::string& title = "ROC");

// Precision-recall curves (e.g. one per lesion class): recall on x, precision on y, both [0, 1];
// each series' label should carry its AP ("Osteophytes AP 0.41").
Canvas render_pr(const std::vector<Series>& curves, const std::string& title = "Precision-recall");

// Reliability diagram: one bar per probability bin [lo_k, hi_k) whose height is the observed
// fraction of positives, the diagonal (a calibrated model's bars touch it, dashed grey), and each
// non-empty bin's mean predicted probability as a marker on a line. Bins with count 0 draw no bar.
// `label` (e.g. "ECE 3.1%") goes into the legend.
struct ReliabilityBin {
  double lo = 0, hi = 0, mean_prob = 0, frac_positive = 0;
  int64_t count = 0;
};
Canvas render_reliability(const std::vector<ReliabilityBin>& bins, const std::string& label,
                          const std::string& title = "Reliability");

// ---- boxes on images --------------------------------------------------------------------------
struct LabeledBox {
  double x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // pixel coordinates of the image
  std::string text;                       // drawn on a filled tag above the box (below when no room)
  Color color = palette(0);
};
// Grey 8-bit image (width*height bytes) -> RGB canvas with the boxes outlined and labelled.
Canvas draw_boxes(const uint8_t* grey, int width, int height, const std::vector<LabeledBox>& boxes,
                  int thickness = 2, int text_scale = 1);

// ---- panels, heat maps, bar charts (plot_panels.cpp; the pictures of `spinexr explain`) ---------
// a + t (b - a) per channel, t clamped to [0, 1].
Color mix(Color a, Color b, double t);
// A sequential colour map for t in [0, 1] (clamped; NaN gives grey): black, purple, red, orange,
// pale yellow, interpolated linearly between those five stops (close to matplotlib's "inferno"),
// so brightness grows with t and prints readably in grey too.
Color heat_color(double t);
// A grey 8-bit image (width*height bytes) as an RGB canvas scaled by `scale` > 0 (nearest pixel;
// the output is round(width * scale) x round(height * scale), at least 1 x 1).
Canvas grey_canvas(const uint8_t* grey, int width, int height, double scale = 1.0);
// The canvas with a white strip above it holding `caption` (several lines allowed) at `scale`.
Canvas captioned(const Canvas& c, const std::string& caption, int scale = 1);
// Panels in rows of `columns` (left to right, top to bottom), `gap` px apart and around; each row
// is as tall as its tallest panel, each column as wide as its widest.
Canvas tile(const std::vector<Canvas>& panels, int columns, int gap = 8, Color background = kWhite);

// A grouped bar chart: for each group (x axis) one bar per series, side by side, heights in data
// units from 0 up (negative values are drawn down from 0); y axis with nice ticks, a legend.
struct BarSeries {
  std::string label;
  std::vector<double> values;  // one per group
  Color color = palette(0);
};
struct BarChart {
  std::string title, ylabel;
  std::vector<std::string> groups;
  std::vector<BarSeries> series;
  double ymax = 0;  // <= 0: from the data (with a little headroom)
  bool value_labels = true;  // each bar's value above it
  int width = 720, height = 480;
};
Canvas render_bars(const BarChart& chart);

}  // namespace sx::plot
