// GIoU loss (kernels/box_ops/giou_loss, nn::giou_loss): torchvision's values and autograd gradients
// (tests/data/kernels/detection_giou.txt, written by scripts/fixtures/kernels_giou_loss.py), the
// kernel's explicit backward against central differences through its own forward, [..., 4] shapes
// and argument errors. The float64 gradcheck and naive-vs-fast are the op registry's (test_ops).
#include <gtest/gtest.h>

#include "kernels/box_ops/giou_loss.h"
#include "layers/loss.h"
#include "tensor/errors.h"
#include "tensor/ops.h"
#include "tests/kernels/detection_test_util.h"

namespace sx {
namespace {

using nn::Reduction;
using test::DetectionFixture;
using test::expect_close;

TEST(GIoULossGolden, ValuesMatchTorchvision) {
  DetectionFixture f("giou");
  const Tensor b1 = f["giou_b1"], b2 = f["giou_b2"];
  const std::pair<Reduction, const char*> reds[] = {
      {Reduction::None, "none"}, {Reduction::Mean, "mean"}, {Reduction::Sum, "sum"}};
  for (const auto& [r, name] : reds) {
    const std::string key = std::string("giou_loss_") + name;
    expect_close(nn::giou_loss(b1, b2, r), f[key + "_f64"], 1e-14, 1e-13, key + " f64");
    expect_close(nn::giou_loss(b1.to(DType::Float32), b2.to(DType::Float32), r), f[key + "_f32"], 1e-6, 2e-6,
                 key + " f32");
  }
}

TEST(GIoULossGolden, GradientsMatchTorchAutograd) {
  DetectionFixture f("giou");
  Tensor b1 = f["giou_b1"].clone().set_requires_grad(), b2 = f["giou_b2"].clone().set_requires_grad();
  // Overlapping, disjoint, nested, identical (ties split in halves, like torch.maximum) and
  // zero-area pairs: the gradient of sum(w * loss) equals torch's.
  sum(mul(nn::giou_loss(b1, b2, Reduction::None), f["giou_w"])).backward();
  expect_close(b1.grad(), f["giou_grad1_f64"], 1e-13, 1e-11, "d/d boxes1");
  expect_close(b2.grad(), f["giou_grad2_f64"], 1e-13, 1e-11, "d/d boxes2");
}

TEST(GIoULossKernel, BackwardMatchesCentralDifferencesOfForward) {
  DetectionFixture f("giou");
  // Pairs 0..19 (overlapping or disjoint, no ties): the explicit backward of the kernel against
  // central differences of the kernel's forward, one coordinate at a time.
  Tensor b1 = f["giou_b1"].narrow(0, 0, 20).contiguous(), b2 = f["giou_b2"].narrow(0, 0, 20).contiguous();
  Tensor g = f["giou_w"].narrow(0, 0, 20).contiguous();
  auto [g1, g2] = kernels::giou_loss_backward(g, b1, b2);
  const std::vector<double> wv = g.to_vector();
  auto weighted = [&](const Tensor& a, const Tensor& b) {
    const std::vector<double> l = kernels::giou_loss_forward(a, b).to_vector();
    double s = 0;
    for (size_t i = 0; i < l.size(); ++i) s += wv[i] * l[i];
    return s;
  };
  const double eps = 1e-6;
  for (int which = 0; which < 2; ++which) {
    const std::vector<double> ana = (which ? g2 : g1).to_vector();
    std::vector<double> base = (which ? b2 : b1).to_vector();
    for (size_t k = 0; k < base.size(); ++k) {
      std::vector<double> p = base, m = base;
      p[k] += eps, m[k] -= eps;
      const Tensor tp = Tensor::from_vector(p, {20, 4}, DType::Float64), tm = Tensor::from_vector(m, {20, 4}, DType::Float64);
      const double num = which ? (weighted(b1, tp) - weighted(b1, tm)) / (2 * eps)
                               : (weighted(tp, b2) - weighted(tm, b2)) / (2 * eps);
      EXPECT_NEAR(ana[k], num, 1e-7 + 1e-5 * std::fabs(num)) << "boxes" << which + 1 << " element " << k;
    }
  }
}

TEST(GIoULossKernel, LeadingDimsEmptyAndErrors) {
  DetectionFixture f("giou");
  // [2, 12, 4] gives the [24] losses as [2, 12].
  Tensor l = nn::giou_loss(f["giou_b1"].reshape({2, 12, 4}), f["giou_b2"].reshape({2, 12, 4}), Reduction::None);
  EXPECT_EQ(shape_str(l.shape()), "[2, 12]");
  expect_close(l.reshape({24}), f["giou_loss_none_f64"], 1e-14, 1e-13, "[2, 12, 4]");
  Tensor e = Tensor::zeros({0, 4}, DType::Float32);
  EXPECT_EQ(kernels::giou_loss_forward(e, e).numel(), 0);
  EXPECT_EQ(nn::giou_loss(e, e, Reduction::Sum).item(), 0.0);
  EXPECT_THROW(kernels::giou_loss_forward(Tensor::zeros({3, 4}), Tensor::zeros({2, 4})), ValueError);
  EXPECT_THROW(kernels::giou_loss_forward(Tensor::zeros({3, 5}), Tensor::zeros({3, 5})), ValueError);
  EXPECT_THROW(kernels::giou_loss_forward(Tensor::zeros({3, 4}), Tensor::zeros({3, 4}, DType::Float64)), ValueError);
  EXPECT_THROW(kernels::giou_loss_backward(Tensor::zeros({2}), Tensor::zeros({3, 4}), Tensor::zeros({3, 4})),
               ValueError);
}

}  // namespace
}  // namespace sx
