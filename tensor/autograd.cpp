// The backward pass (see autograd.h for the rules it implements).
#include "tensor/autograd.h"

#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "tensor/grad_hooks.h"
#include "tensor/ops.h"

namespace sx {

namespace {
thread_local bool g_grad_enabled = true;

// Stores g as a leaf's gradient, or adds it. A fresh gradient is kept without a copy only when
// nothing else can see its storage (so later in-place updates of .grad cannot alias other tensors).
void accumulate_leaf(TensorImpl* leaf, const Tensor& g) {
  AutogradMeta& m = *leaf->autograd;
  if (!m.grad) {
    bool exclusive = g.is_contiguous() && g.storage().use_count() == 1 && g.offset() == 0;
    Tensor keep = exclusive ? g.detach() : g.detach().clone();
    m.grad = keep.impl_ptr();
  } else {
    m.grad = add(Tensor(m.grad), g).impl_ptr();
  }
}
// The post-accumulate-grad hooks (grad_hooks.h), by leaf.
struct HookEntry {
  int64_t handle;
  GradHook fn;
};
std::mutex g_hooks_mu;
std::unordered_map<TensorImpl*, std::vector<HookEntry>> g_hooks;
int64_t g_next_hook = 1;

bool has_hooks(TensorImpl* leaf) {
  std::lock_guard<std::mutex> lk(g_hooks_mu);
  return g_hooks.count(leaf) > 0;
}

void run_hooks(const Tensor& leaf) {
  std::vector<GradHook> fns;
  {
    std::lock_guard<std::mutex> lk(g_hooks_mu);
    auto it = g_hooks.find(leaf.impl());
    if (it == g_hooks.end()) return;
    for (const auto& e : it->second) fns.push_back(e.fn);
  }
  for (const auto& fn : fns) fn(leaf);
}

// Per pass: the edges still to come into each hooked leaf, and whether a gradient arrived.
struct LeafHookCounts {
  std::unordered_map<TensorImpl*, std::pair<int64_t, bool>> pending;
  // One edge into `leaf` is done (got: a gradient was accumulated through it).
  void edge_done(const std::shared_ptr<TensorImpl>& leaf, bool got) {
    auto it = pending.find(leaf.get());
    if (it == pending.end()) return;
    it->second.second = it->second.second || got;
    if (--it->second.first == 0) {
      const bool fire = it->second.second;
      pending.erase(it);
      if (fire) run_hooks(Tensor(leaf));
    }
  }
};
}  // namespace

int64_t add_post_accumulate_grad_hook(const Tensor& leaf, GradHook fn) {
  SX_CHECK(leaf.defined() && leaf.is_leaf() && leaf.requires_grad(),
           "add_post_accumulate_grad_hook: the tensor must be a leaf that requires grad");
  std::lock_guard<std::mutex> lk(g_hooks_mu);
  const int64_t h = g_next_hook++;
  g_hooks[leaf.impl()].push_back({h, std::move(fn)});
  return h;
}

void remove_post_accumulate_grad_hook(int64_t handle) {
  std::lock_guard<std::mutex> lk(g_hooks_mu);
  for (auto it = g_hooks.begin(); it != g_hooks.end(); ++it) {
    auto& v = it->second;
    for (size_t i = 0; i < v.size(); ++i)
      if (v[i].handle == handle) {
        v.erase(v.begin() + static_cast<std::ptrdiff_t>(i));
        if (v.empty()) g_hooks.erase(it);
        return;
      }
  }
}

bool GradMode::is_enabled() { return g_grad_enabled; }
void GradMode::set_enabled(bool e) { g_grad_enabled = e; }

Tensor attach_grad(Tensor out, const char* name, std::vector<Tensor> inputs, BackwardFn backward) {
  if (!GradMode::is_enabled()) return out;
  bool any = false;
  for (const auto& t : inputs)
    if (t.defined() && t.requires_grad()) any = true;
  if (!any) return out;
  std::vector<std::pair<std::weak_ptr<Storage>, uint64_t>> versions;
  versions.reserve(inputs.size());
  for (const auto& t : inputs)
    if (t.defined()) versions.emplace_back(t.storage(), t.storage()->version());
  auto node = std::make_shared<Node>();
  node->inputs.resize(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    if (!t.defined() || !t.requires_grad()) continue;  // edges that need no gradient are dropped
    Edge& e = node->inputs[i];
    if (t.is_leaf()) e.leaf = t.impl_ptr();
    else e.fn = t.grad_fn();
    e.shape = t.shape();
  }
  node->name = name;
  node->backward = std::move(backward);
  node->input_versions = std::move(versions);
  out.set_grad_fn(std::move(node));
  return out;
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  SX_CHECK(requires_grad(), "backward: the tensor does not require grad (no input of the computation "
                            "requires grad, or it ran under NoGradGuard)");
  Tensor seed = grad;
  if (!seed.defined()) {
    SX_CHECK(numel() == 1, "backward: a gradient can be created implicitly only for a one-element tensor, got shape ",
             shape_str(shape()), "; pass grad explicitly");
    seed = Tensor::ones(shape(), dtype(), device());
  } else {
    SX_CHECK(seed.shape() == shape(), "backward: gradient shape ", shape_str(seed.shape()),
             " does not match tensor shape ", shape_str(shape()));
    SX_CHECK(seed.device() == device(), "backward: gradient on ", seed.device().str(), ", tensor on ",
             device().str());
  }
  NoGradGuard no_grad;  // backward closures are not themselves recorded
  if (is_leaf()) {
    accumulate_leaf(impl(), seed);
    run_hooks(*this);
    return;
  }

  // Topological order: iterative post-order DFS over grad_fn edges, then reversed.
  Node* root = grad_fn().get();
  // `alive` owns every node until the pass ends: releasing a node's inputs below can drop the last
  // reference to an interior tensor, and with it to the node that produced it.
  std::vector<std::shared_ptr<Node>> alive{grad_fn()};
  std::vector<Node*> post;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<Node*, size_t>> stack{{root, 0}};
  seen.insert(root);
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (node->released)
      SX_THROW(ValueError, "backward: trying to backward through the graph a second time (node '", node->name,
               "' was freed by an earlier backward); call backward(grad, /*retain_graph=*/true) the first time");
    if (next < node->inputs.size()) {
      const Edge& in = node->inputs[next++];
      if (in.fn) {
        Node* child = in.fn.get();
        if (seen.insert(child).second) {
          alive.push_back(in.fn);
          stack.push_back({child, 0});
        }
      }
      continue;
    }
    post.push_back(node);
    stack.pop_back();
  }

