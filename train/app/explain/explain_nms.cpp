// `explain nms` and `explain rule`: the last two steps between the heads and the boxes a user sees.
//
// nms: the boxes that enter the detector's NMS on this image (RetinaNet: RetinaNet::candidates, the
// per-class NMS of its post-processing; Faster R-CNN: the RPN's pre-NMS boxes, NMS within each FPN
// level), the highest-scoring `candidates` of them, replayed greedily step by step: visit boxes by
// decreasing score (nmsmath::score_before, stable), keep a box no kept box of its category has
// suppressed, and let it suppress the later boxes of its category that nmsmath::suppresses (the
// kernel's own IoU test) says it does. The kept set and its order are checked against
// kernels::batched_nms on the same boxes. Frames of the contact sheet: the kept box (green), the
// boxes it removes (red, with their IoU from kernels::box_iou), the category's other live boxes (grey).
//
// rule: the detector's boxes on the image (predict_detections, original pixels) and the paper's
// decision rule (eval::DecisionRule, c = 0.28, box threshold 0.5) with p_abnormal from a classifier
// checkpoint (classify_images) or given.
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "kernels/box_ops/box_ops.h"
#include "kernels/nms/nms.h"
#include "kernels/nms/nms_math.h"
#include "models/faster_rcnn.h"
#include "models/retinanet.h"
#include "tensor/autograd.h"
#include "tensor/errors.h"
#include "tensor/ops.h"
#include "train/app/explain/explain_common.h"
#include "train/app/predict.h"
#include "train/eval/decision_rule.h"
#include "train/tasks/det_train.h"

namespace sx::train::explain {
namespace {

struct Step {
  int64_t kept;
  std::vector<std::pair<int64_t, double>> removed;  // (box, IoU with the kept one)
};

}  // namespace

ExplainResult explain_nms(const ExplainOptions& o) {
  Scene s = open_scene(o);
  LoadedModel m = load_model(o, "nms", "", s.ds.classes().num_classes());
  load_pixels(s, m.size, static_cast<int>(m.model->options().in_channels), m.min_size);
  models::ImageList il = scene_images(s);
  NoGradGuard ng;
  Tensor boxes, scores, cats;
  double thr = 0;
  std::vector<std::string> cat_names;
  std::string source;
  if (auto* rn = dynamic_cast<models::RetinaNet*>(m.model.get())) {
    auto h = rn->forward_heads(il);
    models::Detections c = rn->candidates(h, il, 0);
    boxes = c.boxes, scores = c.scores, cats = c.labels;
    thr = rn->options().nms_thresh;
    cat_names = s.class_names;
    source = strf("RetinaNet's candidates (score > %g, top %lld per level, decoded); NMS per class",
                  rn->options().score_thresh, static_cast<long long>(rn->config().topk_candidates));
  } else {
    auto& f = dynamic_cast<models::FasterRCNN&>(*m.model);
    auto feats = f.features(il);
    auto out = f.rpn->forward(il, feats, nullptr);
    boxes = out.pre_nms_boxes.at(0), scores = out.pre_nms_scores.at(0), cats = out.pre_nms_levels.at(0);
    thr = f.rpn->config().nms_thresh;
    for (const auto& t : feats) cat_names.push_back(level_name(il.tensor.size(2) / t.size(2)));
    source = "the RPN's proposals before its NMS; NMS within each FPN level (the 'categories' are levels)";
  }
  SX_CHECK(o.candidates >= 1 && o.frames >= 1, "explain nms: --candidates and --frames must be >= 1");
  const int64_t N0 = boxes.defined() ? boxes.size(0) : 0;
  // The `candidates` best boxes (stable by score: the order NMS visits them).
  std::vector<double> sv0 = N0 ? scores.to_vector() : std::vector<double>{};
  std::vector<int64_t> order(N0);
  for (int64_t i = 0; i < N0; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return kernels::nmsmath::score_before(sv0[a], sv0[b]); });
  order.resize(std::min<int64_t>(N0, o.candidates));
  const int64_t N = static_cast<int64_t>(order.size());
  std::vector<double> idx_d(order.begin(), order.end());
  Tensor sel = Tensor::from_vector(idx_d, {N}, DType::Int64);
  Tensor b = N ? index_select(boxes, 0, sel).contiguous() : Tensor::zeros({0, 4});
  Tensor sc = N ? index_select(scores, 0, sel).contiguous() : Tensor::zeros({0});
  Tensor ct = N ? index_select(cats, 0, sel).contiguous() : Tensor::zeros({0}, DType::Int64);
  const std::vector<float> bv = b.to_vector_as<float>();
  const std::vector<double> sv = sc.to_vector(), cv = ct.to_vector();
  const std::vector<double> iou = N ? kernels::box_iou(b, b).to_vector() : std::vector<double>{};
  // Greedy replay (b is already in visiting order).
  std::vector<bool> removed(N, false);
  std::vector<Step> steps;
  for (int64_t i = 0; i < N; ++i) {
    if (removed[i]) continue;
    Step st{i, {}};
    const float* p = &bv[4 * i];
    const float ia = (p[2] - p[0]) * (p[3] - p[1]);
    for (int64_t j = i + 1; j < N; ++j) {
      if (removed[j] || cv[j] != cv[i]) continue;
      const float* q = &bv[4 * j];
      if (kernels::nmsmath::suppresses(p[0], p[1], p[2], p[3], ia, q[0], q[1], q[2], q[3], (q[2] - q[0]) * (q[3] - q[1]),
                                       thr)) {
        removed[j] = true;
        st.removed.push_back({j, iou[i * N + j]});
      }
    }
    steps.push_back(st);
  }
  const std::vector<double> kernel_keep = N ? kernels::batched_nms(b, sc, ct, thr).to_vector() : std::vector<double>{};
  std::vector<double> mine;
  for (const auto& st : steps) mine.push_back(static_cast<double>(st.kept));
  SX_CHECK(mine == kernel_keep, "explain nms: the step-by-step replay keeps ", mine.size(),
           " boxes but kernels::batched_nms keeps ", kernel_keep.size());

