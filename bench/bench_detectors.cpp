// Detector benchmarks: a training step (forward, losses, backward, SGD step) and inference (forward
// and post-processing) for RetinaNet, Faster R-CNN and Sparse R-CNN (100 proposals, 6 stages) with
// torchvision's default configuration
// (ResNet-50-FPN, 256 FPN channels, frozen BatchNorm, 3 trainable stages, 3-channel input,
// 7 classes), at 512 and 1024 px, batch 2 on the CPU and 4 on CUDA (CUDA builds with a GPU; TF32
// convolutions and cuDNN's timed algorithm search, the settings of scripts/bench_torch_detectors.py).
//
// Counters: images/s (rate), and the share of the step time spent in each stage, as the models
// record it (DetectionModel::set_record_stage_times): backbone (ResNet + FPN), heads (RetinaNet's
// heads / RPN + RoI heads), loss (matching, sampling, the loss terms), postprocess (decoding, NMS),
// plus what the benchmark times itself: backward and optimizer step. On CUDA the models synchronise
// the device at stage boundaries while recording, so the shares are exact there too; the `/nostages`
// CUDA cases record nothing, so their images/s has no extra synchronisation.
//
//   ./bench_detectors --benchmark_filter='CPU/512'            (the 1024 px CPU cases take minutes)
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>

#include "detector_setup.h"
#include "models/detection_model.h"
#include "models/retinanet.h"
#include "tensor/autograd.h"
#include "tensor/cuda_context.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/allocator.h"
#include "tensor/sync_stats.h"
#include "train/tasks/det_train.h"
#include "train/loop/optim.h"

#ifdef SX_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace {

using namespace sx;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void sync(Device d) {
#ifdef SX_WITH_CUDA
  if (d.is_cuda()) sx::cuda::synchronize(d.index);
#else
  (void)d;
#endif
}

using Setup = bench::DetectorSetup;

Setup make_setup(const std::string& name, int size, Device dev, bool stages) {
  Setup s = bench::make_detector_setup(name, size, dev.is_cuda() ? 4 : 2, dev);
  s.model->set_record_stage_times(stages);
  return s;
}

bool skip_cuda(benchmark::State& st, Device dev) {
  if (!dev.is_cuda()) return false;
  if (!cuda_built()) {
    st.SkipWithError("built without CUDA");
    return true;
  }
  if (!cuda_available()) {
    st.SkipWithError("no CUDA GPU");
    return true;
  }
  return false;
}

void report(benchmark::State& st, const std::map<std::string, double>& sums, double total, int64_t images) {
  st.counters["images/s"] = benchmark::Counter(static_cast<double>(images), benchmark::Counter::kIsRate);
  for (const auto& [k, v] : sums) st.counters["share_" + k] = total > 0 ? v / total : 0;
}

