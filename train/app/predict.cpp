// The two-stage pipeline and its output formats: see predict.h.
#include "train/app/predict.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/annotations.h"
#include "io/atomic_file.h"
#include "io/json.h"
#include "io/dicom.h"
#include "tensor/errors.h"
#include "train/loop/checkpoint.h"
#include "train/tasks/cls_data.h"
#include "train/tasks/det_train.h"
#include "train/eval/metrics.h"
#include "train/eval/plot.h"
#include "train/tasks/cls_train.h"

namespace sx::train {

namespace {

// The checkpoint writer (train/loop/checkpoint.h) stores the caller's metadata under "config."; a key is
// looked up as given and with that prefix, so "config.size" is found whether it was passed as
// "size" or as "config.size".
const std::string* find_meta(const Metadata& md, const std::string& key) {
  auto it = md.find(key);
  if (it == md.end()) it = md.find("config." + key);
  return it == md.end() ? nullptr : &it->second;
}

std::string meta(const Metadata& md, const std::string& key, const std::string& given, const std::string& ckpt,
                 const std::string& option) {
  if (!given.empty() && given != "0") return given;
  const std::string* v = find_meta(md, key);
  SX_CHECK(v != nullptr, ckpt, " does not record ", key, "; give ", option);
  return *v;
}

// config.min_size, 0 when absent (checkpoints that resized the longest side).
int metadata_min_size(const Metadata& md) {
  const std::string* v = find_meta(md, "config.min_size");
  return v ? std::stoi(*v) : 0;
}

}  // namespace

// Rebuilds the detector from its checkpoint's metadata (det.model and the detector options, stored
// directly or under "config.") and loads its weights strictly.
std::shared_ptr<models::DetectionModel> load_detector_checkpoint(const std::string& ckpt, Device device,
                                                                 const std::map<std::string, std::string>& overrides) {
  Metadata md = read_checkpoint_metadata(ckpt);
  Metadata flat = md;
  for (const auto& [k, v] : md)
    if (k.rfind("config.", 0) == 0 && !flat.count(k.substr(7))) flat[k.substr(7)] = v;
  for (const auto& [k, v] : overrides) flat[k] = v;
  auto it = flat.find("det.model");
  SX_CHECK(it != flat.end(), ckpt, ": not a detector checkpoint (no det.model in its metadata)");
  auto model = make_detector(it->second, models::detector_options_from_metadata(flat));
  load_model_weights(ckpt, *model, /*strict=*/true);
  model->to(device);
  model->eval();
  return model;
}


int checkpoint_input_size(const std::string& ckpt) {
  Metadata md = read_checkpoint_metadata(ckpt);
  return std::stoi(meta(md, "config.size", "", ckpt, "the input size (--size)"));
}

int checkpoint_min_size(const std::string& ckpt) { return metadata_min_size(read_checkpoint_metadata(ckpt)); }

void apply_decision_rule(std::vector<PipelineImage>& images, const eval::DecisionRule& rule) {
  for (auto& im : images) {
    std::vector<double> scores;
    for (const auto& d : im.dets) scores.push_back(d.score);
    im.kept.clear();
    for (int k : rule.kept_indices(im.p_abnormal, scores)) im.kept.push_back(im.dets[k]);
  }
}

std::vector<std::string> parse_cls_checkpoints(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = list.find(',', start);
    const std::string item = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    SX_CHECK(!item.empty(), "classifier checkpoints: empty entry in '", list, "' (give A or A,B,C)");
    if (!file_exists(item)) SX_THROW(IOError, "no classifier checkpoint at '", item, "'");
    out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

namespace {

// One classifier checkpoint over the pool.
ClsPredictions classify_one(const io::Dataset& ds, const std::vector<int64_t>& pool, const PipelineConfig& cfg,
                            const std::string& ckpt) {
  Metadata cmd = read_checkpoint_metadata(ckpt);
  ClsDataOptions d;
  const std::string arch = meta(cmd, "config.arch", cfg.cls_arch, ckpt, "the classifier's architecture");
  d.size = std::stoi(meta(cmd, "config.size", std::to_string(cfg.cls_size), ckpt, "the classifier's input size"));
  d.channels =
      std::stoi(meta(cmd, "config.channels", std::to_string(cfg.cls_channels), ckpt, "the classifier's channels"));
  d.batch = cfg.batch;
  d.workers = cfg.workers;
  auto cls = make_cls_model(arch, d.channels, 0);
  load_model_weights(ckpt, *cls, /*strict=*/true);
  cls->to(cfg.device);
  LoaderClsSource src(ds, pool, cls_loader_options(d, /*training=*/false));
  // A checkpoint trained with --calibrate temperature carries its temperature: p = sigmoid(z / T).
  ClsPredictions cp = predict_cls(*cls, src, cfg.device, cfg.progress, checkpoint_temperature(ckpt));
  SX_CHECK(cp.probs.size() == pool.size(), "pipeline: the classifier ", ckpt, " returned ", cp.probs.size(),
           " results for ", pool.size(), " images");
  return cp;
}

}  // namespace

ClsPredictions classify_images(const io::Dataset& ds, const std::vector<int64_t>& pool, const PipelineConfig& cfg,
                               std::vector<ClsPredictions>* members) {
  std::vector<ClsPredictions> preds;
  for (const std::string& ckpt : parse_cls_checkpoints(cfg.cls_ckpt)) preds.push_back(classify_one(ds, pool, cfg, ckpt));
  ClsPredictions e = ensemble_cls_predictions(preds);
  if (members) *members = std::move(preds);
  return e;
}

std::vector<PipelineImage> run_pipeline(const io::Dataset& ds, const std::vector<int64_t>& pool,
                                        const PipelineConfig& cfg, const eval::DecisionRule& rule,
                                        std::vector<ClsPredictions>* cls_members) {
  std::vector<PipelineImage> out;
  if (pool.empty()) return out;
  // ---- stage 1: the classifier (or an ensemble) ----
  parse_cls_checkpoints(cfg.cls_ckpt);  // every file there before anything runs
  SX_CHECK(file_exists(cfg.det_ckpt), "no detector checkpoint at '", cfg.det_ckpt, "'");
  ClsPredictions cp = classify_images(ds, pool, cfg, cls_members);

  // ---- stage 2: the detector ----
  Metadata dmd = read_checkpoint_metadata(cfg.det_ckpt);
  const int det_size =
      std::stoi(meta(dmd, "config.size", std::to_string(cfg.det_size), cfg.det_ckpt, "the detector's input size"));
  auto det = load_detector_checkpoint(cfg.det_ckpt, cfg.device);
  DetData dd;
  dd.dataset = &ds;
  dd.pool = pool;
  const int det_min_size = cfg.det_size > 0 ? 0 : metadata_min_size(dmd);  // an explicit size: the longest side
  dd.loader = detection_loader_options(det_size, static_cast<int>(det->options().in_channels), cfg.batch, false, 0.0,
                                       1.0, 1.0, 0.0, 0, cfg.workers, det_min_size);
  std::vector<DetPrediction> dp = predict_detections(*det, dd, cfg.device, cfg.progress);
  SX_CHECK(dp.size() == pool.size(), "pipeline: the detector returned ", dp.size(), " results for ", pool.size(),
           " images");

  for (size_t i = 0; i < pool.size(); ++i) {
    const io::Sample& s = ds.sample(pool[i]);
    SX_CHECK(cp.ids[i] == s.image_id && dp[i].image_id == s.image_id, "pipeline: results out of order at image ", i,
             " ('", s.image_id, "', classifier '", cp.ids[i], "', detector '", dp[i].image_id, "')");
    PipelineImage im;
    im.image_id = s.image_id;
    im.study_id = s.study_id;
    im.series_id = s.series_id;
    im.index = pool[i];
    im.orig_width = dp[i].orig_width;
    im.orig_height = dp[i].orig_height;
    im.label = s.label;
    im.p_abnormal = cp.probs[i];
    im.gt = dp[i].gt;
    im.dets = dp[i].dets;
    out.push_back(std::move(im));
  }
  apply_decision_rule(out, rule);
  return out;
}

RuleEffect rule_effect(const std::vector<PipelineImage>& images, const eval::DecisionRule& rule) {
  RuleEffect e;
  for (const auto& im : images) {
    if (im.label < 0) continue;
    const bool flagged = im.p_abnormal >= rule.classifier_threshold;
    if (im.label == 0) {
      e.normal_images += 1;
      e.normal_flagged += flagged;
      e.boxes_normal += static_cast<int64_t>(im.dets.size());
      e.boxes_normal_kept += static_cast<int64_t>(im.kept.size());
    } else {
      e.abnormal_images += 1;
      e.abnormal_flagged += flagged;
      e.boxes_abnormal += static_cast<int64_t>(im.dets.size());
      e.boxes_abnormal_kept += static_cast<int64_t>(im.kept.size());
    }
  }
  return e;
}

io::Json rule_effect_json(const RuleEffect& e, const eval::DecisionRule& rule) {
  return {{"c", rule.classifier_threshold},
          {"box_threshold", rule.box_threshold},
          {"normal_images", e.normal_images},
          {"abnormal_images", e.abnormal_images},
          {"normal_flagged", e.normal_flagged},
          {"abnormal_flagged", e.abnormal_flagged},
          {"boxes_normal", e.boxes_normal},
          {"boxes_normal_with_rule", e.boxes_normal_kept},
          {"boxes_abnormal", e.boxes_abnormal},
          {"boxes_abnormal_with_rule", e.boxes_abnormal_kept},
          {"fp_per_normal_image", e.fp_per_normal()},
          {"fp_per_normal_image_with_rule", e.fp_per_normal_kept()}};
}

std::vector<eval::ImageEval> pipeline_evals(const std::vector<PipelineImage>& images, bool with_rule) {
  std::vector<eval::ImageEval> out;
  out.reserve(images.size());
  for (const auto& im : images) out.push_back({im.image_id, im.gt, with_rule ? im.kept : im.dets});
  return out;
}

io::Dataset dataset_from_files(const std::vector<std::string>& files, const io::ClassMap& classes) {
  std::vector<io::Sample> samples;
  std::set<std::string> ids;
  for (const auto& f : files) {
    if (!std::filesystem::is_regular_file(f)) SX_THROW(IOError, "predict: no file '", f, "'");
    io::Sample s;
    s.path = f;
    s.image_id = std::filesystem::path(f).stem().string();
    if (!ids.insert(s.image_id).second)
      SX_THROW(IOError, "predict: two files give the image id '", s.image_id, "' (", f, ")");
    // Study and series from the file's header (the release's CSVs hold the same UIDs); the header
    // is read now, so a file that is not DICOM stops the command before any model runs.
    const io::DicomInfo info = io::read_dicom_info(f);
    s.study_id = info.study_uid;
    s.series_id = info.series_uid;
    samples.push_back(std::move(s));
  }
  return io::Dataset::from_samples(std::move(samples), classes);
}

// ---- CSV ------------------------------------------------------------------------------------------
namespace {
std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}
std::string score_str(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  return buf;
}
}  // namespace

std::string predictions_csv(const std::vector<PipelineImage>& images, const std::vector<std::string>& class_names) {
  std::ostringstream o;
  o << "study_id,series_id,image_id,rad_id,lesion_type,xmin,ymin,xmax,ymax,score\n";
  for (const auto& im : images) {
    const std::string lead = io::csv_escape(im.study_id) + "," + io::csv_escape(im.series_id) + "," +
                             io::csv_escape(im.image_id) + ",,";
    if (im.kept.empty()) {
      o << lead << "No finding,,,,," << score_str(1.0 - im.p_abnormal) << "\n";
      continue;
    }
    for (const auto& b : im.kept) {
      SX_CHECK(b.label >= 0 && b.label < static_cast<int>(class_names.size()), "predictions_csv: label ", b.label,
               " outside the ", class_names.size(), " class names");
      o << lead << io::csv_escape(class_names[b.label]) << "," << num(b.x1) << "," << num(b.y1) << "," << num(b.x2)
        << "," << num(b.y2) << "," << score_str(b.score) << "\n";
    }
  }
  return o.str();
}

std::vector<PredictionRow> parse_predictions_csv(const std::string& text, const std::string& name) {
  std::vector<PredictionRow> rows;
  std::istringstream in(text);
  std::string line;
  int ln = 0;
  std::map<std::string, size_t> col;
  auto need = [&](const char* c) {
    auto it = col.find(c);
    if (it == col.end()) SX_THROW(IOError, name, ":1: no column '", c, "'");
    return it->second;
  };
  size_t c_study = 0, c_series = 0, c_image = 0, c_rad = 0, c_type = 0, c_x1 = 0, c_y1 = 0, c_x2 = 0, c_y2 = 0, c_s = 0;
  while (std::getline(in, line)) {
    ++ln;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    auto f = io::split_csv_line(line);
    if (ln == 1) {
      for (size_t i = 0; i < f.size(); ++i) col[f[i]] = i;
      c_study = need("study_id"), c_series = need("series_id"), c_image = need("image_id"), c_rad = need("rad_id");
      c_type = need("lesion_type"), c_x1 = need("xmin"), c_y1 = need("ymin"), c_x2 = need("xmax"), c_y2 = need("ymax");
      c_s = need("score");
      continue;
    }
    if (f.size() != col.size())
      SX_THROW(IOError, name, ":", ln, ": ", f.size(), " fields, the header has ", col.size());
    PredictionRow r;
    r.study_id = f[c_study];
    r.series_id = f[c_series];
    r.image_id = f[c_image];
    r.rad_id = f[c_rad];
    r.lesion_type = f[c_type];
    auto parse = [&](const std::string& s, const char* what) {
      char* end = nullptr;
      double v = std::strtod(s.c_str(), &end);
      if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v))
        SX_THROW(IOError, name, ":", ln, ": bad ", what, " '", s, "'");
      return v;
    };
    r.has_box = !f[c_x1].empty();
    if (r.has_box) {
      r.xmin = parse(f[c_x1], "xmin");
      r.ymin = parse(f[c_y1], "ymin");
      r.xmax = parse(f[c_x2], "xmax");
      r.ymax = parse(f[c_y2], "ymax");
    } else if (!f[c_y1].empty() || !f[c_x2].empty() || !f[c_y2].empty()) {
      SX_THROW(IOError, name, ":", ln, ": partial coordinates");
    }
    r.score = parse(f[c_s], "score");
    rows.push_back(std::move(r));
  }
  if (ln == 0) SX_THROW(IOError, name, ": empty file");
  return rows;
}

