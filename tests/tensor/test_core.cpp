// Tensor core: factories, metadata, views, copies across dtypes/devices, printing, autograd engine.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "common/devices.h"
#include "common/gradcheck.h"
#include "tensor/autograd.h"
#include "tensor/dispatch.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

using namespace sx;

TEST(Core, FactoriesAndMetadata) {
  Tensor z = Tensor::zeros({2, 3});
  EXPECT_EQ(z.dim(), 2);
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.dtype(), DType::Float32);
  EXPECT_TRUE(z.device().is_cpu());
  EXPECT_TRUE(z.is_contiguous());
  EXPECT_EQ(z.strides(), (Shape{3, 1}));
  for (double v : z.to_vector()) EXPECT_EQ(v, 0.0);
  Tensor f = Tensor::full({4}, 2.5, DType::Float64);
  for (double v : f.to_vector()) EXPECT_EQ(v, 2.5);
  Tensor a = Tensor::arange(0, 5, 1.5, DType::Float32);
  EXPECT_EQ(a.to_vector(), (std::vector<double>{0, 1.5, 3, 4.5}));
  EXPECT_EQ(Tensor::arange(4).dtype(), DType::Int64);
  Tensor e = Tensor::empty({0, 3});
  EXPECT_EQ(e.numel(), 0);
  EXPECT_THROW(Tensor::empty({-1}), ValueError);
  EXPECT_EQ(Tensor::scalar(3.0).item(), 3.0);
  EXPECT_THROW(Tensor::zeros({2}).item(), ValueError);
}

TEST(Core, ViewsShareStorageAndIndexCorrectly) {
  Tensor t = Tensor::arange(0, 24, 1, DType::Float32).reshape({2, 3, 4});
  EXPECT_EQ(t.shape(), (Shape{2, 3, 4}));
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_TRUE(p.same_storage(t));
  // p[i][j][k] = t[j][k][i] = j*12 + k*4 + i
  auto pv = p.contiguous().to_vector();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 2; ++j)
      for (int k = 0; k < 3; ++k) EXPECT_EQ(pv[i * 6 + j * 3 + k], j * 12 + k * 4 + i);
  Tensor n = t.narrow(2, 1, 2);  // [2,3,2]
  auto nv = n.contiguous().to_vector();
  EXPECT_EQ(nv[0], 1);
  EXPECT_EQ(nv[1], 2);
  EXPECT_EQ(nv[2], 5);
  Tensor s = t.slice(2, 0, 4, 2);  // every other column
  EXPECT_EQ(s.contiguous().to_vector()[1], 2);
  EXPECT_EQ(t.select(0, 1).shape(), (Shape{3, 4}));
  EXPECT_EQ(t.select(0, 1).contiguous().to_vector()[0], 12);
  EXPECT_EQ(t.unsqueeze(1).shape(), (Shape{2, 1, 3, 4}));
  EXPECT_EQ(t.unsqueeze(-1).shape(), (Shape{2, 3, 4, 1}));
  EXPECT_EQ(t.unsqueeze(1).squeeze(1).shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(t.reshape({-1, 4}).shape(), (Shape{6, 4}));
  EXPECT_THROW(t.reshape({5, -1}), ValueError);
  EXPECT_THROW(p.view({24}), ValueError);
  EXPECT_EQ(p.reshape({24}).to_vector()[1], 4);  // p[0][0][1] = t[0][1][0]  // reshape copies a non-contiguous tensor
  EXPECT_EQ(t.flatten(1).shape(), (Shape{2, 12}));
  Tensor col = Tensor::arange(0, 3, 1, DType::Float32).reshape({3, 1});
  Tensor ex = col.expand({2, 3, 4});
  EXPECT_EQ(ex.stride(0), 0);
  EXPECT_EQ(ex.stride(2), 0);
  auto ev = ex.contiguous().to_vector();
  EXPECT_EQ(ev[4 * 2 + 3], 2);
  EXPECT_THROW(col.expand({3, 2, 2}), ValueError);
  EXPECT_THROW(t.narrow(1, 2, 2), ValueError);
  EXPECT_THROW(t.permute({0, 0, 1}), ValueError);
}

