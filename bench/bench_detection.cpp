// Detection kernels: RoIAlign (multi-level FPN), NMS, sigmoid focal loss, IoU matrix; CPU and CUDA;
// naive vs fast variants where the contrast teaches something.
//
// Sizes (issue 5): RoIAlign 512 RoIs x 256 channels x 7x7 from a 4-level FPN of a 2-image batch at
// 1024 px (levels 256^2 .. 32^2, sampling_ratio 2), forward and backward; NMS on 1k, 10k, 50k boxes
// (single class and 7 classes, IoU 0.5); focal loss on 100k anchors x 7 classes, forward+backward;
// IoU matrix 1k x 10k.
// Counters: items_per_second (RoIs, boxes, logits, IoU pairs) and bytes_per_second (memory the
// op must touch at least: inputs read once + outputs written once; for RoIAlign the bilinear taps
// 4 values per sample, most of which hit the cache, so its GB/s is an upper-bound "tap rate").
// CPU rows report wall time and the process CPU time (all threads): on a shared, loaded machine
// the CPU time is the steadier figure. CUDA timings use cudaEvents on the current stream and
// manual time.
// Run: ./bench_detection --benchmark_filter=CPU  (or CUDA), --benchmark_format=json for tables.
// scripts/bench_torchvision_ops.py times torchvision's CPU ops on the same sizes and distributions.
#include <benchmark/benchmark.h>

#include <cmath>
#include <vector>

#include "kernels/box_ops/box_ops.h"
#include "kernels/focal_loss/focal_loss.h"
#include "kernels/nms/nms.h"
#include "kernels/roi_align/roi_align.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "bench/bench_data.h"
#include "bench/bench_timing.h"
#ifdef SX_WITH_CUDA
#include <cuda_runtime.h>

#include "tensor/cuda_context.h"
#endif