// ---- JSON ----------------------------------------------------------------------------------------
std::string coco_results_json(const std::vector<PipelineImage>& images, const std::vector<std::string>& class_names) {
  io::Json o = io::Json::array();
  for (const auto& im : images)
    for (const auto& b : im.kept) {
      SX_CHECK(b.label >= 0 && b.label < static_cast<int>(class_names.size()), "coco_results_json: label ", b.label,
               " outside the ", class_names.size(), " class names");
      o.push_back({{"image_id", im.image_id},
                   {"category_id", b.label + 1},
                   {"category_name", class_names[b.label]},
                   {"bbox", {b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1}},
                   {"score", b.score}});
    }
  return io::json_text(o);
}

std::vector<CocoResult> parse_coco_results_json(const std::string& text, const std::string& name) {
  const io::Json root = io::parse_json(text, name);
  if (!root.is_array()) SX_THROW(IOError, name, ": expected a JSON array of results");
  std::vector<CocoResult> out;
  for (size_t i = 0; i < root.size(); ++i) {
    const io::Json& v = root[i];
    auto get = [&](const char* k) -> const io::Json* {
      if (!v.is_object()) return nullptr;
      auto it = v.find(k);
      return it == v.end() ? nullptr : &*it;
    };
    auto number = [&](const char* k) {
      const io::Json* f = get(k);
      if (!f || !f->is_number()) SX_THROW(IOError, name, ": result ", i, " lacks a valid '", k, "'");
      return f->get<double>();
    };
    CocoResult r;
    const io::Json* id = get("image_id");
    if (id && id->is_string()) r.image_id = id->get<std::string>();
    else if (id && id->is_number()) r.image_id = std::to_string(static_cast<long long>(id->get<double>()));
    else SX_THROW(IOError, name, ": result ", i, " lacks a valid 'image_id'");
    r.category_id = static_cast<int>(number("category_id"));
    if (const io::Json* cn = get("category_name"); cn && cn->is_string()) r.category_name = cn->get<std::string>();
    const io::Json* bb = get("bbox");
    if (!bb || !bb->is_array()) SX_THROW(IOError, name, ": result ", i, " lacks a valid 'bbox'");
    if (bb->size() != 4) SX_THROW(IOError, name, ": result ", i, " bbox needs 4 numbers");
    for (const auto& e : *bb)
      if (!e.is_number()) SX_THROW(IOError, name, ": result ", i, " bbox needs 4 numbers");
    r.x = (*bb)[0].get<double>();
    r.y = (*bb)[1].get<double>();
    r.w = (*bb)[2].get<double>();
    r.h = (*bb)[3].get<double>();
    r.score = number("score");
    out.push_back(std::move(r));
  }
  return out;
}

