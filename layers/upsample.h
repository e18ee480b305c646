// Nearest-neighbour upsampling (F.interpolate(mode="nearest")), differentiable
// (kernels in kernels/upsample).
#pragma once
#include "kernels/upsample/upsample.h"
#include "layers/module.h"

namespace sx::nn {

// To an explicit size (torchvision's FPN: interpolate(x, size=lateral.shape[-2:])).
Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w);
// By an integer-or-real scale factor: out = floor(H * scale).
Tensor upsample_nearest_scale(const Tensor& x, double scale);

class Upsample : public Module {
 public:
  // Nearest mode only. Either a size (out_h, out_w > 0) or a scale factor.
  static std::shared_ptr<Upsample> with_size(int64_t out_h, int64_t out_w);
  static std::shared_ptr<Upsample> with_scale(double scale);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

 private:
  Upsample() : Module("Upsample") {}
  int64_t out_h_ = 0, out_w_ = 0;
  double scale_ = 0;
};

}  // namespace sx::nn
