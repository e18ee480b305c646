// Faster R-CNN (models/faster_rcnn.h): torchvision checkpoint parity (fixture made by
// scripts/fixtures/models_frcnn.py), state-dict names, the sampler, training behaviour (loss falls,
// a single image is learnt), empty inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include <cstring>
#include <fstream>
#include <sstream>

#include "models/faster_rcnn.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"

namespace sx::models {
namespace {

std::string data(const std::string& f) { return std::string(SX_TEST_DATA_DIR) + "/models/" + f; }

// The fixture's configuration: ResNet-18, C2..C4, FPN 32 channels, box head 64, 7 classes.
FasterRCNNConfig fixture_config() {
  FasterRCNNConfig c;
  c.base.arch = "resnet18";
  c.base.in_channels = 3;
  c.base.num_classes = 7;
  c.base.norm = NormKind::FrozenBatchNorm;
  c.base.fpn_channels = 32;
  c.base.anchor_sizes = {{16}, {32}, {64}, {128}};
  c.base.aspect_ratios = {{0.5, 1.0, 2.0}};
  c.returned_layers = {1, 2, 3};
  c.roi.representation_size = 64;
  return c;
}

// A minimal safetensors reader for the fixtures (F16, F32, F64, I64). The models tests link
// sx_models only, not sx_io (where io/safetensors.h, the validating reader, lives); the files are
// our own, written by scripts/fixtures/models_frcnn.py.
float half_to_float(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  float v;
  if (exp == 0) v = std::ldexp(static_cast<float>(man), -24);
  else if (exp == 31) v = man ? NAN : INFINITY;
  else v = std::ldexp(static_cast<float>(man | 0x400), static_cast<int>(exp) - 25);
  return sign ? -v : v;
}

std::vector<std::pair<std::string, Tensor>> read_safetensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing fixture " << path;
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  uint64_t hl = 0;
  std::memcpy(&hl, bytes.data(), 8);
  const std::string header = bytes.substr(8, hl);
  const char* body = bytes.data() + 8 + hl;
  std::vector<std::pair<std::string, Tensor>> out;
  size_t pos = 1;  // after '{'
  while (true) {
    size_t q0 = header.find('"', pos);
    if (q0 == std::string::npos) break;
    size_t q1 = header.find('"', q0 + 1);
    std::string name = header.substr(q0 + 1, q1 - q0 - 1);
    size_t close = header.find('}', q1);
    std::string obj = header.substr(q1, close - q1);
    pos = close + 1;
    auto field = [&](const std::string& key) {
      size_t k = obj.find("\"" + key + "\"");
      size_t a = obj.find_first_of("[\"", obj.find(':', k) + 1);
      size_t b = obj.find_first_of(a != std::string::npos && obj[a] == '[' ? "]" : "\"", a + 1);
      return obj.substr(a + 1, b - a - 1);
    };
    std::string dtype = field("dtype");
    Shape shape;
    std::vector<int64_t> offs;
    for (auto* dst : {&shape, &offs}) {
      std::string list = field(dst == &shape ? "shape" : "data_offsets");
      for (char& c : list)
        if (c == ',') c = ' ';
      std::istringstream in(list);
      int64_t v;
      while (in >> v) dst->push_back(v);
    }
    const char* p = body + offs[0];
    const int64_t n = shape_numel(shape);
    Tensor t;
    if (dtype == "F16") {
      std::vector<double> v(n);
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        v[i] = half_to_float(h);
      }
      t = Tensor::from_vector(v, shape, DType::Float32);
    } else {
      DType dt = dtype == "F32" ? DType::Float32 : dtype == "F64" ? DType::Float64 : DType::Int64;
      EXPECT_TRUE(dtype == "F32" || dtype == "F64" || dtype == "I64") << dtype;
      t = Tensor::from_blob_copy(p, shape, dt);
    }
    out.push_back({name, t});
  }
  return out;
}