// ---- pictures ---------------------------------------------------------------------------------------
std::string safe_file_name(const std::string& id) {
  std::string s = id;
  for (char& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  if (s.empty() || s == "." || s == "..") s = "_" + s;
  return s;
}

void write_prediction_png(const io::Dataset& ds, const PipelineImage& image, const std::vector<std::string>& class_names,
                          const std::string& path, int max_png_side, double draw_thresh) {
  SX_CHECK(image.index >= 0 && image.index < ds.size(), "write_prediction_png: image index ", image.index,
           " outside the dataset (", ds.size(), " images)");
  io::LoadedImage li = ds.load(image.index);
  const int W = li.image.width, H = li.image.height;
  SX_CHECK(W > 0 && H > 0, "write_prediction_png: empty image '", image.image_id, "'");
  // Scale factor from original pixels to the drawn picture.
  const double pre = li.pre_scale > 0 ? li.pre_scale : 1.0;  // image px per original px
  // Small images are enlarged (whole-number factor, nearest pixel) to about 640 px so that the
  // labels stay small beside the boxes; large ones are shrunk to max_png_side (area average).
  const int up = std::max(1, std::min(640, max_png_side) / std::max(W, H));
  const double shrink = up > 1 ? static_cast<double>(up) : std::min(1.0, static_cast<double>(max_png_side) / std::max(W, H));
  const int w = std::max(1, static_cast<int>(std::lround(W * shrink)));
  const int h = std::max(1, static_cast<int>(std::lround(H * shrink)));
  std::vector<uint8_t> grey(static_cast<size_t>(w) * h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      // area average over the source pixels this output pixel covers
      const int x0 = static_cast<int>(x / shrink), x1 = std::max(x0 + 1, std::min(W, static_cast<int>((x + 1) / shrink)));
      const int y0 = static_cast<int>(y / shrink), y1 = std::max(y0 + 1, std::min(H, static_cast<int>((y + 1) / shrink)));
      double s = 0;
      int n = 0;
      for (int yy = y0; yy < y1 && yy < H; ++yy)
        for (int xx = x0; xx < x1 && xx < W; ++xx, ++n) s += li.image.at(xx, yy);
      double v = n ? s / n : 0.0;
      grey[static_cast<size_t>(y) * w + x] = static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
    }
  const double f = pre * shrink;
  std::vector<plot::LabeledBox> boxes;
  for (const auto& b : image.kept) {
    if (b.score < draw_thresh) continue;
    plot::LabeledBox lb;
    lb.x1 = b.x1 * f;
    lb.y1 = b.y1 * f;
    lb.x2 = b.x2 * f;
    lb.y2 = b.y2 * f;
    char buf[32];
    std::snprintf(buf, sizeof buf, " %.2f", b.score);
    lb.text = (b.label >= 0 && b.label < static_cast<int>(class_names.size()) ? class_names[b.label]
                                                                               : std::to_string(b.label)) +
              buf;
    lb.color = plot::palette(b.label);
    boxes.push_back(lb);
  }
  const int scale = std::max(w, h) >= 800 ? 2 : 1;
  plot::Canvas c = plot::draw_boxes(grey.data(), w, h, boxes, scale + 1, scale);
  char head[96];
  std::snprintf(head, sizeof head, "p %.3f, %zu drawn (score >= %.2f) of %zu kept", image.p_abnormal, boxes.size(),
                draw_thresh, image.kept.size());
  c.fill_rect(0, 0, plot::Canvas::text_width(head, scale) + 6, plot::Canvas::text_height(head, scale) + 5, plot::kBlack);
  c.text(3, 3, head, plot::kWhite, scale);
  c.save_png(path);
}

}  // namespace sx::train