TEST(Core, CopyCastsAndBroadcasts) {
  Tensor a = Tensor::from_vector({1.7, -2.2, 0.0, 3.0}, {2, 2}, DType::Float64);
  Tensor i = a.to(DType::Int32);
  EXPECT_EQ(i.to_vector(), (std::vector<double>{1, -2, 0, 3}));
  Tensor b = a.to(DType::Bool);
  EXPECT_EQ(b.to_vector(), (std::vector<double>{1, 1, 0, 1}));
  Tensor dst = Tensor::zeros({3, 2});
  dst.copy_(Tensor::from_vector({5, 6}, {2}));
  EXPECT_EQ(dst.to_vector(), (std::vector<double>{5, 6, 5, 6, 5, 6}));
  EXPECT_THROW(dst.copy_(Tensor::zeros({3})), ValueError);
  // Writing through a transposed view.
  Tensor m = Tensor::zeros({2, 3});
  m.t().copy_(Tensor::arange(0, 6, 1, DType::Float32).reshape({3, 2}));
  EXPECT_EQ(m.to_vector(), (std::vector<double>{0, 2, 4, 1, 3, 5}));
  Tensor big = Tensor::zeros({300, 300}).t();
  big.fill_(2.0);
  EXPECT_EQ(big.contiguous().to_vector()[12345], 2.0);
}

// The strided copy against element-by-element offsets computed here from each view's own shape,
// strides and offset: random ranks 0-5, permutations, narrows, size-1 dims, broadcast sources,
// strided destinations inside a larger buffer (whose other elements must stay untouched), sizes
// on both sides of the threading threshold, and a cast (float64 -> float32).
TEST(Core, StridedCopyMatchesPerElementOffsets) {
  std::mt19937 rng(7);
  auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int iter = 0; iter < 300; ++iter) {
    const int nd = uni(0, 5);
    const bool big = iter % 10 == 0;
    Shape shape;
    for (int d = 0; d < nd; ++d) shape.push_back(big ? uni(1, 40) : uni(1, 6));
    // Destination: a permuted, narrowed view of a larger buffer (or a plain tensor).
    Shape bshape = shape;
    for (auto& s : bshape) s += uni(0, 2);
    Tensor buffer = Tensor::full(bshape, -7.0, DType::Float32);
    std::vector<int64_t> perm(nd);
    for (int d = 0; d < nd; ++d) perm[d] = d;
    std::shuffle(perm.begin(), perm.end(), rng);
    Tensor dst = buffer;
    for (int d = 0; d < nd; ++d) dst = dst.narrow(d, bshape[d] - shape[d] > 0 ? uni(0, bshape[d] - shape[d]) : 0, shape[d]);
    Shape pshape(nd);
    for (int d = 0; d < nd; ++d) pshape[d] = shape[perm[d]];
    // dst is permuted as a view: copy into dst.permute(perm), whose shape is pshape.
    Tensor dview = dst.permute(perm);
    // Source: float64 values, a permuted view, with some dimensions broadcast (size 1 expanded).
    Shape sshape = pshape;
    for (auto& s : sshape) if (uni(0, 4) == 0) s = 1;
    const int drop = nd > 0 ? uni(0, 1) : 0;  // sometimes fewer dims (leading broadcast)
    Shape src_shape(sshape.begin() + drop, sshape.end());
    int64_t sn = 1;
    for (auto s : src_shape) sn *= s;
    std::vector<double> vals(sn);
    for (int64_t i = 0; i < sn; ++i) vals[i] = i * 0.5 - 3.0;
    const int snd = static_cast<int>(src_shape.size());
    std::vector<int64_t> sperm(snd);
    for (int d = 0; d < snd; ++d) sperm[d] = d;
    std::shuffle(sperm.begin(), sperm.end(), rng);
    Shape sbase(snd);
    for (int d = 0; d < snd; ++d) sbase[d] = src_shape[sperm[d]];
    std::vector<int64_t> inv(snd);
    for (int d = 0; d < snd; ++d) inv[sperm[d]] = d;
    Tensor sbuf = Tensor::from_vector(vals, Shape{sn}, DType::Float64).reshape(sbase);
    Tensor src = snd > 0 ? sbuf.permute(inv) : sbuf;
    ASSERT_EQ(src.shape(), src_shape);
    // Expected values, by offsets.
    std::vector<double> before = buffer.to_vector();
    dview.copy_(src);
    std::vector<double> after = buffer.to_vector();
    const double* sd = static_cast<const double*>(sbuf.data_ptr());  // contiguous storage of src
    std::vector<char> written(after.size(), 0);
    int64_t total = 1;
    for (auto s : pshape) total *= s;
    std::vector<int64_t> idx(nd, 0);
    for (int64_t e = 0; e < total; ++e) {
      int64_t r = e;
      for (int d = nd - 1; d >= 0; --d) { idx[d] = r % pshape[d]; r /= pshape[d]; }
      int64_t doff = dview.offset(), soff = src.offset();
      for (int d = 0; d < nd; ++d) doff += idx[d] * dview.stride(d);
      for (int d = 0; d < snd; ++d) soff += (src.size(d) == 1 ? 0 : idx[d + drop]) * src.stride(d);
      ASSERT_EQ(after[doff], static_cast<float>(sd[soff])) << "iteration " << iter << ", element " << e;
      written[doff] = 1;
    }
    for (size_t i = 0; i < after.size(); ++i)
      if (!written[i]) ASSERT_EQ(after[i], before[i]) << "iteration " << iter << ": element " << i << " outside the view changed";
  }
}

