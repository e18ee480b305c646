// CPU loops of the elementwise ops (the reference backend).
//
// Algorithm: the iterator (elementwise.h) has already merged the operands' dims as far as their
// strides allow. The linear output range [0, numel) is cut into chunks of at least kGrain elements,
// one or more per OpenMP thread (no threads at all below kGrain: the fork costs more than it
// saves). Inside a chunk we walk "rows" of the innermost dim: at the start of each row every
// operand's offset is computed from the linear index (a divmod per dim: linear_to_offsets in
// elementwise_math.h, shared with the CUDA strided kernel), then the row is a plain
// loop. When every operand has unit stride in the row (always so in the contiguous case) the row
// loop indexes with i alone, which the compiler vectorises; otherwise it steps through strides
// (a stride of 0 repeats a broadcast value).
#include <omp.h>

#include <algorithm>
#include <utility>

#include "tensor/elementwise.h"
#include "tensor/elementwise_dispatch.h"

namespace sx::ew {
namespace {

constexpr int64_t kGrain = 32768;

template <class Out, class... In>
struct CpuLoop {
  static constexpr int N = 1 + sizeof...(In);

  template <class F>
  static void run_row_unit(const F& f, Out* out, int64_t len, const In*... in) {
    for (int64_t j = 0; j < len; ++j) out[j] = static_cast<Out>(f(in[j]...));
  }
  template <class F>
  static void run_row_strided(const F& f, Out* out, int64_t so, int64_t len,
                              std::pair<const In*, int64_t>... in) {
    for (int64_t j = 0; j < len; ++j)
      out[j * so] = static_cast<Out>(f(in.first[j * in.second]...));
  }

  template <class F, size_t... I>
  static void run(const Iter& it, const F& f, std::index_sequence<I...>) {
    const int64_t n = it.numel;
    const int nd = it.ndim;
    const int64_t inner = it.sizes[nd - 1];
    bool unit = true;
    for (int k = 0; k < N; ++k) unit = unit && (it.strides[k][nd - 1] == 1 || inner == 1);

    auto do_range = [&](int64_t begin, int64_t end) {
      int64_t i = begin;
      while (i < end) {
        // Offsets of index i: decompose over the dims, innermost last.
        int64_t off[N];
        const int64_t col = linear_to_offsets<N>(i, nd, it.sizes, it.strides, off);
        const int64_t len = std::min(inner - col, end - i);
        Out* o = static_cast<Out*>(it.ptrs[0]) + off[0];
        if (unit) {
          run_row_unit(f, o, len, (static_cast<const In*>(it.ptrs[I + 1]) + off[I + 1])...);
        } else {
          run_row_strided(f, o, it.strides[0][nd - 1], len,
                          std::pair<const In*, int64_t>(
                              static_cast<const In*>(it.ptrs[I + 1]) + off[I + 1],
                              it.strides[I + 1][nd - 1])...);
        }
        i += len;
      }
    };

    if (n <= kGrain || omp_get_max_threads() == 1) {
      do_range(0, n);
      return;
    }
    const int64_t nthreads = omp_get_max_threads();
    const int64_t chunk = std::max<int64_t>(kGrain, (n + nthreads - 1) / nthreads);
    const int64_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nchunks; ++c) do_range(c * chunk, std::min(n, (c + 1) * chunk));
  }
};

struct CpuLauncher {
  const Iter& it;
  template <class F, class OutTag, class... InTags>
  void operator()(const F& f, OutTag, InTags...) const {
    using L = CpuLoop<typename OutTag::type, typename InTags::type...>;
    L::run(it, f, std::index_sequence_for<InTags...>{});
  }
};

}  // namespace

void launch_unary_cpu(UOp op, const Params& p, DType dtype, const Iter& it) {
  dispatch_unary(op, p, dtype, CpuLauncher{it});
}
void launch_binary_cpu(BOp op, const Params& p, DType dtype, const Iter& it) {
  dispatch_binary(op, p, dtype, CpuLauncher{it});
}
void launch_ternary_cpu(TOp op, const Params& p, DType dtype, const Iter& it) {
  dispatch_ternary(op, p, dtype, CpuLauncher{it});
}

const ElementwiseBackend ElementwiseBackend::cpu = {launch_unary_cpu, launch_binary_cpu,
                                                    launch_ternary_cpu};

}  // namespace sx::ew