  ExplainResult r;
  r.json = scene_json("nms", s, m);
  r.json["source"] = source;
  r.json["iou_threshold"] = thr;
  r.json["candidates_total"] = N0;
  r.json["candidates_used"] = N;
  r.json["kept"] = mine;
  r.json["kernel_kept"] = kernel_keep;
  r.text = "NMS on " + s.image_id + ", " + m.note + "\nInput: " + source + ";\n";
  r.text += strf("the %lld best of %lld boxes, visited by decreasing score. A box survives unless a kept box of its\n"
                 "category overlaps it with IoU > %.2f. %lld kept (kernels::batched_nms keeps the same, in the same order).\n\n",
                 static_cast<long long>(N), static_cast<long long>(N0), thr, static_cast<long long>(mine.size()));
  r.text += strf("%-22s %8s %8s\n", "category", "before", "after");
  io::Json per = io::Json::array();
  for (size_t c = 0; c < cat_names.size(); ++c) {
    int64_t before = 0, after = 0;
    for (int64_t i = 0; i < N; ++i) before += cv[i] == static_cast<double>(c);
    for (const auto& st : steps) after += cv[st.kept] == static_cast<double>(c);
    if (before == 0) continue;
    r.text += strf("%-22s %8lld %8lld\n", cat_names[c].c_str(), static_cast<long long>(before),
                   static_cast<long long>(after));
    per.push_back({{"category", cat_names[c]}, {"before", before}, {"after", after}});
  }
  r.json["per_category"] = per;
  io::Json js = io::Json::array();
  r.text += "\nSteps (kept box: score -> boxes it removes, with IoU):\n";
  for (size_t k = 0; k < steps.size(); ++k) {
    const Step& st = steps[k];
    io::Json rem = io::Json::array();
    std::string line = strf("  %2zu. #%lld %s %.5g ->", k + 1, static_cast<long long>(st.kept),
                            cat_names.at(static_cast<size_t>(cv[st.kept])).c_str(), sv[st.kept]);
    for (const auto& [j, v] : st.removed) {
      rem.push_back({{"box", j}, {"iou", v}});
      line += strf(" #%lld (%.2f)", static_cast<long long>(j), v);
    }
    if (st.removed.empty()) line += " nothing";
    if (static_cast<int>(k) < o.frames) r.text += line + "\n";
    js.push_back({{"kept", st.kept}, {"category", cat_names.at(static_cast<size_t>(cv[st.kept]))},
                  {"score", sv[st.kept]}, {"removed", rem}});
  }
  if (static_cast<int>(steps.size()) > o.frames) r.text += strf("  ... %zu more steps\n", steps.size() - o.frames);
  r.json["steps"] = js;

