// Conv2d on CUDA through cuDNN's legacy convolution API (v9: cudnnConvolutionForward,
// cudnnConvolutionBackwardData, cudnnConvolutionBackwardFilter, cudnnConvolutionBackwardBias).
//
// Algorithm choice. cuDNN offers several algorithms per direction (implicit GEMM, FFT, Winograd,
// ...), whose speed depends on the shape. The first time a (device, direction, dtype, shapes,
// parameters, TF32, buffer alignment) combination is seen, we ask cuDNN's heuristics (cudnn*_v7)
// for the ranked candidates and their workspace needs. By default we take the first candidate
// that works within the workspace cap (what PyTorch does unless cudnn.benchmark is set): no
// timing, no synchronisation, cheap for inputs whose shape changes every batch (scale jitter).
// With sx::cuda::set_cudnn_benchmark(true) (`--cudnn-benchmark`), we instead allocate a workspace
// for the largest candidate (capped) from the caching allocator and let cudnnFind*AlgorithmEx
// time them on our own buffers (so cuDNN allocates nothing itself); that synchronises and takes
// seconds per shape, and pays off only when shapes repeat. Either way the choice and its
// workspace size are cached; later calls of the same key go straight to the convolution.
// Alignment is part of the key (as in PyTorch): some algorithms need 16-byte aligned buffers.
//
// Precision: float32 convolutions use TF32 tensor cores only when sx::cuda::allow_tf32() (else
// CUDNN_FMA_MATH keeps full float32); float64 is supported by cuDNN's double algorithms.
// Every call runs on the device's stream (the cuDNN handle is bound to it).
#include <cudnn.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "kernels/conv2d/conv2d.h"
#include "kernels/conv2d/conv2d_algo.h"
#include "tensor/cuda_context.h"

namespace sx::kernels::cuda {

namespace {

constexpr size_t kMaxWorkspace = size_t(1) << 30;  // 1 GiB cap for any one algorithm

cudnnDataType_t cudnn_dtype(DType t) {
  if (t == DType::Float32) return CUDNN_DATA_FLOAT;
  if (t == DType::Float64) return CUDNN_DATA_DOUBLE;
  SX_THROW(ValueError, "conv2d (CUDA): expected float32 or float64, got ", dtype_name(t));
}

struct TensorDesc {
  cudnnTensorDescriptor_t d{};
  TensorDesc(DType t, int64_t n, int64_t c, int64_t h, int64_t w) {
    SX_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
    SX_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, cudnn_dtype(t), (int)n, (int)c, (int)h, (int)w));
  }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
  TensorDesc(const TensorDesc&) = delete;
};
struct FilterDesc {
  cudnnFilterDescriptor_t d{};
  FilterDesc(DType t, const Shape& w) {
    SX_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d));
    SX_CUDNN_CHECK(cudnnSetFilter4dDescriptor(d, cudnn_dtype(t), CUDNN_TENSOR_NCHW, (int)w[0], (int)w[1],
                                              (int)w[2], (int)w[3]));
  }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d); }
  FilterDesc(const FilterDesc&) = delete;
};
struct ConvDesc {
  cudnnConvolutionDescriptor_t d{};
  ConvDesc(DType t, const Conv2dParams& p) {
    SX_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d));
    SX_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d, (int)p.pad_h, (int)p.pad_w, (int)p.stride_h, (int)p.stride_w,
                                                   (int)p.dil_h, (int)p.dil_w, CUDNN_CROSS_CORRELATION,
                                                   cudnn_dtype(t)));
    SX_CUDNN_CHECK(cudnnSetConvolutionGroupCount(d, (int)p.groups));
    cudnnMathType_t math = CUDNN_FMA_MATH;
    if (t == DType::Float32 && sx::cuda::allow_tf32()) math = CUDNN_DEFAULT_MATH;
    SX_CUDNN_CHECK(cudnnSetConvolutionMathType(d, math));
  }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d); }
  ConvDesc(const ConvDesc&) = delete;
};

