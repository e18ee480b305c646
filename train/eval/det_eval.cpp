// Detection evaluation: COCOeval's bbox protocol with the paper's IoU thresholds, and VOC AP@0.5.
// See det_eval.h for the algorithm, step by step.
#include "train/eval/det_eval.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tensor/errors.h"
#include "train/eval/plot.h"

namespace sx::eval {

std::vector<double> DetEvalConfig::paper_iou_thresholds() {
  // np.linspace(0.2, 0.5, 7): start + i * step, the last one exactly the stop value.
  std::vector<double> t;
  const double step = (0.5 - 0.2) / 6.0;
  for (int i = 0; i < 7; ++i) t.push_back(i == 6 ? 0.5 : 0.2 + i * step);
  return t;
}

double eval_iou(const EvalBox& a, const EvalBox& b) {
  const double iw = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
  const double ih = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
  if (iw <= 0 || ih <= 0) return 0.0;
  const double inter = iw * ih;
  const double uni = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
  return uni > 0 ? inter / uni : 0.0;
}

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

void check_box(const EvalBox& b, int num_classes, const std::string& image_id, const char* kind) {
  SX_CHECK(b.label >= 0 && b.label < num_classes, "evaluate_detections: image '", image_id, "': ", kind,
           " label ", b.label, " outside 0..", num_classes - 1);
  SX_CHECK(std::isfinite(b.x1) && std::isfinite(b.y1) && std::isfinite(b.x2) && std::isfinite(b.y2) &&
               std::isfinite(b.score),
           "evaluate_detections: image '", image_id, "': ", kind, " box (", b.x1, ", ", b.y1, ", ", b.x2, ", ",
           b.y2, ") score ", b.score, " is not finite");
}

// Indices of `boxes` with label c, sorted by descending score (stable).
std::vector<int64_t> class_dets_sorted(const std::vector<EvalBox>& boxes, int c) {
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < static_cast<int64_t>(boxes.size()); ++i)
    if (boxes[i].label == c) idx.push_back(i);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](int64_t a, int64_t b) { return boxes[a].score > boxes[b].score; });
  return idx;
}

std::string thr_key(double t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", t);
  return buf;
}

double nan_mean(const std::vector<double>& v) {
  double s = 0;
  int n = 0;
  for (double x : v)
    if (!std::isnan(x)) {
      s += x;
      ++n;
    }
  return n ? s / n : kNaN;
}

}  // namespace

