// Conv2d on the CPU: im2col + GEMM (OpenBLAS), OpenMP over the batch.
//
// The algorithm. For one image and one group, gather every receptive field into the columns of a
// matrix ("im2col"):
//   col[(c*R + r)*S + s, p*Q + q] = x[c, p*sh - ph + r*dh, q*sw - pw + s*dw]   (0 outside)
// so that the convolution becomes one matrix product
//   y[k, p*Q + q] = sum_j W[k, j] * col[j, p*Q + q]          (W viewed as [K/g, C/g*R*S])
// which BLAS runs near the machine's peak. The backward passes are the two other products:
//   dcol = W^T dy     then "col2im" adds each column entry back to the input pixel it came from,
//   dW  += dy col^T   summed over the images of the batch.
// A 1x1 convolution with stride 1 and no padding needs no im2col at all: x itself is col.
//
// Threads. Images are independent, so the batch is split over OpenMP threads; each thread runs
// single-threaded GEMMs on its own column buffer (OpenBLAS's own threads are switched off for the
// duration, so the two thread pools do not fight over the cores). With one image, the batch loop
// is sequential and OpenBLAS threads the GEMM instead. The weight gradient is summed in one
// buffer per thread, then reduced. Column buffers are thread-local and grow as needed, so a
// training loop does not fault fresh pages for them on every call. For large images the column
// matrix is built for a band of output rows at a time (at most im2col_chunk_elements() values),
// which bounds the buffer without changing the arithmetic: each band is one GEMM on a slice of
// the output (ldc = P*Q) or of the gradient.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/conv2d/conv2d.h"
#include "kernels/conv2d/conv2d_math.h"
#include "kernels/conv2d/conv2d_path_stats.h"

namespace sx::kernels::cpu {

int64_t& im2col_chunk_elements() {
  static int64_t limit = int64_t(1) << 22;  // 4M values: 16 MB of float32 per thread
  return limit;
}

namespace {

using namespace conv_math;

// OpenBLAS runs single-threaded while alive (restores the previous thread count after).
class BlasSingleThread {
 public:
  explicit BlasSingleThread(bool active) : active_(active) {
    if (active_) {
      prev_ = openblas_get_num_threads();
      if (prev_ != 1) openblas_set_num_threads(1);
    }
  }
  ~BlasSingleThread() {
    if (active_ && prev_ != 1) openblas_set_num_threads(prev_);
  }

