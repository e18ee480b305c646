// Plot rasteriser: pixels are drawn where the geometry says, and nowhere else that matters.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "io/image_io.h"
#include "tensor/errors.h"
#include "train/eval/font5x7.h"
#include "train/eval/plot.h"

using namespace sx::plot;

namespace {

std::string temp_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("sx_test_plot_" + std::to_string(::getpid()) + "_" + name);
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

TEST(Plot, LinesAndRects) {
  Canvas c(40, 30, kWhite);
  c.line(2, 5, 30, 5, kBlack);  // horizontal
  for (int x = 2; x <= 30; ++x) EXPECT_EQ(c.get(x, 5), kBlack) << x;
  EXPECT_EQ(c.get(31, 5), kWhite);
  EXPECT_EQ(c.get(15, 4), kWhite);
  c.line(0, 0, 20, 20, palette(3));  // diagonal: exactly the pixels (k, k)
  for (int k = 0; k <= 20; ++k) EXPECT_EQ(c.get(k, k), palette(3)) << k;
  EXPECT_EQ(c.get(10, 12), kWhite);
  c.line(5, 25, 35, 25, palette(2), 3);  // thickness 3 covers rows 24..26
  EXPECT_EQ(c.get(20, 24), palette(2));
  EXPECT_EQ(c.get(20, 26), palette(2));
  EXPECT_EQ(c.get(20, 27), kWhite);
  c.rect(30, 10, 38, 20, palette(1));
  EXPECT_EQ(c.get(30, 15), palette(1));
  EXPECT_EQ(c.get(38, 15), palette(1));
  EXPECT_EQ(c.get(34, 10), palette(1));
  EXPECT_EQ(c.get(34, 15), kWhite);  // outline only
  c.line(-100, -50, 1000, 500, kBlack);  // far outside: clipped, no crash
  EXPECT_THROW(c.get(40, 0), sx::ValueError);
}

TEST(Plot, TextUsesTheFont) {
  Canvas c(60, 20, kWhite);
  c.text(10, 5, "A", kBlack);
  const uint8_t* g = glyph('A');
  int drawn = 0;
  for (int col = 0; col < kGlyphW; ++col)
    for (int row = 0; row < kGlyphH; ++row) {
      bool on = (g[col] >> row) & 1;
      EXPECT_EQ(c.get(10 + col, 5 + row) == kBlack, on) << col << "," << row;
      drawn += on;
    }
  EXPECT_GT(drawn, 10);
  // scale 2: each font pixel becomes a 2x2 block
  Canvas d(60, 20, kWhite);
  d.text(0, 0, "I", kBlack, 2);
  const uint8_t* gi = glyph('I');
  EXPECT_EQ((gi[2] & 1) != 0, d.get(5, 1) == kBlack);
  EXPECT_EQ(Canvas::text_width("abc"), 17);
  EXPECT_EQ(Canvas::text_width("abc", 2), 34);
  EXPECT_EQ(Canvas::text_height("a\nb"), 15);
  // every printable character has at least one pixel, except the space
  for (int ch = 33; ch < 127; ++ch) {
    const uint8_t* gg = glyph(static_cast<char>(ch));
    EXPECT_NE(gg[0] | gg[1] | gg[2] | gg[3] | gg[4], 0) << "glyph " << ch;
  }
}

TEST(Plot, LinePlotDrawsCurvesInTheFrame) {
  LinePlot p;
  p.title = "ROC";
  p.xlabel = "fpr";
  p.ylabel = "tpr";
  p.width = 400;
  p.height = 300;
  Series s;
  s.label = "model";
  s.x = {0, 1};
  s.y = {0, 1};
  s.color = palette(3);
  s.thickness = 1;
  Series flat;
  flat.x = {0, 1};
  flat.y = {0.25, 0.25};
  flat.color = palette(2);
  flat.thickness = 1;
  p.series = {s, flat};
  PlotFrame fr;
  Canvas c = render(p, &fr);
  EXPECT_GT(fr.right - fr.left, 200);
  EXPECT_GT(fr.bottom - fr.top, 150);
  // the diagonal passes through the middle of the frame
  EXPECT_EQ(c.get(fr.px(0.5), fr.py(0.5)), palette(3));
  EXPECT_EQ(c.get(fr.px(0.3), fr.py(0.3)), palette(3));
  // the horizontal series at y = 0.25
  EXPECT_EQ(c.get(fr.px(0.6), fr.py(0.25)), palette(2));
  // the frame is black at its corners; nothing coloured above the diagonal far from any curve
  EXPECT_EQ(c.get(fr.left, fr.top), kBlack);
  EXPECT_EQ(c.get(fr.right, fr.bottom), kBlack);
  Color above = c.get(fr.px(0.1), fr.py(0.9));
  EXPECT_NE(above, palette(3));
  EXPECT_NE(above, palette(2));
  // tick labels were drawn left of the frame: some black pixel in the margin
  int black_in_margin = 0;
  for (int y = fr.top; y <= fr.bottom; ++y)
    for (int x = 0; x < fr.left - 5; ++x) black_in_margin += c.get(x, y) == kBlack;
  EXPECT_GT(black_in_margin, 20);
  // the legend shows the series colour near the bottom-right corner
  int legend = 0;
  for (int y = fr.bottom - 40; y < fr.bottom; ++y)
    for (int x = fr.right - 120; x < fr.right; ++x) legend += c.get(x, y) == palette(3);
  EXPECT_GT(legend, 10);
}

TEST(Plot, NiceTicks) {
  auto t = nice_ticks(0, 1, 5);
  ASSERT_EQ(t.size(), 6u);
  EXPECT_DOUBLE_EQ(t[1], 0.2);
  EXPECT_EQ(tick_label(t[3]), "0.6");
  EXPECT_EQ(tick_label(10), "10");
  auto u = nice_ticks(0.13, 0.87, 4);
  EXPECT_NEAR(u.front(), 0.2, 1e-12);
  EXPECT_NEAR(u.back(), 0.8, 1e-12);
}

TEST(Plot, BoxesOnGreyImageAndPng) {
  const int w = 80, h = 60;
  std::vector<uint8_t> grey(w * h, 100);
  LabeledBox b;
  b.x1 = 20;
  b.y1 = 25;
  b.x2 = 50;
  b.y2 = 45;
  b.text = "Osteophytes 0.93";
  b.color = palette(1);
  Canvas c = draw_boxes(grey.data(), w, h, {b}, 2);
  EXPECT_EQ(c.get(20, 35), palette(1));
  EXPECT_EQ(c.get(21, 35), palette(1));  // thickness 2
  EXPECT_EQ(c.get(50, 35), palette(1));
  EXPECT_EQ(c.get(35, 35), (Color{100, 100, 100}));  // inside: the image
  EXPECT_EQ(c.get(5, 55), (Color{100, 100, 100}));
  // the tag sits above the box (y 14..24) with text on it
  int tag = 0, txt = 0;
  for (int y = 14; y < 25; ++y)
    for (int x = 0; x < w; ++x) {
      tag += c.get(x, y) == palette(1);
      txt += c.get(x, y) == kBlack || c.get(x, y) == kWhite;
    }
  EXPECT_GT(tag, 50);
  EXPECT_GT(txt, 20);

  std::string dir = temp_dir("png");
  c.save_png(dir + "/boxes.png");
  sx::io::GreyImage back = sx::io::read_image(dir + "/boxes.png");
  EXPECT_EQ(back.width, w);
  EXPECT_EQ(back.height, h);
  EXPECT_EQ(back.at(35, 35), 100);
  std::filesystem::remove_all(dir);
}

TEST(Plot, RocPlotMarksOperatingPoint) {
  Canvas c = render_roc({0, 0, 0.5, 1}, {0, 0.5, 1, 1}, "AUC 0.875", 0.5, 1.0);
  EXPECT_EQ(c.width(), 560);
  int red = 0;
  for (size_t i = 0; i < c.rgb().size(); i += 3)
    red += c.rgb()[i] == palette(3).r && c.rgb()[i + 1] == palette(3).g && c.rgb()[i + 2] == palette(3).b;
  EXPECT_GT(red, 20);
}

TEST(Plot, PrCurvesGetDistinctColours) {
  Series a, b;
  a.label = "class A AP 0.50";
  a.x = {0, 0.5, 1};
  a.y = {1, 0.5, 0.2};
  b.label = "class B AP 0.80";
  b.x = {0, 1};
  b.y = {1, 0.6};
  Canvas c = render_pr({a, b});
  int n0 = 0, n1 = 0;
  for (size_t i = 0; i < c.rgb().size(); i += 3) {
    Color px{c.rgb()[i], c.rgb()[i + 1], c.rgb()[i + 2]};
    n0 += px == palette(0);
    n1 += px == palette(1);
  }
  EXPECT_GT(n0, 100);
  EXPECT_GT(n1, 100);
}

}  // namespace

