// The op registry's naive twins (declared and explained in op_naive_twins.h).
#include "tests/ops/op_naive_twins.h"

#include <cmath>

#include "tensor/autograd.h"
#include "tensor/ops.h"

namespace sx::test::twins {

using V = std::vector<Tensor>;

// ---- naive twins --------------------------------------------------------------------------------
// Product slow paths reachable below the autograd layer get a test-side node whose forward and
// backward both run the slow path.

struct ConvAlgoScope {
  kernels::cpu::CpuConvAlgo prev;
  explicit ConvAlgoScope(kernels::cpu::CpuConvAlgo a) : prev(kernels::cpu::cpu_conv_algo()) {
    kernels::cpu::cpu_conv_algo() = a;
  }
  ~ConvAlgoScope() { kernels::cpu::cpu_conv_algo() = prev; }
};

// conv2d forced onto the im2col + GEMM reference (forward and all three backward kernels).
Tensor conv2d_im2col(const Tensor& x, const Tensor& w, const Tensor& b, const kernels::Conv2dParams& p) {
  Tensor y;
  {
    ConvAlgoScope s(kernels::cpu::CpuConvAlgo::Im2col);
    y = kernels::conv2d_forward(x.detach(), w.detach(), b.defined() ? b.detach() : Tensor(), p);
  }
  const Shape xs = x.shape(), ws = w.shape();
  const Tensor xd = x.detach(), wd = w.detach();
  V inputs{x, w};
  if (b.defined()) inputs.push_back(b);
  const size_t n = inputs.size();
  return attach_grad(y, "test_conv2d_im2col", inputs, [=](const Tensor& g) {
    ConvAlgoScope s(kernels::cpu::CpuConvAlgo::Im2col);
    V r(n);
    r[0] = kernels::conv2d_backward_input(g, wd, xs, p);
    r[1] = kernels::conv2d_backward_weight(g, xd, ws, p);
    if (n == 3) r[2] = kernels::conv2d_backward_bias(g);
    return r;
  });
}

// roi_align on the naive per-output loops (RoiAlignAlgo::Naive), forward and backward.
Tensor roi_align_naive(const Tensor& x, const Tensor& rois, const kernels::RoiAlignParams& p) {
  Tensor y = kernels::roi_align_forward(x.detach(), rois.detach(), p, kernels::RoiAlignAlgo::Naive);
  const Shape xs = x.shape();
  const Tensor r = rois.detach();
  return attach_grad(y, "test_roi_align_naive", {x}, [=](const Tensor& g) {
    return V{kernels::roi_align_backward(g, r, xs, p, false, kernels::RoiAlignAlgo::Naive)};
  });
}

nn::MultiScaleRoiAlignOptions msra_options() {
  nn::MultiScaleRoiAlignOptions o;
  o.output_h = 3;
  o.output_w = 2;
  o.sampling_ratio = 2;
  o.canonical_scale = 16;  // small RoIs on level 2, larger ones on level 3 of a 32 px image
  o.canonical_level = 3;
  return o;
}
const std::vector<std::pair<int64_t, int64_t>> kMsraImages{{32, 32}, {28, 32}};

// multiscale_roi_align with the multilevel kernels on RoiAlignAlgo::Naive.
Tensor multiscale_roi_align_naive(const V& feats, const Tensor& rois) {
  const nn::MultiScaleRoiAlignOptions o = msra_options();
  const nn::FpnSetup setup = nn::infer_fpn_setup(feats, kMsraImages);
  kernels::RoiAlignParams p;
  p.pooled_h = o.output_h;
  p.pooled_w = o.output_w;
  p.sampling_ratio = o.sampling_ratio;
  p.aligned = o.aligned;
  Tensor levels = kernels::fpn_levels(rois.detach(), setup.k_min, setup.k_max,
                                      static_cast<double>(o.canonical_scale), o.canonical_level);
  V fd;
  std::vector<Shape> shapes;
  for (const Tensor& f : feats) {
    fd.push_back(f.detach());
    shapes.push_back(f.shape());
  }
  Tensor y = kernels::multilevel_roi_align_forward(fd, rois.detach(), levels, setup.scales, p,
                                                   kernels::RoiAlignAlgo::Naive);
  const Tensor r = rois.detach();
  const std::vector<double> scales = setup.scales;
  return attach_grad(y, "test_multiscale_roi_align_naive", feats, [=](const Tensor& g) {
    return kernels::multilevel_roi_align_backward(g, r, levels, shapes, scales, p, false,
                                                  kernels::RoiAlignAlgo::Naive);
  });
}

// Composed references (test-side, built from primitive differentiable ops; autograd derives their
// gradients, so they check the fused kernels' forward and hand-written backward).
Tensor matmul_composed(const Tensor& a, const Tensor& b) {  // [..., n, k] x [..., k, m]
  return sum(mul(a.unsqueeze(-1), b.unsqueeze(-3)), {-2});
}
Tensor softmax_composed(const Tensor& x, int64_t d) {
  Tensor e = exp(sub(x, sx::max(x, d, true).first.detach()));
  return div(e, sum(e, {d}, true));
}
Tensor log_softmax_composed(const Tensor& x, int64_t d) { return sub(x, log(sum(exp(x), {d}, true))); }

Tensor per_channel(const Tensor& v, int64_t nd) {  // [C] -> [1, C, 1, ...]
  Shape s(static_cast<size_t>(nd), 1);
  s[1] = v.size(0);
  return v.reshape(s);
}
Tensor batch_norm_train_composed(const Tensor& x, const Tensor& w, const Tensor& b, double eps) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  Tensor m = mean(x, dims, true);
  Tensor xc = sub(x, m);
  Tensor var = mean(mul(xc, xc), dims, true);
  Tensor y = div(xc, sqrt(add(var, eps)));
  return add(mul(y, per_channel(w, x.dim())), per_channel(b, x.dim()));
}
Tensor batch_norm_eval_composed(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& rm,
                                const Tensor& rv, double eps) {
  Tensor scale = div(w, sqrt(add(rv, eps)));
  Tensor shift = sub(b, mul(rm, scale));
  return add(mul(x, per_channel(scale, x.dim())), per_channel(shift, x.dim()));
}

