// The op registry's table (see op_registry.h for how to add an op) and its helpers.
#include "tests/ops/op_registry.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>
#include <unordered_set>
#include <utility>

#include "kernels/conv2d/conv2d.h"
#include "kernels/roi_align/roi_align.h"
#include "layers/layers.h"
#include "models/densenet.h"
#include "tensor/autograd.h"
#include "tensor/dist/process_group.h"
#include "tensor/ops.h"
#include "tests/ops/op_naive_twins.h"

// The table is written as aggregate initialisers that leave the optional fields (tolerances, naive
// twin) at their defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace sx::test {

// ---- helpers ----------------------------------------------------------------------------------
Tensor uniform(Generator& g, const Shape& s, double lo, double hi) {
  std::vector<double> v(static_cast<size_t>(shape_numel(s)));
  for (double& x : v) x = lo + (hi - lo) * g.uniform();
  return Tensor::from_vector(v, s, DType::Float64);
}

Tensor away(Generator& g, const Shape& s, double lo, double hi, const std::vector<double>& kinks, double margin) {
  std::vector<double> v(static_cast<size_t>(shape_numel(s)));
  for (double& x : v) {
    for (;;) {
      x = lo + (hi - lo) * g.uniform();
      bool ok = true;
      for (double k : kinks) ok = ok && std::fabs(x - k) >= margin;
      if (ok) break;
    }
  }
  return Tensor::from_vector(v, s, DType::Float64);
}

Tensor distinct(Generator& g, const Shape& s, double lo, double hi) {
  const int64_t n = shape_numel(s);
  std::vector<double> v(static_cast<size_t>(n));
  const double step = (hi - lo) / static_cast<double>(std::max<int64_t>(n, 1));
  for (int64_t i = 0; i < n; ++i) v[i] = lo + step * (static_cast<double>(i) + 0.25 + 0.5 * g.uniform());
  for (int64_t i = n - 1; i > 0; --i) std::swap(v[i], v[g.randint(0, i + 1)]);  // Fisher-Yates
  return Tensor::from_vector(v, s, DType::Float64);
}

Tensor positive(Generator& g, const Shape& s, double lo, double hi) { return uniform(g, s, lo, hi); }

Tensor randint_t(Generator& g, const Shape& s, int64_t lo, int64_t hi) {
  std::vector<double> v(static_cast<size_t>(shape_numel(s)));
  for (double& x : v) x = static_cast<double>(g.randint(lo, hi));
  return Tensor::from_vector(v, s, DType::Int64);
}

Tensor bool_mask(Generator& g, const Shape& s, double p_true) { return lt(uniform(g, s, 0.0, 1.0), p_true); }

std::vector<Tensor> make_inputs(const OpCase& c, DType dtype, Device device, uint64_t seed) {
  Generator g(seed);
  std::vector<InputSpec> specs = c.inputs(g);
  std::vector<Tensor> out;
  NoGradGuard ng;
  for (const InputSpec& s : specs) {
    Tensor v = s.value;
    const DType dt = is_floating(v.dtype()) ? dtype : v.dtype();
    Tensor t;
    if (s.transposed) {
      // Memory laid out as the transpose, the leaf a transposed (non-contiguous) view of it.
      Tensor buf = v.transpose(-1, -2).contiguous().to(device, dt).contiguous();
      t = buf.transpose(-1, -2).detach();
    } else {
      t = v.to(device, dt).contiguous().detach();
      if (t.same_storage(v)) t = v.clone().detach();  // never hand out the builder's buffer
    }
    if (s.grad) t.set_requires_grad(true);
    out.push_back(t);
  }
  return out;
}

std::vector<std::string> graph_node_names(const Tensor& out) {
  std::set<std::string> names;
  std::unordered_set<const Node*> seen;
  std::vector<std::shared_ptr<Node>> stack;
  if (out.defined() && out.grad_fn()) stack.push_back(out.grad_fn());
  while (!stack.empty()) {
    std::shared_ptr<Node> n = stack.back();
    stack.pop_back();
    if (!n || !seen.insert(n.get()).second) continue;
    names.insert(n->name);
    for (const Edge& e : n->inputs)
      if (e.fn) stack.push_back(e.fn);
  }
  return {names.begin(), names.end()};
}

std::vector<Tensor> forward_backward(const OpFn& fn, const std::vector<Tensor>& inputs, uint64_t seed) {
  for (const Tensor& x : inputs)
    if (x.defined() && x.requires_grad()) const_cast<Tensor&>(x).zero_grad();
  Tensor out = fn(inputs);
  std::vector<Tensor> r{out.detach().cpu()};
  if (!out.requires_grad()) return r;
  Generator g(seed);
  Tensor w = uniform(g, out.shape(), -1.0, 1.0).to(out.device(), out.dtype());
  out.backward(w);
  for (const Tensor& x : inputs)
    if (x.defined() && x.requires_grad()) r.push_back(x.grad().defined() ? x.grad().cpu() : Tensor());
  return r;
}