enum Dir { kFwd = 0, kBwdData = 1, kBwdFilter = 2 };
using Key = std::tuple<int, int, int, Shape, Shape, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool,
                       int, bool>;
struct Choice {
  int algo = 0;
  size_t workspace = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

std::mutex g_mu;
std::map<Key, Choice>& cache() {
  static std::map<Key, Choice> m;
  return m;
}

using conv_algo::common_alignment;

Key make_key(Dir dir, const Tensor& ref, const Shape& x, const Shape& w, const Conv2dParams& p, int align) {
  return Key(dir, ref.device().index, (int)ref.dtype(), x, w, p.stride_h, p.stride_w, p.pad_h, p.pad_w, p.dil_h,
             p.dil_w, p.groups, sx::cuda::allow_tf32(), align, sx::cuda::cudnn_benchmark());
}

template <class Perf>
Choice pick(const std::vector<Perf>& found, int n, const char* what) {
  for (int i = 0; i < n; ++i)
    if (found[i].status == CUDNN_STATUS_SUCCESS) return Choice{(int)found[i].algo, found[i].memory, found[i].mathType};
  SX_THROW(CudaError, "conv2d (CUDA): cuDNN found no usable ", what, " algorithm");
}

// Largest workspace among the heuristic candidates that work, capped.
template <class Perf>
size_t max_workspace(const std::vector<Perf>& cands, int n) {
  size_t ws = 0;
  for (int i = 0; i < n; ++i)
    if (cands[i].status == CUDNN_STATUS_SUCCESS && cands[i].memory <= kMaxWorkspace) ws = std::max(ws, cands[i].memory);
  return ws;
}

Tensor workspace_tensor(size_t bytes, Device dev) {
  return Tensor::empty({static_cast<int64_t>(std::max<size_t>(bytes, 1))}, DType::UInt8, dev);
}

struct Alpha {
  float f1 = 1.f, f0 = 0.f;
  double d1 = 1.0, d0 = 0.0;
  bool dbl;
  explicit Alpha(DType t) : dbl(t == DType::Float64) {}
  const void* one() const { return dbl ? static_cast<const void*>(&d1) : static_cast<const void*>(&f1); }
  const void* zero() const { return dbl ? static_cast<const void*>(&d0) : static_cast<const void*>(&f0); }
};


// The algorithm for one (direction, shapes) key: from the cache, or chosen once per key and cached:
// cuDNN's first heuristic candidate that fits the workspace cap, or (benchmark mode) the fastest
// candidate of a timed search whose workspace the heuristic list bounds.
template <class Perf, class GetFn, class FindFn>
Choice choose_algo(const Key& key, int count, const char* what, Device dev, GetFn get, FindFn find) {
  {
    std::lock_guard<std::mutex> lk(g_mu);
    auto it = cache().find(key);
    if (it != cache().end()) return it->second;
  }
  int n = 0;
  std::vector<Perf> cands(count);
  get(count, &n, cands.data());
  if (!sx::cuda::cudnn_benchmark()) {
    const int i = conv_algo::first_fitting(cands.data(), n, kMaxWorkspace,
                                           [](const Perf& c) { return c.status == CUDNN_STATUS_SUCCESS; });
    if (i < 0) SX_THROW(CudaError, "conv2d (CUDA): cuDNN's heuristics offered no usable ", what, " algorithm");
    const Choice ch{(int)cands[i].algo, cands[i].memory, cands[i].mathType};
    std::lock_guard<std::mutex> lk(g_mu);
    cache()[key] = ch;
    return ch;
  }
  Tensor ws = workspace_tensor(max_workspace(cands, n), dev);
  std::vector<Perf> found(count);
  find(count, &n, found.data(), ws);
  Choice ch = pick(found, n, what);
  std::lock_guard<std::mutex> lk(g_mu);
  cache()[key] = ch;
  return ch;
}

}  // namespace

