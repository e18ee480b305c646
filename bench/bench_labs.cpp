// The kernel labs (kernels/labs, docs/labs.md): every version of NMS, RoIAlign (forward; backward's
// two product paths too) and sigmoid focal loss (forward + backward), at a few sizes, CPU only.
//
// Names: Labs/<op>/<version>/<size>, e.g. Labs/nms/v2_sort_sweep/10000. scripts/lab_table.py
// turns the JSON output into the Markdown tables of docs/labs.md (time and speed-up over v1).
//   nms               : boxes as bench_detection's (1024 px image, 16..128 px boxes, uniform
//                       scores), IoU 0.5; N = 1k, 10k, and 50k for the versions whose max_n allows
//                       it (v1..v3 are quadratic in time or memory).
//   roi_align         : 2 x 256 x 64 x 64 feature map (stride 16 of a 1024 px image), K RoIs with
//                       sizes log-uniform in [32, 512) px, 7 x 7 bins, sampling_ratio 2; K = 128, 512.
//   roi_align_backward: the same shapes, the product's Naive (v1) and Fast (1 thread, threads).
//   focal_loss        : N anchors x 7 classes, logits uniform in [-4, 4), targets uniform in
//                       [-1, 7] (ignored, positive, background), reduction Sum / 100; N = 100k, 1M.
// Wall time (UseRealTime: the threaded versions must not be credited with CPU time) and the
// process CPU time (all threads: the work done, the steadier figure on a loaded machine).
// Run:  ./bench_labs --benchmark_repetitions=3 --benchmark_out=labs.json --benchmark_out_format=json
//       python3 scripts/lab_table.py labs.json
#include <benchmark/benchmark.h>

#include <cmath>
#include <string>
#include <vector>

#include "bench/bench_data.h"
#include "kernels/labs/focal_loss_lab.h"
#include "kernels/labs/nms_lab.h"
#include "kernels/labs/one_thread.h"
#include "kernels/labs/roi_align_lab.h"
#include "tensor/random.h"
#include "tests/ops/op_naive_twins.h"

