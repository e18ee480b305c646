#include "layers/upsample.h"

#include <cmath>
#include <sstream>

#include "tensor/autograd.h"

namespace sx::nn {

static Tensor upsample_impl(const Tensor& x, int64_t oh, int64_t ow, double sh, double sw) {
  Tensor y = kernels::upsample_nearest2d_forward(x, oh, ow, sh, sw);
  if (!GradMode::is_enabled() || !x.requires_grad()) return y;
  const Shape xs = x.shape();
  return attach_grad(y, "upsample_nearest2d", {x}, [=](const Tensor& g) {
    return std::vector<Tensor>{kernels::upsample_nearest2d_backward(g, xs, sh, sw)};
  });
}

Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w) { return upsample_impl(x, out_h, out_w, 0, 0); }

Tensor upsample_nearest_scale(const Tensor& x, double scale) {
  SX_CHECK(scale > 0, "upsample_nearest: scale factor must be > 0, got ", scale);
  SX_CHECK(x.dim() == 4, "upsample_nearest: input must be [N, C, H, W], got ", shape_str(x.shape()));
  const int64_t oh = static_cast<int64_t>(std::floor(x.size(2) * scale));
  const int64_t ow = static_cast<int64_t>(std::floor(x.size(3) * scale));
  return upsample_impl(x, oh, ow, scale, scale);
}

std::shared_ptr<Upsample> Upsample::with_size(int64_t out_h, int64_t out_w) {
  SX_CHECK(out_h >= 1 && out_w >= 1, "Upsample: size must be >= 1, got ", out_h, "x", out_w);
  std::shared_ptr<Upsample> u(new Upsample());
  u->out_h_ = out_h;
  u->out_w_ = out_w;
  return u;
}

std::shared_ptr<Upsample> Upsample::with_scale(double scale) {
  SX_CHECK(scale > 0, "Upsample: scale factor must be > 0, got ", scale);
  std::shared_ptr<Upsample> u(new Upsample());
  u->scale_ = scale;
  return u;
}

Tensor Upsample::forward(const Tensor& x) {
  return scale_ > 0 ? upsample_nearest_scale(x, scale_) : upsample_nearest(x, out_h_, out_w_);
}

std::string Upsample::extra_repr() const {
  std::ostringstream os;
  if (scale_ > 0)
    os << "scale_factor=" << scale_ << ", mode='nearest'";
  else
    os << "size=(" << out_h_ << ", " << out_w_ << "), mode='nearest'";
  return os.str();
}

}  // namespace sx::nn