 private:
  bool active_;
  int prev_ = 1;
};

inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N,
              (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}
inline void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
                 int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N,
              (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

template <class T>
T* scratch(size_t n, int slot) {
  // Per-thread, per-slot growing buffers (slot 0: columns, slot 1: weight-gradient accumulator).
  thread_local std::vector<T> bufs[2];
  auto& b = bufs[slot];
  if (b.size() < n) {
    b.clear();
    b.shrink_to_fit();
    b.resize(n);
  }
  return b.data();
}

struct Geo {
  int64_t N, C, H, W, K, R, S, P, Q, G, Cg, Kg, CRS, PQ;
  const Conv2dParams* p;
  bool direct;  // 1x1, stride 1, no padding: x is its own column matrix
};

Geo make_geo(const Shape& x, const Shape& w, const Conv2dParams& p) {
  Geo g;
  g.N = x[0];
  g.C = x[1];
  g.H = x[2];
  g.W = x[3];
  g.K = w[0];
  g.R = w[2];
  g.S = w[3];
  g.P = out_size(g.H, g.R, p.stride_h, p.pad_h, p.dil_h);
  g.Q = out_size(g.W, g.S, p.stride_w, p.pad_w, p.dil_w);
  g.G = p.groups;
  g.Cg = g.C / g.G;
  g.Kg = g.K / g.G;
  g.CRS = g.Cg * g.R * g.S;
  g.PQ = g.P * g.Q;
  g.p = &p;
  g.direct = g.R == 1 && g.S == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
  return g;
}

// im2col of the Cg channels of one image x [Cg, H, W] for output rows [pb, pe) into
// col [Cg*R*S, (pe - pb)*Q].
template <class T>
void im2col(const T* x, const Geo& g, T* col, int64_t pb, int64_t pe) {
  const Conv2dParams& p = *g.p;
  const int64_t L = (pe - pb) * g.Q;
  for (int64_t c = 0; c < g.Cg; ++c) {
    const T* xc = x + c * g.H * g.W;
    for (int64_t r = 0; r < g.R; ++r) {
      // output rows whose tap r lands inside the input, clipped to the chunk
      const int64_t p0 = std::min(std::max(first_valid(r, p.stride_h, p.pad_h, p.dil_h), pb), pe);
      const int64_t p1 = std::max(p0, std::min(end_valid(g.H, r, p.stride_h, p.pad_h, p.dil_h, g.P), pe));
      for (int64_t s = 0; s < g.S; ++s) {
        T* row = col + ((c * g.R + r) * g.S + s) * L;
        const int64_t q0 = std::min(first_valid(s, p.stride_w, p.pad_w, p.dil_w), g.Q);
        const int64_t q1 = std::max(q0, end_valid(g.W, s, p.stride_w, p.pad_w, p.dil_w, g.Q));
        std::fill(row, row + (p0 - pb) * g.Q, T(0));
        for (int64_t op = p0; op < p1; ++op) {
          T* dst = row + (op - pb) * g.Q;
          const T* src = xc + in_coord(op, r, p.stride_h, p.pad_h, p.dil_h) * g.W;
          for (int64_t oq = 0; oq < q0; ++oq) dst[oq] = T(0);
          const int64_t iw0 = in_coord(q0, s, p.stride_w, p.pad_w, p.dil_w);
          if (p.stride_w == 1) {
            if (q1 > q0) std::memcpy(dst + q0, src + iw0, sizeof(T) * (q1 - q0));
          } else {
            for (int64_t oq = q0; oq < q1; ++oq) dst[oq] = src[iw0 + (oq - q0) * p.stride_w];
          }
          for (int64_t oq = q1; oq < g.Q; ++oq) dst[oq] = T(0);
        }
        std::fill(row + (p1 - pb) * g.Q, row + L, T(0));
      }
    }
  }
}

// col2im: adds col [Cg*R*S, (pe - pb)*Q] (output rows [pb, pe)) back into dx [Cg, H, W].
template <class T>
void col2im(const T* col, const Geo& g, T* dx, int64_t pb, int64_t pe) {
  const Conv2dParams& p = *g.p;
  const int64_t L = (pe - pb) * g.Q;
  for (int64_t c = 0; c < g.Cg; ++c) {
    T* xc = dx + c * g.H * g.W;
    for (int64_t r = 0; r < g.R; ++r) {
      const int64_t p0 = std::max(first_valid(r, p.stride_h, p.pad_h, p.dil_h), pb);
      const int64_t p1 = std::min(end_valid(g.H, r, p.stride_h, p.pad_h, p.dil_h, g.P), pe);
      for (int64_t s = 0; s < g.S; ++s) {
        const T* row = col + ((c * g.R + r) * g.S + s) * L;
        const int64_t q0 = first_valid(s, p.stride_w, p.pad_w, p.dil_w);
        const int64_t q1 = end_valid(g.W, s, p.stride_w, p.pad_w, p.dil_w, g.Q);
        if (q1 <= q0) continue;
        const int64_t iw0 = in_coord(q0, s, p.stride_w, p.pad_w, p.dil_w);
        for (int64_t op = p0; op < p1; ++op) {
          const T* src = row + (op - pb) * g.Q;
          T* dst = xc + in_coord(op, r, p.stride_h, p.pad_h, p.dil_h) * g.W + iw0;
          if (p.stride_w == 1) {
            for (int64_t oq = q0; oq < q1; ++oq) dst[oq - q0] += src[oq];
          } else {
            for (int64_t oq = q0; oq < q1; ++oq) dst[(oq - q0) * p.stride_w] += src[oq];
          }
        }
      }
    }
  }
}

// Output rows per im2col chunk: the column buffer holds at most im2col_chunk_elements() values
// (at least one row), so large images do not need a column matrix of their full size.
int64_t chunk_rows(const Geo& g) {
  const int64_t per_row = std::max<int64_t>(1, g.CRS * g.Q);
  return std::max<int64_t>(1, std::min<int64_t>(g.P, im2col_chunk_elements() / per_row));
}

bool parallel_batch(int64_t N) {
  const bool par = N > 1 && omp_get_max_threads() > 1;
  (par ? conv2d_path_counts().batch_parallel : conv2d_path_counts().blas_threaded) += 1;  // test hook
  return par;
}

template <class T>
void forward_impl(const T* x, const T* w, const T* b, T* y, const Geo& g) {
  const bool par = parallel_batch(g.N);
  BlasSingleThread guard(par);
#pragma omp parallel for schedule(static) if (par)
  for (int64_t n = 0; n < g.N; ++n) {
    const int64_t rows = chunk_rows(g);
    T* col = g.direct ? nullptr : scratch<T>(static_cast<size_t>(g.CRS * rows * g.Q), 0);
    for (int64_t gi = 0; gi < g.G; ++gi) {
      const T* xg = x + (n * g.C + gi * g.Cg) * g.H * g.W;
      const T* wg = w + gi * g.Kg * g.CRS;
      T* yg = y + (n * g.K + gi * g.Kg) * g.PQ;
      T beta = T(0);
      if (b) {
        for (int64_t k = 0; k < g.Kg; ++k) std::fill(yg + k * g.PQ, yg + (k + 1) * g.PQ, b[gi * g.Kg + k]);
        beta = T(1);
      }
      if (g.direct) {
        gemm(false, false, g.Kg, g.PQ, g.CRS, T(1), wg, g.CRS, xg, g.PQ, beta, yg, g.PQ);
        continue;
      }
      for (int64_t pb = 0; pb < g.P; pb += rows) {
        const int64_t pe = std::min(g.P, pb + rows), L = (pe - pb) * g.Q;
        im2col(xg, g, col, pb, pe);
        // y[:, pb*Q : pe*Q] = W col   (ldc = PQ: the chunk's columns of the output rows)
        gemm(false, false, g.Kg, L, g.CRS, T(1), wg, g.CRS, col, L, beta, yg + pb * g.Q, g.PQ);
      }
    }
  }
}

template <class T>
void backward_input_impl(const T* dy, const T* w, T* dx, const Geo& g) {
  const bool par = parallel_batch(g.N);
  BlasSingleThread guard(par);
#pragma omp parallel for schedule(static) if (par)
  for (int64_t n = 0; n < g.N; ++n) {
    const int64_t rows = chunk_rows(g);
    T* col = g.direct ? nullptr : scratch<T>(static_cast<size_t>(g.CRS * rows * g.Q), 0);
    for (int64_t gi = 0; gi < g.G; ++gi) {
      T* dxg = dx + (n * g.C + gi * g.Cg) * g.H * g.W;
      const T* dyg = dy + (n * g.K + gi * g.Kg) * g.PQ;
      const T* wg = w + gi * g.Kg * g.CRS;
      if (g.direct) {
        gemm(true, false, g.CRS, g.PQ, g.Kg, T(1), wg, g.CRS, dyg, g.PQ, T(0), dxg, g.PQ);
        continue;
      }
      std::fill(dxg, dxg + g.Cg * g.H * g.W, T(0));
      for (int64_t pb = 0; pb < g.P; pb += rows) {
        const int64_t pe = std::min(g.P, pb + rows), L = (pe - pb) * g.Q;
        // dcol = W^T dy[:, pb*Q : pe*Q], then scatter-add into dx
        gemm(true, false, g.CRS, L, g.Kg, T(1), wg, g.CRS, dyg + pb * g.Q, g.PQ, T(0), col, L);
        col2im(col, g, dxg, pb, pe);
      }
    }
  }
}

template <class T>
void backward_weight_impl(const T* dy, const T* x, T* dw, const Geo& g) {
  const int64_t wsize = g.K * g.CRS;
  const bool par = parallel_batch(g.N);
  BlasSingleThread guard(par);
  const int nthreads = par ? std::min<int64_t>(omp_get_max_threads(), g.N) : 1;
  std::vector<T*> acc(nthreads, nullptr);
#pragma omp parallel num_threads(nthreads) if (par)
  {
    const int t = omp_get_thread_num();
    const int nt = omp_get_num_threads();  // may be fewer than asked for
    // Thread 0 accumulates straight into dw; the others into their own buffers.
    T* mine = t == 0 ? dw : scratch<T>(static_cast<size_t>(wsize), 1);
    acc[t] = mine;
    std::fill(mine, mine + wsize, T(0));
#pragma omp barrier
    const int64_t rows = chunk_rows(g);
    T* col = g.direct ? nullptr : scratch<T>(static_cast<size_t>(g.CRS * rows * g.Q), 0);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g.N; ++n) {
      for (int64_t gi = 0; gi < g.G; ++gi) {
        const T* xg = x + (n * g.C + gi * g.Cg) * g.H * g.W;
        const T* dyg = dy + (n * g.K + gi * g.Kg) * g.PQ;
        T* dwg = mine + gi * g.Kg * g.CRS;
        if (g.direct) {
          gemm(false, true, g.Kg, g.CRS, g.PQ, T(1), dyg, g.PQ, xg, g.PQ, T(1), dwg, g.CRS);
          continue;
        }
        for (int64_t pb = 0; pb < g.P; pb += rows) {
          const int64_t pe = std::min(g.P, pb + rows), L = (pe - pb) * g.Q;
          im2col(xg, g, col, pb, pe);
          // dW += dy[:, pb*Q : pe*Q] col^T
          gemm(false, true, g.Kg, g.CRS, L, T(1), dyg + pb * g.Q, g.PQ, col, L, T(1), dwg, g.CRS);
        }
      }
    }
    // implicit barrier at the end of the omp for: every accumulator is complete
#pragma omp for schedule(static)
    for (int64_t i = 0; i < wsize; ++i) {
      T s = dw[i];
      for (int u = 1; u < nt; ++u) s += acc[u][i];
      dw[i] = s;
    }
  }
}

template <class T>
void bias_impl(const T* dy, T* db, int64_t N, int64_t K, int64_t PQ) {
  for (int64_t k = 0; k < K; ++k) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n) {
      const T* row = dy + (n * K + k) * PQ;
      T part = T(0);
      for (int64_t i = 0; i < PQ; ++i) part += row[i];
      s += part;
    }
    db[k] = static_cast<T>(s);
  }
}

}  // namespace

