// Conv2d on the CPU through oneDNN, the CPU counterpart of cuDNN (PyTorch's CPU convolutions use
// it too). conv2d_cpu.cpp keeps the im2col + GEMM version as the readable reference and decides
// when this one runs; tests/layers/test_conv2d.cpp checks the two against each other.
//
// Why it is faster than im2col + GEMM. im2col writes every input value R*S times into a column
// matrix, BLAS then copies that matrix once more into its packed panels, and only then multiplies:
// for a 3x3 convolution with 64 channels the copies cost about as much as the arithmetic. oneDNN's
// "direct" kernels (generated at run time for the CPU's vector width, AVX-512 here) multiply
// straight out of the activations, laid out in blocks of 16 channels (nChw16c: for each image, for
// each block of 16 channels, for each pixel, 16 consecutive channel values, one vector register).
// A 3x3 convolution then streams its input once per block of output channels and never builds a
// column matrix.
//
// The price is the layout. Our tensors are NCHW, so each call reorders its inputs into the blocked
// layout the primitive asked for (format_tag::any lets oneDNN choose), runs, and reorders the result
// back: three extra passes over memory. A 1x1 convolution has no column matrix to save (x already
// is one), so there the passes are not worth it: 1x1 kernels are created on our NCHW layout, where
// oneDNN runs them as its own GEMM over the whole batch (on the ResNet-50 shapes of bench_layers
// about 1.3x faster than our per-image OpenBLAS GEMMs, forward and data gradient).
//
// Primitives. Creating a primitive picks an implementation and generates its machine code (about a
// millisecond), so each (direction, shapes, parameters) case is created once and kept in a small
// cache, as conv2d_cuda.cpp keeps cuDNN's algorithm choice; the reorders are cached with it. The
// scratch memory a primitive needs is passed in at each call (scratchpad_mode::user), taken from
// our caching allocator like the reordered copies, so one cached primitive can run on several
// threads at once. oneDNN threads with OpenMP (the libgomp our own loops use), up to
// omp_get_max_threads() threads.
#include "kernels/conv2d/conv2d_dnnl.h"

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

#include "kernels/conv2d/conv2d_math.h"

namespace sx::kernels::cpu::dnnl_conv {

namespace {

using dnnl::memory;
using tag = memory::format_tag;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// One operand of a cached primitive: the user's NCHW layout, the primitive's layout, and the
// reorder between them (absent when they are the same).
struct Operand {
  int arg = 0;
  memory::desc user, prim;
  bool needs_reorder = false;
  dnnl::reorder reorder;
  memory::desc scratch;  // the reorder's scratch memory (usually none)
};

struct Entry {
  dnnl::primitive conv;
  std::string impl;
  Operand in0, in1, out;  // forward: src, weights -> dst; data: diff_dst, weights -> diff_src;
                          // weights: src, diff_dst -> diff_weights
  memory::desc bias, scratch;
};

memory::desc plain(const memory::dims& d, tag t) { return memory::desc(d, memory::data_type::f32, t); }

Operand make_operand(int arg, const memory::desc& user, const memory::desc& prim, bool input) {
  Operand o;
  o.arg = arg;
  o.user = user;
  o.prim = prim;
  o.needs_reorder = !(user == prim);
  if (o.needs_reorder) {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    auto pd = input ? dnnl::reorder::primitive_desc(engine(), user, engine(), prim, attr)
                    : dnnl::reorder::primitive_desc(engine(), prim, engine(), user, attr);
    o.reorder = dnnl::reorder(pd);
    o.scratch = pd.scratchpad_desc();
  }
  return o;
}

using Key = std::array<int64_t, 17>;

Key make_key(int dir, const Shape& xs, const Shape& ws, const Conv2dParams& p, bool bias) {
  return {dir, xs[0], xs[1], xs[2], xs[3], ws[0], ws[2], ws[3], p.stride_h, p.stride_w, p.pad_h, p.pad_w,
          p.dil_h, p.dil_w, p.groups, bias ? 1 : 0, 0};
}

std::shared_ptr<Entry> create(int dir, const Shape& xs, const Shape& ws, const Conv2dParams& p, bool has_bias) {
  const int64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3], K = ws[0], R = ws[2], S = ws[3], G = p.groups;
  const int64_t P = conv_math::out_size(H, R, p.stride_h, p.pad_h, p.dil_h);
  const int64_t Q = conv_math::out_size(W, S, p.stride_w, p.pad_w, p.dil_w);
  const memory::dims src_d{N, C, H, W}, dst_d{N, K, P, Q};
  // grouped weights are [G, K/G, C/G, R, S]: the same bytes as our [K, C/G, R, S]
  const memory::dims wei_d = G == 1 ? memory::dims{K, C, R, S} : memory::dims{G, K / G, C / G, R, S};
  const tag wei_tag = G == 1 ? tag::oihw : tag::goihw;
  const memory::dims strides{p.stride_h, p.stride_w}, pad{p.pad_h, p.pad_w};
  const memory::dims dil{p.dil_h - 1, p.dil_w - 1};  // oneDNN counts dilation from 0
  // The right/bottom padding is given equal to the left/top one: oneDNN's output size is the same
  // floor((in + 2 pad - extent) / stride) + 1 as ours, so the extra rows are never read.
  // Layouts: oneDNN's choice (blocked, reordered at each call) for kernels larger than 1x1; our own
  // NCHW for 1x1 kernels, which then run as oneDNN's GEMM straight on our arrays (no reorder).
  const bool blocked = R * S > 1;
  const memory::desc any_src = plain(src_d, blocked ? tag::any : tag::nchw),
                     any_dst = plain(dst_d, blocked ? tag::any : tag::nchw),
                     any_wei = plain(wei_d, blocked ? tag::any : wei_tag);
  const memory::desc bias_md = has_bias ? plain({K}, tag::x) : memory::desc();
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);