std::map<std::string, Tensor> load_map(const std::string& path) {
  std::map<std::string, Tensor> m;
  for (auto& [k, v] : read_safetensors(path)) m[k] = v;
  return m;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return INFINITY;
  auto x = a.to_vector(), y = b.to_vector();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(x[i] - y[i]));
  return m;
}

std::shared_ptr<FasterRCNN> load_fixture_model() {
  auto model = make_faster_rcnn(fixture_config());
  nn::StateDict sd(read_safetensors(data("frcnn_weights.safetensors")));
  auto rep = model->load_state_dict(sd, /*strict=*/false);
  // torchvision's IntermediateLayerGetter drops the unused layer4; nothing else may differ.
  EXPECT_TRUE(rep.unexpected.empty()) << rep.str();
  EXPECT_TRUE(rep.mismatched.empty()) << rep.str();
  for (const auto& k : rep.missing) EXPECT_EQ(k.rfind("backbone.body.layer4.", 0), 0u) << k;
  EXPECT_GT(rep.loaded, 100);
  model->eval();
  return model;
}

TEST(FasterRCNN, StateDictNamesAreTorchvisions) {
  auto m = make_faster_rcnn(FasterRCNNConfig{});  // resnet50, torchvision defaults
  auto sd = m->state_dict();
  for (const char* k : {"backbone.body.conv1.weight", "backbone.body.layer4.2.bn3.running_var",
                        "backbone.fpn.inner_blocks.0.0.weight", "backbone.fpn.layer_blocks.3.0.bias",
                        "rpn.head.conv.0.0.weight", "rpn.head.conv.0.0.bias", "rpn.head.cls_logits.weight",
                        "rpn.head.bbox_pred.bias", "roi_heads.box_head.fc6.weight", "roi_heads.box_head.fc7.bias",
                        "roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.bbox_pred.bias"})
    EXPECT_TRUE(sd.contains(k)) << k;
  EXPECT_EQ(sd.at("rpn.head.cls_logits.weight").shape(), (Shape{3, 256, 1, 1}));
  EXPECT_EQ(sd.at("rpn.head.bbox_pred.weight").shape(), (Shape{12, 256, 1, 1}));
  EXPECT_EQ(sd.at("roi_heads.box_head.fc6.weight").shape(), (Shape{1024, 256 * 7 * 7}));
  EXPECT_EQ(sd.at("roi_heads.box_predictor.cls_score.weight").shape(), (Shape{8, 1024}));
  EXPECT_EQ(sd.at("roi_heads.box_predictor.bbox_pred.weight").shape(), (Shape{32, 1024}));
  // torchvision fasterrcnn_resnet50_fpn(num_classes=8): 41,436,151 state-dict values with
  // FrozenBatchNorm (weights + biases + running stats), the same as its state_dict() counts.
  int64_t n = 0;
  for (const auto& [k, v] : sd) n += v.numel();
  EXPECT_EQ(n, 41436151);
  EXPECT_EQ(m->model_name(), "faster_rcnn");
  EXPECT_EQ(m->options().detections_per_img, 100);
}

TEST(FasterRCNN, StateDictEqualsTorchvisionsKeyForKey) {
  // fasterrcnn_resnet50_fpn with FrozenBatchNorm and 8 classes, names and shapes in order
  // (written by scripts/fixtures/models_frcnn.py).
  std::ifstream f(data("frcnn_r50_keys.txt"));
  ASSERT_TRUE(f.good());
  std::vector<std::pair<std::string, std::string>> ref;
  std::string name, shape;
  while (f >> name >> shape) ref.push_back({name, shape});
  auto sd = make_faster_rcnn(FasterRCNNConfig{})->state_dict();
  ASSERT_EQ(sd.size(), ref.size());
  size_t i = 0;
  for (const auto& [k, v] : sd) {
    std::string s;
    for (int64_t d : v.shape()) s += (s.empty() ? "" : ",") + std::to_string(d);
    EXPECT_EQ(k, ref[i].first) << "entry " << i;
    EXPECT_EQ(s, ref[i].second) << k;
    ++i;
  }
}

