#include "models/detection_common.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "kernels/box_ops/box_ops.h"
#include "kernels/nms/nms.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"

namespace sx::models {

// ---- options <-> metadata -------------------------------------------------------------------------
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
  return o;
}

// ---- anchors ----------------------------------------------------------------------------------------
int64_t AnchorGenerator::num_anchors_per_location(int64_t level) const {
  SX_CHECK(level >= 0 && level < num_levels(), "AnchorGenerator: level ", level, " out of range [0, ",
           num_levels(), ")");
  const auto& r = aspect_ratios.size() == 1 ? aspect_ratios[0] : aspect_ratios[level];
  return static_cast<int64_t>(sizes[level].size() * r.size());
}

Tensor AnchorGenerator::cell_anchors(int64_t level) const {
  SX_CHECK(aspect_ratios.size() == 1 || aspect_ratios.size() == sizes.size(), "AnchorGenerator: ",
           sizes.size(), " size tuples but ", aspect_ratios.size(), " aspect-ratio tuples");
  SX_CHECK(level >= 0 && level < num_levels(), "AnchorGenerator: level ", level, " out of range");
  const auto& ratios = aspect_ratios.size() == 1 ? aspect_ratios[0] : aspect_ratios[level];
  const auto& scales = sizes[level];
  std::vector<double> v;
  for (double r : ratios) {
    SX_CHECK(r > 0, "AnchorGenerator: aspect ratio must be > 0, got ", r);
    float h_ratio = std::sqrt(static_cast<float>(r));
    float w_ratio = 1.0f / h_ratio;
    for (double s : scales) {
      SX_CHECK(s > 0, "AnchorGenerator: anchor size must be > 0, got ", s);
      float ws = w_ratio * static_cast<float>(s);
      float hs = h_ratio * static_cast<float>(s);
      v.push_back(std::nearbyint(-ws / 2.0f));
      v.push_back(std::nearbyint(-hs / 2.0f));
      v.push_back(std::nearbyint(ws / 2.0f));
      v.push_back(std::nearbyint(hs / 2.0f));
    }
  }
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size() / 4), 4}, DType::Float32);
}

std::vector<Tensor> AnchorGenerator::grid_anchors(const std::vector<std::pair<int64_t, int64_t>>& grid_sizes,
                                                  std::pair<int64_t, int64_t> image_size,
                                                  Device device) const {
  SX_CHECK(static_cast<int64_t>(grid_sizes.size()) == num_levels(), "AnchorGenerator: ", grid_sizes.size(),
           " feature maps but anchors for ", num_levels(), " levels");
  std::vector<Tensor> out;
  for (int64_t l = 0; l < num_levels(); ++l) {
    auto [gh, gw] = grid_sizes[l];
    SX_CHECK(gh > 0 && gw > 0, "AnchorGenerator: empty feature map ", gh, "x", gw, " at level ", l);
    const int64_t sh = image_size.first / gh, sw = image_size.second / gw;
    Tensor cell = cell_anchors(l);
    const int64_t A = cell.size(0);
    const float* c = cell.data<float>();
    Tensor t = Tensor::empty({gh * gw * A, 4}, DType::Float32);
    float* o = t.data<float>();
    for (int64_t y = 0; y < gh; ++y)
      for (int64_t x = 0; x < gw; ++x)
        for (int64_t a = 0; a < A; ++a) {
          float sx = static_cast<float>(x * sw), sy = static_cast<float>(y * sh);
          float* p = o + ((y * gw + x) * A + a) * 4;
          p[0] = sx + c[a * 4 + 0];
          p[1] = sy + c[a * 4 + 1];
          p[2] = sx + c[a * 4 + 2];
          p[3] = sy + c[a * 4 + 3];
        }
    out.push_back(device.is_cuda() ? t.to(device) : t);
  }
  return out;
}

AnchorGenerator retinanet_anchors(double base_size, int64_t num_levels, std::vector<double> ratios) {
  AnchorGenerator g;
  for (int64_t l = 0; l < num_levels; ++l) {
    double x = base_size * std::pow(2.0, static_cast<double>(l));
    g.sizes.push_back({x, std::floor(x * std::pow(2.0, 1.0 / 3.0)), std::floor(x * std::pow(2.0, 2.0 / 3.0))});
  }
  g.aspect_ratios = {ratios};
  return g;
}

AnchorGenerator retinanet_default_anchors() { return retinanet_anchors(32, 5, {0.5, 1.0, 2.0}); }

