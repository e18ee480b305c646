// The batched input of a detector: images padded to a common size (torchvision's ImageList and
// batch_images) and the per-channel normalisation the models apply inside.
//
// Pixel values: the models take images as the loader gives them (float32, grey or RGB in [0, 1],
// [B, C, H, W]) and normalise inside with options.image_mean / image_std (torchvision's
// GeneralizedRCNNTransform normalisation; it does not resize: the loader already did).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace sx::models {

// A batch of images padded to a common size, plus each image's own (unpadded) size.
struct ImageList {
  Tensor tensor;                                        // [B, C, H, W]
  std::vector<std::pair<int64_t, int64_t>> image_sizes;  // (height, width) per image, <= (H, W)
  int64_t batch() const { return static_cast<int64_t>(image_sizes.size()); }
};

// Stacks [C, h_i, w_i] images into [B, C, H, W] zero-padded at the bottom/right, with H and W
// rounded up to a multiple of size_divisible (torchvision's batch_images, 32). All images must
// share C, dtype and device. An empty list is refused (ValueError).
ImageList batch_images(const std::vector<Tensor>& images, int64_t size_divisible = 32);
// Wraps an already batched [B, C, H, W] tensor whose images all have the full size (H, W).
ImageList image_list_from_batch(const Tensor& batch);

// (x - mean[c]) / std[c] per channel; mean/std of size 1 broadcast. Differentiable.
Tensor normalize_images(const Tensor& x, const std::vector<double>& mean, const std::vector<double>& std);
// normalize_images of images.tensor with each image's padding (beyond image_sizes) zeroed again:
// torchvision and Detectron2 normalise each image, then pad with zeros (Faster R-CNN, Sparse R-CNN).
Tensor normalize_padded_images(const ImageList& images, const std::vector<double>& mean,
                               const std::vector<double>& std);

}  // namespace sx::models
