// Anchor-to-ground-truth matcher, torchvision.models.detection._utils.Matcher semantics.
//
// quality [G, A]: match quality (IoU) of every ground-truth box g with every anchor a.
// For each anchor: best = max_g quality[g, a] (first maximum; NaN propagates like torch.max),
//   matches[a] = argmax            if best >= high_threshold,
//              = -2 (BETWEEN)      if low_threshold <= best < high_threshold (ignored in the loss),
//              = -1 (BELOW_LOW)    if best < low_threshold (background).
// allow_low_quality_matches: for each ground truth g, every anchor whose quality equals g's highest
// quality (ties included) gets back its own argmax match even if below the thresholds, so every
// ground truth has at least one anchor (the anchor's argmax, which may be another g, as torchvision).
// G = 0: every anchor is background (-1) (torchvision raises; RetinaNet/Faster R-CNN special-case it
// the same way). A = 0: an empty int64 tensor. The result lives on quality's device.
#pragma once
#include "tensor/tensor.h"

namespace sx::kernels {

constexpr int64_t kMatchBelowLow = -1;
constexpr int64_t kMatchBetween = -2;

struct MatcherParams {
  double high_threshold = 0.5;
  double low_threshold = 0.4;
  bool allow_low_quality_matches = false;
};

Tensor match_anchors(const Tensor& quality, const MatcherParams& params);

// The backend functions (tensor/dispatch.h); the op functions above check the arguments first.
struct MatcherBackend {
  Tensor (*match_anchors)(const Tensor& quality, const MatcherParams& params);
  static const MatcherBackend cpu, cuda;
};

}  // namespace sx::kernels