TEST(Core, PrintingShowsMetadataAndSummarisesValues) {
  std::string s = Tensor::arange(0, 100, 1, DType::Float32).reshape({10, 10}).str();
  EXPECT_NE(s.find("shape=[10, 10]"), std::string::npos);
  EXPECT_NE(s.find("float32"), std::string::npos);
  EXPECT_NE(s.find("cpu"), std::string::npos);
  EXPECT_NE(s.find("..."), std::string::npos);
  EXPECT_NE(s.find("99"), std::string::npos);
  EXPECT_EQ(s.find("55"), std::string::npos);  // summarised away
}

TEST(Core, CudaRequestInCpuBuildIsAClearError) {
  if (cuda_built()) GTEST_SKIP() << "this binary has CUDA; the check is for CPU-only builds";
  try {
    Tensor::zeros({2}, DType::Float32, Device::cuda(0));
    FAIL() << "expected NotBuiltError";
  } catch (const NotBuiltError& e) {
    EXPECT_NE(std::string(e.what()).find("built without CUDA"), std::string::npos);
  }
}

// tensor/dispatch.h: a backend table per op family; backend<>() picks the device's table, and a
// CPU-only build (which defines no CUDA table for real ops) throws NotBuiltError naming the op.
namespace {
int twice_cpu(int x) { return 2 * x; }
int twice_cuda(int x) { return 2 * x + 1; }  // tells the tables apart
struct TwiceBackend {
  int (*twice)(int x);
  static const TwiceBackend cpu, cuda;
};
const TwiceBackend TwiceBackend::cpu = {twice_cpu};
const TwiceBackend TwiceBackend::cuda = {twice_cuda};
}  // namespace

TEST(Dispatch, PicksTheDevicesBackendOrSaysCudaIsNotBuilt) {
  EXPECT_EQ(backend<TwiceBackend>(Device::cpu(), "twice").twice(3), 6);
  if (cuda_built()) {
    EXPECT_EQ(backend<TwiceBackend>(Device::cuda(0), "twice").twice(3), 7);
    return;
  }
  try {
    backend<TwiceBackend>(Device::cuda(0), "twice");
    FAIL() << "expected NotBuiltError";
  } catch (const NotBuiltError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("twice: ", 0), 0u) << msg;
    EXPECT_NE(msg.find("built without CUDA"), std::string::npos) << msg;
  }
}

TEST(Autograd, ChainAndAccumulation) {
  Tensor x = Tensor::from_vector({1.0, 2.0, 3.0}, {3}, DType::Float64).set_requires_grad();
  Tensor y = mul(x, x);          // x^2
  Tensor z = sum(add(y, x));     // sum(x^2 + x)
  z.backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{3, 5, 7}));
  // A second backward on a new graph accumulates into .grad.
  sum(mul(x, 2.0)).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{5, 7, 9}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, DiamondGraphSumsBothPaths) {
  Tensor x = Tensor::from_vector({2.0}, {1}, DType::Float64).set_requires_grad();
  Tensor a = mul(x, 3.0);
  Tensor b = mul(a, a);    // 9x^2
  Tensor c = add(b, a);    // 9x^2 + 3x, uses a twice
  c.backward(Tensor::ones({1}, DType::Float64));
  EXPECT_DOUBLE_EQ(x.grad().item(), 18 * 2.0 + 3);
}

TEST(Autograd, ErrorsAreClear) {
  Tensor x = Tensor::from_vector({1.0, 2.0}, {2}, DType::Float64).set_requires_grad();
  Tensor y = sum(mul(x, x));
  y.backward();
  try {
    y.backward();
    FAIL() << "expected an error for a second backward";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("second time"), std::string::npos);
  }
  Tensor c = Tensor::ones({2});
  EXPECT_THROW(c.backward(), ValueError);  // does not require grad
  Tensor v = mul(x, x);
  EXPECT_THROW(v.backward(), ValueError);  // not a scalar, no grad given
  EXPECT_THROW(mul(x, x).set_requires_grad(false), ValueError);  // not a leaf
  EXPECT_THROW(Tensor::ones({2}, DType::Int64).set_requires_grad(), ValueError);
}

TEST(Autograd, RetainGraphAllowsTwoPasses) {
  Tensor x = Tensor::from_vector({3.0}, {1}, DType::Float64).set_requires_grad();
  Tensor y = sum(mul(x, x));
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  EXPECT_DOUBLE_EQ(x.grad().item(), 12.0);
}

