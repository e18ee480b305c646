// Conv2d on the CPU: im2col + GEMM (OpenBLAS), OpenMP over the batch. This is the readable
// reference and the float64 path; float32 convolutions run on oneDNN by default (conv2d_dnnl.cpp
// says why; use_dnnl() at the end of this file decides).
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
// Tiles. The products run on tiles of output columns rather than on whole images: bands of rows
// of a large image (so the column matrix stays in the L2 cache), several small images side by
// side (so that a 7x7 output still gives the GEMM a few hundred columns); "tiles of output
// columns" below explains the sizes. The arithmetic is the same whatever the tiling: each tile is
// one GEMM on a slice of the output (ldc = P*Q) or of the gradient, or on a [Kg, L] copy of the
// rows of several images.
//
// Threads. Images are independent, so the batch is split over OpenMP threads; each thread runs
// single-threaded GEMMs on its own tiles (OpenBLAS's own threads are switched off for the
// duration, so the two thread pools do not fight over the cores). With one image, the batch loop
// is sequential and OpenBLAS threads the GEMM instead; conv_batch_split() = false forces that for
// every batch (at batch 8 on 2 cores the split measured as fast or faster on the ResNet shapes of
// bench_layers, up to 1.8x on 1x1 convolutions). The weight gradient is summed in one buffer per
// thread, then reduced. Buffers are thread-local and grow as needed, so a training loop does not
// fault fresh pages for them on every call; im2col_chunk_elements() caps the column buffer.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/conv2d/conv2d.h"
#include "kernels/conv2d/conv2d_dnnl.h"
#include "kernels/conv2d/conv2d_math.h"
#include "kernels/conv2d/conv2d_path_stats.h"

