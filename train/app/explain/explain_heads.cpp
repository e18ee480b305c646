// `explain heads` and `explain rpn`: what the dense heads see. For every FPN level the head's
// score at each feature-map cell (RetinaNet: sigmoid of the classification logits, the highest over
// the cell's anchors and the classes; Faster R-CNN: the RPN's sigmoid objectness, highest over the
// cell's anchors), drawn as a heat map blown up to the image (each cell a stride x stride block) and
// blended over it. Colours are normalised per level (its min..max, printed), so an untrained model's
// faint structure shows too. `rpn` adds Faster R-CNN's proposals before and after the RPN's NMS
// (RegionProposalNetwork::forward's own pre-NMS boxes; the kept set is re-derived with
// kernels::batched_nms and checked against the proposals the RPN returned).
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "kernels/nms/nms.h"
#include "models/faster_rcnn.h"
#include "models/retinanet.h"
#include "tensor/autograd.h"
#include "tensor/errors.h"
#include "tensor/ops.h"
#include "train/app/explain/explain_common.h"

namespace sx::train::explain {
namespace {

struct HeatLevel {
  std::string name;
  int64_t stride = 0, gh = 0, gw = 0;
  std::vector<double> score;  // [gh * gw], the cell's highest probability
  std::vector<int64_t> cls;   // the class of it (RetinaNet), -1 otherwise
};

// RetinaNet: cls_logits [1, sum HWA, K] -> per level max over anchors and classes.
std::vector<HeatLevel> retinanet_heat(models::RetinaNet& rn, const models::ImageList& il) {
  auto h = rn.forward_heads(il);
  const int64_t K = rn.options().num_classes, A = rn.anchor_generator().num_anchors_per_location(0);
  std::vector<HeatLevel> out;
  int64_t off = 0;
  for (size_t l = 0; l < h.grid_sizes.size(); ++l) {
    HeatLevel hl;
    hl.gh = h.grid_sizes[l].first;
    hl.gw = h.grid_sizes[l].second;
    hl.stride = il.tensor.size(2) / hl.gh;
    hl.name = level_name(hl.stride);
    const int64_t n = h.level_sizes[l];
    const std::vector<double> p = sigmoid(h.cls_logits.select(0, 0).narrow(0, off, n)).to_vector();
    off += n;
    hl.score.assign(hl.gh * hl.gw, -1.0);
    hl.cls.assign(hl.gh * hl.gw, -1);
    for (int64_t loc = 0; loc < hl.gh * hl.gw; ++loc)
      for (int64_t a = 0; a < A; ++a)
        for (int64_t c = 0; c < K; ++c) {
          const double v = p[(loc * A + a) * K + c];
          if (v > hl.score[loc]) hl.score[loc] = v, hl.cls[loc] = c;
        }
    out.push_back(std::move(hl));
  }
  return out;
}

// Faster R-CNN: the RPN head's objectness [1, A, H, W] per level -> max over anchors.
std::vector<HeatLevel> rpn_heat(models::FasterRCNN& f, const std::vector<Tensor>& feats, int64_t padded_h) {
  auto [logits, deltas] = f.rpn->head->forward_levels(feats);
  std::vector<HeatLevel> out;
  for (const Tensor& lg : logits) {
    HeatLevel hl;
    const int64_t A = lg.size(1);
    hl.gh = lg.size(2);
    hl.gw = lg.size(3);
    hl.stride = padded_h / hl.gh;
    hl.name = level_name(hl.stride);
    const std::vector<double> p = sigmoid(lg.select(0, 0)).to_vector();  // [A, H, W]
    hl.score.assign(hl.gh * hl.gw, -1.0);
    hl.cls.assign(hl.gh * hl.gw, -1);
    for (int64_t a = 0; a < A; ++a)
      for (int64_t loc = 0; loc < hl.gh * hl.gw; ++loc) hl.score[loc] = std::max(hl.score[loc], p[a * hl.gh * hl.gw + loc]);
    out.push_back(std::move(hl));
  }
  return out;
}

// Panels, JSON and text lines of the heat maps.
void draw_heat(const Scene& s, const std::vector<HeatLevel>& levels, const std::string& what, ExplainResult& r,
               std::vector<plot::Canvas>& panels) {
  io::Json jl = io::Json::array();
  r.text += strf("%-6s %7s %9s %10s %10s %10s   %s\n", "level", "stride", "grid", "min", "mean", "max",
                 "where the max is (image px)");
  for (const auto& hl : levels) {
    double lo = INFINITY, hi = -INFINITY, mean = 0;
    int64_t arg = 0;
    for (int64_t k = 0; k < hl.gh * hl.gw; ++k) {
      lo = std::min(lo, hl.score[k]);
      if (hl.score[k] > hi) hi = hl.score[k], arg = k;
      mean += hl.score[k];
    }
    mean /= static_cast<double>(hl.gh * hl.gw);
    plot::Canvas cv = scene_canvas(s);
    for (int y = 0; y < cv.height(); ++y)
      for (int x = 0; x < cv.width(); ++x) {
        const int64_t gy = std::min<int64_t>(y / hl.stride, hl.gh - 1), gx = std::min<int64_t>(x / hl.stride, hl.gw - 1);
        const double t = hi > lo ? (hl.score[gy * hl.gw + gx] - lo) / (hi - lo) : 0.5;
        cv.set(x, y, plot::mix(cv.get(x, y), plot::heat_color(t), 0.6));
      }
    for (const auto& g : s.gt) draw_box(cv, g.x1, g.y1, g.x2, g.y2, plot::kWhite, 1);
    const double mx = (arg % hl.gw + 0.5) * hl.stride, my = (arg / hl.gw + 0.5) * hl.stride;
    cv.rect(static_cast<int>(mx) - 3, static_cast<int>(my) - 3, static_cast<int>(mx) + 3, static_cast<int>(my) + 3,
            {0, 255, 255}, 2);
    const std::string cls = hl.cls[arg] >= 0 ? " (" + s.class_names.at(hl.cls[arg]) + ")" : "";
    panels.push_back(plot::captioned(cv, strf("%s stride %lld, %lldx%lld: %s %.6g .. %.6g", hl.name.c_str(),
                                              static_cast<long long>(hl.stride), static_cast<long long>(hl.gh),
                                              static_cast<long long>(hl.gw), what.c_str(), lo, hi)));
    r.text += strf("%-6s %7lld %4lldx%-4lld %10.6g %10.6g %10.6g   (%.0f, %.0f)%s\n", hl.name.c_str(),
                   static_cast<long long>(hl.stride), static_cast<long long>(hl.gh), static_cast<long long>(hl.gw), lo,
                   mean, hi, mx, my, cls.c_str());
    io::Json e = {{"level", hl.name}, {"stride", hl.stride}, {"grid", {hl.gh, hl.gw}}, {"min", lo},
                  {"mean", mean},     {"max", hi},           {"max_at", {mx, my}}};
    if (hl.cls[arg] >= 0) e["max_class"] = s.class_names.at(hl.cls[arg]);
    jl.push_back(e);
  }
  r.json["levels"] = jl;
}

}  // namespace

ExplainResult explain_heads(const ExplainOptions& o) {
  Scene s = open_scene(o);
  LoadedModel m = load_model(o, "heads", "", s.ds.classes().num_classes());
  load_pixels(s, m.size, static_cast<int>(m.model->options().in_channels), m.min_size);
  models::ImageList il = scene_images(s);
  NoGradGuard ng;
  ExplainResult r;
  r.json = scene_json("heads", s, m);
  std::vector<HeatLevel> levels;
  std::string what;
  if (auto* rn = dynamic_cast<models::RetinaNet*>(m.model.get())) {
    levels = retinanet_heat(*rn, il);
    what = "class score";
    r.text = "RetinaNet's classification head on " + s.image_id + ", " + m.note + "\n";
    r.text += "Per FPN level, each cell's highest class probability (sigmoid of the logits, max over its anchors\n"
              "and the classes); colours span each level's own min..max.\n\n";
  } else {
    auto& f = dynamic_cast<models::FasterRCNN&>(*m.model);
    levels = rpn_heat(f, f.features(il), il.tensor.size(2));
    what = "objectness";
    r.text = "Faster R-CNN's dense head (the RPN) on " + s.image_id + ", " + m.note + "\n";
    r.text += "Per FPN level, each cell's highest objectness (sigmoid, max over its anchors); colours span each\n"
              "level's own min..max.\n\n";
  }
  r.json["score"] = what;
  std::vector<plot::Canvas> panels;
  draw_heat(s, levels, what, r, panels);
  r.text += "\nPicture: one panel per level, heat (dark = the level's lowest, pale yellow = its highest) over the\n"
            "image, white = ground truth, cyan square = the level's maximum.\n";
  write_outputs(r, o, "heads", {{"", plot::tile(panels, std::min<int>(3, static_cast<int>(panels.size())))}});
  return r;
}

ExplainResult explain_rpn(const ExplainOptions& o) {
  Scene s = open_scene(o);
  LoadedModel m = load_model(o, "rpn", "faster_rcnn", s.ds.classes().num_classes());
  load_pixels(s, m.size, static_cast<int>(m.model->options().in_channels), m.min_size);
  auto& f = dynamic_cast<models::FasterRCNN&>(*m.model);
  models::ImageList il = scene_images(s);
  NoGradGuard ng;
  ExplainResult r;
  r.json = scene_json("rpn", s, m);
  r.text = "Faster R-CNN's region proposal network on " + s.image_id + ", " + m.note + "\n\n";
  std::vector<Tensor> feats = f.features(il);
  std::vector<plot::Canvas> panels;
  r.text += "Objectness per FPN level (sigmoid, max over the cell's anchors):\n";
  draw_heat(s, rpn_heat(f, feats, il.tensor.size(2)), "objectness", r, panels);
  auto out = f.rpn->forward(il, feats, nullptr);
  const auto& cfg = f.rpn->config();
  Tensor boxes = out.pre_nms_boxes.at(0), scores = out.pre_nms_scores.at(0), lvls = out.pre_nms_levels.at(0);
  Tensor keep = kernels::batched_nms(boxes, scores, lvls, cfg.nms_thresh);
  const int64_t post_n = cfg.post_nms_top_n_test;
  if (keep.size(0) > post_n) keep = keep.narrow(0, 0, post_n);
  SX_CHECK(keep.size(0) == out.proposals.at(0).size(0), "explain rpn: batched_nms keeps ", keep.size(0),
           " boxes but the RPN returned ", out.proposals.at(0).size(0));
  const std::vector<double> bv = boxes.to_vector(), sv = scores.to_vector(), lv = lvls.to_vector(),
                            kv = keep.to_vector();
  const int64_t L = static_cast<int64_t>(feats.size());
  std::vector<int64_t> before(L, 0), after(L, 0);
  for (double l : lv) ++before[static_cast<int64_t>(l)];
  for (double k : kv) ++after[static_cast<int64_t>(lv[static_cast<size_t>(k)])];
  r.text += strf("\nProposals: per level the %lld highest objectness logits, decoded against their anchors, clipped,\n"
                 "tiny boxes dropped, then NMS at IoU %.2f within each level, the best %lld kept.\n",
                 static_cast<long long>(cfg.pre_nms_top_n_test), cfg.nms_thresh, static_cast<long long>(post_n));
  r.text += strf("%-6s %12s %12s\n", "level", "before NMS", "after NMS");
  io::Json jp = io::Json::array();
  for (int64_t l = 0; l < L; ++l) {
    const std::string name = level_name(il.tensor.size(2) / feats[l].size(2));
    r.text += strf("%-6s %12lld %12lld\n", name.c_str(), static_cast<long long>(before[l]),
                   static_cast<long long>(after[l]));
    jp.push_back({{"level", name}, {"before_nms", before[l]}, {"after_nms", after[l]}});
  }
  r.text += strf("%-6s %12lld %12lld\n", "all", static_cast<long long>(boxes.size(0)), static_cast<long long>(keep.size(0)));
  r.json["proposals"] = {{"per_level", jp},
                         {"before_nms", boxes.size(0)},
                         {"after_nms", keep.size(0)},
                         {"nms_iou", cfg.nms_thresh},
                         {"top_after", io::Json::array()}};
  // Before: the 300 best candidates; after: the 50 best proposals (level colours, best drawn last).
  plot::Canvas pre = scene_canvas(s), post = scene_canvas(s);
  std::vector<int64_t> order(sv.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sv[a] > sv[b]; });
  const int64_t n_pre = std::min<int64_t>(300, static_cast<int64_t>(order.size()));
  for (int64_t i = n_pre - 1; i >= 0; --i) {
    const int64_t k = order[i];
    draw_box(pre, bv[4 * k], bv[4 * k + 1], bv[4 * k + 2], bv[4 * k + 3], plot::palette(static_cast<int>(lv[k])), 1);
  }
  const int64_t n_post = std::min<int64_t>(50, static_cast<int64_t>(kv.size()));
  for (int64_t i = n_post - 1; i >= 0; --i) {
    const int64_t k = static_cast<int64_t>(kv[i]);
    draw_box(post, bv[4 * k], bv[4 * k + 1], bv[4 * k + 2], bv[4 * k + 3], plot::palette(static_cast<int>(lv[k])),
             i < 5 ? 2 : 1);
    if (i < 10)
      r.json["proposals"]["top_after"].push_back(
          {{"box", {bv[4 * k], bv[4 * k + 1], bv[4 * k + 2], bv[4 * k + 3]}}, {"score", sv[k]},
           {"level", level_name(il.tensor.size(2) / feats[static_cast<size_t>(lv[k])].size(2))}});
  }
  for (const auto& g : s.gt) {
    draw_box(pre, g.x1, g.y1, g.x2, g.y2, plot::kWhite, 2);
    draw_box(post, g.x1, g.y1, g.x2, g.y2, plot::kWhite, 2);
  }
  plot::Canvas sheet = plot::tile(
      {plot::captioned(pre, strf("before NMS: %lld candidates (best %lld drawn, level colours)",
                                 static_cast<long long>(boxes.size(0)), static_cast<long long>(n_pre))),
       plot::captioned(post, strf("after NMS: %lld proposals (best %lld drawn)", static_cast<long long>(keep.size(0)),
                                  static_cast<long long>(n_post)))},
      2);
  r.text += "\nPictures: rpn.png = objectness heat maps per level; rpn-proposals.png = candidates before and\n"
            "proposals after NMS (colour = FPN level, white = ground truth).\n";
  write_outputs(r, o, "rpn",
                {{"", plot::tile(panels, std::min<int>(3, static_cast<int>(panels.size())))}, {"proposals", sheet}});
  return r;
}

}  // namespace sx::train::explain