// ---- matcher -----------------------------------------------------------------------------------------
Tensor match_boxes(const Tensor& iou, double high, double low, bool allow_low_quality_matches) {
  SX_CHECK(iou.dim() == 2, "match_boxes: IoU matrix must be [G, A], got ", shape_str(iou.shape()));
  SX_CHECK(low <= high, "match_boxes: low threshold ", low, " > high threshold ", high);
  const int64_t A = iou.size(1);
  if (iou.size(0) == 0 || A == 0)
    return Tensor::full({A}, static_cast<double>(kBelowLowThreshold), DType::Int64, iou.device());
  NoGradGuard ng;
  // Thresholds in the IoU dtype, as torch compares a float tensor with a Python float (and as
  // kernels/matcher does): an IoU of exactly float(0.7) is foreground at 0.7 (issue 15.6; in double
  // it was 0.69999999 < 0.7).
  if (iou.dtype() == DType::Float32) {
    high = static_cast<double>(static_cast<float>(high));
    low = static_cast<double>(static_cast<float>(low));
  }
  auto [vals, matches] = max(iou, 0);  // best gt per anchor (first on ties)
  Tensor all_matches = matches;
  Tensor below = lt(vals, low);
  Tensor between = logical_and(ge(vals, low), lt(vals, high));
  Tensor m1 = Tensor::full({A}, static_cast<double>(kBelowLowThreshold), DType::Int64, iou.device());
  Tensor m2 = Tensor::full({A}, static_cast<double>(kBetweenThresholds), DType::Int64, iou.device());
  Tensor result = where(below, m1, where(between, m2, matches));
  if (allow_low_quality_matches) {
    auto [best_for_gt, ignore] = max(iou, 1);                    // [G]
    Tensor is_best = eq(iou, best_for_gt.unsqueeze(1));         // [G, A]
    Tensor any_best = gt(sum(is_best.to(DType::Int64), {0}), 0.0);  // [A]
    result = where(any_best, all_matches, result);
  }
  return result;
}

// ---- batching and small helpers ----------------------------------------------------------------------
ImageList batch_images(const std::vector<Tensor>& images, int64_t size_divisible) {
  SX_CHECK(!images.empty(), "batch_images: no images");
  SX_CHECK(size_divisible >= 1, "batch_images: size_divisible must be >= 1, got ", size_divisible);
  const Tensor& f = images[0];
  SX_CHECK(f.dim() == 3, "batch_images: images must be [C, H, W], got ", shape_str(f.shape()));
  int64_t H = 0, W = 0;
  ImageList out;
  for (const auto& im : images) {
    SX_CHECK(im.dim() == 3 && im.size(0) == f.size(0), "batch_images: images must be [", f.size(0),
             ", H, W], got ", shape_str(im.shape()));
    SX_CHECK(im.dtype() == f.dtype() && im.device() == f.device(), "batch_images: mixed dtypes or devices");
    H = std::max(H, im.size(1));
    W = std::max(W, im.size(2));
    out.image_sizes.push_back({im.size(1), im.size(2)});
  }
  H = (H + size_divisible - 1) / size_divisible * size_divisible;
  W = (W + size_divisible - 1) / size_divisible * size_divisible;
  out.tensor = Tensor::zeros({static_cast<int64_t>(images.size()), f.size(0), H, W}, f.dtype(), f.device());
  NoGradGuard ng;
  for (size_t i = 0; i < images.size(); ++i) {
    Tensor dst = out.tensor.select(0, static_cast<int64_t>(i)).narrow(1, 0, images[i].size(1)).narrow(2, 0, images[i].size(2));
    dst.copy_(images[i]);
  }
  return out;
}

ImageList image_list_from_batch(const Tensor& batch) {
  SX_CHECK(batch.dim() == 4, "image_list_from_batch: expected [B, C, H, W], got ", shape_str(batch.shape()));
  ImageList out;
  out.tensor = batch;
  for (int64_t i = 0; i < batch.size(0); ++i) out.image_sizes.push_back({batch.size(2), batch.size(3)});
  return out;
}

Tensor normalize_images(const Tensor& x, const std::vector<double>& mean, const std::vector<double>& stdv) {
  SX_CHECK(x.dim() == 4, "normalize_images: expected [B, C, H, W], got ", shape_str(x.shape()));
  const int64_t C = x.size(1);
  auto expand_to = [&](const std::vector<double>& v, const char* what) {
    if (static_cast<int64_t>(v.size()) == C) return v;
    if (v.size() == 1) return std::vector<double>(C, v[0]);
    if (C == 1 && !v.empty()) {  // grey input with RGB statistics: their average
      double s = 0;
      for (double e : v) s += e;
      return std::vector<double>{s / static_cast<double>(v.size())};
    }
    SX_THROW(ValueError, "normalize_images: ", what, " has ", v.size(), " values for ", C, " channels");
  };
  auto m = expand_to(mean, "mean");
  auto s = expand_to(stdv, "std");
  for (double e : s) SX_CHECK(e > 0, "normalize_images: std must be > 0, got ", e);
  Tensor mt = Tensor::from_vector(m, {1, C, 1, 1}, x.dtype()).to(x.device());
  Tensor st = Tensor::from_vector(s, {1, C, 1, 1}, x.dtype()).to(x.device());
  return div(sub(x, mt), st);
}

