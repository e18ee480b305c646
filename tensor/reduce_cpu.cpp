// CPU loops of the reductions over the [A, R, B] layout (see reduce.h), and of softmax.
//
// Algorithm:
//   - B == 1 (row reductions): when there are at least as many rows as threads, each thread reduces
//     whole rows; otherwise (few long rows: a sum over everything) every row is cut into one chunk
//     per thread, the chunks are reduced in parallel and their accumulators combined in order.
//     Inside a row 8 independent accumulators ("lanes") take every 8th element, which breaks the
//     add-latency chain and lets the compiler vectorise; the lanes are combined at the end.
//   - B > 1 (column reductions, e.g. over dim 0 of a contiguous [N, C]): whole rows x[a, r, :] are
//     streamed into B accumulators, so memory is read in order; with fewer slabs a than threads,
//     r is split into one chunk per thread and the chunk accumulators are combined in order.
//     Beyond 65536 outputs per slab a thread instead owns a tile of 64 outputs and walks r.
//   - max/min with indices over many rows: a CPU-only two-pass scan per row (arg_row below) with
//     the same first-occurrence / NaN-first result as the generic fold, which it beats by
//     vectorising; columns and few long rows use the generic fold.
//   - softmax: per line (a, b): m = max_r x, then s = sum_r exp(x - m) while storing exp(x - m)
//     in y, then y *= 1/s (log_softmax: y = x - m - log s); lines are tiled over b like the column
//     reductions.
// The arithmetic (accumulator types, combine rules, first-occurrence tie-break) is reduce_math.h.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/elementwise_dispatch.h"
#include "tensor/elementwise_math.h"
#include "tensor/reduce.h"
#include "tensor/reduce_math.h"
#include "tensor/reduce_path_stats.h"
#include "tensor/softmax_math.h"

