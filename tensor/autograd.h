// Reverse-mode automatic differentiation: a small dynamic tape in the style of micrograd.
//
// Every differentiable op that sees an input requiring grad (while grad mode is on) attaches a
// Node to its output. A Node holds the op's inputs (the graph's edges) and a backward closure
// mapping the output's gradient to one gradient per input (an undefined Tensor where an input needs
// none). backward() orders the nodes topologically with an iterative depth-first search, walks them
// from the output back, and:
//   - accumulates (+=) into the .grad of leaves that require grad (parameters keep summing over
//     several backward calls until zero_grad),
//   - sums the gradients arriving at an interior tensor from its several uses, then passes the
//     total once through its node (activation gradients are written, never accumulated across
//     passes).
// Afterwards each node's closure and inputs are released (the graph is freed) unless retain_graph;
// a second backward through a freed node throws a clear error.
//
// In-place writes: every op's inputs are version-stamped when the node is made; if one of them is
// written in place before backward reaches the node, backward throws naming the op (conservative:
// also for ops whose backward would not have needed the overwritten values).
//
// A closure must not capture the op's own output Tensor (that would be a reference cycle through
// grad_fn): capture out.detach() instead, which shares the values but not the history.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace sx {

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out)>;

// Where an input's gradient goes: the node that produced it (an interior tensor), or the leaf whose
// .grad accumulates it. An edge holds no interior tensor's values: what a backward needs, its
// closure saves itself (often nothing: add, a frozen BatchNorm's input), so an activation lives only
// as long as some closure or the caller holds it (holding every input here kept all of them alive
// until backward, about twice a detector's activation memory).
struct Edge {
  std::shared_ptr<Node> fn;          // producer of an interior input; null for a leaf or no input
  std::shared_ptr<TensorImpl> leaf;  // a leaf input that requires grad (parameters, user inputs)
  Shape shape;                       // the input's shape, to check the gradient the closure returns
  bool defined() const { return fn || leaf; }
};

struct Node {
  std::string name;             // the op, for error messages ("mul", "roi_align", ...)
  std::vector<Edge> inputs;     // one per op input; undefined for inputs that need no grad
  BackwardFn backward;
  bool released = false;        // set once the graph was freed by a backward pass
  std::weak_ptr<TensorImpl> retained_output;  // set by Tensor::retain_grad() on the output
  // The storage versions of every input when the op ran. An input written in place afterwards
  // (copy_, fill_, add_, mul_) makes backward throw instead of silently using the new values.
  std::vector<std::pair<std::weak_ptr<Storage>, uint64_t>> input_versions;
};

// Attach a node to `out` when grad mode is on and any input requires grad; returns out.
// The closure returns one Tensor per input, in order (undefined for inputs that need none).
Tensor attach_grad(Tensor out, const char* name, std::vector<Tensor> inputs, BackwardFn backward);

// Grad mode is per thread; NoGradGuard switches it off in a scope (evaluation, optimizer steps).
struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool enabled);
};
class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace sx
