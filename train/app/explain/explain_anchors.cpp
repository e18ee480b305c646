// `explain anchors` and `explain matching`: where the detector's anchors are and which of them the
// matcher assigns to each ground-truth box.
//
// The anchors are the model's own (models::AnchorGenerator over the feature-map sizes of this very
// image's forward pass: RetinaNet's P3-P7, or Faster R-CNN's RPN levels P2-P6), matched with the
// model's own thresholds and models::match_boxes over kernels::box_iou, exactly as the loss does:
// RetinaNet IoU >= 0.5 positive, < 0.4 negative, between ignored; the RPN 0.7 / 0.3; both allow
// low-quality matches (every ground-truth box keeps the anchors of its highest IoU).
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "kernels/box_ops/box_ops.h"
#include "models/anchors.h"
#include "models/faster_rcnn.h"
#include "models/retinanet.h"
#include "tensor/autograd.h"
#include "tensor/errors.h"
#include "tensor/ops.h"
#include "train/app/explain/explain_common.h"

namespace sx::train::explain {
namespace {

struct LevelAnchors {
  std::vector<Tensor> anchors;                              // per level [H*W*A, 4]
  std::vector<std::pair<int64_t, int64_t>> grids;           // (H, W)
  std::vector<int64_t> strides;                             // padded size // grid size
  std::vector<Tensor> cells;                                // per level [A, 4] cell anchors
  int64_t per_location = 0;
  double hi = 0.5, lo = 0.4;
  std::string matcher;  // "RetinaNet" or "RPN"
};

LevelAnchors model_anchors(models::DetectionModel& model, const models::ImageList& il) {
  NoGradGuard ng;
  LevelAnchors la;
  const models::AnchorGenerator* ag = nullptr;
  if (auto* r = dynamic_cast<models::RetinaNet*>(&model)) {
    auto h = r->forward_heads(il);
    la.anchors = h.anchors;
    la.grids = h.grid_sizes;
    ag = &r->anchor_generator();
    la.hi = r->config().fg_iou_thresh;
    la.lo = r->config().bg_iou_thresh;
    la.matcher = "RetinaNet";
  } else if (auto* f = dynamic_cast<models::FasterRCNN*>(&model)) {
    auto feats = f->features(il);
    for (const auto& t : feats) la.grids.push_back({t.size(2), t.size(3)});
    ag = &f->rpn->anchor_generator();
    la.anchors = ag->grid_anchors(la.grids, {il.tensor.size(2), il.tensor.size(3)}, Device::cpu());
    la.hi = f->rpn->config().fg_iou_thresh;
    la.lo = f->rpn->config().bg_iou_thresh;
    la.matcher = "RPN";
  } else {
    SX_THROW(ValueError, "explain: unsupported model ", model.model_name());
  }
  for (size_t l = 0; l < la.grids.size(); ++l) {
    la.strides.push_back(il.tensor.size(2) / la.grids[l].first);
    la.cells.push_back(ag->cell_anchors(static_cast<int64_t>(l)));
  }
  la.per_location = ag->num_anchors_per_location(0);
  return la;
}

// The matcher's verdict for every anchor (all levels concatenated, as the loss matches them).
std::vector<double> match_all(const Scene& s, const LevelAnchors& la) {
  Tensor all = cat(la.anchors, 0);
  if (s.gt.empty()) return std::vector<double>(all.size(0), static_cast<double>(models::kBelowLowThreshold));
  return models::match_boxes(kernels::box_iou(gt_boxes_tensor(s), all), la.hi, la.lo, true).to_vector();
}

struct Prepared {
  Scene scene;
  LoadedModel model;
  LevelAnchors la;
};

Prepared prepare(const ExplainOptions& o, const std::string& topic) {
  Prepared p{open_scene(o), {}, {}};
  p.model = load_model(o, topic, "", p.scene.ds.classes().num_classes());
  load_pixels(p.scene, p.model.size, static_cast<int>(p.model.model->options().in_channels), p.model.min_size);
  p.la = model_anchors(*p.model.model, scene_images(p.scene));
  return p;
}

const plot::Color kGt{255, 215, 0}, kPos{40, 220, 60}, kIgn{255, 140, 0}, kNeg{220, 60, 60}, kCentre{0, 190, 255},
    kCell{255, 60, 255};

}  // namespace

ExplainResult explain_anchors(const ExplainOptions& o) {
  Prepared p = prepare(o, "anchors");
  const Scene& s = p.scene;
  const LevelAnchors& la = p.la;
  const std::vector<double> match = match_all(s, la);
  ExplainResult r;
  r.json = scene_json("anchors", s, p.model);
  r.json["matcher"] = {{"of", la.matcher}, {"positive_iou", la.hi}, {"negative_iou", la.lo}, {"allow_low_quality", true}};
  r.text = "Anchors of " + p.model.note + " on " + s.image_id + " (" + std::to_string(s.width) + "x" +
           std::to_string(s.height) + " px, padded to " + std::to_string(s.pad_w) + "x" + std::to_string(s.pad_h) +
           ")\n";
  r.text += strf("Every feature-map cell of every FPN level carries %lld anchors (sizes x aspect ratios); the %s\n"
                 "matcher labels each anchor by its best IoU with a ground-truth box: >= %.2f positive, < %.2f\n"
                 "negative (background), in between ignored; each box also keeps its highest-IoU anchors.\n\n",
                 static_cast<long long>(la.per_location), la.matcher.c_str(), la.hi, la.lo);
  r.text += strf("%-6s %7s %9s %8s %9s %8s %10s\n", "level", "stride", "grid", "anchors", "positive", "ignored",
                 "negative");
  // The point whose cell anchors are drawn: the grid cell under the first box's centre (else the middle).
  const double cx = s.gt.empty() ? s.width / 2.0 : (s.gt[0].x1 + s.gt[0].x2) / 2;
  const double cy = s.gt.empty() ? s.height / 2.0 : (s.gt[0].y1 + s.gt[0].y2) / 2;
  std::mt19937_64 rng(o.seed * 31 + 7);
  io::Json levels = io::Json::array();
  std::vector<plot::Canvas> panels;
  int64_t off = 0;
  for (size_t l = 0; l < la.anchors.size(); ++l) {
    const int64_t n = la.anchors[l].size(0), A = la.per_location, st = la.strides[l];
    const std::vector<double> a = la.anchors[l].to_vector();
    int64_t pos = 0, ign = 0, neg = 0;
    std::vector<int64_t> negs;
    for (int64_t k = 0; k < n; ++k) {
      const double m = match[off + k];
      if (m >= 0) ++pos;
      else if (m == models::kBetweenThresholds) ++ign;
      else ++neg, negs.push_back(k);
    }
    std::shuffle(negs.begin(), negs.end(), rng);
    negs.resize(std::min<size_t>(negs.size(), 12));
    plot::Canvas cv = scene_canvas(s);
    for (int64_t loc = 0; loc < n / A; ++loc) {  // anchor centres (the same for every shape)
      const double* b = &a[4 * loc * A];
      cv.set(static_cast<int>(std::lround((b[0] + b[2]) / 2)), static_cast<int>(std::lround((b[1] + b[3]) / 2)), kCentre);
    }
    for (int64_t k : negs) draw_box(cv, a[4 * k], a[4 * k + 1], a[4 * k + 2], a[4 * k + 3], kNeg, 1);
    for (int64_t k = 0; k < n; ++k) {
      const double m = match[off + k];
      if (m == models::kBetweenThresholds) draw_box(cv, a[4 * k], a[4 * k + 1], a[4 * k + 2], a[4 * k + 3], kIgn, 1);
    }
    for (int64_t k = 0; k < n; ++k)
      if (match[off + k] >= 0) draw_box(cv, a[4 * k], a[4 * k + 1], a[4 * k + 2], a[4 * k + 3], kPos, 2);
    for (const auto& g : s.gt) draw_box(cv, g.x1, g.y1, g.x2, g.y2, kGt, 2, 1.0, short_class(s.class_names[g.label]));
    // The cell anchors at the chosen point: shifted to the grid cell under (cx, cy).
    const int64_t gx = std::clamp<int64_t>(static_cast<int64_t>(cx / st), 0, la.grids[l].second - 1);
    const int64_t gy = std::clamp<int64_t>(static_cast<int64_t>(cy / st), 0, la.grids[l].first - 1);
    const std::vector<double> cell = la.cells[l].to_vector();
    io::Json shapes = io::Json::array();
    for (int64_t k = 0; k < A; ++k) {
      const double x1 = cell[4 * k] + gx * st, y1 = cell[4 * k + 1] + gy * st;
      const double x2 = cell[4 * k + 2] + gx * st, y2 = cell[4 * k + 3] + gy * st;
      draw_box(cv, x1, y1, x2, y2, kCell, 1);
      shapes.push_back({x2 - x1, y2 - y1});
    }
    const std::string name = level_name(st);
    panels.push_back(plot::captioned(
        cv, strf("%s stride %lld: %lldx%lld cells x %lld = %lld anchors\npositive %lld  ignored %lld  negative %lld",
                 name.c_str(), static_cast<long long>(st), static_cast<long long>(la.grids[l].first),
                 static_cast<long long>(la.grids[l].second), static_cast<long long>(A), static_cast<long long>(n),
                 static_cast<long long>(pos), static_cast<long long>(ign), static_cast<long long>(neg))));
    r.text += strf("%-6s %7lld %4lldx%-4lld %8lld %9lld %8lld %10lld\n", name.c_str(), static_cast<long long>(st),
                   static_cast<long long>(la.grids[l].first), static_cast<long long>(la.grids[l].second),
                   static_cast<long long>(n), static_cast<long long>(pos), static_cast<long long>(ign),
                   static_cast<long long>(neg));
    levels.push_back({{"level", name},
                      {"stride", st},
                      {"grid", {la.grids[l].first, la.grids[l].second}},
                      {"anchors", n},
                      {"positive", pos},
                      {"ignored", ign},
                      {"negative", neg},
                      {"cell_anchor_wh", shapes},
                      {"shown_at_cell", {gx, gy}}});
    off += n;
  }
  r.json["levels"] = levels;
  r.text += strf("\nPicture: cyan dots = anchor centres, magenta = the %lld cell anchors at the cell under the first\n"
                 "box's centre, yellow = ground truth, green = positive, orange = ignored, red = 12 sampled negatives.\n",
                 static_cast<long long>(la.per_location));
  if (s.gt.empty()) r.text += "This image has no ground truth: every anchor is negative.\n";
  write_outputs(r, o, "anchors", {{"", plot::tile(panels, std::min<int>(3, static_cast<int>(panels.size())))}});
  return r;
}

ExplainResult explain_matching(const ExplainOptions& o) {
  Prepared p = prepare(o, "matching");
  const Scene& s = p.scene;
  const LevelAnchors& la = p.la;
  const std::vector<double> match = match_all(s, la);
  ExplainResult r;
  r.json = scene_json("matching", s, p.model);
  r.json["matcher"] = {{"of", la.matcher}, {"positive_iou", la.hi}, {"negative_iou", la.lo}, {"allow_low_quality", true}};
  const int64_t G = static_cast<int64_t>(s.gt.size()), L = static_cast<int64_t>(la.anchors.size());
  Tensor all = cat(la.anchors, 0);
  const int64_t T = all.size(0);
  std::vector<double> iou = G > 0 ? kernels::box_iou(gt_boxes_tensor(s), all).to_vector() : std::vector<double>{};
  const std::vector<double> av = all.to_vector();
  r.text = "Matching on " + s.image_id + " with " + p.model.note + "\n";
  r.text += strf("IoU of each ground-truth box with its best anchor on each level (%s matcher: >= %.2f positive;\n"
                 "a box whose best IoU is below that still gets its best anchors: a low-quality match).\n\n",
                 la.matcher.c_str(), la.hi);
  std::string head = strf("%-3s %-12s %9s", "box", "class", "w x h");
  std::vector<std::string> lvl_names;
  for (int64_t l = 0; l < L; ++l) {
    lvl_names.push_back(level_name(la.strides[l]));
    head += strf(" %6s", lvl_names.back().c_str());
  }
  r.text += head + strf(" %6s %8s  %s\n", "best", "anchors", "match");
  plot::Canvas img = scene_canvas(s);
  io::Json boxes = io::Json::array();
  // The table picture: one row per box, one heat-coloured cell per level.
  const int cell_w = 64, cell_h = 22, label_w = 150, rows = std::max<int64_t>(1, G);
  plot::Canvas table(label_w + cell_w * (static_cast<int>(L) + 1) + 90, cell_h * (rows + 1) + 8, plot::kWhite);
  for (int64_t l = 0; l < L; ++l) table.text(label_w + cell_w * static_cast<int>(l) + 20, 8, lvl_names[l], plot::kBlack);
  table.text(label_w + cell_w * static_cast<int>(L) + 6, 8, "matched", plot::kBlack);
  for (int64_t g = 0; g < G; ++g) {
    const GtBox& b = s.gt[g];
    const double* row = &iou[g * T];
    double best = -1;
    int64_t best_k = -1, best_l = 0, matched = 0;
    io::Json per = io::Json::array();
    std::string line = strf("%-3lld %-12s %4.0fx%-4.0f", static_cast<long long>(g),
                            short_class(s.class_names[b.label]).c_str(), b.x2 - b.x1, b.y2 - b.y1);
    const int ty = cell_h * (static_cast<int>(g) + 1) + 4;
    table.text(4, ty + 7, strf("%lld %s", static_cast<long long>(g), short_class(s.class_names[b.label]).c_str()),
               plot::kBlack);
    int64_t off = 0;
    for (int64_t l = 0; l < L; ++l) {
      const int64_t n = la.anchors[l].size(0);
      int64_t k_best = off;
      for (int64_t k = off; k < off + n; ++k)
        if (row[k] > row[k_best]) k_best = k;
      const double v = row[k_best];
      if (v > best) best = v, best_k = k_best, best_l = l;
      line += strf(" %6.3f", v);
      per.push_back({{"level", lvl_names[l]}, {"iou", v},
                     {"anchor", {av[4 * k_best], av[4 * k_best + 1], av[4 * k_best + 2], av[4 * k_best + 3]}}});
      draw_box(img, av[4 * k_best], av[4 * k_best + 1], av[4 * k_best + 2], av[4 * k_best + 3], plot::palette(static_cast<int>(l)), 1);
      const int x0 = label_w + cell_w * static_cast<int>(l);
      const plot::Color c = plot::heat_color(v);
      table.fill_rect(x0, ty, x0 + cell_w - 2, ty + cell_h - 2, c);
      const int lum = (299 * c.r + 587 * c.g + 114 * c.b) / 1000;
      table.text(x0 + 14, ty + 7, strf("%.3f", v), lum > 140 ? plot::kBlack : plot::kWhite);
      off += n;
    }
    for (int64_t k = 0; k < T; ++k) matched += match[k] == static_cast<double>(g);
    const bool low = best < la.hi;
    line += strf(" %6.3f %8lld  %s\n", best, static_cast<long long>(matched),
                 low ? "low-quality only" : "above the threshold");
    r.text += line;
    table.text(label_w + cell_w * static_cast<int>(L) + 6, ty + 7, strf("%lld%s", static_cast<long long>(matched),
                                                                        low ? " LOW" : ""),
               low ? plot::Color{200, 0, 0} : plot::kBlack);
    draw_box(img, b.x1, b.y1, b.x2, b.y2, kGt, 2, 1.0, strf("%lld", static_cast<long long>(g)));
    draw_box(img, av[4 * best_k], av[4 * best_k + 1], av[4 * best_k + 2], av[4 * best_k + 3], low ? kIgn : kPos, 2);
    boxes.push_back({{"box", g},
                     {"class", s.class_names[b.label]},
                     {"xyxy", {b.x1, b.y1, b.x2, b.y2}},
                     {"best_per_level", per},
                     {"best_iou", best},
                     {"best_level", lvl_names[best_l]},
                     {"anchors_matched", matched},
                     {"low_quality_only", low}});
  }
  if (G == 0) r.text += "(no ground truth on this image: nothing to match)\n";
  r.json["boxes"] = boxes;
  r.text += "\nPicture: yellow = ground truth (numbered), thin = its best anchor on each level (level colours),\n"
            "thick green = its best anchor overall when >= the threshold, thick orange = a low-quality match.\n";
  write_outputs(r, o, "matching", {{"", plot::tile({plot::captioned(img, "best anchors per box"),
                                                     plot::captioned(table, "best IoU per level")},
                                                    2)}});
  return r;
}

}  // namespace sx::train::explain
