// Peak memory of one detector training step on the CPU, one configuration per process, so the
// process's peak resident set (VmHWM in /proc/self/status) is that step's peak. The step is the one
// bench_detectors times (forward, losses, backward, SGD with momentum, zero_grad) on the setup of
// detector_setup.h; a warm-up step runs first (the optimizer's momentum buffers, oneDNN's cached
// primitives), then the measured step. scripts/memory_torch_detectors.py is torchvision's side and
// scripts/memory_compare.sh runs both, alternately, one process at a time, and prints the table.
//
//   OMP_NUM_THREADS=2 build/bench/bench_memory --model retinanet --size 1024 --batch 2
//
// Prints one line: model, size, batch, peak_rss_gb (VmHWM), rss_setup_gb (after building the model
// and the batch), host_peak_live_gb and host_peak_held_gb (the host allocator's high-water marks of
// bytes in live tensors and of bytes held from the system, live + cached; tensor/allocator.h),
// step_s (the measured step's wall time), trainable_params (to check both sides train the same).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "detector_setup.h"
#include "tensor/allocator.h"
#include "train/loop/optim.h"

namespace {

using namespace sx;

// A field of /proc/self/status in kB ("VmHWM", "VmRSS"), as GB (1e9 bytes); -1 when unreadable.
double status_gb(const std::string& field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.compare(0, field.size() + 1, field + ":") == 0) return std::atof(line.c_str() + field.size() + 1) * 1e3 / 1e9;
  return -1;
}

int usage(const char* msg) {
  std::fprintf(stderr, "bench_memory: %s\nusage: bench_memory --model retinanet|faster_rcnn --size PX --batch N\n", msg);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "retinanet";
  int size = 1024;
  int64_t batch = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return usage(("missing value after " + a).c_str());
    if (a == "--model") model = argv[++i];
    else if (a == "--size") size = std::atoi(argv[++i]);
    else if (a == "--batch") batch = std::atoll(argv[++i]);
    else return usage(("unknown option " + a).c_str());
  }
  if (model != "retinanet" && model != "faster_rcnn") return usage(("unknown model " + model).c_str());
  if (size < 64 || batch < 1) return usage("size must be >= 64 and batch >= 1");
  try {
    bench::DetectorSetup s = bench::make_detector_setup(model, size, batch, Device::cpu());
    s.model->train();
    optim::SgdOptions so;
    so.lr = 1e-4;
    so.momentum = 0.9;
    optim::SGD opt(s.model->trainable_parameters(), so);
    const double rss_setup = status_gb("VmRSS");
    auto step = [&] {
      auto losses = s.model->losses(s.images, s.targets);
      Tensor total;
      for (auto& [k, l] : losses) total = total.defined() ? add(total, l) : l;
      total.backward();
      opt.step();
      opt.zero_grad();
    };
    step();  // warm-up
    auto t = std::chrono::steady_clock::now();
    step();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    const AllocatorStats h = host_allocator_stats();
    int64_t trainable = 0;
    for (const Tensor& p : s.model->trainable_parameters()) trainable += p.numel();
    std::printf("spinexr %s size=%d batch=%lld peak_rss_gb=%.3f rss_setup_gb=%.3f host_peak_live_gb=%.3f "
                "host_peak_held_gb=%.3f step_s=%.1f trainable_params=%lld\n",
                model.c_str(), size, static_cast<long long>(batch), status_gb("VmHWM"), rss_setup,
                h.peak_allocated_bytes / 1e9, h.peak_reserved_bytes / 1e9, secs, static_cast<long long>(trainable));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_memory: %s\n", e.what());
    return 1;
  }
  return 0;
}