void BM_TrainStep(benchmark::State& st, std::string name, int size, Device dev, bool stages) {
  if (skip_cuda(st, dev)) return;
  Setup s = make_setup(name, size, dev, stages);
  s.model->train();
  optim::SgdOptions so;
  so.lr = 1e-4;  // small: the step must stay finite over the iterations
  so.momentum = 0.9;
  optim::SGD opt(s.model->trainable_parameters(), so);
  auto step = [&](std::map<std::string, double>* sums) {
    auto losses = s.model->losses(s.images, s.targets);
    Tensor total;
    for (auto& [k, l] : losses) total = total.defined() ? add(total, l) : l;
    if (!stages) {  // no waits inside the step: one at its end, for the timing
      total.backward();
      opt.step();
      opt.zero_grad();
      sync(dev);
      return;
    }
    sync(dev);
    auto t1 = Clock::now();
    total.backward();
    sync(dev);
    auto t2 = Clock::now();
    opt.step();
    opt.zero_grad();
    sync(dev);
    if (sums) {
      for (const auto& [k, v] : s.model->stage_seconds()) (*sums)[k] += v;
      (*sums)["backward"] += std::chrono::duration<double>(t2 - t1).count();
      (*sums)["optimizer"] += since(t2);
    }
  };
  step(nullptr);  // warm-up (cuDNN algorithm search, allocator)
  std::map<std::string, double> sums;
  double total = 0;
  const int64_t mallocs0 = dev.is_cuda() ? sx::cuda::allocator_stats(dev.index).num_device_mallocs : 0;
  reset_sync_stats();
  for (auto _ : st) {
    auto t = Clock::now();
    step(&sums);
    double secs = since(t);
    total += secs;
    if (dev.is_cuda()) st.SetIterationTime(secs);  // synchronised at the end of the step
  }
  report(st, sums, total, st.iterations() * s.images.batch());
  if (dev.is_cuda() && st.iterations() > 0) {
    const double it = static_cast<double>(st.iterations());
    // Steady state: new device blocks per step (target 0) and host waits inside the step, the
    // benchmark's own waits excluded. With stage timing on, the model's waits at its stage
    // boundaries are counted too: read the /nostages cases for the training loop's real count.
    st.counters["cudaMalloc_per_step"] =
        static_cast<double>(sx::cuda::allocator_stats(dev.index).num_device_mallocs - mallocs0) / it;
    st.counters["host_waits_per_step"] = static_cast<double>(sync_stats().stream_syncs) / it - (stages ? 3 : 1);
    st.counters["d2h_copies_per_step"] = static_cast<double>(sync_stats().device_to_host_copies) / it;
  }
}

void BM_Inference(benchmark::State& st, std::string name, int size, Device dev, bool stages) {
  if (skip_cuda(st, dev)) return;
  Setup s = make_setup(name, size, dev, stages);
  s.model->eval();
  NoGradGuard ng;
  s.model->detect(s.images);  // warm-up
  sync(dev);
  std::map<std::string, double> sums;
  double total = 0;
  for (auto _ : st) {
    auto t = Clock::now();
    auto d = s.model->detect(s.images);
    sync(dev);
    double secs = since(t);
    total += secs;
    for (const auto& [k, v] : s.model->stage_seconds()) sums[k] += v;
    benchmark::DoNotOptimize(d);
    if (dev.is_cuda()) st.SetIterationTime(secs);
  }
  report(st, sums, total, st.iterations() * s.images.batch());
}

int register_all() {
  for (const char* name : {"retinanet", "faster_rcnn", "sparse_rcnn"}) {
    for (int size : {512, 1024}) {
      for (Device dev : {Device::cpu(), Device::cuda(0)}) {
        for (bool stages : {true, false}) {
          if (!stages && !dev.is_cuda()) continue;  // the CPU has no synchronisation to leave out
          const std::string tag = std::string(name) + "/" + (dev.is_cuda() ? "CUDA" : "CPU") + "/" +
                                  std::to_string(size) + (stages ? "" : "/nostages");
          auto* t = benchmark::RegisterBenchmark(("TrainStep/" + tag).c_str(), BM_TrainStep, std::string(name), size,
                                                 dev, stages);
          auto* i = benchmark::RegisterBenchmark(("Inference/" + tag).c_str(), BM_Inference, std::string(name), size,
                                                 dev, stages);
          for (auto* b : {t, i}) {
            b->Unit(benchmark::kMillisecond);
            if (dev.is_cuda()) b->UseManualTime()->MinTime(1.0);
            else b->UseRealTime()->Iterations(size >= 1024 ? 1 : 3);  // rates per wall second
          }
        }
      }
    }
  }
  return 0;
}
const int kRegistered = register_all();

}  // namespace

int main(int argc, char** argv) {
#ifdef SX_WITH_CUDA
  sx::cuda::set_allow_tf32(true);       // PyTorch's default for cuDNN convolutions
  sx::cuda::set_cudnn_benchmark(true);  // fixed shapes: time the algorithms once
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