  // The hooked leaves' edges of this pass (grad_hooks.h); nothing to count when no leaf is hooked.
  LeafHookCounts hooks;
  bool any_hooks;
  {
    std::lock_guard<std::mutex> lk(g_hooks_mu);
    any_hooks = !g_hooks.empty();
  }
  if (any_hooks)
    for (Node* node : post)
      for (const Edge& in : node->inputs)
        if (in.leaf && has_hooks(in.leaf.get())) {
          auto& p = hooks.pending[in.leaf.get()];
          ++p.first;
        }
  auto skip_leaf_edges = [&](Node* node) {
    if (hooks.pending.empty()) return;
    for (const Edge& in : node->inputs)
      if (in.leaf) hooks.edge_done(in.leaf, false);
  };

  std::unordered_map<Node*, Tensor> grads;
  grads[root] = seed;
  for (auto it = post.rbegin(); it != post.rend(); ++it) {
    Node* node = *it;
    auto git = grads.find(node);
    if (git == grads.end()) {
      skip_leaf_edges(node);
      continue;
    }
    Tensor g = git->second;
    grads.erase(git);
    if (auto out = node->retained_output.lock()) {
      if (out->autograd) out->autograd->grad = g.detach().impl_ptr();
    }
    for (const auto& [weak, version] : node->input_versions) {
      auto st = weak.lock();
      if (st && st->version() != version)
        SX_THROW(ValueError, "backward: a tensor needed for the gradient of '", node->name,
                 "' was modified in place after it was used (version ", version, " -> ", st->version(),
                 "); clone() it before the in-place write");
    }
    std::vector<Tensor> in_grads = node->backward(g);
    SX_CHECK(in_grads.size() == node->inputs.size(), "autograd: '", node->name, "' returned ", in_grads.size(),
             " gradients for ", node->inputs.size(), " inputs");
    for (size_t i = 0; i < node->inputs.size(); ++i) {
      const Edge& in = node->inputs[i];
      const Tensor& gi = in_grads[i];
      if (!in.defined()) continue;
      if (!gi.defined()) {
        if (in.leaf && !hooks.pending.empty()) hooks.edge_done(in.leaf, false);
        continue;
      }
      SX_CHECK(gi.shape() == in.shape, "autograd: '", node->name, "' returned a gradient of shape ",
               shape_str(gi.shape()), " for input ", i, " of shape ", shape_str(in.shape));
      if (in.leaf) {
        accumulate_leaf(in.leaf.get(), gi);
        if (!hooks.pending.empty()) hooks.edge_done(in.leaf, true);
      } else {
        Node* child = in.fn.get();
        auto cit = grads.find(child);
        if (cit == grads.end()) grads.emplace(child, gi);
        else cit->second = add(cit->second, gi);
      }
    }
    if (!retain_graph) {
      node->backward = nullptr;
      node->inputs.clear();
      node->released = true;
    }
  }
}

}  // namespace sx