TEST(FasterRCNN, TorchvisionParityFloat64) {
  auto model = load_fixture_model();
  model->to(DType::Float64);
  auto ref = load_map(data("frcnn_outputs.safetensors"));
  ImageList il = image_list_from_batch(ref["image"].to(DType::Float64));
  NoGradGuard ng;
  auto feats = model->features(il);
  ASSERT_EQ(feats.size(), 4u);
  // RPN proposals: same boxes in the same order.
  auto r = model->rpn->forward(il, feats);
  ASSERT_EQ(r.proposals.size(), 1u);
  EXPECT_LT(max_abs_diff(r.proposals[0], ref["proposals"]), 1e-7);
  // Box head on the reference proposals.
  auto out = model->roi_heads->box_outputs(feats, {ref["proposals"]}, il.image_sizes);
  EXPECT_LT(max_abs_diff(out.class_logits, ref["class_logits"]), 1e-9);
  EXPECT_LT(max_abs_diff(out.box_regression, ref["box_regression"]), 1e-9);
  // Final detections.
  auto dets = model->detect(il);
  ASSERT_EQ(dets.size(), 1u);
  EXPECT_LT(max_abs_diff(dets[0].boxes.to(DType::Float64), ref["det_boxes"]), 1e-4);  // stored as float32
  EXPECT_LT(max_abs_diff(dets[0].scores.to(DType::Float64), ref["det_scores"]), 1e-6);
  EXPECT_EQ(dets[0].labels.to_vector(), sub(ref["det_labels"], 1.0).to_vector());
}

TEST(FasterRCNN, TorchvisionParityFloat32) {
  auto model = load_fixture_model();
  auto ref = load_map(data("frcnn_outputs.safetensors"));
  ImageList il = image_list_from_batch(ref["image"]);
  NoGradGuard ng;
  auto dets = model->detect(il)[0];
  auto rb = ref["det_boxes"].to_vector(), rs = ref["det_scores"].to_vector(), rl = ref["det_labels"].to_vector();
  auto b = dets.boxes.to_vector(), s = dets.scores.to_vector(), l = dets.labels.to_vector();
  ASSERT_EQ(dets.size(), static_cast<int64_t>(rs.size()));
  // Every reference detection clear of the cut-off (the 100th score) must be found with float32
  // tolerance; those within 1e-4 of the cut-off may swap with their neighbours.
  const double cut = rs.back();
  int found = 0, required = 0;
  for (size_t j = 0; j < rs.size(); ++j) {
    bool hit = false;
    for (size_t i = 0; i < s.size() && !hit; ++i) {
      if (l[i] != rl[j] - 1 || std::fabs(s[i] - rs[j]) > 1e-4) continue;
      double d = 0;
      for (int k = 0; k < 4; ++k) d = std::max(d, std::fabs(b[4 * i + k] - rb[4 * j + k]));
      hit = d < 2e-2;
    }
    if (rs[j] > cut + 1e-4) {
      ++required;
      EXPECT_TRUE(hit) << "reference detection " << j << " (score " << rs[j] << ") not found";
    }
    found += hit;
  }
  EXPECT_GT(required, 50);
  EXPECT_GE(found, required);
}

TEST(FasterRCNN, SamplerRespectsBudgetAndFraction) {
  Generator g(3);
  std::vector<double> lab(1000, 0.0);
  for (int i = 0; i < 300; ++i) lab[i * 3] = 1.0;
  for (int i = 0; i < 50; ++i) lab[i * 3 + 1] = -1.0;
  Tensor labels = Tensor::from_vector(lab, {1000}, DType::Int64);
  auto [pos, neg] = sample_pos_neg(labels, 256, 0.25, g);
  EXPECT_EQ(pos.size(), 64u);
  EXPECT_EQ(neg.size(), 192u);
  std::set<int64_t> all;
  for (auto p : pos) {
    EXPECT_EQ(lab[p], 1.0);
    all.insert(p);
  }
  for (auto q : neg) {
    EXPECT_EQ(lab[q], 0.0);
    all.insert(q);
  }
  EXPECT_EQ(all.size(), 256u);  // without replacement
  // Few positives: all of them, negatives fill the rest.
  auto [p2, n2] = sample_pos_neg(Tensor::from_vector({1, 0, 0, -1, 0}, {5}, DType::Int64), 4, 0.5, g);
  EXPECT_EQ(p2.size(), 1u);
  EXPECT_EQ(n2.size(), 3u);
}

