// The optimizer update kernels (kernels/optim): argument checks, and the CPU loop applying exactly
// the shared per-element math of optim_math.h (bit for bit, also past the OpenMP threshold where
// the loop is split across threads). Trajectories against torch are in tests/train/test_optim.cpp.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/optim/optim.h"
#include "kernels/optim/optim_math.h"
#include "tensor/errors.h"
#include "tensor/dtype.h"

using namespace sx;
using namespace sx::kernels;

namespace {
template <class T>
bool same_bits(const Tensor& t, const std::vector<T>& want) {
  return t.numel() == static_cast<int64_t>(want.size()) &&
         std::memcmp(t.data<T>(), want.data(), want.size() * sizeof(T)) == 0;
}
template <class T>
std::vector<T> values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}
}  // namespace

TEST(OptimKernel, CpuLoopIsTheSharedMathBitForBit) {
  const int64_t n = (1 << 16) + 1001;  // above the OpenMP threshold
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor p = Tensor::from_vector(std::vector<double>(n, 0.0), {n}, dt);
    Tensor g = Tensor::from_vector(std::vector<double>(n, 0.0), {n}, dt);
    for (int64_t i = 0; i < n; ++i) {
      double x = 0.001 * static_cast<double>(i % 977) - 0.4;
      if (dt == DType::Float32) {
        p.data<float>()[i] = static_cast<float>(x);
        g.data<float>()[i] = static_cast<float>(0.3 - 0.7 * x * x);
      } else {
        p.data<double>()[i] = x;
        g.data<double>()[i] = 0.3 - 0.7 * x * x;
      }
    }
    Tensor buf = Tensor::empty({n}, dt), m = Tensor::zeros({n}, dt), v = Tensor::zeros({n}, dt);
    Tensor p_sgd = p.clone(), p_adam = p.clone();
    SX_DISPATCH_FLOAT(dt, "test", [&] {
      using T = scalar_t;
      std::vector<T> ps = values<T>(p), pa = values<T>(p), gv = values<T>(g), bv(n), mv(n, T(0)), vv(n, T(0));
      for (int step = 1; step <= 3; ++step) {
        SgdStepArgs sa{0.1, 0.9, 0.0, 1e-4, true, step == 1};
        sgd_step(p_sgd, g, buf, sa);
        auto ss = optim_math::sgd_scalars<T>(sa);
        for (int64_t i = 0; i < n; ++i) optim_math::sgd_update<T>(ps[i], gv[i], &bv[i], ss);
        AdamWStepArgs aa{1e-3, 0.9, 0.999, 1e-8, 1e-2, step};
        adamw_step(p_adam, g, m, v, aa);
        auto as = optim_math::adamw_scalars<T>(aa);
        for (int64_t i = 0; i < n; ++i) optim_math::adamw_update<T>(pa[i], gv[i], mv[i], vv[i], as);
      }
      EXPECT_TRUE(same_bits<T>(p_sgd, ps)) << dtype_name(dt);
      EXPECT_TRUE(same_bits<T>(buf, bv)) << dtype_name(dt);
      EXPECT_TRUE(same_bits<T>(p_adam, pa)) << dtype_name(dt);
      EXPECT_TRUE(same_bits<T>(m, mv)) << dtype_name(dt);
      EXPECT_TRUE(same_bits<T>(v, vv)) << dtype_name(dt);
    });
  }
}

TEST(OptimKernel, RefusesBadArguments) {
  Tensor p = Tensor::zeros({4}), g = Tensor::zeros({4});
  SgdStepArgs sa{0.1, 0.9, 0.0, 0.0, false, true};
  EXPECT_THROW(sgd_step(p, Tensor::zeros({5}), Tensor::zeros({4}), sa), ValueError);              // grad shape
  EXPECT_THROW(sgd_step(p, Tensor::zeros({4}, DType::Float64), Tensor::zeros({4}), sa), ValueError);  // dtype
  EXPECT_THROW(sgd_step(p, g, Tensor(), sa), ValueError);  // momentum on, no buffer
  sa.momentum = 0.0;
  EXPECT_NO_THROW(sgd_step(p, g, Tensor(), sa));           // momentum off: no buffer needed
  EXPECT_THROW(sgd_step(Tensor::zeros({4}, DType::Int64), Tensor::zeros({4}, DType::Int64), Tensor(), sa), ValueError);
  Tensor nc = Tensor::zeros({2, 3}).transpose(0, 1);
  EXPECT_THROW(sgd_step(nc, Tensor::zeros({3, 2}), Tensor(), sa), ValueError);  // not contiguous
  AdamWStepArgs aa{1e-3, 0.9, 0.999, 1e-8, 1e-2, 1};
  EXPECT_THROW(adamw_step(p, g, Tensor::zeros({4}), Tensor(), aa), ValueError);
  aa.step = 0;
  EXPECT_THROW(adamw_step(p, g, Tensor::zeros({4}), Tensor::zeros({4}), aa), ValueError);
}