DetEvalResult evaluate_detections(const std::vector<ImageEval>& images, const DetEvalConfig& cfg) {
  const int C = static_cast<int>(cfg.class_names.size());
  SX_CHECK(C > 0, "evaluate_detections: class_names is empty");
  SX_CHECK(!cfg.iou_thresholds.empty(), "evaluate_detections: iou_thresholds is empty");
  SX_CHECK(cfg.max_dets > 0, "evaluate_detections: max_dets must be > 0, got ", cfg.max_dets);
  for (double t : cfg.iou_thresholds)
    SX_CHECK(t > 0 && t <= 1, "evaluate_detections: IoU threshold ", t, " outside (0, 1]");
  {
    std::set<std::string> ids;
    for (const auto& im : images) {
      SX_CHECK(ids.insert(im.image_id).second, "evaluate_detections: duplicate image id '", im.image_id, "'");
      for (const auto& b : im.gt) check_box(b, C, im.image_id, "ground-truth");
      for (const auto& b : im.dets) check_box(b, C, im.image_id, "detection");
    }
  }
  const int T = static_cast<int>(cfg.iou_thresholds.size());

  DetEvalResult r;
  r.iou_thresholds = cfg.iou_thresholds;
  r.num_images = static_cast<int64_t>(images.size());
  for (int t = 0; t < T; ++t)
    if (std::fabs(cfg.iou_thresholds[t] - 0.5) < std::fabs(cfg.iou_thresholds[r.threshold_index_50] - 0.5))
      r.threshold_index_50 = t;
  for (const auto& im : images) {
    if (im.gt.empty()) ++r.num_normal_images;
    r.num_gt += static_cast<int64_t>(im.gt.size());
  }

  for (int c = 0; c < C; ++c) {
    ClassEval ce;
    ce.name = cfg.class_names[c];
    // Per-threshold concatenation over images (image order, then score order within the image).
    std::vector<std::vector<int>> tp(T);
    std::vector<double> scores;
    // VOC: every detection of the class, with the image it belongs to.
    struct VocDet {
      double score;
      int64_t image, det;
    };
    std::vector<VocDet> voc;

    for (int64_t i = 0; i < static_cast<int64_t>(images.size()); ++i) {
      const ImageEval& im = images[i];
      std::vector<int64_t> gi;
      for (int64_t g = 0; g < static_cast<int64_t>(im.gt.size()); ++g)
        if (im.gt[g].label == c) gi.push_back(g);
      ce.num_gt += static_cast<int64_t>(gi.size());
      std::vector<int64_t> di = class_dets_sorted(im.dets, c);
      for (int64_t d : di) voc.push_back({im.dets[d].score, i, d});
      if (static_cast<int64_t>(di.size()) > cfg.max_dets) di.resize(cfg.max_dets);
      if (di.empty()) continue;
      // IoU matrix [dets x gts].
      std::vector<double> ious(di.size() * gi.size());
      for (size_t a = 0; a < di.size(); ++a)
        for (size_t b = 0; b < gi.size(); ++b) ious[a * gi.size() + b] = eval_iou(im.dets[di[a]], im.gt[gi[b]]);
      for (int t = 0; t < T; ++t) {
        std::vector<char> gt_matched(gi.size(), 0);
        for (size_t a = 0; a < di.size(); ++a) {
          double best = std::min(cfg.iou_thresholds[t], 1.0 - 1e-10);
          int64_t m = -1;
          for (size_t b = 0; b < gi.size(); ++b) {
            if (gt_matched[b]) continue;
            const double v = ious[a * gi.size() + b];
            if (v < best) continue;
            best = v;
            m = static_cast<int64_t>(b);
          }
          if (m >= 0) gt_matched[m] = 1;
          tp[t].push_back(m >= 0 ? 1 : 0);
        }
      }
      for (int64_t d : di) scores.push_back(im.dets[d].score);
    }
    ce.num_dets = static_cast<int64_t>(scores.size());

    if (ce.num_gt == 0) {
      ce.ap.assign(T, kNaN);
      ce.ap_voc = kNaN;
    } else {
      for (int t = 0; t < T; ++t) {
        metrics::RankedPr pr = metrics::pr_from_ranked(scores, tp[t], ce.num_gt);
        ce.ap.push_back(metrics::ap_coco101(pr));
        if (t == r.threshold_index_50) ce.pr_at_50 = std::move(pr);
      }
      // VOC matching.
      std::stable_sort(voc.begin(), voc.end(), [](const VocDet& a, const VocDet& b) { return a.score > b.score; });
      std::vector<std::vector<char>> used(images.size());
      std::vector<double> vs;
      std::vector<int> vtp;
      for (const VocDet& v : voc) {
        const ImageEval& im = images[v.image];
        auto& u = used[v.image];
        if (u.empty()) u.assign(im.gt.size(), 0);
        double best = -1;
        int64_t m = -1;
        for (int64_t g = 0; g < static_cast<int64_t>(im.gt.size()); ++g) {
          if (im.gt[g].label != c) continue;
          const double o = eval_iou(im.dets[v.det], im.gt[g]);
          if (o > best) {
            best = o;
            m = g;
          }
        }
        int is_tp = 0;
        if (m >= 0 && best > cfg.voc_iou && !u[m]) {
          u[m] = 1;
          is_tp = 1;
        }
        vs.push_back(v.score);
        vtp.push_back(is_tp);
      }
      ce.ap_voc = metrics::ap_all_points(metrics::pr_from_ranked(vs, vtp, ce.num_gt));
    }
    r.num_dets += ce.num_dets;
    r.classes.push_back(std::move(ce));
  }

  for (int t = 0; t < T; ++t) {
    std::vector<double> v;
    for (const auto& ce : r.classes) v.push_back(ce.ap[t]);
    r.map.push_back(nan_mean(v));
  }
  r.map50 = r.map[r.threshold_index_50];
  std::vector<double> v;
  for (const auto& ce : r.classes) v.push_back(ce.ap_voc);
  r.map_voc50 = nan_mean(v);
  return r;
}