namespace sx::red {

ReducePathCounts& cpu_reduce_path_counts() {
  static ReducePathCounts counts;
  return counts;
}

namespace {

constexpr int64_t kGrain = 32768;
constexpr int kLanes = 8;
constexpr int64_t kTile = 64;
constexpr int64_t kMaxRowAcc = 1 << 16;  // column reductions keep up to this many accumulators per slab

template <class Op>
typename Op::acc_t reduce_range(const Op& op, int64_t base, int64_t r0, int64_t r1) {
  using acc_t = typename Op::acc_t;
  acc_t lane[kLanes];
  for (int k = 0; k < kLanes; ++k) lane[k] = op.identity();
  int64_t r = r0;
  for (; r + kLanes <= r1; r += kLanes)
    for (int k = 0; k < kLanes; ++k) lane[k] = op.combine(lane[k], op.load(base + r + k, r + k));
  for (; r < r1; ++r) lane[0] = op.combine(lane[0], op.load(base + r, r));
  acc_t acc = lane[0];
  for (int k = 1; k < kLanes; ++k) acc = op.combine(acc, lane[k]);
  return acc;
}

template <class Op>
void cpu_reduce(const Op& op, int64_t A, int64_t R, int64_t B) {
  using acc_t = typename Op::acc_t;
  const int64_t nt = omp_get_max_threads();
  const int64_t total = A * R * B;
  const bool par = total > kGrain && nt > 1;
  if (B == 1) {
    if (!par || A >= nt) {
#pragma omp parallel for schedule(static) if (par)
      for (int64_t a = 0; a < A; ++a) op.write(a, reduce_range(op, a * R, 0, R));
      return;
    }
    const int64_t C = nt;
    const int64_t chunk = (R + C - 1) / C;
    cpu_reduce_path_counts().row_chunks += 1;  // test hook
    std::vector<acc_t> part(static_cast<size_t>(A * C));
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t a = 0; a < A; ++a)
      for (int64_t c = 0; c < C; ++c)
        part[a * C + c] = reduce_range(op, a * R, std::min(R, c * chunk), std::min(R, (c + 1) * chunk));
    for (int64_t a = 0; a < A; ++a) {
      acc_t acc = op.identity();
      for (int64_t c = 0; c < C; ++c) acc = op.combine(acc, part[a * C + c]);
      op.write(a, acc);
    }
    return;
  }
  if (B <= kMaxRowAcc) {
    // Stream whole rows x[a, r, :] into B accumulators (contiguous reads). With fewer slabs than
    // threads, r is split into one chunk per thread and the chunks' accumulators are combined in
    // order afterwards.
    const int64_t C = (par && A < nt) ? std::max<int64_t>(1, std::min<int64_t>(nt, R)) : 1;
    const int64_t chunk = (R + C - 1) / C;
    if (C > 1) cpu_reduce_path_counts().col_chunks += 1;  // test hook
    std::vector<acc_t> part(static_cast<size_t>(A * C * B));
#pragma omp parallel for collapse(2) schedule(static) if (par)
    for (int64_t a = 0; a < A; ++a)
      for (int64_t c = 0; c < C; ++c) {
        acc_t* acc = part.data() + (a * C + c) * B;
        for (int64_t b = 0; b < B; ++b) acc[b] = op.identity();
        const int64_t r1 = std::min(R, (c + 1) * chunk);
        for (int64_t r = c * chunk; r < r1; ++r) {
          const int64_t base = (a * R + r) * B;
          for (int64_t b = 0; b < B; ++b) acc[b] = op.combine(acc[b], op.load(base + b, r));
        }
      }
#pragma omp parallel for schedule(static) if (par)
    for (int64_t t = 0; t < A * B; ++t) {
      const int64_t a = t / B, b = t % B;
      acc_t acc = part[(a * C) * B + b];
      for (int64_t c = 1; c < C; ++c) acc = op.combine(acc, part[(a * C + c) * B + b]);
      op.write(t, acc);
    }
    return;
  }
  // Very wide rows: tiles of kTile outputs per thread.
  const int64_t nb = (B + kTile - 1) / kTile;
  cpu_reduce_path_counts().wide_tiles += 1;  // test hook
#pragma omp parallel for schedule(static) if (par)
  for (int64_t t = 0; t < A * nb; ++t) {
    const int64_t a = t / nb;
    const int64_t b0 = (t % nb) * kTile;
    const int64_t len = std::min(kTile, B - b0);
    acc_t acc[kTile];
    for (int64_t j = 0; j < len; ++j) acc[j] = op.identity();
    for (int64_t r = 0; r < R; ++r) {
      const int64_t base = (a * R + r) * B + b0;
      for (int64_t j = 0; j < len; ++j) acc[j] = op.combine(acc[j], op.load(base + j, r));
    }
    for (int64_t j = 0; j < len; ++j) op.write(a * B + b0 + j, acc[j]);
  }
}

// max/min of one contiguous row with the index of its first occurrence (NaN first, if any):
// the same result as folding ArgOp over the row, but in two branch-free passes the compiler can
// vectorise (find the extreme, then the first position holding it) instead of one pass that
// carries an index through every comparison.
template <class T, bool IsMax>
ValIdx<T> arg_row(const T* x, int64_t R) {
  bool nan = false;
  for (int64_t r = 0; r < R; ++r) nan |= (x[r] != x[r]);
  // kLanes independent running extremes (a select each, no loop-carried branch).
  T lane[kLanes];
  for (int k = 0; k < kLanes; ++k) lane[k] = x[0];
  int64_t r0 = 0;
  for (; r0 + kLanes <= R; r0 += kLanes)
    for (int k = 0; k < kLanes; ++k) {
      const T v = x[r0 + k];
      lane[k] = IsMax ? (v > lane[k] ? v : lane[k]) : (v < lane[k] ? v : lane[k]);
    }
  T best = lane[0];
  for (int k = 1; k < kLanes; ++k) best = IsMax ? (lane[k] > best ? lane[k] : best) : (lane[k] < best ? lane[k] : best);
  for (; r0 < R; ++r0) best = IsMax ? (x[r0] > best ? x[r0] : best) : (x[r0] < best ? x[r0] : best);
  for (int64_t r = 0; r < R; ++r)
    if (nan ? (x[r] != x[r]) : (x[r] == best)) return ValIdx<T>{x[r], r};
  return ValIdx<T>{best, 0};  // not reached
}

template <class T, bool IsMax>
void arg_rows(const ArgOp<T, IsMax>& op, int64_t A, int64_t R) {
  const bool par = A * R > kGrain && omp_get_max_threads() > 1;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t a = 0; a < A; ++a) op.write(a, arg_row<T, IsMax>(op.in + a * R, R));
}