namespace sx::plot {
namespace {

// The reliability diagram: a bar per non-empty bin up to its observed fraction, none for an empty
// bin, and the model's marker at (mean probability, fraction).
TEST(Plot, ReliabilityDiagramDrawsABarPerNonEmptyBin) {
  std::vector<ReliabilityBin> bins(3);
  bins[0] = {0.0, 1.0 / 3, 0.1, 0.25, 8};
  bins[1] = {1.0 / 3, 2.0 / 3, 0.0, 0.0, 0};  // empty
  bins[2] = {2.0 / 3, 1.0, 0.9, 0.75, 4};
  Canvas cv = render_reliability(bins, "ECE 12.5%");
  LinePlot probe;  // the same geometry as render_reliability's
  probe.width = 560;
  probe.height = 560;
  probe.title = "Reliability";
  probe.xlabel = "x";
  probe.ylabel = "y";
  PlotFrame fr;
  render(probe, &fr);
  const Color bar{198, 219, 239};
  // inside bin 0's bar (x between its edges, y below its top) vs. inside bin 1 (empty)
  EXPECT_EQ(cv.get(fr.px(0.25), fr.py(0.05)), bar);
  EXPECT_NE(cv.get(fr.px(0.45), fr.py(0.05)), bar);
  EXPECT_NE(cv.get(fr.px(0.25), fr.py(0.45)), bar);  // above bin 0's fraction of 0.25
  EXPECT_EQ(cv.get(fr.px(0.72), fr.py(0.6)), bar);  // bin 2 reaches 0.75
  EXPECT_EQ(cv.get(fr.px(0.9), fr.py(0.75)), palette(3));  // the model's marker
}

}  // namespace
}  // namespace sx::plot

