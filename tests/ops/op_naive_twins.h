// The naive twins of the op registry (op_registry.h): each computes what a fast op computes, another
// way, for NaiveVsFast. Two kinds: the product's own slow paths reachable below the autograd layer
// (conv2d on im2col + GEMM, RoIAlign's per-output loops), wrapped in a test-side node whose forward
// and backward both run the slow path; and compositions of primitive ops written here, labelled
// "composed" (softmax from exp/sum, batch norm from mean/var, torchvision's focal loss formula ...).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/conv2d/conv2d.h"
#include "kernels/labs/focal_loss_lab.h"
#include "kernels/roi_align/roi_align.h"
#include "layers/layers.h"
#include "tensor/tensor.h"

namespace sx::test::twins {

Tensor conv2d_im2col(const Tensor& x, const Tensor& w, const Tensor& b, const kernels::Conv2dParams& p);
Tensor roi_align_naive(const Tensor& x, const Tensor& rois, const kernels::RoiAlignParams& p);
// The multiscale RoIAlign case's options and image sizes (shared by the fast entry and its twin).
nn::MultiScaleRoiAlignOptions msra_options();
extern const std::vector<std::pair<int64_t, int64_t>> kMsraImages;
Tensor multiscale_roi_align_naive(const std::vector<Tensor>& feats, const Tensor& rois);
Tensor matmul_composed(const Tensor& a, const Tensor& b);
Tensor softmax_composed(const Tensor& x, int64_t d);
Tensor log_softmax_composed(const Tensor& x, int64_t d);
Tensor batch_norm_train_composed(const Tensor& x, const Tensor& w, const Tensor& b, double eps);
Tensor batch_norm_eval_composed(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& rm,
                                const Tensor& rv, double eps);
Tensor focal_composed(const Tensor& x, const Tensor& targets, const nn::FocalLossParams& fp);
// The focal-loss lab's v1 (kernels/labs/focal_loss_lab.h): focal_composed, then autograd's
// backward with an upstream gradient of 1 (all ones for FocalReduction::None).
kernels::labs::FocalResult focal_composed_step(const Tensor& x, const Tensor& targets,
                                               const nn::FocalLossParams& fp);
Tensor adaptive_avg_pool2d_composed(const Tensor& x, int64_t oh, int64_t ow);
Tensor upsample_composed(const Tensor& x, int64_t oh, int64_t ow, double sh, double sw);
Tensor max_pool2d_composed(const Tensor& x, int64_t k, int64_t s);
// torchvision.ops.generalized_box_iou_loss (reduction none) written with primitive ops: the GIoU
// kernel's twin (kernels/box_ops/giou_loss fuses it).
Tensor giou_loss_composed(const Tensor& b1, const Tensor& b2, double eps);

}  // namespace sx::test::twins
