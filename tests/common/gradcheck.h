// Gradient checker: analytic gradients (autograd) against central differences, in float64.
//
// f maps the inputs to one output tensor of any shape. The check contracts the output with a fixed
// random weight tensor W (so every output element matters): L = sum(W * f(x)). For each input that
// requires grad and each of its elements, the numeric derivative
//   (L(x + eps e_i) - L(x - eps e_i)) / (2 eps)
// is compared with the analytic one from f(x).backward(W), with tolerance
//   |a - n| <= atol + rtol * max(|a|, |n|).
// Inputs must be float64 CPU tensors; choose them away from kinks (ReLU at 0, ties in max).
// Non-contiguous inputs are fine: elements are perturbed through their strides.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <vector>

#include "tensor/autograd.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace sx::test {

struct GradcheckResult {
  bool ok = true;
  std::string message;
};

inline GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                 std::vector<Tensor> inputs, double eps = 1e-6, double atol = 1e-5,
                                 double rtol = 1e-4, uint64_t seed = 1234) {
  GradcheckResult res;
  for (auto& x : inputs) {
    if (!x.defined()) continue;
    if (x.dtype() != DType::Float64 || !x.device().is_cpu()) {
      res.ok = false;
      res.message = "gradcheck: inputs must be float64 CPU tensors";
      return res;
    }
  }
  // Analytic gradients.
  for (auto& x : inputs)
    if (x.defined() && x.requires_grad()) x.zero_grad();
  Tensor out = f(inputs);
  Tensor w = Tensor::empty(out.shape(), DType::Float64);
  {
    Generator g(seed);
    double* wp = w.data<double>();
    for (int64_t i = 0; i < w.numel(); ++i) wp[i] = g.uniform() * 2.0 - 1.0;
  }
  out.backward(w);
  auto loss_at = [&](void) {
    NoGradGuard ng;
    Tensor o = f(inputs).contiguous();
    if (o.shape() != out.shape()) return std::nan("");
    const double* op = o.data<double>();
    const double* wp = w.data<double>();
    double L = 0;
    for (int64_t i = 0; i < o.numel(); ++i) L += op[i] * wp[i];
    return L;
  };
  std::ostringstream msg;
  int bad = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    Tensor g = x.grad();
    if (!g.defined()) {
      res.ok = false;
      msg << "input " << k << ": no gradient was computed\n";
      continue;
    }
    if (g.shape() != x.shape()) {
      res.ok = false;
      msg << "input " << k << ": gradient shape " << shape_str(g.shape()) << " != input shape "
          << shape_str(x.shape()) << "\n";
      continue;
    }
    Tensor gc = g.contiguous();
    const double* ga = gc.data<double>();
    // Walk x's elements in row-major order through its strides.
    const int64_t n = x.numel();
    std::vector<int64_t> idx(x.dim(), 0);
    double* base = static_cast<double*>(x.data_ptr());
    for (int64_t i = 0; i < n; ++i) {
      int64_t off = 0;
      for (int64_t d = 0; d < x.dim(); ++d) off += idx[d] * x.stride(d);
      double saved = base[off];
      base[off] = saved + eps;
      double lp = loss_at();
      base[off] = saved - eps;
      double lm = loss_at();
      base[off] = saved;
      double num = (lp - lm) / (2 * eps);
      double ana = ga[i];
      double tol = atol + rtol * std::max(std::fabs(ana), std::fabs(num));
      if (!(std::fabs(ana - num) <= tol)) {
        res.ok = false;
        if (++bad <= 8)
          msg << "input " << k << " element " << i << ": analytic " << ana << " numeric " << num
              << "\n";
      }
      for (int64_t d = x.dim() - 1; d >= 0; --d) {
        if (++idx[d] < x.size(d)) break;
        idx[d] = 0;
      }
    }
  }
  if (bad > 8) msg << "... " << bad << " mismatches in all\n";
  res.message = msg.str();
  return res;
}

}  // namespace sx::test

#define SX_EXPECT_GRADCHECK(...)                          \
  do {                                                    \
    auto sx_gc_ = ::sx::test::gradcheck(__VA_ARGS__);     \
    EXPECT_TRUE(sx_gc_.ok) << sx_gc_.message;             \
  } while (0)