namespace {

TEST(PlotPanels, PasteMixAndHeatColours) {
  Canvas small(3, 2, palette(2)), big(10, 10, kWhite);
  big.paste(small, 8, 9);  // partly outside: clipped, no throw
  EXPECT_EQ(big.get(8, 9), palette(2));
  EXPECT_EQ(big.get(9, 9), palette(2));
  EXPECT_EQ(big.get(7, 9), kWhite);
  EXPECT_EQ(big.get(8, 8), kWhite);
  EXPECT_EQ(mix(kBlack, kWhite, 0.5), (Color{128, 128, 128}));
  EXPECT_EQ(mix(kBlack, kWhite, 2.0), kWhite);  // clamped
  EXPECT_EQ(heat_color(0.0), (Color{0, 0, 4}));
  EXPECT_EQ(heat_color(1.0), (Color{252, 255, 164}));
  EXPECT_EQ(heat_color(NAN), kGrey);
  // Brightness grows with t.
  auto lum = [](Color c) { return 299 * c.r + 587 * c.g + 114 * c.b; };
  for (int k = 0; k < 20; ++k) EXPECT_LT(lum(heat_color(k / 20.0)), lum(heat_color((k + 1) / 20.0))) << k;
}

TEST(PlotPanels, GreyCanvasScalesAndTileLaysOut) {
  const uint8_t grey[6] = {0, 50, 100, 150, 200, 250};  // 3 x 2
  Canvas g = grey_canvas(grey, 3, 2, 2.0);
  ASSERT_EQ(g.width(), 6);
  ASSERT_EQ(g.height(), 4);
  EXPECT_EQ(g.get(5, 3), (Color{250, 250, 250}));
  EXPECT_EQ(g.get(2, 0), (Color{50, 50, 50}));
  Canvas a(10, 20, palette(0)), b(30, 5, palette(1)), c(4, 4, palette(2));
  Canvas t = tile({a, b, c}, 2, 3);
  // Columns 10 and 30 wide, rows 20 and 4 high, gaps of 3 around and between.
  EXPECT_EQ(t.width(), 3 + 10 + 3 + 30 + 3);
  EXPECT_EQ(t.height(), 3 + 20 + 3 + 4 + 3);
  EXPECT_EQ(t.get(3, 3), palette(0));
  EXPECT_EQ(t.get(16, 3), palette(1));
  EXPECT_EQ(t.get(3, 26), palette(2));
  EXPECT_EQ(t.get(16, 10), kWhite);  // below b, inside row 0
  Canvas cap = captioned(a, "hi");
  EXPECT_GT(cap.height(), a.height());
  EXPECT_EQ(cap.get(0, cap.height() - 1), palette(0));
  EXPECT_THROW(tile({}, 2), sx::ValueError);
}

TEST(PlotPanels, BarChartBarsAreProportional) {
  BarChart ch;
  ch.groups = {"a", "b"};
  ch.series = {{"s0", {10, 40}, palette(0)}, {"s1", {20, 0}, palette(3)}};
  ch.ymax = 50;
  ch.value_labels = false;
  Canvas cv = render_bars(ch);
  ASSERT_EQ(cv.width(), 720);
  // Count the pixels of each series' colour in each group's half: heights 10 : 40 and 20 : 0.
  auto count = [&](Color col, int x0, int x1) {
    int n = 0;
    for (int y = 0; y < cv.height(); ++y)
      for (int x = x0; x < x1; ++x) n += cv.get(x, y) == col;
    return n;
  };
  const int mid = cv.width() / 2;
  const int a0 = count(palette(0), 0, mid), b0 = count(palette(0), mid, cv.width());
  const int a1 = count(palette(3), 0, mid), b1 = count(palette(3), mid, cv.width());
  ASSERT_GT(a0, 0);
  EXPECT_NEAR(static_cast<double>(b0) / a0, 4.0, 0.5);
  EXPECT_NEAR(static_cast<double>(a1) / a0, 2.0, 0.3);
  EXPECT_LT(b1, a1 / 10 + 200);  // a zero bar (and the legend swatch) only
  ch.series[1].values = {1};
  EXPECT_THROW(render_bars(ch), sx::ValueError);
}

}  // namespace