  // Pictures: before / after, one row per category (all of them together when there is none);
  // the contact sheet.
  auto colour = [&](int64_t i) { return plot::palette(static_cast<int>(cv[i])); };
  std::vector<int64_t> cats_present;
  for (size_t c = 0; c < cat_names.size(); ++c)
    for (int64_t i = 0; i < N; ++i)
      if (cv[i] == static_cast<double>(c)) {
        cats_present.push_back(static_cast<int64_t>(c));
        break;
      }
  const double ps = cats_present.size() > 2 ? std::min(1.0, 360.0 / std::max(s.pad_w, s.pad_h)) : 1.0;
  std::vector<plot::Canvas> rows;
  auto row = [&](int64_t c) {  // c < 0: every category
    plot::Canvas before = scene_canvas(s, ps), after = scene_canvas(s, ps);
    int64_t nb = 0, na = 0;
    for (int64_t i = N - 1; i >= 0; --i)
      if (c < 0 || cv[i] == static_cast<double>(c))
        ++nb, draw_box(before, bv[4 * i], bv[4 * i + 1], bv[4 * i + 2], bv[4 * i + 3], colour(i), 1, ps);
    for (size_t k = steps.size(); k-- > 0;) {
      const int64_t i = steps[k].kept;
      if (c >= 0 && cv[i] != static_cast<double>(c)) continue;
      ++na;
      draw_box(after, bv[4 * i], bv[4 * i + 1], bv[4 * i + 2], bv[4 * i + 3], colour(i), 2, ps,
               k < 6 ? strf("%.3g", sv[i]) : "");
    }
    const std::string name = c < 0 ? "all" : cat_names[static_cast<size_t>(c)];
    rows.push_back(plot::captioned(before, strf("%s before NMS: %lld", name.c_str(), static_cast<long long>(nb))));
    rows.push_back(plot::captioned(after, strf("%s after NMS: %lld", name.c_str(), static_cast<long long>(na))));
  };
  if (cats_present.empty()) row(-1);
  for (int64_t c : cats_present) row(c);
  const double fs = std::min(2.0, 360.0 / std::max(s.pad_w, s.pad_h));  // frames about 360 px
  std::vector<plot::Canvas> frames;
  std::vector<bool> gone(N, false);
  for (size_t k = 0; k < steps.size() && static_cast<int>(k) < o.frames; ++k) {
    const Step& st = steps[k];
    plot::Canvas fr = scene_canvas(s, fs);
    for (int64_t j = 0; j < N; ++j)
      if (!gone[j] && j != st.kept && cv[j] == cv[st.kept])
        draw_box(fr, bv[4 * j], bv[4 * j + 1], bv[4 * j + 2], bv[4 * j + 3], plot::kGrey, 1, fs);
    for (size_t q = 0; q < st.removed.size(); ++q) {  // tags alternate above / below the box
      const auto [j, v] = st.removed[q];
      draw_box(fr, bv[4 * j], bv[4 * j + 1], bv[4 * j + 2], bv[4 * j + 3], {230, 40, 40}, 1, fs, strf("%.2f", v),
               q % 2 == 1);
      gone[j] = true;
    }
    draw_box(fr, bv[4 * st.kept], bv[4 * st.kept + 1], bv[4 * st.kept + 2], bv[4 * st.kept + 3], {40, 220, 60}, 2, fs);
    gone[st.kept] = true;
    frames.push_back(plot::captioned(fr, strf("%zu: keep #%lld %s %.5g\nremoves %zu", k + 1,
                                              static_cast<long long>(st.kept),
                                              short_class(cat_names[cv[st.kept]]).c_str(), sv[st.kept],
                                              st.removed.size())));
  }
  std::vector<std::pair<std::string, plot::Canvas>> pics = {
      {"", plot::tile(rows, 2)}};
  if (!frames.empty()) pics.push_back({"steps", plot::tile(frames, 4)});
  r.text += "\nPictures: nms.png = before / after per category; nms-steps.png = one frame per step (green = kept, red = removed\n"
            "with its IoU, grey = the category's boxes still in play).\n";
  if (N == 0) r.text += "(No box passed the score threshold: nothing to suppress.)\n";
  write_outputs(r, o, "nms", pics);
  return r;
}