std::vector<ImageTargets> targets_to(const std::vector<ImageTargets>& t, Device d) {
  std::vector<ImageTargets> out;
  out.reserve(t.size());
  for (const auto& e : t) out.push_back({e.boxes.to(d), e.labels.to(d)});
  return out;
}

Detections detections_to(const Detections& d, Device dev) {
  return {d.boxes.to(dev), d.scores.to(dev), d.labels.to(dev)};
}

Detections empty_detections(Device d) {
  return {Tensor::empty({0, 4}, DType::Float32, d), Tensor::empty({0}, DType::Float32, d),
          Tensor::empty({0}, DType::Int64, d)};
}

Tensor resize_boxes(const Tensor& boxes, std::pair<int64_t, int64_t> from, std::pair<int64_t, int64_t> to) {
  SX_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "resize_boxes: boxes must be [N, 4], got ",
           shape_str(boxes.shape()));
  SX_CHECK(from.first > 0 && from.second > 0, "resize_boxes: empty source size");
  // torchvision: ratio = float32(original) / float32(resized), computed as tensors.
  float rh = static_cast<float>(to.first) / static_cast<float>(from.first);
  float rw = static_cast<float>(to.second) / static_cast<float>(from.second);
  Tensor r = Tensor::from_vector({rw, rh, rw, rh}, {1, 4}, boxes.dtype()).to(boxes.device());
  return mul(boxes, r);
}

// ---- NMS -------------------------------------------------------------------------------------------
Tensor batched_nms_keep(const Tensor& boxes, const Tensor& scores, const Tensor& labels, double iou_thresh,
                        int64_t max_det) {
  SX_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "batched_nms_keep: boxes must be [N, 4], got ",
           shape_str(boxes.shape()));
  SX_CHECK(scores.dim() == 1 && scores.size(0) == boxes.size(0) && labels.dim() == 1 &&
               labels.size(0) == boxes.size(0),
           "batched_nms_keep: boxes ", shape_str(boxes.shape()), ", scores ", shape_str(scores.shape()),
           " and labels ", shape_str(labels.shape()), " disagree");
  if (boxes.size(0) == 0) return Tensor::empty({0}, DType::Int64, boxes.device());
  Tensor keep = kernels::batched_nms(boxes, scores, labels.to(DType::Int64), iou_thresh);
  if (max_det >= 0 && keep.size(0) > max_det) keep = keep.narrow(0, 0, max_det);
  return keep;
}

// ---- backbone and checkpoints ----------------------------------------------------------------------
std::shared_ptr<ResNet> make_detection_backbone(const DetectorOptions& o) {
  ResNetConfig cfg;
  cfg.in_channels = o.in_channels;
  cfg.num_classes = 0;
  cfg.norm = o.norm;
  cfg.trainable_layers = o.trainable_layers;
  cfg.seed = o.seed;
  return make_resnet(o.arch, cfg);
}

nn::StateDict upgrade_torchvision_detection_keys(const nn::StateDict& sd, int64_t in_channels) {
  nn::StateDict out;
  for (const auto& [name, t] : sd) {
    std::string k = name;
    for (const char* blk : {".fpn.inner_blocks.", ".fpn.layer_blocks."}) {
      auto p = k.find(blk);
      if (p == std::string::npos) continue;
      size_t q = p + std::string(blk).size();
      size_t dot = k.find('.', q);
      if (dot == std::string::npos) continue;
      std::string rest = k.substr(dot + 1);
      if (rest == "weight" || rest == "bias") k = k.substr(0, dot) + ".0." + rest;
    }
    for (const char* head : {"head.classification_head.conv.", "head.regression_head.conv."}) {
      if (k.rfind(head, 0) != 0) continue;
      size_t q = std::string(head).size();
      size_t dot = k.find('.', q);
      if (dot == std::string::npos) continue;
      std::string idx = k.substr(q, dot - q), rest = k.substr(dot + 1);
      if ((rest == "weight" || rest == "bias") && !idx.empty() &&
          std::all_of(idx.begin(), idx.end(), ::isdigit)) {
        int i = std::stoi(idx);
        if (i % 2 == 0) k = std::string(head) + std::to_string(i / 2) + ".0." + rest;
      }
    }
    out.set(k, t);
  }
  // conv1 of the body for grey input.
  const std::string c1 = "backbone.body.conv1.weight";
  if (out.contains(c1) && in_channels != out.at(c1).size(1)) {
    nn::StateDict one;
    one.set("conv1.weight", out.at(c1));
    auto adapted = adapt_resnet_state_dict(one, in_channels);
    out.set(c1, adapted.at("conv1.weight"));
  }
  return out;
}

}  // namespace sx::models
