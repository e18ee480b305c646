// Dataset statistics for `spinexr stats`: see dataset_stats.h.
#include "train/app/dataset_stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "train/eval/metrics.h"
#include "train/eval/text.h"

namespace sx::train {

const double kStatsPercentiles[5] = {5, 25, 50, 75, 95};

namespace {

std::vector<double> percentiles(const std::vector<double>& v) {
  std::vector<double> out;
  if (v.empty()) return out;
  for (double q : kStatsPercentiles) out.push_back(metrics::percentile(v, q));
  return out;
}

SplitStats split_stats(const SplitGeometry& g, size_t num_classes, const CoverageSettings& settings) {
  SplitStats s;
  s.split = g.split;
  s.size_source = g.size_source;
  s.unknown_size = g.unknown_size;
  s.images = static_cast<int64_t>(g.images.size());
  s.class_boxes.assign(num_classes, 0);
  s.class_images.assign(num_classes, 0);
  std::vector<double> ow, oh, rw, rh;
  bool first = true;
  for (const ImageGeometry& im : g.images) {
    s.image_width_min = first ? im.width : std::min(s.image_width_min, im.width);
    s.image_width_max = std::max(s.image_width_max, im.width);
    s.image_height_min = first ? im.height : std::min(s.image_height_min, im.height);
    s.image_height_max = std::max(s.image_height_max, im.height);
    first = false;
    if (im.boxes.empty()) {
      ++s.normal;
      continue;
    }
    ++s.abnormal;
    const int64_t n = static_cast<int64_t>(im.boxes.size());
    s.boxes += n;
    s.boxes_per_abnormal_max = std::max(s.boxes_per_abnormal_max, n);
    std::vector<bool> seen(num_classes, false);
    for (const io::Box& b : im.boxes) {
      SX_CHECK(b.label >= 0 && static_cast<size_t>(b.label) < num_classes, "stats: class id ", b.label,
               " outside the ", num_classes, " classes");
      ++s.class_boxes[b.label];
      if (!seen[b.label]) ++s.class_images[b.label], seen[b.label] = true;
      ow.push_back(b.x2 - b.x1);
      oh.push_back(b.y2 - b.y1);
    }
    for (const auto& r : resized_boxes(im, settings.size, nullptr, settings.min_size)) {
      rw.push_back(r[2] - r[0]);
      rh.push_back(r[3] - r[1]);
    }
  }
  s.boxes_per_abnormal_mean = s.abnormal ? static_cast<double>(s.boxes) / s.abnormal : 0.0;
  s.original = {percentiles(ow), percentiles(oh)};
  s.resized = {percentiles(rw), percentiles(rh)};
  s.coverage = anchor_coverage(g.images, settings);
  return s;
}

std::string pct(int64_t part, int64_t whole) {
  return whole ? strf("%.1f%%", 100.0 * part / whole) : std::string("-");
}

std::string percentile_row(const char* what, const std::vector<double>& v) {
  std::string r = strf("  %-28s", what);
  if (v.empty()) return r + " -\n";
  for (double x : v) r += strf(" %7.1f", x);
  return r + "\n";
}

io::Json percentile_json(const std::vector<double>& v) {
  io::Json j = io::Json::object();
  for (size_t k = 0; k < v.size(); ++k) j["p" + std::to_string(static_cast<int>(kStatsPercentiles[k]))] = v[k];
  return j;
}

io::Json coverage_json(const models::AnchorCoverage& c, const models::AnchorLayout& layout) {
  io::Json j;
  j["boxes"] = c.boxes;
  j["iou50"] = c.at50;
  j["iou40"] = c.at40;
  j["median_best_iou"] = c.median_best_iou;
  io::Json levels = io::Json::array();
  for (int64_t l = 0; l < layout.num_levels(); ++l) {
    io::Json e;
    e["level"] = "P" + std::to_string(layout.first_level + l);
    e["stride"] = 1 << (layout.first_level + l);
    e["anchor_sizes"] = layout.anchors.sizes[l];
    e["iou50"] = c.level_at50[l];
    e["iou40"] = c.level_at40[l];
    e["best_here"] = c.best_level_share[l];
    levels.push_back(e);
  }
  j["levels"] = levels;
  return j;
}

}  // namespace

DatasetStats dataset_stats(const std::vector<SplitGeometry>& splits, const std::vector<std::string>& class_names,
                           const CoverageSettings& settings, double target) {
  DatasetStats d;
  d.settings = settings;
  d.class_names = class_names;
  d.target = target;
  const SplitGeometry* basis = nullptr;
  for (const SplitGeometry& g : splits) {
    d.splits.push_back(split_stats(g, class_names.size(), settings));
    if (!basis || g.split == "train") basis = &g;
  }
  if (basis) {
    d.suggestion_split = basis->split;
    std::vector<int> sizes = default_suggestion_sizes();
    sizes.push_back(settings.size);  // a better --anchor-base alone may do at the given size
    d.suggestion = suggest_coverage_settings(basis->images, settings.model, target, sizes);
  }
  return d;
}

std::string format_dataset_stats(const DatasetStats& d) {
  std::string out;
  for (const SplitStats& s : d.splits) {
    out += strf("%s: %lld images (%s), %lld normal (%s), %lld abnormal (%s), %lld boxes, %.2f boxes per abnormal "
                      "image (max %lld)\n",
                      s.split.c_str(), static_cast<long long>(s.images), s.size_source.c_str(),
                      static_cast<long long>(s.normal), pct(s.normal, s.images).c_str(),
                      static_cast<long long>(s.abnormal), pct(s.abnormal, s.images).c_str(),
                      static_cast<long long>(s.boxes), s.boxes_per_abnormal_mean,
                      static_cast<long long>(s.boxes_per_abnormal_max));
    if (s.unknown_size > 0)
      out += strf("  (%lld images of unknown size left out)\n", static_cast<long long>(s.unknown_size));
    if (s.images > 0)
      out += strf("  image sizes (w x h): %d-%d x %d-%d px\n", s.image_width_min, s.image_width_max,
                        s.image_height_min, s.image_height_max);
    out += strf("  %-24s %8s %8s\n", "class", "boxes", "images");
    for (size_t c = 0; c < d.class_names.size(); ++c)
      out += strf("  %-24s %8lld %8lld\n", d.class_names[c].c_str(), static_cast<long long>(s.class_boxes[c]),
                        static_cast<long long>(s.class_images[c]));
    out += strf("  %-28s %7s %7s %7s %7s %7s\n", "box size percentiles (px)", "5", "25", "50", "75", "95");
    out += percentile_row("width, original", s.original.width);
    out += percentile_row("height, original", s.original.height);
    const std::string rw = "width, resized to " + std::to_string(d.settings.size);
    const std::string rh = "height, resized to " + std::to_string(d.settings.size);
    out += percentile_row(rw.c_str(), s.resized.width);
    out += percentile_row(rh.c_str(), s.resized.height);
    out += "  " + format_coverage(s.coverage, d.settings);
  }
  if (!d.suggestion_split.empty()) {
    const CoverageSuggestion& g = d.suggestion;
    const std::string base = strf("%g", g.settings.anchor_base);
    if (g.found)
      out += strf("suggested (%s split, %s): --size %d --anchor-base %s, the smallest size with >= %.0f%% of the "
                        "boxes at IoU >= 0.5 (%.1f%%)\n",
                        d.suggestion_split.c_str(), d.settings.model.c_str(), g.settings.size, base.c_str(),
                        100.0 * d.target, 100.0 * g.at50);
    else
      out += strf("suggested (%s split, %s): no size up to %d reaches %.0f%% at IoU >= 0.5; the best is --size %d "
                        "--anchor-base %s (%.1f%%)\n",
                        d.suggestion_split.c_str(), d.settings.model.c_str(), default_suggestion_sizes().back(),
                        100.0 * d.target, g.settings.size, base.c_str(), 100.0 * g.at50);
  }
  return out;
}

io::Json dataset_stats_json(const DatasetStats& d) {
  const models::AnchorLayout layout = models::detector_anchor_layout(d.settings.model, d.settings.anchor_base);
  io::Json j;
  j["settings"] = {{"model", d.settings.model},
                   {"size", d.settings.size},
                   {"anchor_base", d.settings.anchor_base > 0 ? d.settings.anchor_base : 32.0}};
  j["classes"] = d.class_names;
  io::Json splits = io::Json::object();
  for (const SplitStats& s : d.splits) {
    io::Json e;
    e["size_source"] = s.size_source;
    e["images"] = s.images;
    e["normal"] = s.normal;
    e["abnormal"] = s.abnormal;
    e["boxes"] = s.boxes;
    e["unknown_size"] = s.unknown_size;
    e["boxes_per_abnormal_image"] = {{"mean", s.boxes_per_abnormal_mean}, {"max", s.boxes_per_abnormal_max}};
    e["image_width"] = {{"min", s.image_width_min}, {"max", s.image_width_max}};
    e["image_height"] = {{"min", s.image_height_min}, {"max", s.image_height_max}};
    io::Json classes = io::Json::object();
    for (size_t c = 0; c < d.class_names.size(); ++c)
      classes[d.class_names[c]] = {{"boxes", s.class_boxes[c]}, {"images", s.class_images[c]}};
    e["classes"] = classes;
    e["box_width"] = percentile_json(s.original.width);
    e["box_height"] = percentile_json(s.original.height);
    e["box_width_resized"] = percentile_json(s.resized.width);
    e["box_height_resized"] = percentile_json(s.resized.height);
    e["anchor_coverage"] = coverage_json(s.coverage, layout);
    splits[s.split] = e;
  }
  j["splits"] = splits;
  if (!d.suggestion_split.empty()) {
    j["suggestion"] = {{"split", d.suggestion_split},
                       {"target", d.target},
                       {"found", d.suggestion.found},
                       {"size", d.suggestion.settings.size},
                       {"anchor_base", d.suggestion.settings.anchor_base},
                       {"iou50", d.suggestion.at50}};
  }
  return j;
}

plot::Canvas box_size_histogram(const std::vector<SplitGeometry>& splits, const CoverageSettings& settings) {
  // Quarter-octave bins from 1 px to 2048 px: bin k covers [2^(k/4), 2^((k+1)/4)).
  constexpr int kBins = 44;
  std::vector<double> w(kBins, 0), h(kBins, 0);
  auto bin = [](double v) { return std::clamp(static_cast<int>(std::floor(4 * std::log2(std::max(v, 1.0)))), 0, kBins - 1); };
  for (const SplitGeometry& g : splits)
    for (const ImageGeometry& im : g.images)
      for (const auto& r : resized_boxes(im, settings.size, nullptr, settings.min_size)) {
        w[bin(r[2] - r[0])] += 1;
        h[bin(r[3] - r[1])] += 1;
      }
  plot::LinePlot p;
  p.title = "Box sizes at --size " + std::to_string(settings.size) + " (quarter-octave bins)";
  p.xlabel = "log2(box side in px)";
  p.ylabel = "boxes";
  p.xmin = 0;
  p.xmax = kBins / 4.0;
  p.ymin = 0;
  p.ymax = std::max(1.0, std::max(*std::max_element(w.begin(), w.end()), *std::max_element(h.begin(), h.end()))) * 1.1;
  p.legend_top_left = false;
  auto steps = [&](const std::vector<double>& c, const std::string& label, int colour) {
    plot::Series s;
    s.label = label;
    s.color = plot::palette(colour);
    for (int k = 0; k < kBins; ++k) {
      s.x.insert(s.x.end(), {k / 4.0, (k + 1) / 4.0});
      s.y.insert(s.y.end(), {c[k], c[k]});
    }
    return s;
  };
  p.series.push_back(steps(w, "width", 0));
  p.series.push_back(steps(h, "height", 1));
  // The anchor sizes of the settings' smallest and largest level, as vertical dashed lines.
  const models::AnchorLayout layout = models::detector_anchor_layout(settings.model, settings.anchor_base);
  for (double a : {layout.anchors.sizes.front().front(), layout.anchors.sizes.back().back()}) {
    plot::Series s;
    s.label = strf("anchor %g px", a);
    s.color = plot::kGrey;
    s.dashed = true;
    s.x = {std::log2(a), std::log2(a)};
    s.y = {0, p.ymax};
    p.series.push_back(s);
  }
  return plot::render(p);
}

}  // namespace sx::train