// A 64 x 64 grey image with two bright shapes of two classes.
struct ToyScene {
  ImageList images;
  std::vector<ImageTargets> targets;
};
ToyScene toy_scene() {
  const int64_t S = 64;
  std::vector<double> px(S * S, 0.1);
  auto fill = [&](int x1, int y1, int x2, int y2, double v) {
    for (int y = y1; y < y2; ++y)
      for (int x = x1; x < x2; ++x) px[y * S + x] = v;
  };
  fill(8, 10, 24, 26, 0.9);   // 16 x 16 square, class 0
  fill(34, 36, 58, 48, 0.6);  // 24 x 12 bar, class 3
  ToyScene t;
  t.images = image_list_from_batch(Tensor::from_vector(px, {1, 1, S, S}));
  t.targets.push_back({Tensor::from_vector({8, 10, 24, 26, 34, 36, 58, 48}, {2, 4}),
                       Tensor::from_vector({0, 3}, {2}, DType::Int64)});
  return t;
}

FasterRCNNConfig toy_config() {
  FasterRCNNConfig c;
  c.base.arch = "resnet18";
  c.base.in_channels = 1;
  c.base.num_classes = 4;
  c.base.norm = NormKind::BatchNorm;
  c.base.trainable_layers = 5;
  c.base.fpn_channels = 32;
  c.base.anchor_sizes = {{8}, {16}, {32}, {64}};
  c.base.aspect_ratios = {{0.5, 1.0, 2.0}};
  c.base.image_mean = {0.5};
  c.base.image_std = {0.25};
  c.base.seed = 5;
  c.returned_layers = {1, 2, 3};
  c.rpn.pre_nms_top_n_train = c.rpn.post_nms_top_n_train = 300;
  c.rpn.pre_nms_top_n_test = c.rpn.post_nms_top_n_test = 300;
  c.rpn.batch_size_per_image = 64;
  c.roi.batch_size_per_image = 64;
  c.roi.representation_size = 64;
  return c;
}

// Plain Adam (the optimizers live in train/, which the models tests do not link).
struct Adam {
  std::vector<Tensor> params, m, v;
  double lr, b1 = 0.9, b2 = 0.999;
  int t = 0;
  Adam(std::vector<Tensor> p, double lr_) : params(std::move(p)), lr(lr_) {
    for (auto& q : params) {
      m.push_back(Tensor::zeros(q.shape()));
      v.push_back(Tensor::zeros(q.shape()));
    }
  }
  void step() {
    NoGradGuard ng;
    ++t;
    const double c1 = 1 - std::pow(b1, t), c2 = 1 - std::pow(b2, t);
    for (size_t i = 0; i < params.size(); ++i) {
      Tensor g = params[i].grad();
      if (!g.defined()) continue;
      mul_(m[i], b1);
      add_(m[i], g, 1 - b1);
      mul_(v[i], b2);
      add_(v[i], mul(g, g), 1 - b2);
      // p -= lr * (m / c1) / (sqrt(v / c2) + eps)
      add_(params[i], div(m[i], add(sqrt(v[i]), 1e-8 * std::sqrt(c2))), -lr * std::sqrt(c2) / c1);
    }
  }
};