  auto fd = dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                            any_src, any_wei, bias_md, any_dst, strides, dil, pad, pad);
  auto fpd = dnnl::convolution_forward::primitive_desc(fd, attr, engine());
  auto e = std::make_shared<Entry>();
  if (dir == 0) {
    e->conv = dnnl::convolution_forward(fpd);
    e->impl = fpd.impl_info_str();
    e->in0 = make_operand(DNNL_ARG_SRC, plain(src_d, tag::nchw), fpd.src_desc(), true);
    e->in1 = make_operand(DNNL_ARG_WEIGHTS, plain(wei_d, wei_tag), fpd.weights_desc(), true);
    e->out = make_operand(DNNL_ARG_DST, plain(dst_d, tag::nchw), fpd.dst_desc(), false);
    e->bias = bias_md;
    e->scratch = fpd.scratchpad_desc();
  } else if (dir == 1) {
    auto bd = dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct, any_src, any_wei, any_dst,
                                                    strides, dil, pad, pad);
    auto bpd = dnnl::convolution_backward_data::primitive_desc(bd, attr, engine(), fpd);
    e->conv = dnnl::convolution_backward_data(bpd);
    e->impl = bpd.impl_info_str();
    e->in0 = make_operand(DNNL_ARG_DIFF_DST, plain(dst_d, tag::nchw), bpd.diff_dst_desc(), true);
    e->in1 = make_operand(DNNL_ARG_WEIGHTS, plain(wei_d, wei_tag), bpd.weights_desc(), true);
    e->out = make_operand(DNNL_ARG_DIFF_SRC, plain(src_d, tag::nchw), bpd.diff_src_desc(), false);
    e->scratch = bpd.scratchpad_desc();
  } else {
    auto wd = dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, any_src, any_wei, any_dst,
                                                       strides, dil, pad, pad);
    auto wpd = dnnl::convolution_backward_weights::primitive_desc(wd, attr, engine(), fpd);
    e->conv = dnnl::convolution_backward_weights(wpd);
    e->impl = wpd.impl_info_str();
    e->in0 = make_operand(DNNL_ARG_SRC, plain(src_d, tag::nchw), wpd.src_desc(), true);
    e->in1 = make_operand(DNNL_ARG_DIFF_DST, plain(dst_d, tag::nchw), wpd.diff_dst_desc(), true);
    e->out = make_operand(DNNL_ARG_DIFF_WEIGHTS, plain(wei_d, wei_tag), wpd.diff_weights_desc(), false);
    e->scratch = wpd.scratchpad_desc();
  }
  return e;
}

