// The shared part of `spinexr explain` (explain_common.h) and the topic dispatch (explain.h).
#include "train/app/explain/explain_common.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "tensor/errors.h"
#include "tensor/ops.h"
#include "train/app/predict.h"
#include "train/tasks/det_train.h"

namespace sx::train::explain {

const std::vector<std::pair<std::string, std::string>>& explain_topics() {
  static const std::vector<std::pair<std::string, std::string>> kTopics = {
      {"anchors", "the anchor grid per FPN level, the anchors at one point, positive/ignored/negative matches"},
      {"matching", "IoU of each ground-truth box with its best anchor per level; low-quality matches"},
      {"focal", "one batch's loss by anchor kind (easy/hard negatives, positives): CE vs focal gamma 1, 2, 5"},
      {"heads", "class-score (RetinaNet) or objectness (Faster R-CNN) heat maps per FPN level"},
      {"rpn", "Faster R-CNN's RPN: objectness heat maps, proposals before and after NMS"},
      {"roi-align", "one RoI on its FPN level: bins, sampling points, bilinear weights; RoIPool's bins"},
      {"nms", "greedy NMS step by step (contact sheet) and the boxes before/after, per class"},
      {"rule", "the decision rule: the image's boxes without and with it, given p_abnormal"},
  };
  return kTopics;
}

ExplainResult run_explain(const std::string& topic, const ExplainOptions& o) {
  if (topic == "anchors") return explain_anchors(o);
  if (topic == "matching") return explain_matching(o);
  if (topic == "focal") return explain_focal(o);
  if (topic == "heads") return explain_heads(o);
  if (topic == "rpn") return explain_rpn(o);
  if (topic == "roi-align") return explain_roi_align(o);
  if (topic == "nms") return explain_nms(o);
  if (topic == "rule") return explain_rule(o);
  std::string names;
  for (const auto& [t, _] : explain_topics()) names += (names.empty() ? "" : " | ") + t;
  SX_THROW(ValueError, "explain: unknown topic '", topic, "' (", names, ")");
}


Scene open_scene(const ExplainOptions& o) {
  SX_CHECK(o.split == "train" || o.split == "test", "explain: --split must be train or test, got '", o.split, "'");
  Scene s;
  io::DatasetOptions dopt;
  dopt.split = o.split;
  dopt.allow_missing = true;  // a partial download: any image that is there will do
  s.ds = io::Dataset::open(o.data, dopt);
  SX_CHECK(s.ds.size() > 0, o.data, ": the ", o.split, " split has no images");
  for (int64_t i = 0; i < s.ds.size() && s.index < 0; ++i) {
    const io::Sample& sm = s.ds.sample(i);
    if (o.image_id.empty() ? sm.label == 1 : sm.image_id == o.image_id) s.index = i;
  }
  if (s.index < 0) {
    SX_CHECK(o.image_id.empty(), o.data, ": no image '", o.image_id, "' in the ", o.split, " split");
    s.index = 0;  // no abnormal image: the first one
  }
  s.image_id = s.ds.sample(s.index).image_id;
  s.label = s.ds.sample(s.index).label;
  s.class_names = s.ds.classes().class_names();
  return s;
}

io::Batch make_plain_batch(const io::Dataset& ds, const std::vector<int64_t>& pool, int size, int channels,
                           int min_size) {
  io::LoaderOptions lo = detection_loader_options(size, channels, static_cast<int>(pool.size()), false, 0.0, 1.0,
                                                  1.0, 0.0, 0, 0, min_size);
  return io::make_batch(ds, pool, 0, 0, lo);
}

void load_pixels(Scene& s, int size, int channels, int min_size) {
  s.batch = make_plain_batch(s.ds, {s.index}, size, channels, min_size);
  const io::Target& t = s.batch.targets.at(0);
  s.width = t.resized_width;
  s.height = t.resized_height;
  s.pad_h = static_cast<int>(s.batch.images.size(2));
  s.pad_w = static_cast<int>(s.batch.images.size(3));
  Tensor plane = s.batch.images.select(0, 0).select(0, 0).contiguous();
  const float* p = plane.data<float>();
  s.grey.resize(static_cast<size_t>(s.pad_w) * s.pad_h);
  for (size_t i = 0; i < s.grey.size(); ++i)
    s.grey[i] = static_cast<uint8_t>(std::lround(std::clamp(p[i], 0.0f, 1.0f) * 255.0f));
  s.gt.clear();
  std::vector<double> b = t.boxes.to_vector(), l = t.labels.to_vector();
  for (size_t k = 0; k < l.size(); ++k)
    s.gt.push_back({b[4 * k], b[4 * k + 1], b[4 * k + 2], b[4 * k + 3], static_cast<int64_t>(l[k])});
}

models::ImageList scene_images(const Scene& s) { return to_image_list(s.batch, Device::cpu()); }

Tensor gt_boxes_tensor(const Scene& s) {
  std::vector<double> v;
  for (const auto& g : s.gt) v.insert(v.end(), {g.x1, g.y1, g.x2, g.y2});
  return Tensor::from_vector(v, {static_cast<int64_t>(s.gt.size()), 4}, DType::Float32);
}

LoadedModel load_model(const ExplainOptions& o, const std::string& topic, const std::string& need,
                       int64_t num_classes) {
  LoadedModel m;
  if (!o.ckpt.empty()) {
    std::map<std::string, std::string> over;
    if (o.ckpt_score_thresh >= 0) over["det.score_thresh"] = strf("%.17g", o.ckpt_score_thresh);
    m.model = load_detector_checkpoint(o.ckpt, Device::cpu(), over);
    SX_CHECK(need.empty() || m.model->model_name() == need, "explain ", topic, " shows ", need, "'s internals, but ",
             o.ckpt, " is a ", m.model->model_name(), " (give a ", need, " checkpoint, or none for a fresh model)");
    m.size = o.size > 0 ? o.size : checkpoint_input_size(o.ckpt);
    m.min_size = o.size > 0 ? 0 : checkpoint_min_size(o.ckpt);  // an explicit --size: the longest side
    m.note = m.model->model_name() + "/" + m.model->options().arch + " from " + o.ckpt;
    if (o.ckpt_score_thresh >= 0) m.note += strf(" (score threshold %g instead of its own)", o.ckpt_score_thresh);
  } else {
    const std::string kind = need.empty() ? o.model : need;
    models::DetectorOptions d = o.det;
    d.num_classes = num_classes;
    d.seed = o.seed;
    m.model = make_detector(kind, d);
    m.model->eval();
    m.fresh = true;
    m.size = o.size > 0 ? o.size : 512;
    m.note = kind + "/" + d.arch + ", freshly initialised (seed " + std::to_string(o.seed) +
             "; no --ckpt: the weights are untrained, so scores sit near the prior)";
  }
  return m;
}

plot::Canvas scene_canvas(const Scene& s, double scale) { return plot::grey_canvas(s.grey.data(), s.pad_w, s.pad_h, scale); }

void draw_box(plot::Canvas& cv, double x1, double y1, double x2, double y2, plot::Color c, int thickness,
              double scale, const std::string& tag, bool tag_below) {
  if (!std::isfinite(x1) || !std::isfinite(y1) || !std::isfinite(x2) || !std::isfinite(y2)) return;
  auto px = [scale](double v) { return static_cast<int>(std::lround(std::clamp(v * scale, -1e6, 1e6))); };
  const int a = px(x1), b = px(y1), cc = px(x2), d = px(y2);
  cv.rect(a, b, cc, d, c, thickness);
  if (tag.empty()) return;
  const int tw = plot::Canvas::text_width(tag) + 4, th = plot::Canvas::text_height(tag) + 4;
  const int tx = std::max(0, std::min(a, cv.width() - tw));
  const int ty = b - th >= 0 && !tag_below ? b - th : d + 1;
  cv.fill_rect(tx, ty, tx + tw - 1, ty + th - 1, c);
  const int lum = (299 * c.r + 587 * c.g + 114 * c.b) / 1000;
  cv.text(tx + 2, ty + 2, tag, lum > 140 ? plot::kBlack : plot::kWhite);
}

std::string level_name(int64_t stride) {
  int k = 0;
  while ((int64_t(1) << k) < stride) ++k;
  return "P" + std::to_string(k);
}

std::string short_class(const std::string& name) { return name.size() <= 8 ? name : name.substr(0, 7) + "."; }

void write_outputs(ExplainResult& r, const ExplainOptions& o, const std::string& topic,
                   const std::vector<std::pair<std::string, plot::Canvas>>& pictures) {
  std::filesystem::create_directories(o.out);
  for (const auto& [suffix, cv] : pictures) {
    const std::string path = o.out + "/" + topic + (suffix.empty() ? "" : "-" + suffix) + ".png";
    cv.save_png(path);
    r.pngs.push_back(path);
  }
  r.json["pictures"] = r.pngs;
  r.json_path = o.out + "/" + topic + ".json";
  io::write_json_atomic(r.json_path, r.json);
}

io::Json scene_json(const std::string& topic, const Scene& s, const LoadedModel& m) {
  io::Json j;
  j["topic"] = topic;
  j["image_id"] = s.image_id;
  j["split"] = s.ds.split();
  j["image_label"] = s.label;
  j["model"] = m.note;
  j["fresh_model"] = m.fresh;
  j["input_size"] = m.size;
  if (m.min_size > 0) j["input_min_size"] = m.min_size;
  j["resized"] = {s.width, s.height};
  j["padded"] = {s.pad_w, s.pad_h};
  io::Json gt = io::Json::array();
  for (const auto& g : s.gt)
    gt.push_back({{"class", s.class_names.at(g.label)}, {"box", {g.x1, g.y1, g.x2, g.y2}}});
  j["ground_truth"] = gt;
  return j;
}

}  // namespace sx::train::explain
