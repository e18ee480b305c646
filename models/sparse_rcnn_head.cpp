// Sparse R-CNN's iterative head: the box transform, the dynamic instance interaction, one RCNNHead
// stage and the series of stages. See sparse_rcnn_head.h for the structure and the names.
#include "models/sparse_rcnn_head.h"

#include <string>

#include "layers/init.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"

namespace sx::models {

Tensor apply_box_deltas(const Tensor& deltas, const Tensor& boxes, const kernels::BoxCoderWeights& w,
                        double scale_clamp) {
  SX_CHECK(deltas.dim() == 2 && deltas.size(1) == 4, "apply_box_deltas: deltas must be [M, 4], got ",
           shape_str(deltas.shape()));
  SX_CHECK(boxes.dim() == 2 && boxes.size(1) == 4 && boxes.size(0) == deltas.size(0),
           "apply_box_deltas: boxes must be [", deltas.size(0), ", 4], got ", shape_str(boxes.shape()));
  Tensor b = boxes.to(deltas.dtype());
  auto col = [](const Tensor& t, int64_t j) { return t.narrow(1, j, 1); };  // [M, 1]
  Tensor widths = sub(col(b, 2), col(b, 0));
  Tensor heights = sub(col(b, 3), col(b, 1));
  Tensor ctr_x = add(col(b, 0), mul(widths, 0.5));
  Tensor ctr_y = add(col(b, 1), mul(heights, 0.5));
  Tensor dx = div(col(deltas, 0), w[0]);
  Tensor dy = div(col(deltas, 1), w[1]);
  // Clamped before exp so that no box grows by more than 1e5/16 in one step.
  Tensor dw = clamp(div(col(deltas, 2), w[2]), std::nullopt, scale_clamp);
  Tensor dh = clamp(div(col(deltas, 3), w[3]), std::nullopt, scale_clamp);
  Tensor pred_ctr_x = add(mul(dx, widths), ctr_x);
  Tensor pred_ctr_y = add(mul(dy, heights), ctr_y);
  Tensor half_w = mul(mul(exp(dw), widths), 0.5);
  Tensor half_h = mul(mul(exp(dh), heights), 0.5);
  return cat({sub(pred_ctr_x, half_w), sub(pred_ctr_y, half_h), add(pred_ctr_x, half_w), add(pred_ctr_y, half_h)}, 1);
}

// ---- DynamicConv -----------------------------------------------------------------------------------
DynamicConv::DynamicConv(const SparseRcnnHeadConfig& cfg, Generator& gen)
    : nn::Module("DynamicConv"), hidden_(cfg.hidden_dim), dynamic_(cfg.dim_dynamic) {
  const int64_t D = cfg.hidden_dim, Dd = cfg.dim_dynamic, S = cfg.pooler_resolution * cfg.pooler_resolution;
  dynamic_layer = register_module("dynamic_layer", std::make_shared<nn::Linear>(D, 2 * D * Dd, true, &gen));
  norm1 = register_module("norm1", std::make_shared<nn::LayerNorm>(Dd));
  norm2 = register_module("norm2", std::make_shared<nn::LayerNorm>(D));
  out_layer = register_module("out_layer", std::make_shared<nn::Linear>(S * D, D, true, &gen));
  norm3 = register_module("norm3", std::make_shared<nn::LayerNorm>(D));
}

Tensor DynamicConv::forward_pair(const Tensor& pro_features, const Tensor& roi_features) {
  const int64_t M = pro_features.size(0), D = hidden_, Dd = dynamic_;
  SX_CHECK(pro_features.dim() == 2 && pro_features.size(1) == D, "DynamicConv: proposal features must be [M, ", D,
           "], got ", shape_str(pro_features.shape()));
  SX_CHECK(roi_features.dim() == 3 && roi_features.size(0) == M && roi_features.size(2) == D,
           "DynamicConv: RoI features must be [", M, ", S, ", D, "], got ", shape_str(roi_features.shape()));
  Tensor params = dynamic_layer->forward(pro_features);                 // [M, 2 D Dd]
  Tensor w1 = params.narrow(1, 0, D * Dd).reshape({M, D, Dd});           // the first 1x1 layer
  Tensor w2 = params.narrow(1, D * Dd, D * Dd).reshape({M, Dd, D});      // the second
  Tensor f = relu(norm1->forward(matmul(roi_features, w1)));             // [M, S, Dd]
  f = relu(norm2->forward(matmul(f, w2)));                               // [M, S, D]
  return relu(norm3->forward(out_layer->forward(f.reshape({M, -1}))));   // [M, D]
}

// ---- RCNNHead ---------------------------------------------------------------------------------------
namespace {
// (Linear D -> D without bias, LayerNorm, ReLU) x n, as an nn.ModuleList: children "0", "1", "2", ...
std::shared_ptr<nn::Sequential> make_tower(int64_t D, int64_t n, Generator& gen) {
  auto tower = std::make_shared<nn::Sequential>();
  for (int64_t i = 0; i < n; ++i) {
    tower->push_back(std::make_shared<nn::Linear>(D, D, false, &gen));
    tower->push_back(std::make_shared<nn::LayerNorm>(D));
    tower->push_back(std::make_shared<nn::ReLU>());
  }
  return tower;
}
}  // namespace

RCNNHead::RCNNHead(const SparseRcnnHeadConfig& cfg, int64_t num_classes, Generator& gen)
    : nn::Module("RCNNHead"), cfg_(cfg) {
  const int64_t D = cfg.hidden_dim;
  SX_CHECK(D >= 1 && cfg.dim_dynamic >= 1 && cfg.dim_feedforward >= 1 && cfg.pooler_resolution >= 1,
           "RCNNHead: hidden_dim, dim_dynamic, dim_feedforward and pooler_resolution must be >= 1");
  SX_CHECK(num_classes >= 1, "RCNNHead: num_classes must be >= 1, got ", num_classes);
  SX_CHECK(cfg.num_cls >= 0 && cfg.num_reg >= 0, "RCNNHead: num_cls and num_reg must be >= 0");
  self_attn = register_module("self_attn", std::make_shared<nn::MultiheadAttention>(D, cfg.nhead, true, &gen));
  inst_interact = register_module("inst_interact", std::make_shared<DynamicConv>(cfg, gen));
  linear1 = register_module("linear1", std::make_shared<nn::Linear>(D, cfg.dim_feedforward, true, &gen));
  linear2 = register_module("linear2", std::make_shared<nn::Linear>(cfg.dim_feedforward, D, true, &gen));
  norm1 = register_module("norm1", std::make_shared<nn::LayerNorm>(D));
  norm2 = register_module("norm2", std::make_shared<nn::LayerNorm>(D));
  norm3 = register_module("norm3", std::make_shared<nn::LayerNorm>(D));
  cls_module = register_module("cls_module", make_tower(D, cfg.num_cls, gen));
  reg_module = register_module("reg_module", make_tower(D, cfg.num_reg, gen));
  class_logits = register_module("class_logits", std::make_shared<nn::Linear>(D, num_classes, true, &gen));
  bboxes_delta = register_module("bboxes_delta", std::make_shared<nn::Linear>(D, 4, true, &gen));
}

SparseRcnnStage RCNNHead::forward_stage(const std::vector<Tensor>& features, const Tensor& boxes,
                                        const Tensor& pro_features,
                                        const std::vector<std::pair<int64_t, int64_t>>& image_sizes) {
  SX_CHECK(boxes.dim() == 3 && boxes.size(2) == 4, "RCNNHead: boxes must be [B, N, 4], got ",
           shape_str(boxes.shape()));
  SX_CHECK(!features.empty(), "RCNNHead: no feature levels");
  const int64_t B = boxes.size(0), N = boxes.size(1), D = cfg_.hidden_dim, R = cfg_.pooler_resolution;
  SX_CHECK(static_cast<int64_t>(image_sizes.size()) == B, "RCNNHead: ", image_sizes.size(), " image sizes for ", B,
           " images");
  SX_CHECK(features[0].size(1) == D, "RCNNHead: features have ", features[0].size(1), " channels, the head ", D);
  Tensor rois;
  {
    NoGradGuard ng;  // RoIAlign gives the boxes no gradient (torchvision, Detectron2)
    const DType dt = features[0].dtype();
    Tensor idx = Tensor::arange(B, dt, boxes.device()).reshape({B, 1, 1}).expand({B, N, 1});
    rois = cat({idx, boxes.detach().to(dt)}, 2).reshape({B * N, 5});
  }
  nn::MultiScaleRoiAlignOptions o;
  o.output_h = o.output_w = R;
  o.sampling_ratio = cfg_.sampling_ratio;
  o.aligned = true;  // Detectron2's ROIAlignV2
  Tensor pooled = nn::multiscale_roi_align(features, rois, image_sizes, o);       // [B N, D, R, R]
  Tensor roi = pooled.reshape({B * N, D, R * R}).permute({0, 2, 1}).contiguous();  // [B N, S, D]
  return forward_pooled(roi, boxes, pro_features);
}

SparseRcnnStage RCNNHead::forward_pooled(const Tensor& roi_features, const Tensor& boxes, const Tensor& pro_features) {
  const int64_t B = boxes.size(0), N = boxes.size(1), D = cfg_.hidden_dim;
  SX_CHECK(pro_features.dim() == 3 && pro_features.size(0) == B && pro_features.size(1) == N &&
               pro_features.size(2) == D,
           "RCNNHead: proposal features must be [", B, ", ", N, ", ", D, "], got ", shape_str(pro_features.shape()));
  // Self-attention among each image's proposals: sequence-first [N, B, D].
  Tensor x = pro_features.transpose(0, 1).contiguous();
  x = norm1->forward(add(x, self_attn->forward(x)));
  x = x.transpose(0, 1).contiguous().reshape({B * N, D});  // image-major, as the RoIs
  // The dynamic instance interaction with the proposal's own RoI features.
  x = norm2->forward(add(x, inst_interact->forward_pair(x, roi_features)));
  // Feed-forward.
  x = norm3->forward(add(x, linear2->forward(relu(linear1->forward(x)))));
  Tensor logits = class_logits->forward(cls_module->forward(x));   // [B N, C]
  Tensor deltas = bboxes_delta->forward(reg_module->forward(x));   // [B N, 4]
  Tensor pred = apply_box_deltas(deltas, boxes.reshape({B * N, 4}), cfg_.bbox_weights, cfg_.scale_clamp);
  return {logits.reshape({B, N, -1}), pred.reshape({B, N, 4}), x.reshape({B, N, D})};
}

// ---- DynamicHead -------------------------------------------------------------------------------------
DynamicHead::DynamicHead(const SparseRcnnHeadConfig& cfg, int64_t num_classes, int64_t num_heads, Generator& gen)
    : nn::Module("DynamicHead") {
  SX_CHECK(num_heads >= 1, "DynamicHead: num_heads must be >= 1, got ", num_heads);
  SX_CHECK(cfg.prior_probability > 0 && cfg.prior_probability < 1, "DynamicHead: prior_probability must be in (0, 1), got ",
           cfg.prior_probability);
  head_series = register_module("head_series", std::make_shared<nn::Module>("ModuleList"));
  for (int64_t i = 0; i < num_heads; ++i)
    heads.push_back(head_series->register_module(std::to_string(i), std::make_shared<RCNNHead>(cfg, num_classes, gen)));
  // The authors' _reset_parameters: xavier_uniform for every matrix, the focal prior on the class bias.
  NoGradGuard ng;
  for (auto& [name, p] : named_parameters())
    if (p.dim() > 1) p.copy_(nn::init::xavier_uniform(p.shape(), gen, 1.0, p.dtype()));
  const double bias = -std::log((1.0 - cfg.prior_probability) / cfg.prior_probability);
  for (auto& h : heads) h->class_logits->bias.fill_(bias);
}

std::vector<SparseRcnnStage> DynamicHead::forward_stages(const std::vector<Tensor>& features, const Tensor& init_boxes,
                                                         const Tensor& init_features,
                                                         const std::vector<std::pair<int64_t, int64_t>>& image_sizes) {
  std::vector<SparseRcnnStage> out;
  Tensor boxes = init_boxes, pro = init_features;
  for (auto& h : heads) {
    out.push_back(h->forward_stage(features, boxes, pro, image_sizes));
    boxes = out.back().boxes.detach();
    pro = out.back().features;
  }
  return out;
}

}  // namespace sx::models
