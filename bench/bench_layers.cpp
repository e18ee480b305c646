// Layer benchmarks: Conv2d forward / backward-data / backward-filter on ResNet shapes (FLOP/s
// counters; on the CPU both the default algorithm, Conv2d_CPU, and the im2col + GEMM reference,
// Conv2d_CPU_im2col), and a whole ResNet-18/50 or DenseNet-121 training step (forward,
// cross-entropy, backward, SGD update) in images/s, on the CPU and, in CUDA builds with a GPU, on
// CUDA (timed with cudaEvents, manual time). The CPU training steps also report the process's peak
// resident memory so far (counter peak_rss_MiB, getrusage; run one step benchmark per process to
// read it as that model's peak: scripts/bench_compare.sh does).
//
// CPU runs: OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 ./bench_layers --benchmark_filter=CPU
// The training steps report the median step (counter step_ms_median) besides the mean time;
// SX_BENCH_STEPS=N times exactly N steps after two warm-up steps. scripts/bench_compare.sh runs
// them alternately with PyTorch's.
// CUDA runs use TF32 for float32 convolutions/matmuls (sx::cuda::set_allow_tf32(true)), the
// precision PyTorch's cuDNN convolutions use by default; pass --no_tf32 first to measure full FP32.
// The PyTorch side of the comparison: scripts/bench_torch_resnet.py (same shapes, same step).
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/bench_timing.h"
#include "kernels/conv2d/conv2d.h"
#include "layers/loss.h"
#include "models/densenet.h"
#include "models/resnet.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#ifdef SX_WITH_CUDA
#include <cuda_runtime.h>

#include "tensor/cuda_context.h"
#endif