Tensor conv2d_forward(const Tensor& x_, const Tensor& w_, const Tensor& b_, const Conv2dParams& p) {
  Tensor x = x_.contiguous(), w = w_.contiguous();
  Tensor b = b_.defined() ? b_.contiguous() : b_;
  Geo g = make_geo(x.shape(), w.shape(), p);
  Tensor y = Tensor::empty({g.N, g.K, g.P, g.Q}, x.dtype(), x.device());
  SX_DISPATCH_FLOAT(x.dtype(), "conv2d", [&] {
    forward_impl<scalar_t>(x.data<scalar_t>(), w.data<scalar_t>(), b.defined() ? b.data<scalar_t>() : nullptr,
                           y.data<scalar_t>(), g);
  });
  return y;
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& w_, const Shape& input_shape,
                             const Conv2dParams& p) {
  Tensor dy = grad_out.contiguous(), w = w_.contiguous();
  Geo g = make_geo(input_shape, w.shape(), p);
  Tensor dx = Tensor::empty(input_shape, dy.dtype(), dy.device());
  SX_DISPATCH_FLOAT(dy.dtype(), "conv2d_backward_input", [&] {
    backward_input_impl<scalar_t>(dy.data<scalar_t>(), w.data<scalar_t>(), dx.data<scalar_t>(), g);
  });
  return dx;
}

Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x_, const Shape& weight_shape,
                              const Conv2dParams& p) {
  Tensor dy = grad_out.contiguous(), x = x_.contiguous();
  Geo g = make_geo(x.shape(), weight_shape, p);
  Tensor dw = Tensor::empty(weight_shape, dy.dtype(), dy.device());
  SX_DISPATCH_FLOAT(dy.dtype(), "conv2d_backward_weight", [&] {
    backward_weight_impl<scalar_t>(dy.data<scalar_t>(), x.data<scalar_t>(), dw.data<scalar_t>(), g);
  });
  return dw;
}

Tensor conv2d_backward_bias(const Tensor& grad_out) {
  Tensor dy = grad_out.contiguous();
  const int64_t N = dy.size(0), K = dy.size(1), PQ = dy.size(2) * dy.size(3);
  Tensor db = Tensor::empty({K}, dy.dtype(), dy.device());
  SX_DISPATCH_FLOAT(dy.dtype(), "conv2d_backward_bias", [&] {
    bias_impl<scalar_t>(dy.data<scalar_t>(), db.data<scalar_t>(), N, K, PQ);
  });
  return db;
}

}  // namespace sx::kernels::cpu