template <class T>
void softmax_lines(const T* x, T* y, int64_t A, int64_t R, int64_t B, bool log) {
  using Acc = typename SumAcc<T>::type;  // the sum of exponentials accumulates like sum()
  const int64_t nb = (B + kTile - 1) / kTile;
  const bool par = A * R * B > kGrain && omp_get_max_threads() > 1;
  if (B == 1) {  // contiguous rows: plain loops the compiler can unroll
#pragma omp parallel for schedule(static) if (par)
    for (int64_t a = 0; a < A; ++a) {
      const T* xr = x + a * R;
      T* yr = y + a * R;
      T m = xr[0];
      for (int64_t r = 1; r < R; ++r) m = softmax_max(m, xr[r]);
      Acc s = Acc(0);  // double for float: a float sum over a long line drifts (2^21 values: 3e-4)
      for (int64_t r = 0; r < R; ++r) {
        const T e = softmax_exp(xr[r], m);
        if (!log) yr[r] = e;
        s += e;
      }
      const T k = static_cast<T>(log ? ew::m_log(s) : Acc(1) / s);
      if (log) {
        for (int64_t r = 0; r < R; ++r) yr[r] = log_softmax_value(xr[r], m, k);
      } else {
        for (int64_t r = 0; r < R; ++r) yr[r] = softmax_value(yr[r], k);
      }
    }
    return;
  }
#pragma omp parallel for schedule(static) if (par)
  for (int64_t t = 0; t < A * nb; ++t) {
    const int64_t a = t / nb;
    const int64_t b0 = (t % nb) * kTile;
    const int64_t len = std::min(kTile, B - b0);
    T m[kTile], k[kTile];
    Acc s[kTile];
    for (int64_t j = 0; j < len; ++j) {
      m[j] = x[a * R * B + b0 + j];
      s[j] = Acc(0);
    }
    for (int64_t r = 1; r < R; ++r) {
      const T* xr = x + (a * R + r) * B + b0;
      for (int64_t j = 0; j < len; ++j) m[j] = softmax_max(m[j], xr[j]);
    }
    for (int64_t r = 0; r < R; ++r) {
      const int64_t base = (a * R + r) * B + b0;
      for (int64_t j = 0; j < len; ++j) {
        const T e = softmax_exp(x[base + j], m[j]);
        if (!log) y[base + j] = e;
        s[j] += e;
      }
    }
    for (int64_t j = 0; j < len; ++j) k[j] = static_cast<T>(log ? ew::m_log(s[j]) : Acc(1) / s[j]);  // log s or 1/s
    for (int64_t r = 0; r < R; ++r) {
      const int64_t base = (a * R + r) * B + b0;
      for (int64_t j = 0; j < len; ++j)
        y[base + j] = log ? log_softmax_value(x[base + j], m[j], k[j]) : softmax_value(y[base + j], k[j]);
    }
  }
}

}  // namespace

void sum_cpu(const Tensor& x, int64_t A, int64_t R, int64_t B, const Tensor& out) {
  auto run = [&](auto in_tag) {
    using T = typename decltype(in_tag)::type;
    using Acc = typename SumAcc<T>::type;
    using Out = std::conditional_t<std::is_floating_point<T>::value, T, int64_t>;
    cpu_reduce(SumOp<T, Acc, Out>{x.data<T>(), out.data<Out>()}, A, R, B);
  };
  ew::for_all(x.dtype(), "sum", run);  // the dtype sets of the elementwise ops
}

void arg_cpu(const Tensor& x, int64_t A, int64_t R, int64_t B, bool is_max, const Tensor& values,
             const Tensor& indices) {
  int64_t* ip = indices.defined() ? indices.data<int64_t>() : nullptr;
  auto run = [&](auto in_tag) {
    using T = typename decltype(in_tag)::type;
    T* vp = values.defined() ? values.data<T>() : nullptr;
    // Many rows: the two-pass row scan; otherwise (columns, or few long rows split over threads)
    // the generic fold.
    const bool rows = B == 1 && A >= omp_get_max_threads();
    if (is_max) {
      ArgOp<T, true> op{x.data<T>(), nullptr, vp, ip};
      if (rows) arg_rows(op, A, R);
      else cpu_reduce(op, A, R, B);
    } else {
      ArgOp<T, false> op{x.data<T>(), nullptr, vp, ip};
      if (rows) arg_rows(op, A, R);
      else cpu_reduce(op, A, R, B);
    }
  };
  ew::for_numeric(x.dtype(), is_max ? "max" : "min", run);
}

void softmax_cpu(const Tensor& x, int64_t A, int64_t R, int64_t B, bool log, const Tensor& out) {
  if (x.dtype() == DType::Float32)
    softmax_lines(x.data<float>(), out.data<float>(), A, R, B, log);
  else
    softmax_lines(x.data<double>(), out.data<double>(), A, R, B, log);
}

const ReduceBackend ReduceBackend::cpu = {sum_cpu, arg_cpu, softmax_cpu};

}  // namespace sx::red