ExplainResult explain_rule(const ExplainOptions& o) {
  Scene s = open_scene(o);
  LoadedModel m = load_model(o, "rule", "", s.ds.classes().num_classes());
  const int channels = static_cast<int>(m.model->options().in_channels);
  load_pixels(s, m.size, channels, m.min_size);
  double p = o.p_abnormal;
  std::string p_from = "given (--p-abnormal)";
  if (!o.cls_ckpt.empty()) {
    PipelineConfig pc;
    pc.cls_ckpt = o.cls_ckpt;
    pc.batch = 1;
    pc.workers = 0;
    pc.progress = false;
    p = classify_images(s.ds, {s.index}, pc).probs.at(0);
    p_from = "the classifier " + o.cls_ckpt;
  }
  SX_CHECK(std::isfinite(p) && p >= 0 && p <= 1, "explain rule: p_abnormal must be in [0, 1], got ", p);
  DetData dd{&s.ds, {s.index}, detection_loader_options(m.size, channels, 1, false, 0.0, 1.0, 1.0, 0.0, 0, 0, m.min_size)};
  const DetPrediction pred = predict_detections(*m.model, dd, Device::cpu()).at(0);
  const eval::DecisionRule rule;  // the paper's c = 0.28, box threshold 0.5
  std::vector<double> scores;
  for (const auto& d : pred.dets) scores.push_back(d.score);
  const std::vector<int> kept = rule.kept_indices(p, scores);
  const io::Target& t = s.batch.targets.at(0);
  const double ds = std::max(1.0, 400.0 / std::max(s.pad_w, s.pad_h));  // small images drawn larger
  plot::Canvas all = scene_canvas(s, ds), ruled = scene_canvas(s, ds);
  std::vector<bool> is_kept(scores.size(), false);
  for (int k : kept) is_kept[k] = true;
  io::Json dets = io::Json::array();
  for (size_t k = pred.dets.size(); k-- > 0;) {
    const auto& d = pred.dets[k];
    const std::string tag = k < 5 ? strf("%s %.2f", short_class(s.class_names.at(d.label)).c_str(), d.score) : "";
    const plot::Color c = plot::palette(d.label);
    draw_box(all, d.x1 * t.scale_x, d.y1 * t.scale_y, d.x2 * t.scale_x, d.y2 * t.scale_y, c, 1, ds, tag);
    if (is_kept[k]) draw_box(ruled, d.x1 * t.scale_x, d.y1 * t.scale_y, d.x2 * t.scale_x, d.y2 * t.scale_y, c, 1, ds, tag);
  }
  for (size_t k = 0; k < pred.dets.size(); ++k) {
    const auto& d = pred.dets[k];
    dets.push_back({{"class", s.class_names.at(d.label)}, {"score", d.score}, {"xyxy", {d.x1, d.y1, d.x2, d.y2}},
                    {"kept", static_cast<bool>(is_kept[k])}});
  }
  int64_t strong = 0;
  for (double v : scores) strong += v >= rule.box_threshold;
  ExplainResult r;
  r.json = scene_json("rule", s, m);
  r.json["p_abnormal"] = p;
  r.json["p_abnormal_from"] = p_from;
  r.json["c"] = rule.classifier_threshold;
  r.json["box_threshold"] = rule.box_threshold;
  r.json["detections"] = dets;
  r.json["kept_indices"] = kept;
  r.json["boxes_without_rule"] = scores.size();
  r.json["boxes_with_rule"] = kept.size();
  const bool flagged = p >= rule.classifier_threshold;
  r.text = "The decision rule on " + s.image_id + ", detector " + m.note + "\n";
  r.text += strf("p_abnormal = %.4f (%s). The rule (train/eval/decision_rule.h): p >= c = %.2f keeps every box;\n"
                 "below c only boxes scoring >= %.2f survive.\n",
                 p, p_from.c_str(), rule.classifier_threshold, rule.box_threshold);
  r.text += strf("Here p %s c: %s. Detector boxes: %zu (%lld of them >= %.2f); after the rule: %zu.\n",
                 flagged ? ">=" : "<", flagged ? "every box is kept" : "only the confident boxes are kept",
                 scores.size(), static_cast<long long>(strong), rule.box_threshold, kept.size());
  if (m.fresh)
    r.text += "(A fresh detector scores every box near its prior, so with p < c the rule removes them all.)\n";
  r.text += "\nPicture: left the detector's boxes (class colours, the best 5 tagged), right those the rule keeps.\n";
  write_outputs(r, o, "rule",
                {{"", plot::tile({plot::captioned(all, strf("detector alone: %zu boxes", scores.size())),
                                  plot::captioned(ruled, strf("with the rule (p %.3f, c %.2f): %zu boxes", p,
                                                              rule.classifier_threshold, kept.size()))},
                                 2)}});
  return r;
}

}  // namespace sx::train::explain