// torchvision.ops.sigmoid_focal_loss written out: ce * (1 - p_t)^gamma * alpha_t, ignored rows masked.
Tensor focal_composed(const Tensor& x, const Tensor& targets, const nn::FocalLossParams& fp) {
  const int64_t C = x.size(1);
  Tensor cls = Tensor::arange(C, DType::Int64, x.device()).reshape({1, C});
  Tensor y = eq(targets.unsqueeze(1), cls).to(x.dtype());
  Tensor valid = ge(targets, 0.0).to(x.dtype()).unsqueeze(1);
  Tensor p = sigmoid(x);
  Tensor ce = nn::binary_cross_entropy_with_logits(x, y, Tensor(), nn::Reduction::None);
  Tensor p_t = add(mul(p, y), mul(rsub(1.0, p), rsub(1.0, y)));
  Tensor l = mul(ce, pow(rsub(1.0, p_t), fp.gamma));
  if (fp.alpha >= 0) l = mul(l, add(mul(y, fp.alpha), mul(rsub(1.0, y), 1.0 - fp.alpha)));
  l = mul(l, valid);
  switch (fp.reduction) {
    case nn::FocalReduction::None: break;
    case nn::FocalReduction::Sum: l = sum(l); break;
    case nn::FocalReduction::Mean: l = mean(l); break;
  }
  return div(l, fp.normalizer);
}