namespace sx {
namespace {

using namespace sx::kernels;
using bench::make_boxes;
using bench::make_uniform;

// ---- NMS ------------------------------------------------------------------------------------------
void BM_Nms(benchmark::State& state, labs::NmsVersion v) {
  const int64_t n = state.range(0);
  const Tensor b = make_boxes(n, 1), s = make_uniform({n}, 2);
  int64_t kept = 0;
  for (auto _ : state) {
    Tensor k = v.fn(b, s, 0.5);
    kept = k.numel();
    benchmark::DoNotOptimize(k.data_ptr());
  }
  state.counters["kept"] = static_cast<double>(kept);
  state.SetItemsProcessed(state.iterations() * n);
}

// ---- RoIAlign -------------------------------------------------------------------------------------
struct RoiData {
  Tensor x, rois, grad;
  RoiAlignParams p;
};
RoiData make_roi_data(int64_t K) {
  RoiData d;
  const int64_t N = 2, C = 256, S = 64;
  d.x = make_uniform({N, C, S, S}, 10, 2.0, -1.0);
  Generator g(99);
  d.rois = Tensor::empty({K, 5});
  float* p = d.rois.data<float>();
  for (int64_t k = 0; k < K; ++k) {
    const double size = 32 * std::pow(16.0, g.uniform());
    const double ar = std::pow(2.0, g.uniform() * 2 - 1);
    const double w = std::min(1024.0, size * std::sqrt(ar)), h = std::min(1024.0, size / std::sqrt(ar));
    const double x = g.uniform() * (1024 - w), y = g.uniform() * (1024 - h);
    p[5 * k] = float(k % N);
    p[5 * k + 1] = float(x);
    p[5 * k + 2] = float(y);
    p[5 * k + 3] = float(x + w);
    p[5 * k + 4] = float(y + h);
  }
  d.p.pooled_h = d.p.pooled_w = 7;
  d.p.spatial_scale = 1.0 / 16;
  d.p.sampling_ratio = 2;
  d.grad = make_uniform({K, C, 7, 7}, 7, 2.0, -1.0);
  return d;
}

void BM_RoiAlign(benchmark::State& state, labs::RoiAlignVersion v) {
  const RoiData d = make_roi_data(state.range(0));
  for (auto _ : state) {
    Tensor y = v.fn(d.x, d.rois, d.p);
    benchmark::DoNotOptimize(y.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

// Backward: the product's two paths (no lab code), threads = 1 for "fast_1thread".
void BM_RoiAlignBackward(benchmark::State& state, RoiAlignAlgo algo, bool one_thread) {
  const RoiData d = make_roi_data(state.range(0));
  for (auto _ : state) {
    Tensor gi;
    if (one_thread) {
      labs::OneThread one;
      gi = roi_align_backward(d.grad, d.rois, d.x.shape(), d.p, false, algo);
    } else {
      gi = roi_align_backward(d.grad, d.rois, d.x.shape(), d.p, false, algo);
    }
    benchmark::DoNotOptimize(gi.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

// ---- focal loss -----------------------------------------------------------------------------------
using FocalFn = labs::FocalResult (*)(const Tensor&, const Tensor&, const FocalLossParams&);

void BM_Focal(benchmark::State& state, FocalFn fn) {
  const int64_t N = state.range(0), C = 7;
  const Tensor x = make_uniform({N, C}, 4, 8.0, -4.0);
  Tensor t = Tensor::empty({N}, DType::Int64);
  Generator g(5);
  for (int64_t i = 0; i < N; ++i) t.data<int64_t>()[i] = g.randint(-1, C + 1);
  FocalLossParams p;
  p.reduction = FocalReduction::Sum;
  p.normalizer = 100.0;
  for (auto _ : state) {
    labs::FocalResult r = fn(x, t, p);
    benchmark::DoNotOptimize(r.grad.data_ptr());
  }
  state.SetItemsProcessed(state.iterations() * N * C);
}

labs::FocalResult focal_v1(const Tensor& x, const Tensor& t, const FocalLossParams& p) {
  return test::twins::focal_composed_step(x, t, p);
}

benchmark::internal::Benchmark* common(benchmark::internal::Benchmark* b) {
  return b->MeasureProcessCPUTime()->UseRealTime()->Unit(benchmark::kMillisecond);
}

int register_all() {
  for (const labs::NmsVersion& v : labs::nms_versions())
    for (int64_t n : {1000, 10000, 50000})
      if (n <= v.max_n)
        common(benchmark::RegisterBenchmark((std::string("Labs/nms/") + v.name).c_str(), BM_Nms, v))->Arg(n);
  for (const labs::RoiAlignVersion& v : labs::roi_align_versions())
    common(benchmark::RegisterBenchmark((std::string("Labs/roi_align/") + v.name).c_str(), BM_RoiAlign, v))
        ->Arg(128)
        ->Arg(512);
  struct Bwd {
    const char* name;
    RoiAlignAlgo algo;
    bool one;
  };
  for (const Bwd& b : {Bwd{"v1_per_output", RoiAlignAlgo::Naive, true},
                       Bwd{"v3_fast_1thread", RoiAlignAlgo::Fast, true}, Bwd{"v4_fast", RoiAlignAlgo::Fast, false}})
    common(benchmark::RegisterBenchmark((std::string("Labs/roi_align_backward/") + b.name).c_str(),
                                        BM_RoiAlignBackward, b.algo, b.one))
        ->Arg(128)
        ->Arg(512);
  common(benchmark::RegisterBenchmark("Labs/focal_loss/v1_composed", BM_Focal, focal_v1))->Arg(100000)->Arg(1000000);
  for (const labs::FocalVersion& v : labs::focal_versions())
    common(benchmark::RegisterBenchmark((std::string("Labs/focal_loss/") + v.name).c_str(), BM_Focal, v.fn))
        ->Arg(100000)
        ->Arg(1000000);
  return 0;
}
const int kRegistered = register_all();

}  // namespace
}  // namespace sx

BENCHMARK_MAIN();