Tensor conv2d_forward(const Tensor& x_, const Tensor& w_, const Tensor& b_, const Conv2dParams& p) {
  const Device dev = x_.device();
  sx::cuda::set_device(dev.index);
  Tensor x = x_.contiguous(), w = w_.contiguous();
  Shape ys = conv2d_output_shape(x.shape(), w.shape(), p);
  Tensor y = Tensor::empty(ys, x.dtype(), dev);
  cudnnHandle_t h = sx::cuda::cudnn_handle(dev.index);
  TensorDesc xd(x.dtype(), x.size(0), x.size(1), x.size(2), x.size(3));
  TensorDesc yd(x.dtype(), ys[0], ys[1], ys[2], ys[3]);
  FilterDesc wd(x.dtype(), w.shape());
  ConvDesc cd(x.dtype(), p);
  Alpha a(x.dtype());

  const Choice ch = choose_algo<cudnnConvolutionFwdAlgoPerf_t>(
      make_key(kFwd, x, x.shape(), w.shape(), p, common_alignment({x.data_ptr(), w.data_ptr(), y.data_ptr()})), CUDNN_CONVOLUTION_FWD_ALGO_COUNT, "forward", dev,
      [&](int cap, int* n, cudnnConvolutionFwdAlgoPerf_t* c) { SX_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, xd.d, wd.d, cd.d, yd.d, cap, n, c)); },
      [&](int cap, int* n, cudnnConvolutionFwdAlgoPerf_t* f, const Tensor& ws) {
        SX_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, xd.d, x.data_ptr(), wd.d, w.data_ptr(), cd.d, yd.d, y.data_ptr(), cap, n, f, ws.data_ptr(), ws.numel()));
      });
  SX_CUDNN_CHECK(cudnnSetConvolutionMathType(cd.d, ch.math));
  Tensor ws = workspace_tensor(ch.workspace, dev);
  SX_CUDNN_CHECK(cudnnConvolutionForward(h, a.one(), xd.d, x.data_ptr(), wd.d, w.data_ptr(), cd.d,
                                         (cudnnConvolutionFwdAlgo_t)ch.algo, ws.data_ptr(), ch.workspace, a.zero(),
                                         yd.d, y.data_ptr()));
  if (b_.defined()) {
    Tensor b = b_.contiguous();
    TensorDesc bd(x.dtype(), 1, ys[1], 1, 1);
    SX_CUDNN_CHECK(cudnnAddTensor(h, a.one(), bd.d, b.data_ptr(), a.one(), yd.d, y.data_ptr()));
  }
  return y;
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& w_, const Shape& input_shape,
                             const Conv2dParams& p) {
  const Device dev = grad_out.device();
  sx::cuda::set_device(dev.index);
  Tensor dy = grad_out.contiguous(), w = w_.contiguous();
  Tensor dx = Tensor::empty(input_shape, dy.dtype(), dev);
  cudnnHandle_t h = sx::cuda::cudnn_handle(dev.index);
  TensorDesc xd(dy.dtype(), input_shape[0], input_shape[1], input_shape[2], input_shape[3]);
  TensorDesc yd(dy.dtype(), dy.size(0), dy.size(1), dy.size(2), dy.size(3));
  FilterDesc wd(dy.dtype(), w.shape());
  ConvDesc cd(dy.dtype(), p);
  Alpha a(dy.dtype());

  const Choice ch = choose_algo<cudnnConvolutionBwdDataAlgoPerf_t>(
      make_key(kBwdData, dy, input_shape, w.shape(), p, common_alignment({dy.data_ptr(), w.data_ptr(), dx.data_ptr()})), CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, "backward-data", dev,
      [&](int cap, int* n, cudnnConvolutionBwdDataAlgoPerf_t* c) { SX_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, wd.d, yd.d, cd.d, xd.d, cap, n, c)); },
      [&](int cap, int* n, cudnnConvolutionBwdDataAlgoPerf_t* f, const Tensor& ws) {
        SX_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, wd.d, w.data_ptr(), yd.d, dy.data_ptr(), cd.d, xd.d, dx.data_ptr(), cap, n, f, ws.data_ptr(), ws.numel()));
      });
  SX_CUDNN_CHECK(cudnnSetConvolutionMathType(cd.d, ch.math));
  Tensor ws = workspace_tensor(ch.workspace, dev);
  SX_CUDNN_CHECK(cudnnConvolutionBackwardData(h, a.one(), wd.d, w.data_ptr(), yd.d, dy.data_ptr(), cd.d,
                                              (cudnnConvolutionBwdDataAlgo_t)ch.algo, ws.data_ptr(), ch.workspace,
                                              a.zero(), xd.d, dx.data_ptr()));
  return dx;
}

Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x_, const Shape& weight_shape,
                              const Conv2dParams& p) {
  const Device dev = grad_out.device();
  sx::cuda::set_device(dev.index);
  Tensor dy = grad_out.contiguous(), x = x_.contiguous();
  Tensor dw = Tensor::empty(weight_shape, dy.dtype(), dev);
  cudnnHandle_t h = sx::cuda::cudnn_handle(dev.index);
  TensorDesc xd(dy.dtype(), x.size(0), x.size(1), x.size(2), x.size(3));
  TensorDesc yd(dy.dtype(), dy.size(0), dy.size(1), dy.size(2), dy.size(3));
  FilterDesc wd(dy.dtype(), weight_shape);
  ConvDesc cd(dy.dtype(), p);
  Alpha a(dy.dtype());

  const Choice ch = choose_algo<cudnnConvolutionBwdFilterAlgoPerf_t>(
      make_key(kBwdFilter, dy, x.shape(), weight_shape, p, common_alignment({dy.data_ptr(), x.data_ptr(), dw.data_ptr()})), CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, "backward-filter", dev,
      [&](int cap, int* n, cudnnConvolutionBwdFilterAlgoPerf_t* c) { SX_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, xd.d, yd.d, cd.d, wd.d, cap, n, c)); },
      [&](int cap, int* n, cudnnConvolutionBwdFilterAlgoPerf_t* f, const Tensor& ws) {
        SX_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, xd.d, x.data_ptr(), yd.d, dy.data_ptr(), cd.d, wd.d, dw.data_ptr(), cap, n, f, ws.data_ptr(), ws.numel()));
      });
  SX_CUDNN_CHECK(cudnnSetConvolutionMathType(cd.d, ch.math));
  Tensor ws = workspace_tensor(ch.workspace, dev);
  SX_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, a.one(), xd.d, x.data_ptr(), yd.d, dy.data_ptr(), cd.d,
                                                (cudnnConvolutionBwdFilterAlgo_t)ch.algo, ws.data_ptr(), ch.workspace,
                                                a.zero(), wd.d, dw.data_ptr()));
  return dw;
}

Tensor conv2d_backward_bias(const Tensor& grad_out) {
  const Device dev = grad_out.device();
  sx::cuda::set_device(dev.index);
  Tensor dy = grad_out.contiguous();
  Tensor db = Tensor::empty({dy.size(1)}, dy.dtype(), dev);
  cudnnHandle_t h = sx::cuda::cudnn_handle(dev.index);
  TensorDesc yd(dy.dtype(), dy.size(0), dy.size(1), dy.size(2), dy.size(3));
  TensorDesc bd(dy.dtype(), 1, dy.size(1), 1, 1);
  Alpha a(dy.dtype());
  SX_CUDNN_CHECK(cudnnConvolutionBackwardBias(h, a.one(), yd.d, dy.data_ptr(), a.zero(), bd.d, db.data_ptr()));
  return db;
}

}  // namespace sx::kernels::cuda

namespace sx::kernels {
const Conv2dBackend Conv2dBackend::cuda = {
    cuda::conv2d_forward,
    cuda::conv2d_backward_input,
    cuda::conv2d_backward_weight,
    cuda::conv2d_backward_bias};
}  // namespace sx::kernels