kernels::labs::FocalResult focal_composed_step(const Tensor& x, const Tensor& targets,
                                               const nn::FocalLossParams& fp) {
  Tensor xg = x.detach().set_requires_grad(true);
  Tensor l = focal_composed(xg, targets, fp);
  l.backward(fp.reduction == nn::FocalReduction::None ? Tensor::ones(l.shape(), l.dtype())
                                                      : Tensor::scalar(1.0, l.dtype()));
  return {l.detach(), xg.grad()};
}

// Adaptive average pooling by its definition: cell (i, j) averages rows [floor(iH/OH), ceil((i+1)H/OH)).
Tensor adaptive_avg_pool2d_composed(const Tensor& x, int64_t oh, int64_t ow) {
  const int64_t H = x.size(2), W = x.size(3);
  V rows;
  for (int64_t i = 0; i < oh; ++i) {
    V cols;
    const int64_t h0 = i * H / oh, h1 = ((i + 1) * H + oh - 1) / oh;
    for (int64_t j = 0; j < ow; ++j) {
      const int64_t w0 = j * W / ow, w1 = ((j + 1) * W + ow - 1) / ow;
      cols.push_back(mean(x.slice(2, h0, h1).slice(3, w0, w1), {2, 3}));
    }
    rows.push_back(stack(cols, -1));  // [N, C, ow]
  }
  return stack(rows, -2);  // [N, C, oh, ow]
}

// Nearest upsampling as two index_selects with src = min(floor(dst * scale), in - 1).
Tensor upsample_composed(const Tensor& x, int64_t oh, int64_t ow, double sh, double sw) {
  auto idx = [&](int64_t in, int64_t out, double s) {
    const float scale = s > 0 ? static_cast<float>(s) : static_cast<float>(in) / static_cast<float>(out);
    std::vector<double> v;
    for (int64_t d = 0; d < out; ++d)
      v.push_back(static_cast<double>(std::min<int64_t>(static_cast<int64_t>(std::floor(d * scale)), in - 1)));
    return Tensor::from_vector(v, {out}, DType::Int64, x.device());
  };
  Tensor r = index_select(x, 2, idx(x.size(2), oh, sh));
  return index_select(r, 3, idx(x.size(3), ow, sw));
}

// Max pooling without padding as the maximum over the kernel's strided slices.
Tensor max_pool2d_composed(const Tensor& x, int64_t k, int64_t s) {
  const int64_t P = (x.size(2) - k) / s + 1, Q = (x.size(3) - k) / s + 1;
  V taps;
  for (int64_t r = 0; r < k; ++r)
    for (int64_t c = 0; c < k; ++c)
      taps.push_back(x.slice(2, r, r + s * (P - 1) + 1, s).slice(3, c, c + s * (Q - 1) + 1, s));
  return sx::max(stack(taps, 0), 0).first;
}

Tensor giou_loss_composed(const Tensor& b1, const Tensor& b2, double eps) {
  Tensor x1 = b1.select(-1, 0), y1 = b1.select(-1, 1), x2 = b1.select(-1, 2), y2 = b1.select(-1, 3);
  Tensor x1g = b2.select(-1, 0), y1g = b2.select(-1, 1), x2g = b2.select(-1, 2), y2g = b2.select(-1, 3);
  Tensor iw = relu(sub(minimum(x2, x2g), maximum(x1, x1g)));  // intersection: 0 unless both > 0
  Tensor ih = relu(sub(minimum(y2, y2g), maximum(y1, y1g)));
  Tensor inter = mul(iw, ih);
  Tensor uni = sub(add(mul(sub(x2, x1), sub(y2, y1)), mul(sub(x2g, x1g), sub(y2g, y1g))), inter);
  Tensor iou = div(inter, add(uni, eps));
  Tensor area_c = mul(sub(maximum(x2, x2g), minimum(x1, x1g)), sub(maximum(y2, y2g), minimum(y1, y1g)));
  return rsub(1.0, sub(iou, div(sub(area_c, uni), add(area_c, eps))));
}

}  // namespace sx::test::twins
