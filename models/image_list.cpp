// Batching (zero padding to a multiple of size_divisible) and per-channel normalisation.
#include "models/image_list.h"

#include <algorithm>

#include "tensor/autograd.h"
#include "tensor/ops.h"

namespace sx::models {

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

Tensor normalize_padded_images(const ImageList& images, const std::vector<double>& mean,
                               const std::vector<double>& stdv) {
  SX_CHECK(images.tensor.defined() && images.tensor.dim() == 4, "normalize_padded_images: images must be [B, C, H, W]");
  SX_CHECK(images.batch() == images.tensor.size(0), "normalize_padded_images: ", images.batch(),
           " image sizes for a batch of ", images.tensor.size(0));
  Tensor x = normalize_images(images.tensor, mean, stdv);
  const int64_t H = x.size(2), W = x.size(3);
  bool padded = false;
  for (const auto& s : images.image_sizes) padded = padded || s.first < H || s.second < W;
  if (!padded) return x;
  Tensor mask = Tensor::zeros({images.batch(), 1, H, W}, x.dtype(), x.device());
  {
    NoGradGuard ng;
    for (int64_t i = 0; i < images.batch(); ++i)
      mask.select(0, i).narrow(1, 0, images.image_sizes[i].first).narrow(2, 0, images.image_sizes[i].second).fill_(1.0);
  }
  return mul(x, mask);
}

}  // namespace sx::models
