// The all-reduce bandwidth of the process group's MPI path (tensor/dist/process_group.h), for float32
// buffers of 1, 25 (one gradient bucket) and 100 MB. Run under mpirun (scripts/bench_dist.sh):
//   mpirun -np 2 build/bench/dist_allreduce [--repeats N]
// Rank 0 prints, per size, the median time of N all-reduces (after 2 warm-ups) and two bandwidths:
// algorithmic (bytes / time) and bus (x 2(W-1)/W, what a ring moves per rank: NCCL's convention).
// A plain program, not Google Benchmark: the ranks must run the same iterations in lockstep.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tensor/dist/process_group.h"

int main(int argc, char** argv) {
  int repeats = 10;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--repeats") == 0) repeats = std::atoi(argv[i + 1]);
  auto g = sx::dist::init_process_group("auto", 120, sx::Device::cpu());
  const int W = g->size();
  if (g->rank() == 0)
    std::printf("all_reduce (sum, float32) through %s, %d rank(s), median of %d\n%8s %10s %14s %14s\n",
                g->backend().c_str(), W, repeats, "MB", "ms", "algo GB/s", "bus GB/s");
  for (int64_t mb : {1, 25, 100}) {
    const int64_t n = mb * (1 << 20) / 4;
    sx::Tensor t = sx::Tensor::full({n}, 1.0);
    std::vector<double> ms;
    for (int it = 0; it < repeats + 2; ++it) {
      g->barrier();
      const auto t0 = std::chrono::steady_clock::now();
      g->all_reduce(t, sx::dist::ReduceOp::Sum);
      const double d = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (it >= 2) ms.push_back(d);
    }
    std::sort(ms.begin(), ms.end());
    const double med = ms[ms.size() / 2], bytes = static_cast<double>(n) * 4;
    const double algo = bytes / (med * 1e-3) / 1e9, bus = algo * 2.0 * (W - 1) / std::max(1, W);
    if (g->rank() == 0) std::printf("%8lld %10.2f %14.2f %14.2f\n", static_cast<long long>(mb), med, algo, bus);
  }
  return 0;
}