namespace sx {
namespace {

using kernels::Conv2dParams;

struct ConvShape {
  const char* name;
  int64_t N, C, H, K, R, stride, pad;
};

// ResNet-18/50 convolutions at 224 px, batch 8.
const ConvShape kShapes[] = {
    {"stem_7x7_3_64_224", 8, 3, 224, 64, 7, 2, 3},   {"l1_3x3_64_56", 8, 64, 56, 64, 3, 1, 1},
    {"l2_3x3_128_28", 8, 128, 28, 128, 3, 1, 1},     {"l3_3x3_256_14", 8, 256, 14, 256, 3, 1, 1},
    {"l4_3x3_512_7", 8, 512, 7, 512, 3, 1, 1},       {"l2_down_3x3_64_128_s2", 8, 64, 56, 128, 3, 2, 1},
    {"b_1x1_256_64_56", 8, 256, 56, 64, 1, 1, 0},    {"b_1x1_64_256_56", 8, 64, 56, 256, 1, 1, 0},
    {"ds_1x1_256_512_s2", 8, 256, 56, 512, 1, 2, 0},
};

Tensor randn_cpu(const Shape& s, uint64_t seed) {
  Generator g(seed);
  return randn(s, g);
}

double conv_flops(const ConvShape& s) {
  const int64_t P = (s.H + 2 * s.pad - s.R) / s.stride + 1;
  return 2.0 * s.N * s.K * P * P * s.C * s.R * s.R;
}

enum Dir { kFwd, kBwdData, kBwdFilter };

void sync_device(Device d) {
#ifdef SX_WITH_CUDA
  if (d.is_cuda()) sx::cuda::synchronize(d.index);
#else
  (void)d;
#endif
}

// CPU algorithm of a benchmark: the default choice (oneDNN for float32), or the
// im2col + GEMM reference forced, to show the difference.
enum class CpuAlgo { Default, Im2col };

void BM_Conv(benchmark::State& st, ConvShape s, Dir dir, Device dev, CpuAlgo algo) {
  if (dev.is_cuda() && !cuda_available()) {
    st.SkipWithError("no CUDA GPU");
    return;
  }
  struct AlgoScope {
    kernels::cpu::CpuConvAlgo saved = kernels::cpu::cpu_conv_algo();
    ~AlgoScope() { kernels::cpu::cpu_conv_algo() = saved; }
  } restore;
  if (algo == CpuAlgo::Im2col) kernels::cpu::cpu_conv_algo() = kernels::cpu::CpuConvAlgo::Im2col;
  Conv2dParams p{s.stride, s.stride, s.pad, s.pad, 1, 1, 1};
  Tensor x = randn_cpu({s.N, s.C, s.H, s.H}, 1).to(dev);
  Tensor w = mul(randn_cpu({s.K, s.C, s.R, s.R}, 2), 0.05).to(dev);
  Tensor y = kernels::conv2d_forward(x, w, Tensor(), p);
  Tensor g = randn_cpu(y.shape(), 3).to(dev);
  auto run = [&] {
    if (dir == kFwd) benchmark::DoNotOptimize(kernels::conv2d_forward(x, w, Tensor(), p));
    if (dir == kBwdData) benchmark::DoNotOptimize(kernels::conv2d_backward_input(g, w, x.shape(), p));
    if (dir == kBwdFilter) benchmark::DoNotOptimize(kernels::conv2d_backward_weight(g, x, w.shape(), p));
  };
  bench::run_timed(st, dev, run);  // a warm-up first (cuDNN algorithm search, buffers)
  st.counters["FLOP/s"] = benchmark::Counter(conv_flops(s), benchmark::Counter::kIsIterationInvariantRate);
}

// One training step: forward, cross-entropy, backward, plain SGD update (p -= lr * grad), of a
// 1000-class model named by `arch` ("resnet18", "resnet50", "densenet121").
void BM_TrainStep(benchmark::State& st, const std::string& arch, int64_t batch, Device dev) {
  if (dev.is_cuda() && !cuda_available()) {
    st.SkipWithError("no CUDA GPU");
    return;
  }
  struct rusage ru0 {};
  getrusage(RUSAGE_SELF, &ru0);  // the peak before the model exists
  std::shared_ptr<nn::Module> model;
  if (models::is_densenet_arch(arch)) model = models::make_densenet(arch);
  else model = models::make_resnet(arch);
  nn::Module& m = *model;
  m.to(dev);
  m.train();
  Tensor x = randn_cpu({batch, 3, 224, 224}, 4).to(dev);
  Generator gy(5);
  Tensor y = randint(0, 1000, {batch}, gy).to(dev);
  auto params = m.trainable_parameters();
  auto step = [&] {
    m.zero_grad();
    Tensor loss = nn::cross_entropy(m.forward(x), y);
    loss.backward();
    NoGradGuard ng;
    for (auto& p : params) add_(p, p.grad(), -0.01);
  };
  step();  // warm-up (oneDNN primitives, allocator caches), twice like scripts/bench_torch_resnet.py
  step();
  sync_device(dev);
#ifdef SX_WITH_CUDA
  if (dev.is_cuda()) {
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    cudaStream_t stream = sx::cuda::current_stream(dev.index);
    for (auto _ : st) {
      cudaEventRecord(a, stream);
      step();
      cudaEventRecord(b, stream);
      cudaEventSynchronize(b);
      float ms = 0;
      cudaEventElapsedTime(&ms, a, b);
      st.SetIterationTime(ms / 1000.0);
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  } else
#endif
  {
    std::vector<double> ms;
    for (auto _ : st) {
      const auto t0 = std::chrono::steady_clock::now();
      step();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    // the median step, the figure scripts/bench_torch_resnet.py prints (robust to a slow step
    // when other jobs share the machine)
    std::sort(ms.begin(), ms.end());
    if (!ms.empty()) st.counters["step_ms_median"] = ms[ms.size() / 2];
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    st.counters["peak_rss_MiB"] = static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux: ru_maxrss in KiB
    st.counters["start_rss_MiB"] = static_cast<double>(ru0.ru_maxrss) / 1024.0;
  }
  st.counters["images/s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  const char* dir_name[] = {"fwd", "bwd_data", "bwd_filter"};
  for (Device dev : {Device::cpu(), Device::cuda(0)}) {
#ifndef SX_WITH_CUDA
    if (dev.is_cuda()) continue;
#endif
    const std::string dn = dev.is_cpu() ? "CPU" : "CUDA";
    for (CpuAlgo algo : {CpuAlgo::Default, CpuAlgo::Im2col}) {
      if (dev.is_cuda() && algo != CpuAlgo::Default) continue;
      const std::string prefix = "Conv2d_" + dn + (algo == CpuAlgo::Im2col ? "_im2col" : "");
      for (const auto& s : kShapes)
        for (int d = 0; d < 3; ++d) {
          auto* b = benchmark::RegisterBenchmark((prefix + "/" + dir_name[d] + "/" + s.name).c_str(), BM_Conv, s,
                                                 static_cast<Dir>(d), dev, algo);
          b->Unit(benchmark::kMillisecond)->MinTime(0.5);
          if (dev.is_cuda()) b->UseManualTime();
          else b->UseRealTime();  // wall time: the work runs on several threads
        }
    }
    // ResNet-18/50 at batch 8 on the CPU; DenseNet-121 at the VinDr-SpineXR authors' batch 32
    struct StepCase {
      const char* name;
      const char* arch;
      int64_t cpu_batch;
    };
    for (const StepCase& c : {StepCase{"ResNet18", "resnet18", 8}, StepCase{"ResNet50", "resnet50", 8},
                              StepCase{"DenseNet121", "densenet121", 32}}) {
      const int64_t batch = dev.is_cpu() ? c.cpu_batch : 64;
      auto* b = benchmark::RegisterBenchmark(
          (std::string(c.name) + "_TrainStep_" + dn + "/batch" + std::to_string(batch) + "_224px").c_str(),
          BM_TrainStep, std::string(c.arch), batch, dev);
      // SX_BENCH_STEPS=N times exactly N steps (scripts/bench_compare.sh), else at least 5 s (CPU)
      if (const char* steps = std::getenv("SX_BENCH_STEPS")) b->Iterations(std::max(1, std::atoi(steps)));
      else b->MinTime(dev.is_cpu() ? 5.0 : 2.0);
      b->Unit(benchmark::kMillisecond);
      if (dev.is_cuda()) b->UseManualTime();
      else b->UseRealTime();
    }
  }
}

}  // namespace
}  // namespace sx

int main(int argc, char** argv) {
  bool tf32 = true;
  if (argc > 1 && std::string(argv[1]) == "--no_tf32") {
    tf32 = false;
    for (int i = 1; i + 1 < argc; ++i) argv[i] = argv[i + 1];
    --argc;
  }
#ifdef SX_WITH_CUDA
  sx::cuda::set_allow_tf32(tf32);
  sx::cuda::set_cudnn_benchmark(true);  // as scripts/bench_torch_resnet.py sets cudnn.benchmark
#else
  (void)tf32;
#endif
  sx::register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
