// DetectorOptions <-> checkpoint metadata (string keys "det.*"), with checked number parsing.
#include "models/detector_options.h"

#include <sstream>

namespace sx::models {

namespace {
std::string join_doubles(const std::vector<double>& v) {
  std::ostringstream os;
  os.precision(17);
  for (size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
  return os.str();
}
std::vector<double> split_doubles(const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    try {
      out.push_back(std::stod(item));
    } catch (const std::exception&) {
      SX_THROW(ValueError, "detector metadata: '", item, "' is not a number (in '", s, "')");
    }
  }
  return out;
}
std::string join_levels(const std::vector<std::vector<double>>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ";" : "") + join_doubles(v[i]);
  return out;
}
std::vector<std::vector<double>> split_levels(const std::string& s) {
  std::vector<std::vector<double>> out;
  if (s.empty()) return out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ';')) out.push_back(split_doubles(item));
  return out;
}
int64_t to_int(const std::string& k, const std::string& v) {
  try {
    size_t pos = 0;
    long long r = std::stoll(v, &pos);
    SX_CHECK(pos == v.size(), "trailing characters");
    return r;
  } catch (const std::exception&) {
    SX_THROW(ValueError, "detector metadata: ", k, " = '", v, "' is not an integer");
  }
}
double to_double(const std::string& k, const std::string& v) {
  try {
    return std::stod(v);
  } catch (const std::exception&) {
    SX_THROW(ValueError, "detector metadata: ", k, " = '", v, "' is not a number");
  }
}
}  // namespace

std::map<std::string, std::string> detector_options_to_metadata(const DetectorOptions& o) {
  std::map<std::string, std::string> m;
  m["det.arch"] = o.arch;
  m["det.in_channels"] = std::to_string(o.in_channels);
  m["det.num_classes"] = std::to_string(o.num_classes);
  m["det.norm"] = o.norm == NormKind::FrozenBatchNorm ? "frozen" : "batchnorm";
  m["det.trainable_layers"] = std::to_string(o.trainable_layers);
  m["det.fpn_channels"] = std::to_string(o.fpn_channels);
  m["det.anchor_sizes"] = join_levels(o.anchor_sizes);
  m["det.aspect_ratios"] = join_levels(o.aspect_ratios);
  m["det.image_mean"] = join_doubles(o.image_mean);
  m["det.image_std"] = join_doubles(o.image_std);
  m["det.score_thresh"] = join_doubles({o.score_thresh});
  m["det.nms_thresh"] = join_doubles({o.nms_thresh});
  m["det.detections_per_img"] = std::to_string(o.detections_per_img);
  m["det.seed"] = std::to_string(o.seed);
  m["det.num_proposals"] = std::to_string(o.num_proposals);
  m["det.num_heads"] = std::to_string(o.num_heads);
  return m;
}

DetectorOptions detector_options_from_metadata(const std::map<std::string, std::string>& m,
                                               DetectorOptions o) {
  auto get = [&](const char* k, auto fn) {
    auto it = m.find(k);
    if (it != m.end()) fn(it->first, it->second);
  };
  get("det.arch", [&](auto&, auto& v) { o.arch = v; });
  get("det.in_channels", [&](auto& k, auto& v) { o.in_channels = to_int(k, v); });
  get("det.num_classes", [&](auto& k, auto& v) { o.num_classes = to_int(k, v); });
  get("det.norm", [&](auto& k, auto& v) {
    if (v == "frozen") o.norm = NormKind::FrozenBatchNorm;
    else if (v == "batchnorm") o.norm = NormKind::BatchNorm;
    else SX_THROW(ValueError, "detector metadata: ", k, " = '", v, "' (expected frozen or batchnorm)");
  });
  get("det.trainable_layers", [&](auto& k, auto& v) { o.trainable_layers = static_cast<int>(to_int(k, v)); });
  get("det.fpn_channels", [&](auto& k, auto& v) { o.fpn_channels = to_int(k, v); });
  get("det.anchor_sizes", [&](auto&, auto& v) { o.anchor_sizes = split_levels(v); });
  get("det.aspect_ratios", [&](auto&, auto& v) { o.aspect_ratios = split_levels(v); });
  get("det.image_mean", [&](auto&, auto& v) { o.image_mean = split_doubles(v); });
  get("det.image_std", [&](auto&, auto& v) { o.image_std = split_doubles(v); });
  get("det.score_thresh", [&](auto& k, auto& v) { o.score_thresh = to_double(k, v); });
  get("det.nms_thresh", [&](auto& k, auto& v) { o.nms_thresh = to_double(k, v); });
  get("det.detections_per_img", [&](auto& k, auto& v) { o.detections_per_img = to_int(k, v); });
  get("det.seed", [&](auto& k, auto& v) { o.seed = static_cast<uint64_t>(to_int(k, v)); });
  get("det.num_proposals", [&](auto& k, auto& v) { o.num_proposals = to_int(k, v); });
  get("det.num_heads", [&](auto& k, auto& v) { o.num_heads = to_int(k, v); });
  return o;
}

}  // namespace sx::models