TEST(Autograd, NoGradGuardAndDetach) {
  Tensor x = Tensor::ones({2}, DType::Float64).set_requires_grad();
  {
    NoGradGuard ng;
    EXPECT_FALSE(mul(x, x).requires_grad());
  }
  EXPECT_TRUE(mul(x, x).requires_grad());
  Tensor d = x.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.same_storage(x));
  EXPECT_THROW(x.fill_(1.0), ValueError);  // in-place on a leaf that requires grad
}

TEST(Autograd, RetainGradOnInteriorTensor) {
  Tensor x = Tensor::from_vector({1.0, 2.0}, {2}, DType::Float64).set_requires_grad();
  Tensor y = mul(x, 3.0);
  y.retain_grad();
  sum(mul(y, y)).backward();
  EXPECT_EQ(y.grad().to_vector(), (std::vector<double>{6, 12}));
}

TEST(Autograd, ViewGradients) {
  Generator g(7);
  Tensor x = randn({2, 3, 4}, g, DType::Float64).set_requires_grad();
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return in[0].permute({2, 0, 1}); }, {x});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return in[0].narrow(1, 1, 2); }, {x});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return in[0].slice(2, 0, 4, 3); }, {x});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return in[0].select(0, 1); }, {x});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return in[0].transpose(0, 2).reshape({4, 6}); }, {x});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return in[0].unsqueeze(1).squeeze(1).flatten(); }, {x});
  Tensor c = randn({3, 1}, g, DType::Float64).set_requires_grad();
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return in[0].expand({2, 3, 5}); }, {c});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return in[0].clone().to(DType::Float64); }, {x});
}

class CoreDevices : public ::testing::TestWithParam<Device> {};

TEST_P(CoreDevices, RoundTripAndStridedCopyOnDevice) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Tensor h = Tensor::arange(0, 24, 1, DType::Float32).reshape({2, 3, 4});
  Tensor d = h.to(dev);
  EXPECT_EQ(d.device(), dev);
  Tensor p = d.permute({2, 1, 0}).contiguous();  // strided copy on the device
  EXPECT_EQ(p.cpu().to_vector(), h.permute({2, 1, 0}).contiguous().to_vector());
  Tensor cast = d.to(DType::Float64).to(DType::Int64);
  EXPECT_EQ(cast.cpu().to_vector(), h.to_vector());
  Tensor z = Tensor::zeros({5, 7}, DType::Float32, dev).t();
  z.fill_(4.0);
  for (double v : z.cpu().to_vector()) EXPECT_EQ(v, 4.0);
  Tensor empty = Tensor::empty({0, 4}, DType::Float32, dev);
  EXPECT_EQ(empty.cpu().numel(), 0);
}

INSTANTIATE_TEST_SUITE_P(Devices, CoreDevices, SX_DEVICES, sx::test::device_name);

TEST(CudaAllocator, SteadyStateReusesBlocks) {
  SX_REQUIRE_CUDA();
  // Warm up one shape, then allocate and free it many times: no new cudaMalloc.
  { Tensor t = Tensor::empty({1000, 1000}, DType::Float32, Device::cuda(0)); }
  auto before = cuda::allocator_stats(0);
  for (int i = 0; i < 100; ++i) {
    Tensor t = Tensor::empty({1000, 1000}, DType::Float32, Device::cuda(0));
  }
  auto after = cuda::allocator_stats(0);
  EXPECT_EQ(after.num_device_mallocs, before.num_device_mallocs);
  EXPECT_GE(after.peak_allocated_bytes, 4000000);
  EXPECT_EQ(after.allocated_bytes, before.allocated_bytes);
}

TEST(Autograd, InPlaceWriteToASavedTensorIsAnError) {
  Tensor a = Tensor::from_vector({1.0, 2.0}, {2}, DType::Float64).set_requires_grad();
  Tensor b = Tensor::from_vector({3.0, 4.0}, {2}, DType::Float64);  // needed for a's gradient
  Tensor y = sum(mul(a, b));
  b.fill_(0.0);
  try {
    y.backward();
    FAIL() << "expected an error for a saved tensor modified in place";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("modified in place"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("mul"), std::string::npos);
  }
  // Through a view, and with add_: the view shares the storage, so the write is seen too.
  Tensor c = Tensor::from_vector({3.0, 4.0}, {2}, DType::Float64);
  Tensor z = sum(mul(a, c));
  Tensor cv = c.narrow(0, 0, 1);
  add_(cv, Tensor::ones({1}, DType::Float64));
  EXPECT_THROW(z.backward(), ValueError);
  // Untouched inputs: fine.
  Tensor d = Tensor::from_vector({3.0, 4.0}, {2}, DType::Float64);
  Tensor w = sum(mul(a, d));
  a.zero_grad();
  w.backward();
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{3, 4}));
}