namespace {

using V = std::vector<Tensor>;
using S = std::vector<InputSpec>;

InputSpec G(Tensor v, bool transposed = false) { return InputSpec{std::move(v), true, transposed}; }
InputSpec C(Tensor v) { return InputSpec{std::move(v), false, false}; }

using namespace twins;

// ---- the table ----------------------------------------------------------------------------------
std::vector<OpCase> build_registry() {
  std::vector<OpCase> R;
  auto add_case = [&](OpCase c) { R.push_back(std::move(c)); };
  const Tolerance kReduce{1e-4, 1e-3};  // parity of long float32 reductions (sum order differs)

  // ---- tensor/elementwise.cpp: binary (broadcasting, non-contiguous) and scalar forms ----------
  add_case({"add_broadcast", {"add"},
            [](Generator& g) { return S{G(uniform(g, {3, 4}, -2, 2)), G(uniform(g, {4}, -2, 2))}; },
            [](const V& in) { return add(in[0], in[1]); }});
  add_case({"add_scalar", {"add"}, [](Generator& g) { return S{G(uniform(g, {5}, -2, 2))}; },
            [](const V& in) { return add(in[0], 0.7); }});
  add_case({"sub_broadcast", {"sub"},
            [](Generator& g) { return S{G(uniform(g, {2, 3, 4}, -2, 2)), G(uniform(g, {3, 1}, -2, 2))}; },
            [](const V& in) { return sub(in[0], in[1]); }});
  add_case({"sub_scalar", {"sub"}, [](Generator& g) { return S{G(uniform(g, {5}, -2, 2))}; },
            [](const V& in) { return sub(in[0], 0.3); }});
  add_case({"rsub_scalar", {"rsub"}, [](Generator& g) { return S{G(uniform(g, {2, 3}, -2, 2))}; },
            [](const V& in) { return rsub(1.5, in[0]); }});
  add_case({"mul_noncontiguous", {"mul"},
            [](Generator& g) { return S{G(uniform(g, {4, 3}, -2, 2), true), G(uniform(g, {4, 3}, -2, 2))}; },
            [](const V& in) { return mul(in[0], in[1]); }});
  add_case({"mul_scalar", {"mul"}, [](Generator& g) { return S{G(uniform(g, {5}, -2, 2))}; },
            [](const V& in) { return mul(in[0], -1.25); }});
  add_case({"div_broadcast", {"div"},
            [](Generator& g) { return S{G(uniform(g, {3, 4}, -2, 2)), G(positive(g, {4}))}; },
            [](const V& in) { return div(in[0], in[1]); }});
  add_case({"div_scalar", {"div"}, [](Generator& g) { return S{G(uniform(g, {5}, -2, 2))}; },
            [](const V& in) { return div(in[0], 3.0); }});
  add_case({"pow_tensor", {"pow"},
            [](Generator& g) { return S{G(positive(g, {3, 4})), G(uniform(g, {3, 4}, -1.5, 1.5))}; },
            [](const V& in) { return pow(in[0], in[1]); }});
  add_case({"pow_scalar", {"pow"}, [](Generator& g) { return S{G(positive(g, {3, 4}))}; },
            [](const V& in) { return pow(in[0], 2.5); }});
  auto minmax_inputs = [](Generator& g) {  // a [3, 4] and b [4], all 16 values distinct
    Tensor d = distinct(g, {16}, -2, 2);
    return S{G(d.narrow(0, 0, 12).reshape({3, 4}).contiguous()), G(d.narrow(0, 12, 4).contiguous())};
  };
  add_case({"maximum_broadcast", {"maximum"}, minmax_inputs, [](const V& in) { return maximum(in[0], in[1]); }});
  add_case({"minimum_broadcast", {"minimum"}, minmax_inputs, [](const V& in) { return minimum(in[0], in[1]); }});
  add_case({"where_broadcast", {"where"},
            [](Generator& g) {
              return S{C(bool_mask(g, {3, 4})), G(uniform(g, {3, 4}, -2, 2)), G(uniform(g, {4}, -2, 2))};
            },
            [](const V& in) { return where(in[0], in[1], in[2]); }});

  // ---- tensor/elementwise.cpp: unary -------------------------------------------------------------
  auto unary = [&](const char* name, const char* node, std::function<Tensor(Generator&)> gen,
                   std::function<Tensor(const Tensor&)> f) {
    add_case({name, {node}, [gen](Generator& g) { return S{G(gen(g))}; },
              [f](const V& in) { return f(in[0]); }});
  };
  unary("neg", "neg", [](Generator& g) { return uniform(g, {3, 4}, -2, 2); }, [](const Tensor& x) { return neg(x); });
  unary("abs", "abs", [](Generator& g) { return away(g, {3, 4}, -2, 2, {0.0}); },
        [](const Tensor& x) { return abs(x); });
  unary("exp", "exp", [](Generator& g) { return uniform(g, {3, 4}, -2, 2); }, [](const Tensor& x) { return exp(x); });
  unary("log", "log", [](Generator& g) { return positive(g, {3, 4}); }, [](const Tensor& x) { return log(x); });
  unary("sqrt", "sqrt", [](Generator& g) { return positive(g, {3, 4}); }, [](const Tensor& x) { return sqrt(x); });
  unary("clamp", "clamp", [](Generator& g) { return away(g, {4, 5}, -1, 1, {-0.5, 0.5}); },
        [](const Tensor& x) { return clamp(x, -0.5, 0.5); });
  unary("clamp_min_only", "clamp", [](Generator& g) { return away(g, {4, 5}, -1, 1, {0.2}); },
        [](const Tensor& x) { return clamp(x, 0.2, std::nullopt); });
  unary("relu", "relu", [](Generator& g) { return away(g, {3, 4}, -2, 2, {0.0}); },
        [](const Tensor& x) { return relu(x); });
  unary("leaky_relu", "leaky_relu", [](Generator& g) { return away(g, {3, 4}, -2, 2, {0.0}); },
        [](const Tensor& x) { return leaky_relu(x, 0.1); });
  unary("sigmoid", "sigmoid", [](Generator& g) { return uniform(g, {3, 4}, -3, 3); },
        [](const Tensor& x) { return sigmoid(x); });
  unary("tanh", "tanh", [](Generator& g) { return uniform(g, {3, 4}, -2, 2); }, [](const Tensor& x) { return tanh(x); });
  // beta 2, threshold 3: both branches (beta * x > 3 is linear), away from the switch at x = 1.5.
  unary("softplus", "softplus", [](Generator& g) { return away(g, {4, 5}, -3, 3, {1.5}); },
        [](const Tensor& x) { return softplus(x, 2.0, 3.0); });

  // ---- tensor/tensor.cpp: copies and views --------------------------------------------------------
  // The dtype round trip, and on CUDA also the device round trip (CUDA -> CPU -> CUDA).
  add_case({"to_dtype_and_device", {"to"}, [](Generator& g) { return S{G(uniform(g, {3, 4}, -2, 2))}; },
            [](const V& in) {
              const DType other = in[0].dtype() == DType::Float64 ? DType::Float32 : DType::Float64;
              return in[0].to(other).cpu().to(in[0].device(), in[0].dtype());
            },
            // float64 -> float32 -> float64 rounds to float32: a larger step keeps the numeric derivative exact enough.
            GradcheckTol{1e-2, 1e-4, 1e-4}});
  add_case({"clone_noncontiguous", {"clone"}, [](Generator& g) { return S{G(uniform(g, {3, 4}, -2, 2), true)}; },
            [](const V& in) { return in[0].contiguous(); }});
  add_case({"view_reshape_flatten", {"view"}, [](Generator& g) { return S{G(uniform(g, {2, 3, 4}, -2, 2))}; },
            [](const V& in) { return in[0].view({6, 4}).reshape({4, 6}).flatten(); }});
  add_case({"permute_transpose", {"permute"}, [](Generator& g) { return S{G(uniform(g, {2, 3, 4}, -2, 2))}; },
            [](const V& in) { return in[0].permute({2, 0, 1}).transpose(0, 1); }});
  add_case({"slice_narrow_select", {"slice", "squeeze"},
            [](Generator& g) { return S{G(uniform(g, {4, 5, 6}, -2, 2))}; },
            [](const V& in) { return in[0].slice(2, 1, 6, 2).narrow(1, 1, 3).select(0, 2); }});
  add_case({"squeeze_all", {"squeeze"}, [](Generator& g) { return S{G(uniform(g, {1, 3, 1, 4}, -2, 2))}; },
            [](const V& in) { return in[0].squeeze(); }});
  add_case({"unsqueeze", {"unsqueeze"}, [](Generator& g) { return S{G(uniform(g, {3, 4}, -2, 2))}; },
            [](const V& in) { return in[0].unsqueeze(1); }});
  add_case({"expand", {"expand"}, [](Generator& g) { return S{G(uniform(g, {3, 1}, -2, 2))}; },
            [](const V& in) { return in[0].expand({2, 3, 5}); }});

  // ---- tensor/reduce.cpp --------------------------------------------------------------------------
  OpCase c;  // entries with a naive twin are filled in two steps
  add_case({"sum_all", {"sum"}, [](Generator& g) { return S{G(uniform(g, {3, 4, 5}, -2, 2))}; },
            [](const V& in) { return sum(in[0]); }, {}, kReduce});
  add_case({"sum_dims_keepdim_noncontiguous", {"sum"},
            [](Generator& g) { return S{G(uniform(g, {3, 4, 5}, -2, 2), true)}; },
            [](const V& in) { return sum(in[0], {0, 2}, true); }, {}, kReduce});
  add_case({"mean_dim", {"sum", "div"}, [](Generator& g) { return S{G(uniform(g, {3, 4, 5}, -2, 2))}; },
            [](const V& in) { return mean(in[0], {1}); }, {}, kReduce});
  add_case({"var_unbiased", {"sum", "sub", "mul"}, [](Generator& g) { return S{G(uniform(g, {4, 6}, -2, 2))}; },
            [](const V& in) { return var(in[0], {1}, true, false); }, {}, kReduce});
  add_case({"max_dim", {"max"}, [](Generator& g) { return S{G(distinct(g, {3, 5, 4}, -2, 2))}; },
            [](const V& in) { return sx::max(in[0], 1, false).first; }});
  add_case({"min_dim_keepdim", {"min"}, [](Generator& g) { return S{G(distinct(g, {3, 5, 4}, -2, 2))}; },
            [](const V& in) { return sx::min(in[0], -1, true).first; }});
  add_case({"max_all", {"max"}, [](Generator& g) { return S{G(distinct(g, {4, 5}, -2, 2))}; },
            [](const V& in) { return sx::max(in[0]); }});
  add_case({"min_all", {"min"}, [](Generator& g) { return S{G(distinct(g, {4, 5}, -2, 2))}; },
            [](const V& in) { return sx::min(in[0]); }});
  c = {"softmax_dim1", {"softmax"}, [](Generator& g) { return S{G(uniform(g, {3, 6, 4}, -3, 3))}; },
       [](const V& in) { return softmax(in[0], 1); }};
  c.naive = [](const V& in) { return softmax_composed(in[0], 1); };
  c.naive_what = "composed: exp(x - max) / sum(exp(x - max))";
  add_case(c);
  c = {"log_softmax_last", {"log_softmax"}, [](Generator& g) { return S{G(uniform(g, {4, 7}, -3, 3))}; },
       [](const V& in) { return log_softmax(in[0], -1); }};
  c.naive = [](const V& in) { return log_softmax_composed(in[0], -1); };
  c.naive_what = "composed: x - log(sum(exp(x)))";
  add_case(c);

  // ---- tensor/sort.cpp ------------------------------------------------------------------------------
  add_case({"sort_descending", {"sort"}, [](Generator& g) { return S{G(distinct(g, {3, 6}, -2, 2))}; },
            [](const V& in) { return sort(in[0], -1, true).first; }});
  add_case({"topk_dim0", {"topk"}, [](Generator& g) { return S{G(distinct(g, {6, 4}, -2, 2))}; },
            [](const V& in) { return topk(in[0], 3, 0, true).first; }});
  add_case({"topk_smallest", {"topk"}, [](Generator& g) { return S{G(distinct(g, {3, 7}, -2, 2))}; },
            [](const V& in) { return topk(in[0], 2, -1, false).first; }});

  // ---- tensor/join.cpp --------------------------------------------------------------------------------
  add_case({"cat_dim1", {"cat"},
            [](Generator& g) {
              return S{G(uniform(g, {2, 3, 2}, -2, 2)), G(uniform(g, {2, 1, 2}, -2, 2)), G(uniform(g, {2, 4, 2}, -2, 2))};
            },
            [](const V& in) { return cat({in[0], in[1], in[2]}, 1); }});
  add_case({"stack", {"cat", "unsqueeze"},
            [](Generator& g) { return S{G(uniform(g, {3, 4}, -2, 2)), G(uniform(g, {3, 4}, -2, 2), true)}; },
            [](const V& in) { return stack({in[0], in[1]}, 1); }});

  // ---- models/densenet.cpp: the dense block's shared-buffer prefix (a view with cat's backward) ---------
  add_case({"dense_prefix", {"dense_prefix"},
            [](Generator& g) { return S{G(uniform(g, {2, 3, 2, 3}, -2, 2)), G(uniform(g, {2, 2, 2, 3}, -2, 2))}; },
            [](const V& in) {
              Tensor buf = Tensor::zeros({2, 7, 2, 3}, in[0].dtype());
              {
                NoGradGuard ng;
                buf.narrow(1, 0, 3).copy_(in[0].detach());
                buf.narrow(1, 3, 2).copy_(in[1].detach());
              }
              return models::dense_prefix(buf, 5, {in[0], in[1]});
            }});

  add_case({"dense_norm_relu", {"dense_norm_relu"},
            [](Generator& g) {
              return S{G(uniform(g, {3, 2, 2, 3}, -2, 2)), G(uniform(g, {2}, 0.5, 1.5)), G(uniform(g, {2}, -0.3, 0.3))};
            },
            [](const V& in) {
              // a BatchNorm2d whose affine parameters are the case's inputs (float64, training mode)
              nn::BatchNorm2d bn(2);
              bn.to(DType::Float64);
              bn.weight = in[1];
              bn.bias = in[2];
              return models::dense_norm_relu(bn, in[0]);
            }});

  // ---- tensor/index.cpp ---------------------------------------------------------------------------
  add_case({"index_select_repeats", {"index_select"},
            [](Generator& g) {
              return S{G(uniform(g, {5, 3}, -2, 2)), C(Tensor::from_vector({4, 0, 2, 0, 4, 1}, {6}, DType::Int64))};
            },
            [](const V& in) { return index_select(in[0], 0, in[1]); }});
  add_case({"gather_dim1", {"gather"},
            [](Generator& g) { return S{G(uniform(g, {4, 5}, -2, 2)), C(randint_t(g, {4, 3}, 0, 5))}; },
            [](const V& in) { return gather(in[0], 1, in[1]); }});
  add_case({"scatter_add_dim0", {"scatter_add"},
            [](Generator& g) {
              return S{G(uniform(g, {4, 3}, -2, 2)), C(randint_t(g, {6, 3}, 0, 4)), G(uniform(g, {6, 3}, -2, 2))};
            },
            [](const V& in) { return scatter_add(in[0], 0, in[1], in[2]); }, {}, kReduce});
  add_case({"masked_select_broadcast", {"masked_select"},
            [](Generator& g) {
              Tensor m = Tensor::from_vector({1, 0, 1, 1, 0}, {1, 5}, DType::Bool);  // broadcast over rows
              return S{G(uniform(g, {3, 5}, -2, 2)), C(m)};
            },
            [](const V& in) { return masked_select(in[0], in[1]); }});

  // ---- tensor/matmul.cpp ------------------------------------------------------------------------------
  c = {"matmul_2d", {"matmul"}, [](Generator& g) { return S{G(uniform(g, {3, 5}, -1, 1)), G(uniform(g, {5, 4}, -1, 1))}; },
       [](const V& in) { return matmul(in[0], in[1]); }, {}, kReduce};
  c.naive = [](const V& in) { return matmul_composed(in[0], in[1]); };
  c.naive_what = "composed: sum(a[..., n, k, 1] * b[..., 1, k, m], k)";
  add_case(c);
  c = {"matmul_batched_broadcast_transposed", {"matmul"},
       [](Generator& g) { return S{G(uniform(g, {2, 1, 3, 5}, -1, 1)), G(uniform(g, {3, 5, 4}, -1, 1), true)}; },
       [](const V& in) { return matmul(in[0], in[1]); }, {}, kReduce};
  c.naive = [](const V& in) { return matmul_composed(in[0], in[1]); };
  c.naive_what = "composed: sum(a[..., n, k, 1] * b[..., 1, k, m], k)";
  add_case(c);
  add_case({"matmul_vector_matrix", {"matmul"},
            [](Generator& g) { return S{G(uniform(g, {5}, -1, 1)), G(uniform(g, {2, 5, 3}, -1, 1))}; },
            [](const V& in) { return matmul(in[0], in[1]); }, {}, kReduce});
  add_case({"matmul_matrix_vector", {"matmul"},
            [](Generator& g) { return S{G(uniform(g, {4, 5}, -1, 1)), G(uniform(g, {5}, -1, 1))}; },
            [](const V& in) { return matmul(in[0], in[1]); }, {}, kReduce});

  // ---- layers/linear.cpp, layers/activation.cpp (composed) ----------------------------------------
  add_case({"linear", {"matmul", "permute", "add"},
            [](Generator& g) {
              return S{G(uniform(g, {2, 3, 5}, -1, 1)), G(uniform(g, {4, 5}, -1, 1)), G(uniform(g, {4}, -1, 1))};
            },
            [](const V& in) { return nn::linear(in[0], in[1], in[2]); }, {}, kReduce});
  add_case({"dropout", {"mul"}, [](Generator& g) { return S{G(uniform(g, {4, 6}, -2, 2))}; },
            [](const V& in) {
              Generator gen(42);  // the same mask on every call (and on every device: counter-based draws)
              return nn::dropout(in[0], 0.3, true, gen);
            }});

  // ---- layers/loss.cpp ------------------------------------------------------------------------------
  add_case({"bce_with_logits_pos_weight_weight", {"softplus", "neg", "mul", "add", "sum", "div"},
            [](Generator& g) {
              return S{G(uniform(g, {4, 3}, -3, 3)), C(uniform(g, {4, 3}, 0, 1)), C(positive(g, {3})),
                       C(positive(g, {4, 3}))};
            },
            [](const V& in) {
              return nn::binary_cross_entropy_with_logits(in[0], in[1], in[2], nn::Reduction::Mean, in[3]);
            },
            {}, kReduce});
  add_case({"cross_entropy_weight_ignore_smoothing", {"log_softmax", "gather", "squeeze", "neg", "mul", "add", "div"},
            [](Generator& g) {
              return S{G(uniform(g, {5, 4}, -2, 2)), C(Tensor::from_vector({0, 3, -100, 2, 1}, {5}, DType::Int64)),
                       C(positive(g, {4}))};
            },
            [](const V& in) { return nn::cross_entropy(in[0], in[1], nn::Reduction::Mean, in[2], -100, 0.1); },
            {}, kReduce});
  add_case({"cross_entropy_spatial_sum", {"log_softmax", "gather"},
            [](Generator& g) { return S{G(uniform(g, {2, 3, 2, 2}, -2, 2)), C(randint_t(g, {2, 2, 2}, 0, 3))}; },
            [](const V& in) { return nn::cross_entropy(in[0], in[1], nn::Reduction::Sum); }, {}, kReduce});
  add_case({"smooth_l1_beta", {"where", "abs", "sub"},
            [](Generator& g) {
              Tensor t = uniform(g, {4, 5}, -1, 1);
              Tensor d = away(g, {4, 5}, -1.5, 1.5, {-0.5, 0.0, 0.5});  // |input - target| away from 0 and beta
              return S{G(add(t, d)), C(t)};
            },
            [](const V& in) { return nn::smooth_l1_loss(in[0], in[1], 0.5, nn::Reduction::Mean); }, {}, kReduce});
  add_case({"l1_loss", {"abs", "sub"},
            [](Generator& g) {
              Tensor t = uniform(g, {4, 5}, -1, 1);
              return S{G(add(t, away(g, {4, 5}, -1, 1, {0.0}))), C(t)};
            },
            [](const V& in) { return nn::l1_loss(in[0], in[1], nn::Reduction::Sum); }, {}, kReduce});
  // giou_loss (layers/loss.cpp over kernels/box_ops/giou_loss): fused forward, explicit backward.
  c = {"giou_loss", {"giou_loss"},
       [](Generator& g) {
         // Overlapping and disjoint pairs, every coordinate pair distinct (no min/max ties).
         Tensor b1 = Tensor::from_vector({0, 0, 4, 3, 1, 1, 3, 5, 0, 0, 2, 2}, {3, 4}, DType::Float64);
         Tensor b2 = Tensor::from_vector({1, 0.5, 5, 2.5, 0.5, 2, 4, 6, 3, 3.5, 5, 6}, {3, 4}, DType::Float64);
         return S{G(add(b1, uniform(g, {3, 4}, -0.1, 0.1))), G(add(b2, uniform(g, {3, 4}, -0.1, 0.1)))};
       },
       [](const V& in) { return nn::giou_loss(in[0], in[1], nn::Reduction::None); }};
  c.naive = [](const V& in) { return giou_loss_composed(in[0], in[1], 1e-7); };
  c.naive_what = "composed: torchvision's formula from minimum/maximum/relu/div";
  add_case(c);

  // sigmoid_focal_loss (layers/loss.cpp over kernels/focal_loss): targets positive, background, ignored.
  auto focal_inputs = [](Generator& g) {
    return S{G(uniform(g, {6, 4}, -3, 3)), C(Tensor::from_vector({0, 3, 4, -1, 2, 4}, {6}, DType::Int64))};
  };
  auto focal = [&](const char* name, nn::FocalLossParams fp, Tolerance parity) {
    OpCase f{name, {"sigmoid_focal_loss"}, focal_inputs,
             [fp](const V& in) { return nn::sigmoid_focal_loss(in[0], in[1], fp); }, {}, parity};
    f.naive = [fp](const V& in) { return focal_composed(in[0], in[1], fp); };
    f.naive_what = "composed: torchvision's ce * (1 - p_t)^gamma * alpha_t";
    add_case(f);
  };
  focal("sigmoid_focal_loss_none", {0.25, 2.0, nn::FocalReduction::None, 1.0}, Tolerance{1e-5, 1e-4});
  focal("sigmoid_focal_loss_sum_normalized", {0.25, 2.0, nn::FocalReduction::Sum, 3.0}, kReduce);
  focal("sigmoid_focal_loss_mean_no_alpha", {-1.0, 1.5, nn::FocalReduction::Mean, 1.0}, kReduce);

  // ---- layers/pooling.cpp, layers/upsample.cpp (kernels/pooling, kernels/upsample) ---------------------
  add_case({"max_pool2d_k3s2p1", {"max_pool2d"}, [](Generator& g) { return S{G(distinct(g, {2, 2, 7, 6}, -2, 2))}; },
            [](const V& in) { return nn::max_pool2d(in[0], kernels::MaxPool2dParams{3, 3, 2, 2, 1, 1, 1, 1, false}); }});
  add_case({"max_pool2d_ceil_dilated", {"max_pool2d"}, [](Generator& g) { return S{G(distinct(g, {1, 2, 8, 7}, -2, 2))}; },
            [](const V& in) { return nn::max_pool2d(in[0], kernels::MaxPool2dParams{2, 2, 2, 2, 0, 0, 2, 2, true}); }});
  c = {"max_pool2d_k2s2", {"max_pool2d"}, [](Generator& g) { return S{G(distinct(g, {2, 3, 6, 8}, -2, 2))}; },
       [](const V& in) { return nn::max_pool2d(in[0], kernels::MaxPool2dParams{2, 2, 2, 2, 0, 0, 1, 1, false}); }};
  c.naive = [](const V& in) { return max_pool2d_composed(in[0], 2, 2); };
  c.naive_what = "composed: max over the kernel's strided slices";
  add_case(c);
  c = {"adaptive_avg_pool2d_7x5_to_3x2", {"adaptive_avg_pool2d"},
       [](Generator& g) { return S{G(uniform(g, {2, 3, 7, 5}, -2, 2))}; },
       [](const V& in) { return nn::adaptive_avg_pool2d(in[0], 3, 2); }};
  c.naive = [](const V& in) { return adaptive_avg_pool2d_composed(in[0], 3, 2); };
  c.naive_what = "composed: mean of each cell's slices";
  add_case(c);
  c = {"adaptive_avg_pool2d_global", {"adaptive_avg_pool2d"},
       [](Generator& g) { return S{G(uniform(g, {2, 4, 5, 6}, -2, 2))}; },
       [](const V& in) { return nn::adaptive_avg_pool2d(in[0], 1, 1); }, {}, kReduce};
  c.naive = [](const V& in) { return mean(in[0], {2, 3}, true); };
  c.naive_what = "composed: mean over H, W";
  add_case(c);
  c = {"upsample_nearest_size", {"upsample_nearest2d"}, [](Generator& g) { return S{G(uniform(g, {2, 2, 3, 4}, -2, 2))}; },
       [](const V& in) { return nn::upsample_nearest(in[0], 7, 9); }};
  c.naive = [](const V& in) { return upsample_composed(in[0], 7, 9, 0, 0); };
  c.naive_what = "composed: two index_selects";
  add_case(c);
  c = {"upsample_nearest_scale2", {"upsample_nearest2d"}, [](Generator& g) { return S{G(uniform(g, {1, 3, 4, 5}, -2, 2))}; },
       [](const V& in) { return nn::upsample_nearest_scale(in[0], 2.0); }};
  c.naive = [](const V& in) { return upsample_composed(in[0], 8, 10, 0.5, 0.5); };
  c.naive_what = "composed: two index_selects";
  add_case(c);

  // ---- layers/conv.cpp (kernels/conv2d) ---------------------------------------------------------------
  auto conv = [&](const char* name, Shape xs, Shape ws, bool bias, kernels::Conv2dParams p) {
    OpCase k{name, {"conv2d"},
             [xs, ws, bias](Generator& g) {
               S s{G(uniform(g, xs, -1, 1)), G(uniform(g, ws, -1, 1))};
               if (bias) s.push_back(G(uniform(g, {ws[0]}, -1, 1)));
               return s;
             },
             [p, bias](const V& in) { return nn::conv2d(in[0], in[1], bias ? in[2] : Tensor(), p); }, {}, kReduce};
    k.naive = [p, bias](const V& in) { return conv2d_im2col(in[0], in[1], bias ? in[2] : Tensor(), p); };
    k.naive_what = "product reference: im2col + GEMM (CpuConvAlgo::Im2col) vs the default (oneDNN)";
    add_case(k);
  };
  conv("conv2d_3x3_pad1_bias", {2, 3, 6, 5}, {4, 3, 3, 3}, true, {1, 1, 1, 1, 1, 1, 1});
  conv("conv2d_stride2_nobias", {2, 4, 7, 7}, {3, 4, 3, 3}, false, {2, 2, 1, 1, 1, 1, 1});
  conv("conv2d_dilated_grouped", {1, 4, 7, 6}, {6, 2, 3, 2}, true, {1, 2, 2, 1, 2, 1, 2});
  conv("conv2d_1x1_16ch", {2, 16, 4, 4}, {8, 16, 1, 1}, true, {1, 1, 0, 0, 1, 1, 1});

  // ---- layers/batchnorm.cpp (kernels/batchnorm) ---------------------------------------------------------
  c = {"batch_norm_train", {"batch_norm"},
       [](Generator& g) {
         return S{G(uniform(g, {3, 4, 3, 2}, -2, 2)), G(positive(g, {4})), G(uniform(g, {4}, -1, 1))};
       },
       [](const V& in) { return nn::batch_norm(in[0], in[1], in[2], Tensor(), Tensor(), true, 0.1, 1e-5); },
       {}, kReduce};
  c.naive = [](const V& in) { return batch_norm_train_composed(in[0], in[1], in[2], 1e-5); };
  c.naive_what = "composed: (x - mean) / sqrt(var + eps) * w + b";
  add_case(c);
  c = {"batch_norm_train_2d_input", {"batch_norm"},
       [](Generator& g) { return S{G(uniform(g, {5, 3}, -2, 2)), G(positive(g, {3})), G(uniform(g, {3}, -1, 1))}; },
       [](const V& in) { return nn::batch_norm(in[0], in[1], in[2], Tensor(), Tensor(), true, 0.1, 1e-5); },
       {}, kReduce};
  c.naive = [](const V& in) { return batch_norm_train_composed(in[0], in[1], in[2], 1e-5); };
  c.naive_what = "composed: (x - mean) / sqrt(var + eps) * w + b";
  add_case(c);
  // layers/sync_batchnorm.cpp with a one-rank group: the same function as batch_norm's training mode,
  // through the sync node's own forward (gathered statistics) and backward (all-reduced sums).
  c = {"sync_batch_norm_one_rank", {"sync_batch_norm"},
       [](Generator& g) {
         return S{G(uniform(g, {3, 4, 3, 2}, -2, 2)), G(positive(g, {4})), G(uniform(g, {4}, -1, 1))};
       },
       [](const V& in) {
         static std::shared_ptr<dist::ProcessGroup> one = dist::single_process_group();
         return nn::sync_batch_norm(in[0], in[1], in[2], Tensor(), Tensor(), 0.1, 1e-5, *one);
       },
       {}, kReduce};
  c.naive = [](const V& in) { return batch_norm_train_composed(in[0], in[1], in[2], 1e-5); };
  c.naive_what = "composed: (x - mean) / sqrt(var + eps) * w + b";
  add_case(c);
  c = {"batch_norm_eval_channel_affine", {"channel_affine", "mul", "neg", "add"},
       [](Generator& g) {
         return S{G(uniform(g, {2, 3, 4, 3}, -2, 2)), G(positive(g, {3})), G(uniform(g, {3}, -1, 1)),
                  C(uniform(g, {3}, -0.5, 0.5)), C(positive(g, {3}))};
       },
       [](const V& in) { return nn::batch_norm(in[0], in[1], in[2], in[3], in[4], false, 0.1, 1e-5); }, {}, kReduce};
  c.naive = [](const V& in) { return batch_norm_eval_composed(in[0], in[1], in[2], in[3], in[4], 1e-5); };
  c.naive_what = "composed: x * (w / sqrt(rv + eps)) + (b - rm * scale)";
  add_case(c);

  // ---- layers/roi_align.cpp (kernels/roi_align) ---------------------------------------------------------
  auto roi = [&](const char* name, kernels::RoiAlignParams p, Tolerance parity) {
    OpCase k{name, {"roi_align"},
             [](Generator& g) {
               Tensor rois = Tensor::from_vector({0, 0.6, 1.2, 5.3, 4.7,    //
                                                  1, 2.1, 0.4, 7.8, 6.2,    //
                                                  0, -1.3, 3.4, 2.2, 7.9,   // crosses the border
                                                  1, 3.3, 3.1, 4.4, 3.9},   // smaller than a bin
                                                 {4, 5}, DType::Float64);
               return S{G(uniform(g, {2, 3, 8, 9}, -2, 2)), C(rois)};
             },
             [p](const V& in) { return nn::roi_align(in[0], in[1], p); }, {}, parity};
    k.naive = [p](const V& in) { return roi_align_naive(in[0], in[1], p); };
    k.naive_what = "product naive loops: RoiAlignAlgo::Naive vs Fast";
    add_case(k);
  };
  roi("roi_align_sampling2", {3, 2, 1.0, 2, false}, Tolerance{1e-5, 1e-4});
  roi("roi_align_adaptive_aligned_scaled", {2, 3, 0.5, -1, true}, Tolerance{1e-5, 1e-4});
  c = {"multiscale_roi_align_two_levels", {"multiscale_roi_align"},
       [](Generator& g) {
         // Two images (32x32 and 28x32 before padding), levels 2 (8x8, 1/4) and 3 (4x4, 1/8).
         Tensor rois = Tensor::from_vector({0, 1.5, 2.5, 7.5, 9.5,     // small: level 2
                                            1, 4.2, 3.3, 10.1, 8.7,    // small: level 2
                                            0, 2.3, 1.7, 29.4, 27.1,   // large: level 3
                                            1, 6.1, 0.8, 30.2, 25.5},  // large: level 3
                                           {4, 5}, DType::Float64);
         return S{G(uniform(g, {2, 3, 8, 8}, -2, 2)), G(uniform(g, {2, 3, 4, 4}, -2, 2)), C(rois)};
       },
       [](const V& in) { return nn::multiscale_roi_align({in[0], in[1]}, in[2], kMsraImages, msra_options()); }};
  c.naive = [](const V& in) { return multiscale_roi_align_naive({in[0], in[1]}, in[2]); };
  c.naive_what = "product naive loops: multilevel RoiAlignAlgo::Naive vs Fast";
  add_case(c);

  // ---- layers/layer_norm.cpp, layers/attention.cpp (composed; Sparse R-CNN's transformer parts) ----
  c = {"layer_norm_affine", {"sum", "div", "sub", "mul", "sqrt", "add"},
       [](Generator& g) {
         return S{G(uniform(g, {2, 3, 6}, -2, 2)), G(positive(g, {6})), G(uniform(g, {6}, -1, 1))};
       },
       [](const V& in) { return nn::layer_norm(in[0], in[1], in[2], 1e-5); }, {}, kReduce};
  add_case(c);
  // Multi-head attention, parameters as inputs: in_proj_weight [3E, E], in_proj_bias, out_proj
  // weight and bias, loaded into an nn::MultiheadAttention(4, 2) whose parameters the inputs then are.
  auto mha = [](const V& in, bool masked) {
    nn::MultiheadAttention m(4, 2);
    m.in_proj_weight = in[3], m.in_proj_bias = in[4], m.out_proj->weight = in[5], m.out_proj->bias = in[6];
    if (!masked) return m.forward(in[0], in[1], in[2], Tensor(), Tensor(), false).output;
    const Tensor kpm = Tensor::from_vector({0, 1, 0, 0, 0, 0, 0, 1}, {2, 4}, DType::Bool).to(in[0].device());
    return m.forward(in[0], in[1], in[2], kpm, Tensor(), false).output;
  };
  auto mha_inputs = [](Generator& g) {
    return S{G(uniform(g, {3, 2, 4}, -1, 1)), G(uniform(g, {4, 2, 4}, -1, 1)), G(uniform(g, {4, 2, 4}, -1, 1)),
             G(uniform(g, {12, 4}, -0.8, 0.8)), G(uniform(g, {12}, -0.3, 0.3)), G(uniform(g, {4, 4}, -0.8, 0.8)),
             G(uniform(g, {4}, -0.3, 0.3))};
  };
  add_case({"multihead_attention", {"matmul", "softmax", "permute", "view", "slice", "div", "add"}, mha_inputs,
            [mha](const V& in) { return mha(in, false); }, {}, kReduce});
  add_case({"multihead_attention_key_padding_mask", {"matmul", "softmax", "where"}, mha_inputs,
            [mha](const V& in) { return mha(in, true); }, {}, kReduce});

  return R;
}

}  // namespace

const std::vector<OpCase>& op_registry() {
  static const std::vector<OpCase> r = build_registry();
  return r;
}

}  // namespace sx::test