TEST(FasterRCNN, LossFallsAndSingleImageIsLearnt) {
  ToyScene scene = toy_scene();
  auto model = make_faster_rcnn(toy_config());
  model->train();
  Adam opt(model->trainable_parameters(), 2e-3);
  std::vector<double> totals;
  for (int it = 0; it < 100; ++it) {
    model->zero_grad();
    auto losses = model->losses(scene.images, scene.targets);
    ASSERT_EQ(losses.size(), 4u);
    Tensor total;
    for (const char* k : {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}) {
      ASSERT_TRUE(losses.count(k)) << k;
      total = total.defined() ? add(total, losses[k]) : losses[k];
    }
    totals.push_back(total.item());
    ASSERT_TRUE(std::isfinite(totals.back())) << "iteration " << it;
    total.backward();
    opt.step();
  }
  double first = totals.front(), last = 0;
  for (size_t i = totals.size() - 5; i < totals.size(); ++i) last += totals[i] / 5;
  EXPECT_LT(last, 0.25 * first) << "first " << first << " last " << last;

  model->eval();
  NoGradGuard ng;
  auto d = model->detect(scene.images)[0];
  ASSERT_GT(d.size(), 0);
  auto b = d.boxes.to_vector(), s = d.scores.to_vector(), l = d.labels.to_vector();
  auto gtb = scene.targets[0].boxes.to_vector();
  auto gtl = scene.targets[0].labels.to_vector();
  for (int g = 0; g < 2; ++g) {
    // the best-scoring detection of the object's class covers it well and is confident
    int best = -1;
    for (size_t i = 0; i < s.size(); ++i)
      if (l[i] == gtl[g] && (best < 0 || s[i] > s[best])) best = static_cast<int>(i);
    ASSERT_GE(best, 0) << "no detection of class " << gtl[g];
    const double* gb = &gtb[4 * g];
    const double* db = &b[4 * best];
    double iw = std::min(gb[2], db[2]) - std::max(gb[0], db[0]), ih = std::min(gb[3], db[3]) - std::max(gb[1], db[1]);
    double inter = std::max(0.0, iw) * std::max(0.0, ih);
    double iou = inter / ((gb[2] - gb[0]) * (gb[3] - gb[1]) + (db[2] - db[0]) * (db[3] - db[1]) - inter);
    EXPECT_GT(iou, 0.7) << "class " << gtl[g];
    EXPECT_GT(s[best], 0.8) << "class " << gtl[g];
  }
  // Nothing else confident: no class absent from the image scores above 0.5.
  for (size_t i = 0; i < s.size(); ++i)
    if (l[i] != gtl[0] && l[i] != gtl[1]) {
      EXPECT_LT(s[i], 0.5) << "label " << l[i];
    }
}

TEST(FasterRCNN, ImageWithoutObjectsAndEmptyDetections) {
  auto model = make_faster_rcnn(toy_config());
  model->train();
  ToyScene scene = toy_scene();
  std::vector<ImageTargets> none = {{Tensor::zeros({0, 4}), Tensor::zeros({0}, DType::Int64)}};
  auto losses = model->losses(scene.images, none);
  for (auto& [k, v] : losses) EXPECT_TRUE(std::isfinite(v.item())) << k;
  EXPECT_EQ(losses["loss_rpn_box_reg"].item(), 0.0);
  EXPECT_EQ(losses["loss_box_reg"].item(), 0.0);
  Tensor total = add(add(losses["loss_objectness"], losses["loss_classifier"]), losses["loss_box_reg"]);
  total.backward();
  // An impossible score threshold: correctly typed empty detections.
  FasterRCNNConfig c = toy_config();
  c.base.score_thresh = 1.5;
  auto m2 = make_faster_rcnn(c);
  m2->eval();
  NoGradGuard ng;
  auto d = m2->detect(scene.images)[0];
  EXPECT_EQ(d.size(), 0);
  EXPECT_EQ(d.boxes.shape(), (Shape{0, 4}));
  EXPECT_EQ(d.labels.dtype(), DType::Int64);
  EXPECT_EQ(d.scores.dtype(), DType::Float32);
}

TEST(FasterRCNN, RefusesMismatchedAnchors) {
  FasterRCNNConfig c = toy_config();
  c.base.anchor_sizes = {{8}, {16}};
  EXPECT_THROW(make_faster_rcnn(c), ValueError);
}

}  // namespace
}  // namespace sx::models