namespace {

using namespace sx;
using namespace sx::kernels;

// ---- data (same distributions as scripts/bench_torchvision_ops.py) ---------------------------
using sx::bench::make_boxes;  // bench/bench_data.h
using sx::bench::make_uniform;

// RoIs for the FPN benchmark: 256 per image, sizes log-uniform in [32, 512) so all 4 levels are
// used, clipped to the 1024 x 1024 image.
struct FpnData {
  std::vector<Tensor> feats;
  Tensor rois, levels, grad;
  std::vector<double> scales = {0.25, 0.125, 0.0625, 0.03125};
  RoiAlignParams p;
};
FpnData make_fpn(Device dev) {
  FpnData d;
  const int64_t N = 2, C = 256, K = 512;
  for (int l = 0; l < 4; ++l) {
    const int64_t s = 256 >> l;
    d.feats.push_back(make_uniform({N, C, s, s}, 10 + l, 2.0, -1.0).to(dev));
  }
  Generator g(99);
  Tensor r = Tensor::empty({K, 5});
  float* p = r.data<float>();
  for (int64_t k = 0; k < K; ++k) {
    const double size = 32 * std::pow(16.0, g.uniform());
    const double ar = std::pow(2.0, g.uniform() * 2 - 1);
    const double w = std::min(1024.0, size * std::sqrt(ar)), h = std::min(1024.0, size / std::sqrt(ar));
    const double x = g.uniform() * (1024 - w), y = g.uniform() * (1024 - h);
    p[5 * k] = float(k / 256);
    p[5 * k + 1] = float(x);
    p[5 * k + 2] = float(y);
    p[5 * k + 3] = float(x + w);
    p[5 * k + 4] = float(y + h);
  }
  d.rois = r.to(dev);
  d.levels = fpn_levels(d.rois, 2, 5);
  d.p.pooled_h = d.p.pooled_w = 7;
  d.p.sampling_ratio = 2;
  d.grad = make_uniform({K, C, 7, 7}, 7, 2.0, -1.0).to(dev);
  return d;
}

// ---- timing helpers -----------------------------------------------------------------------
using sx::bench::run_timed;  // bench/bench_timing.h

bool skip_device(benchmark::State& state, Device dev) {
  if (dev.is_cuda() && !sx::cuda_available()) {
    state.SkipWithError("no CUDA GPU");
    return true;
  }
  return false;
}

// ---- RoIAlign -------------------------------------------------------------------------------
void BM_RoiAlignFpnForward(benchmark::State& state, Device dev, RoiAlignAlgo algo) {
  if (skip_device(state, dev)) return;
  FpnData d = make_fpn(dev);
  run_timed(state, dev, [&] {
    Tensor y = multilevel_roi_align_forward(d.feats, d.rois, d.levels, d.scales, d.p, algo);
    benchmark::DoNotOptimize(y.data_ptr());
  });
  const int64_t K = 512, C = 256;
  state.SetItemsProcessed(state.iterations() * K);
  state.SetBytesProcessed(state.iterations() * K * C * 49 * (4 * 4 * 4 + 4));  // 4 samples x 4 taps + out
}

void BM_RoiAlignFpnBackward(benchmark::State& state, Device dev, RoiAlignAlgo algo, bool det) {
  if (skip_device(state, dev)) return;
  FpnData d = make_fpn(dev);
  std::vector<Shape> shapes;
  for (auto& f : d.feats) shapes.push_back(f.shape());
  run_timed(state, dev, [&] {
    auto g = multilevel_roi_align_backward(d.grad, d.rois, d.levels, shapes, d.scales, d.p, det, algo);
    benchmark::DoNotOptimize(g[0].data_ptr());
  });
  const int64_t K = 512, C = 256;
  state.SetItemsProcessed(state.iterations() * K);
  int64_t feat_bytes = 0;
  for (auto& s : shapes) feat_bytes += shape_numel(s) * 4;
  state.SetBytesProcessed(state.iterations() * (K * C * 49 * (4 * 4 * 4 + 4) + feat_bytes));
}

// ---- NMS ------------------------------------------------------------------------------------
void BM_Nms(benchmark::State& state, Device dev, NmsAlgo algo, int classes) {
  if (skip_device(state, dev)) return;
  const int64_t n = state.range(0);
  Tensor b = make_boxes(n, 1).to(dev);
  Tensor s = make_uniform({n}, 2).to(dev);
  Tensor idx;
  if (classes > 1) {
    Tensor i = Tensor::empty({n}, DType::Int64);
    Generator g(3);
    for (int64_t k = 0; k < n; ++k) i.data<int64_t>()[k] = g.randint(0, classes);
    idx = i.to(dev);
  }
  NmsOptions o;
  o.iou_threshold = 0.5;
  o.algo = algo;
  int64_t kept = 0;
  run_timed(state, dev, [&] {
    // nms_padded: on CUDA (Fast) nothing waits for the GPU inside the timed region except the event.
    auto r = nms_padded(b, s, idx, o);
    benchmark::DoNotOptimize(r.first.data_ptr());
  });
  kept = nms_with_options(b, s, idx, o).numel();
  state.counters["kept"] = static_cast<double>(kept);
  state.SetItemsProcessed(state.iterations() * n);
  state.SetBytesProcessed(state.iterations() * n * (16 + 4 + 8));
}

// ---- focal loss -------------------------------------------------------------------------------
void BM_FocalLoss(benchmark::State& state, Device dev) {
  if (skip_device(state, dev)) return;
  const int64_t N = 100000, C = 7;
  Tensor x = make_uniform({N, C}, 4, 8.0, -4.0).to(dev);
  Tensor t = Tensor::empty({N}, DType::Int64);
  Generator g(5);
  for (int64_t i = 0; i < N; ++i) t.data<int64_t>()[i] = g.randint(-1, C + 1);
  t = t.to(dev);
  FocalLossParams p;
  p.reduction = FocalReduction::Sum;
  p.normalizer = 100.0;
  Tensor one = Tensor::scalar(1.0, DType::Float32, dev);
  run_timed(state, dev, [&] {
    Tensor l = sigmoid_focal_loss_forward(x, t, p);
    Tensor gx = sigmoid_focal_loss_backward(one, x, t, p);
    benchmark::DoNotOptimize(gx.data_ptr());
  });
  state.SetItemsProcessed(state.iterations() * N * C);
  state.SetBytesProcessed(state.iterations() * (2 * N * C * 4 + N * C * 4 + 2 * N * 8));
}

// ---- IoU matrix -------------------------------------------------------------------------------
void BM_IouMatrix(benchmark::State& state, Device dev) {
  if (skip_device(state, dev)) return;
  Tensor a = make_boxes(1000, 6).to(dev), b = make_boxes(10000, 7).to(dev);
  run_timed(state, dev, [&] {
    Tensor m = box_iou(a, b);
    benchmark::DoNotOptimize(m.data_ptr());
  });
  state.SetItemsProcessed(state.iterations() * 1000 * 10000);
  state.SetBytesProcessed(state.iterations() * (1000 * 10000 * 4 + 11000 * 16));
}

const Device kCpu = Device::cpu();
const Device kCuda = Device::cuda(0);

BENCHMARK_CAPTURE(BM_RoiAlignFpnForward, CPU_naive, kCpu, RoiAlignAlgo::Naive)->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_RoiAlignFpnForward, CPU_fast, kCpu, RoiAlignAlgo::Fast)->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_RoiAlignFpnBackward, CPU_naive, kCpu, RoiAlignAlgo::Naive, false)->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_RoiAlignFpnBackward, CPU_fast, kCpu, RoiAlignAlgo::Fast, false)->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Nms, CPU_naive_1class, kCpu, NmsAlgo::Naive, 1)->Arg(1000)->Arg(10000)->Arg(50000)->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Nms, CPU_fast_1class, kCpu, NmsAlgo::Fast, 1)->Arg(1000)->Arg(10000)->Arg(50000)->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Nms, CPU_naive_7class, kCpu, NmsAlgo::Naive, 7)->Arg(1000)->Arg(10000)->Arg(50000)->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Nms, CPU_fast_7class, kCpu, NmsAlgo::Fast, 7)->Arg(1000)->Arg(10000)->Arg(50000)->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_FocalLoss, CPU, kCpu)->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_IouMatrix, CPU, kCpu)->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kMillisecond);

#ifdef SX_WITH_CUDA
BENCHMARK_CAPTURE(BM_RoiAlignFpnForward, CUDA, kCuda, RoiAlignAlgo::Fast)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_RoiAlignFpnBackward, CUDA_atomic, kCuda, RoiAlignAlgo::Fast, false)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_RoiAlignFpnBackward, CUDA_deterministic, kCuda, RoiAlignAlgo::Fast, true)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Nms, CUDA_hostloop_1class, kCuda, NmsAlgo::Naive, 1)->Arg(1000)->Arg(10000)->Arg(50000)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Nms, CUDA_device_1class, kCuda, NmsAlgo::Fast, 1)->Arg(1000)->Arg(10000)->Arg(50000)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Nms, CUDA_device_7class, kCuda, NmsAlgo::Fast, 7)->Arg(1000)->Arg(10000)->Arg(50000)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_FocalLoss, CUDA, kCuda)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_IouMatrix, CUDA, kCuda)->UseManualTime()->Unit(benchmark::kMillisecond);
#endif

}  // namespace

BENCHMARK_MAIN();
