// cat and stack: joining tensors along a dim (CPU and CUDA alike).
//
// cat allocates the output once and copies each input into its slice out.narrow(dim, offset, size)
// with Tensor::copy_, the strided copy that already runs on both devices (so no kernel here).
// Inputs of different dtypes are promoted (torch.cat's rule); all must share one device.
// As in torch, a 1-D empty tensor ([0]) is skipped whatever the other inputs' rank (the legacy
// "empty placeholder" convention that makes `cat({}, x)`-style accumulation loops work).
//
// stack(ts, dim) = cat of ts[i].unsqueeze(dim): the unsqueeze views carry the gradient.
// Backward of cat: input i receives grad.narrow(dim, offset_i, size_i).
#include <string>

#include "tensor/ops.h"

namespace sx {
namespace {

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  if (dim < -ndim || dim >= ndim)
    SX_THROW(ValueError, op, ": dim ", dim, " out of range for ", ndim, "-D tensors");
  return dim < 0 ? dim + ndim : dim;
}

bool is_legacy_empty(const Tensor& t) { return t.dim() == 1 && t.size(0) == 0; }

}  // namespace

Tensor cat(const std::vector<Tensor>& ts, int64_t dim) {
  SX_CHECK(!ts.empty(), "cat: expected at least one tensor");
  for (size_t i = 0; i < ts.size(); ++i) SX_CHECK(ts[i].defined(), "cat: tensor ", i, " is undefined");
  // The reference input: the first one that is not a legacy [0] placeholder.
  size_t ref = 0;
  while (ref < ts.size() && is_legacy_empty(ts[ref])) ++ref;
  if (ref == ts.size()) ref = 0;  // all are [0]: the result is [0]
  const Tensor& r = ts[ref];
  SX_CHECK(r.dim() >= 1, "cat: zero-dim tensors cannot be concatenated");
  const int64_t d = wrap_dim(dim, r.dim(), "cat");
  DType dtype = ts[0].dtype();
  for (const auto& t : ts) dtype = promote_types(dtype, t.dtype());

  Shape out_shape = r.shape();
  int64_t total = 0;
  std::vector<bool> used(ts.size(), false);
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i];
    SX_CHECK(t.device() == r.device(), "cat: tensor ", i, " is on ", t.device().str(), ", tensor ", ref,
             " on ", r.device().str());
    if (i != ref && is_legacy_empty(t) && r.dim() != 1) continue;
    SX_CHECK(t.dim() == r.dim(), "cat: tensor ", i, " has shape ", shape_str(t.shape()), ", expected ",
             r.dim(), " dims like ", shape_str(r.shape()));
    for (int64_t k = 0; k < r.dim(); ++k)
      if (k != d && t.size(k) != r.size(k))
        SX_THROW(ValueError, "cat: tensor ", i, " has shape ", shape_str(t.shape()), ", expected ",
                 shape_str(r.shape()), " except in dim ", d);
    used[i] = true;
    total += t.size(d);
  }
  out_shape[d] = total;
  Tensor out = Tensor::empty(out_shape, dtype, r.device());
  std::vector<int64_t> offsets(ts.size(), 0), sizes(ts.size(), 0);
  int64_t off = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    if (!used[i]) continue;
    offsets[i] = off;
    sizes[i] = ts[i].size(d);
    if (sizes[i] > 0) out.narrow(d, off, sizes[i]).copy_(ts[i].detach());
    off += sizes[i];
  }
  std::vector<DType> in_dtypes;
  for (const auto& t : ts) in_dtypes.push_back(t.dtype());
  return attach_grad(out, "cat", ts, [d, offsets, sizes, used, in_dtypes](const Tensor& g) {
    std::vector<Tensor> grads(offsets.size());
    for (size_t i = 0; i < offsets.size(); ++i) {
      if (!used[i] || !is_floating(in_dtypes[i])) continue;
      Tensor gi = g.narrow(d, offsets[i], sizes[i]);
      grads[i] = gi.dtype() == in_dtypes[i] ? gi : gi.to(in_dtypes[i]);
    }
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& ts, int64_t dim) {
  SX_CHECK(!ts.empty(), "stack: expected at least one tensor");
  for (size_t i = 0; i < ts.size(); ++i) {
    SX_CHECK(ts[i].defined(), "stack: tensor ", i, " is undefined");
    SX_CHECK(ts[i].shape() == ts[0].shape(), "stack: tensor ", i, " has shape ", shape_str(ts[i].shape()),
             ", tensor 0 has ", shape_str(ts[0].shape()), "; all must be equal");
  }
  const int64_t d = wrap_dim(dim, ts[0].dim() + 1, "stack");
  std::vector<Tensor> us;
  us.reserve(ts.size());
  for (const auto& t : ts) us.push_back(t.unsqueeze(d));
  return cat(us, d);
}

}  // namespace sx