// The cache of created primitives. Training sees a few dozen distinct cases; inputs whose size
// changes every batch (scale jitter) would grow it without bound, so it is simply emptied when it
// reaches kMaxEntries (re-creating a primitive costs about a millisecond).
constexpr size_t kMaxEntries = 512;

std::shared_ptr<Entry> lookup(int dir, const Shape& xs, const Shape& ws, const Conv2dParams& p, bool bias) {
  static std::mutex mu;
  static std::map<Key, std::shared_ptr<Entry>> cache;
  const Key key = make_key(dir, xs, ws, p, bias);
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
  }
  std::shared_ptr<Entry> e;
  try {
    e = create(dir, xs, ws, p, bias);
  } catch (const dnnl::error& err) {
    SX_THROW(Error, "conv2d (oneDNN): cannot create the primitive for input ", shape_str(xs), ", weight ",
             shape_str(ws), ": ", err.what());
  }
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() >= kMaxEntries) cache.clear();
  cache[key] = e;
  return e;
}

// A float32 buffer of `bytes` bytes from our caching allocator (kept alive by the Tensor).
float* buffer(std::vector<Tensor>& keep, size_t bytes) {
  keep.push_back(Tensor::empty({static_cast<int64_t>((bytes + sizeof(float) - 1) / sizeof(float))}));
  return keep.back().data<float>();
}

// Runs a cached primitive: inputs reordered into its layout, the primitive, the output reordered
// back into the caller's array.
void run(Entry& e, const float* in0, const float* in1, const float* bias, float* out) {
  thread_local dnnl::stream stream(engine());
  std::vector<Tensor> keep;
  keep.reserve(8);
  std::unordered_map<int, memory> args;
  auto reorder = [&](Operand& o, memory& from, memory& to) {
    std::unordered_map<int, memory> ra{{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    if (o.scratch.get_size() > 0)
      ra.insert({DNNL_ARG_SCRATCHPAD, memory(o.scratch, engine(), buffer(keep, o.scratch.get_size()))});
    o.reorder.execute(stream, ra);
  };
  auto input = [&](Operand& o, const float* ptr) {
    memory user(o.user, engine(), const_cast<float*>(ptr));
    if (!o.needs_reorder) {
      args.insert({o.arg, user});
      return;
    }
    memory prim(o.prim, engine(), buffer(keep, o.prim.get_size()));
    reorder(o, user, prim);
    args.insert({o.arg, prim});
  };
  input(e.in0, in0);
  input(e.in1, in1);
  if (bias) args.insert({DNNL_ARG_BIAS, memory(e.bias, engine(), const_cast<float*>(bias))});
  memory user_out(e.out.user, engine(), out);
  memory prim_out = e.out.needs_reorder ? memory(e.out.prim, engine(), buffer(keep, e.out.prim.get_size())) : user_out;
  args.insert({e.out.arg, prim_out});
  if (e.scratch.get_size() > 0)
    args.insert({DNNL_ARG_SCRATCHPAD, memory(e.scratch, engine(), buffer(keep, e.scratch.get_size()))});
  e.conv.execute(stream, args);
  if (e.out.needs_reorder) reorder(e.out, prim_out, user_out);
  stream.wait();
}

}  // namespace

void forward(const float* x, const float* w, const float* b, float* y, const Shape& xs, const Shape& ws,
             const Conv2dParams& p) {
  run(*lookup(0, xs, ws, p, b != nullptr), x, w, b, y);
}

void backward_input(const float* dy, const float* w, float* dx, const Shape& xs, const Shape& ws,
                    const Conv2dParams& p) {
  run(*lookup(1, xs, ws, p, false), dy, w, nullptr, dx);
}

void backward_weight(const float* dy, const float* x, float* dw, const Shape& xs, const Shape& ws,
                     const Conv2dParams& p) {
  run(*lookup(2, xs, ws, p, false), x, dy, nullptr, dw);
}

std::string implementation(int dir, const Shape& xs, const Shape& ws, const Conv2dParams& p) {
  return lookup(dir, xs, ws, p, false)->impl;
}

}  // namespace sx::kernels::cpu::dnnl_conv