io::Json det_eval_json(const DetEvalResult& r) {
  io::Json o = io::Json::object();
  o["protocol"] = "COCO bbox, 101-point interpolation, area all, maxDets per image and class; normal images kept";
  o["iou_thresholds"] = r.iou_thresholds;
  io::Json& map = o["map"] = io::Json::object();
  for (size_t t = 0; t < r.map.size(); ++t) map[thr_key(r.iou_thresholds[t])] = r.map[t];
  o["map50"] = r.map50;
  o["map_voc50"] = r.map_voc50;
  io::Json& classes = o["classes"] = io::Json::array();
  for (const ClassEval& ce : r.classes) {
    io::Json ap = io::Json::object();
    for (size_t t = 0; t < ce.ap.size(); ++t) ap[thr_key(r.iou_thresholds[t])] = ce.ap[t];
    classes.push_back({{"name", ce.name}, {"num_gt", ce.num_gt}, {"num_dets", ce.num_dets}, {"ap", std::move(ap)},
                       {"ap50", ce.ap.empty() ? kNaN : ce.ap[r.threshold_index_50]}, {"ap_voc50", ce.ap_voc}});
  }
  o["num_images"] = r.num_images;
  o["num_normal_images"] = r.num_normal_images;
  o["num_gt"] = r.num_gt;
  o["num_dets"] = r.num_dets;
  return o;
}

std::string det_eval_table(const DetEvalResult& r) {
  std::ostringstream o;
  char buf[64];
  size_t w = 10;
  for (const auto& c : r.classes) w = std::max(w, c.name.size());
  auto cell = [&](double v) {
    if (std::isnan(v)) std::snprintf(buf, sizeof buf, "%7s", "-");
    else std::snprintf(buf, sizeof buf, "%7.2f", 100.0 * v);
    return std::string(buf);
  };
  o << std::string(w, ' ') << "  " << "   #gt";
  for (double t : r.iou_thresholds) {
    char name[32];
    std::snprintf(name, sizeof name, "AP%.0f", 100 * t);
    std::snprintf(buf, sizeof buf, "%7s", name);
    o << buf;
  }
  o << "  VOC50\n";
  for (const auto& c : r.classes) {
    o << c.name << std::string(w - c.name.size(), ' ') << "  ";
    std::snprintf(buf, sizeof buf, "%6lld", static_cast<long long>(c.num_gt));
    o << buf;
    for (double a : c.ap) o << cell(a);
    o << cell(c.ap_voc) << "\n";
  }
  o << "mAP" << std::string(w - 3, ' ') << "  ";
  std::snprintf(buf, sizeof buf, "%6lld", static_cast<long long>(r.num_gt));
  o << buf;
  for (double a : r.map) o << cell(a);
  o << cell(r.map_voc50) << "\n";
  return o.str();
}

std::vector<plot::Series> pr_plot_series(const DetEvalResult& r) {
  std::vector<plot::Series> out;
  int k = 0;
  for (const auto& c : r.classes) {
    if (c.num_gt == 0) continue;
    plot::Series s;
    char buf[32];
    std::snprintf(buf, sizeof buf, " (AP50 %.1f)", 100.0 * c.ap[r.threshold_index_50]);
    s.label = c.name + buf;
    s.color = plot::palette(k++);
    // The interpolated precision envelope as a step function: the very curve the AP averages.
    metrics::StepCurve steps = metrics::precision_envelope_steps(c.pr_at_50);
    s.x = std::move(steps.recall);
    s.y = std::move(steps.precision);
    out.push_back(std::move(s));
  }
  return out;
}

void write_pr_curves_png(const DetEvalResult& r, const std::string& png_path, const std::string& title) {
  plot::LinePlot p;
  p.title = title;
  p.xlabel = "Recall";
  p.ylabel = "Interpolated precision";
  p.width = 720;
  p.height = 540;
  p.series = pr_plot_series(r);
  plot::render(p).save_png(png_path);
}

}  // namespace sx::eval