namespace sx::kernels::cpu {

int64_t& im2col_chunk_elements() {
  static int64_t limit = int64_t(1) << 22;  // 4M values: 16 MB of float32 per thread
  return limit;
}
int64_t& im2col_cache_elements() {
  static int64_t v = int64_t(1) << 18;  // 256K values: 1 MB of float32, half a core's L2 here
  return v;
}
int64_t& im2col_min_columns() {
  static int64_t v = 384;
  return v;
}
bool& conv_batch_split() {
  static bool v = true;
  return v;
}
CpuConvAlgo& cpu_conv_algo() {
  static CpuConvAlgo v = CpuConvAlgo::Auto;
  return v;
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
  // Per-thread, per-slot growing buffers (slot 0: columns, slot 1: weight-gradient accumulator,
  // slot 2: a tile's gradient rows or outputs).
  thread_local std::vector<T> bufs[3];
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

// ---- tiles of output columns -----------------------------------------------------------------
//
// The GEMMs run on tiles of the output's columns (the (image, p, q) positions). A tile is either a
// band of output rows [pb, pe) of one image (nb == 1), or nb whole images [n0, n0 + nb). Its
// column matrix is [Cg*R*S, L] with L = nb * (pe - pb) * Q; image i of the tile owns columns
// [i * (pe - pb) * Q, (i + 1) * (pe - pb) * Q).
//
// How big a tile? Two costs pull in opposite directions:
//  - the column matrix is written by im2col and read again by BLAS (which copies it into its own
//    packed panels): when it fits in the core's L2 cache, both passes run at cache speed instead
//    of memory speed. That matters most for convolutions with few output channels (64), where a
//    column value feeds only 2*64 FLOPs;
//  - every GEMM call packs the whole weight matrix again and (for the weight gradient) reads and
//    writes the whole [Kg, Cg*R*S] accumulator: with too few columns per call (7x7 outputs have 49
//    per image) that traffic outweighs the arithmetic.
// So a tile aims at im2col_cache_elements() values (L2-sized) but at least im2col_min_columns()
// columns: large images are cut into bands of rows, small ones are grouped (several images per
// GEMM). im2col_chunk_elements() stays a hard cap on the buffer.
struct Tile {
  int64_t n0, nb, pb, pe;
  int64_t cols(const Geo& g) const { return nb * (pe - pb) * g.Q; }
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The tiles covering images [na, nz), in order (the bands of one image are consecutive).
std::vector<Tile> make_tiles(const Geo& g, int64_t na, int64_t nz) {
  std::vector<Tile> tiles;
  if (nz <= na) return tiles;
  const int64_t cap = std::max<int64_t>(1, im2col_chunk_elements());
  // (x is its own column matrix when direct: no im2col, so only the GEMM's shape matters)
  const int64_t target = g.direct ? im2col_min_columns()
                                  : std::max(im2col_min_columns(), im2col_cache_elements() / std::max<int64_t>(1, g.CRS));
  if (g.PQ >= target || nz - na == 1) {
    // one image per tile; bands of rows unless x is its own column matrix
    int64_t rows = g.direct ? g.P : std::min(g.P, ceil_div(target, g.Q));
    if (!g.direct) rows = std::max<int64_t>(1, std::min(rows, cap / std::max<int64_t>(1, g.CRS * g.Q)));
    for (int64_t n = na; n < nz; ++n)
      for (int64_t pb = 0; pb < g.P; pb += rows) tiles.push_back({n, 1, pb, std::min(g.P, pb + rows)});
    return tiles;
  }
  int64_t nb = std::min(nz - na, ceil_div(target, g.PQ));
  nb = std::max<int64_t>(1, std::min(nb, cap / std::max<int64_t>(1, g.CRS * g.PQ)));
  if (nb == 1 && !g.direct && g.CRS * g.PQ > cap) {  // the cap forces bands even here
    const int64_t rows = std::max<int64_t>(1, cap / std::max<int64_t>(1, g.CRS * g.Q));
    for (int64_t n = na; n < nz; ++n)
      for (int64_t pb = 0; pb < g.P; pb += rows) tiles.push_back({n, 1, pb, std::min(g.P, pb + rows)});
    return tiles;
  }
  for (int64_t n = na; n < nz; n += nb) tiles.push_back({n, std::min(nb, nz - n), 0, g.P});
  return tiles;
}

// A single-image tile of a 1x1/stride-1/unpadded convolution reads x (or writes dx) in place.
bool in_place(const Geo& g, const Tile& t) { return g.direct && t.nb == 1; }

// Scratch sizes for a thread's tiles: the column matrix (tiles not in place) and the gathered
// [Kg, L] rows (tiles of several images).
struct ScratchSize {
  int64_t col = 0, rows = 0;
};
ScratchSize scratch_size(const Geo& g, const std::vector<Tile>& tiles) {
  ScratchSize s;
  for (const Tile& t : tiles) {
    if (!in_place(g, t)) s.col = std::max(s.col, g.CRS * t.cols(g));
    if (t.nb > 1) s.rows = std::max(s.rows, g.Kg * t.cols(g));
  }
  return s;
}

// im2col of the Cg channels of one image x [Cg, H, W] for output rows [pb, pe) into the columns
// of col [Cg*R*S, ld] (row j of the column matrix starts at col + j * ld).
template <class T>
void im2col(const T* x, const Geo& g, T* col, int64_t ld, int64_t pb, int64_t pe) {
  const Conv2dParams& p = *g.p;
  const int64_t L = (pe - pb) * g.Q;
  for (int64_t c = 0; c < g.Cg; ++c) {
    const T* xc = x + c * g.H * g.W;
    for (int64_t r = 0; r < g.R; ++r) {
      // output rows whose tap r lands inside the input, clipped to the band
      const int64_t p0 = std::min(std::max(first_valid(r, p.stride_h, p.pad_h, p.dil_h), pb), pe);
      const int64_t p1 = std::max(p0, std::min(end_valid(g.H, r, p.stride_h, p.pad_h, p.dil_h, g.P), pe));
      for (int64_t s = 0; s < g.S; ++s) {
        T* row = col + ((c * g.R + r) * g.S + s) * ld;
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

// col2im: adds the columns of col [Cg*R*S, ld] (output rows [pb, pe)) back into dx [Cg, H, W].
//
// dx is not zeroed beforehand in a separate pass over the whole tensor (for large activations
// that pass runs at memory speed): the bands of one image come in order, and `zeroed` (the first
// input row not yet initialised) moves down with them, so each input row is zeroed just before
// the first band that adds into it, while it is about to be in cache anyway. finish_dx() zeroes
// the rows no band reached (a strided 1x1 convolution skips some).
template <class T>
void col2im(const T* col, const Geo& g, int64_t ld, T* dx, int64_t pb, int64_t pe, int64_t& zeroed) {
  const Conv2dParams& p = *g.p;
  const int64_t last = in_coord(pe - 1, g.R - 1, p.stride_h, p.pad_h, p.dil_h);  // lowest input row reached
  const int64_t upto = std::min(g.H, last + 1);
  if (upto > zeroed) {
    for (int64_t c = 0; c < g.Cg; ++c)
      std::fill(dx + c * g.H * g.W + zeroed * g.W, dx + c * g.H * g.W + upto * g.W, T(0));
    zeroed = upto;
  }
  for (int64_t c = 0; c < g.Cg; ++c) {
    T* xc = dx + c * g.H * g.W;
    for (int64_t r = 0; r < g.R; ++r) {
      const int64_t p0 = std::max(first_valid(r, p.stride_h, p.pad_h, p.dil_h), pb);
      const int64_t p1 = std::min(end_valid(g.H, r, p.stride_h, p.pad_h, p.dil_h, g.P), pe);
      for (int64_t s = 0; s < g.S; ++s) {
        const T* row = col + ((c * g.R + r) * g.S + s) * ld;
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

template <class T>
void finish_dx(const Geo& g, T* dx, int64_t zeroed) {
  if (zeroed >= g.H) return;
  for (int64_t c = 0; c < g.Cg; ++c) std::fill(dx + c * g.H * g.W + zeroed * g.W, dx + (c + 1) * g.H * g.W, T(0));
}

// The column matrix of tile t for group gi (im2col of each of its images side by side).
template <class T>
void build_columns(const T* x, const Geo& g, int64_t gi, const Tile& t, T* col) {
  const int64_t L = t.cols(g), per = (t.pe - t.pb) * g.Q;
  for (int64_t i = 0; i < t.nb; ++i)
    im2col(x + ((t.n0 + i) * g.C + gi * g.Cg) * g.H * g.W, g, col + i * per, L, t.pb, t.pe);
}

// The gradient rows [Kg, L] of tile t for group gi, as a matrix with its leading dimension: dy
// itself for a one-image tile, else a copy of each image's [Kg, PQ] block side by side in tmp.
template <class T>
const T* tile_rows(const T* dy, const Geo& g, int64_t gi, const Tile& t, T* tmp, int64_t& ld) {
  if (t.nb == 1) {
    ld = g.PQ;
    return dy + (t.n0 * g.K + gi * g.Kg) * g.PQ + t.pb * g.Q;
  }
  const int64_t L = t.cols(g);
  for (int64_t k = 0; k < g.Kg; ++k)
    for (int64_t i = 0; i < t.nb; ++i)
      std::memcpy(tmp + k * L + i * g.PQ, dy + ((t.n0 + i) * g.K + gi * g.Kg + k) * g.PQ, sizeof(T) * g.PQ);
  ld = L;
  return tmp;
}

// Threads: the batch is split over OpenMP threads (each with single-threaded BLAS) when there
// are at least two images; a single image runs its GEMMs on BLAS's own threads instead.
int batch_threads(int64_t N) {
  const int nt = (!conv_batch_split() || N < 2) ? 1 : static_cast<int>(std::min<int64_t>(omp_get_max_threads(), N));
  (nt > 1 ? conv2d_path_counts().batch_parallel : conv2d_path_counts().blas_threaded) += 1;  // test hook
  return nt;
}

// Images [na, nz) of thread t of nt.
inline void my_images(int64_t N, int t, int nt, int64_t& na, int64_t& nz) {
  na = N * t / nt;
  nz = N * (t + 1) / nt;
}

template <class T>
void forward_impl(const T* x, const T* w, const T* b, T* y, const Geo& g) {
  const int nt = batch_threads(g.N);
  BlasSingleThread guard(nt > 1);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int64_t na, nz;
    my_images(g.N, omp_get_thread_num(), omp_get_num_threads(), na, nz);
    const std::vector<Tile> tiles = make_tiles(g, na, nz);
    const ScratchSize ss = scratch_size(g, tiles);
    T* col = scratch<T>(static_cast<size_t>(ss.col), 0);
    T* tmp = scratch<T>(static_cast<size_t>(ss.rows), 2);
    for (int64_t gi = 0; gi < g.G; ++gi) {
      const T* wg = w + gi * g.Kg * g.CRS;
      for (const Tile& t : tiles) {
        const int64_t L = t.cols(g);
        const T* B = col;
        int64_t ldb = L;
        if (in_place(g, t)) {
          B = x + (t.n0 * g.C + gi * g.Cg) * g.H * g.W + t.pb * g.Q;
          ldb = g.PQ;
        } else {
          build_columns(x, g, gi, t, col);
        }
        if (t.nb == 1) {
          // y[n, group rows, pb*Q : pe*Q] = W col (+ b), straight into the output (ldc = PQ)
          T* yg = y + (t.n0 * g.K + gi * g.Kg) * g.PQ + t.pb * g.Q;
          T beta = T(0);
          if (b) {
            for (int64_t k = 0; k < g.Kg; ++k) std::fill(yg + k * g.PQ, yg + k * g.PQ + L, b[gi * g.Kg + k]);
            beta = T(1);
          }
          gemm(false, false, g.Kg, L, g.CRS, T(1), wg, g.CRS, B, ldb, beta, yg, g.PQ);
        } else {
          // several images: [Kg, nb*PQ] in tmp, then each image's block to its place in y
          gemm(false, false, g.Kg, L, g.CRS, T(1), wg, g.CRS, B, ldb, T(0), tmp, L);
          for (int64_t i = 0; i < t.nb; ++i)
            for (int64_t k = 0; k < g.Kg; ++k) {
              const T* src = tmp + k * L + i * g.PQ;
              T* dst = y + ((t.n0 + i) * g.K + gi * g.Kg + k) * g.PQ;
              const T bk = b ? b[gi * g.Kg + k] : T(0);
              for (int64_t j = 0; j < g.PQ; ++j) dst[j] = src[j] + bk;
            }
        }
      }
    }
  }
}

template <class T>
void backward_input_impl(const T* dy, const T* w, T* dx, const Geo& g) {
  const int nt = batch_threads(g.N);
  BlasSingleThread guard(nt > 1);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int64_t na, nz;
    my_images(g.N, omp_get_thread_num(), omp_get_num_threads(), na, nz);
    const std::vector<Tile> tiles = make_tiles(g, na, nz);
    const ScratchSize ss = scratch_size(g, tiles);
    T* col = scratch<T>(static_cast<size_t>(ss.col), 0);
    T* tmp = scratch<T>(static_cast<size_t>(ss.rows), 2);
    for (int64_t gi = 0; gi < g.G; ++gi) {
      const T* wg = w + gi * g.Kg * g.CRS;
      int64_t zeroed = 0;  // col2im's watermark for the current image (bands come in order)
      for (const Tile& t : tiles) {
        const int64_t L = t.cols(g), per = (t.pe - t.pb) * g.Q;
        int64_t ld;
        const T* dyt = tile_rows(dy, g, gi, t, tmp, ld);
        T* dxg = dx + (t.n0 * g.C + gi * g.Cg) * g.H * g.W;
        if (in_place(g, t)) {  // dx rows [pb, pe) = W^T dy rows [pb, pe)
          gemm(true, false, g.CRS, L, g.Kg, T(1), wg, g.CRS, dyt, ld, T(0), dxg + t.pb * g.Q, g.PQ);
          continue;
        }
        // dcol = W^T dy_tile, then scatter-add each image's columns into dx
        gemm(true, false, g.CRS, L, g.Kg, T(1), wg, g.CRS, dyt, ld, T(0), col, L);
        if (t.pb == 0) zeroed = 0;
        for (int64_t i = 0; i < t.nb; ++i) {
          T* dxi = dxg + i * g.C * g.H * g.W;
          if (t.nb > 1) zeroed = 0;
          col2im(col + i * per, g, L, dxi, t.pb, t.pe, zeroed);
          if (t.pe == g.P) finish_dx(g, dxi, zeroed);
        }
      }
    }
  }
}

template <class T>
void backward_weight_impl(const T* dy, const T* x, T* dw, const Geo& g) {
  const int64_t wsize = g.K * g.CRS;
  const int nthreads = batch_threads(g.N);
  BlasSingleThread guard(nthreads > 1);
  std::vector<T*> acc(nthreads, nullptr);
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
  {
    const int t = omp_get_thread_num();
    const int nt = omp_get_num_threads();  // may be fewer than asked for
    // Thread 0 accumulates straight into dw; the others into their own buffers.
    T* mine = t == 0 ? dw : scratch<T>(static_cast<size_t>(wsize), 1);
    acc[t] = mine;
    std::fill(mine, mine + wsize, T(0));
    int64_t na, nz;
    my_images(g.N, t, nt, na, nz);
    const std::vector<Tile> tiles = make_tiles(g, na, nz);
    const ScratchSize ss = scratch_size(g, tiles);
    T* col = scratch<T>(static_cast<size_t>(ss.col), 0);
    T* tmp = scratch<T>(static_cast<size_t>(ss.rows), 2);
    for (int64_t gi = 0; gi < g.G; ++gi) {
      T* dwg = mine + gi * g.Kg * g.CRS;
      for (const Tile& tl : tiles) {
        const int64_t L = tl.cols(g);
        int64_t ld;
        const T* dyt = tile_rows(dy, g, gi, tl, tmp, ld);
        const T* B = col;
        int64_t ldb = L;
        if (in_place(g, tl)) {
          B = x + (tl.n0 * g.C + gi * g.Cg) * g.H * g.W + tl.pb * g.Q;
          ldb = g.PQ;
        } else {
          build_columns(x, g, gi, tl, col);
        }
        // dW += dy_tile col^T
        gemm(false, true, g.Kg, g.CRS, L, T(1), dyt, ld, B, ldb, T(1), dwg, g.CRS);
      }
    }
#pragma omp barrier
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

// oneDNN or im2col for one direction (0 forward, 1 data gradient, 2 weight gradient); see
// cpu_conv_algo() in conv2d.h for the rule and conv2d_dnnl.cpp for why.
bool use_dnnl(DType dt, const Geo& g, int dir) {
  if (dt != DType::Float32) return false;
  switch (cpu_conv_algo()) {
    case CpuConvAlgo::Im2col:
      return false;
    case CpuConvAlgo::OneDNN:
      return true;
    case CpuConvAlgo::Auto:
      break;
  }
  if (dir == 1 && g.Cg < 16) return false;
  return true;
}

}  // namespace

Tensor conv2d_forward(const Tensor& x_, const Tensor& w_, const Tensor& b_, const Conv2dParams& p) {
  Tensor x = x_.contiguous(), w = w_.contiguous();
  Tensor b = b_.defined() ? b_.contiguous() : b_;
  Geo g = make_geo(x.shape(), w.shape(), p);
  Tensor y = Tensor::empty({g.N, g.K, g.P, g.Q}, x.dtype(), x.device());
  if (use_dnnl(x.dtype(), g, 0)) {
    dnnl_conv::forward(x.data<float>(), w.data<float>(), b.defined() ? b.data<float>() : nullptr, y.data<float>(),
                       x.shape(), w.shape(), p);
    return y;
  }
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
  if (use_dnnl(dy.dtype(), g, 1)) {
    dnnl_conv::backward_input(dy.data<float>(), w.data<float>(), dx.data<float>(), input_shape, w.shape(), p);
    return dx;
  }
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
  if (use_dnnl(dy.dtype(), g, 2)) {
    dnnl_conv::backward_weight(dy.data<float>(), x.data<float>(), dw.data<float>(), x.shape(), weight_shape, p);
    return dw;
  }
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

namespace sx::kernels {
const Conv2dBackend Conv2dBackend::cpu = {
    cpu::conv2d_forward,
    cpu::conv2d_backward_input,
    cpu::conv2d_backward_weight,
    cpu::conv2d_backward_bias};
}  // namespace sx::kernels
