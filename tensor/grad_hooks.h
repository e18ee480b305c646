// "The gradient of this leaf is final": a hook the backward pass calls once per pass for a leaf
// (a parameter), right after the last gradient of that pass was accumulated into its .grad
// (PyTorch's register_post_accumulate_grad_hook). Data-parallel training (tensor/dist/bucketer.h)
// uses it to launch a bucket's all-reduce while backward is still walking the rest of the graph.
//
// When is a gradient final? backward() counts, before it walks the graph, the edges that lead into
// each hooked leaf from the nodes of this pass; each edge is done when its node ran (with or without
// a gradient for the leaf) or was skipped (no gradient reached it). The hook fires when the last
// edge is done and at least one gradient was accumulated; a leaf the pass did not reach gets no call
// (the caller finds it at the end: Bucketer::finish).
//
// Hooks run inside backward, under NoGradGuard, on the thread of backward(). They must not
// modify the leaf's .grad in a way that changes later accumulation (they may read it and launch
// work on it). The handle removes the hook; the leaf must outlive its hooks (remove them first).
#pragma once
#include <cstdint>
#include <functional>

#include "tensor/tensor.h"

namespace sx {

using GradHook = std::function<void(const Tensor& leaf)>;

// Registers fn for `leaf` (a tensor that requires grad and has no grad_fn); returns a handle.
int64_t add_post_accumulate_grad_hook(const Tensor& leaf, GradHook fn);
// Removes a hook (unknown handles are ignored).
void remove_post_accumulate_grad_hook(int64_t handle);

}  // namespace sx
