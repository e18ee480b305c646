// Multi-head attention (torch.nn.MultiheadAttention with batch_first=False, no dropout), the
// self-attention among proposals in Sparse R-CNN's dynamic head (Vaswani et al. 2017).
//
// query [L, N, E], key and value [S, N, E] (sequence first), E = embed_dim = H * hd (H heads):
//   q, k, v = the three rows blocks of in_proj_weight [3E, E] and in_proj_bias [3E] applied to
//             query, key, value (q = query W_q^T + b_q ...), each split into H heads of hd dims;
//   per head and batch element: A = softmax(q k^T / sqrt(hd)) [L, S],  o = A v [L, hd];
//   the heads' o concatenated -> out_proj (a Linear E -> E) -> output [L, N, E].
// Masks (optional, Bool, true = not attended): attn_mask [L, S] for every batch element and head,
// key_padding_mask [N, S] per batch element. A row with every key masked gives NaN, as torch.
// weights: A averaged over the heads, [N, L, S] (torch's need_weights=True, average_attn_weights=True).
// State-dict names as torch: in_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias.
// Init as torch: in_proj_weight xavier_uniform, out_proj.weight Linear's default, biases 0.
// Composed from differentiable ops (linear, reshape, transpose, batched matmul, softmax).
#pragma once
#include <memory>

#include "layers/linear.h"
#include "layers/module.h"

namespace sx::nn {

struct AttentionOutput {
  Tensor output;   // [L, N, E]
  Tensor weights;  // [N, L, S], averaged over heads (undefined unless need_weights)
};

class MultiheadAttention : public Module {
 public:
  MultiheadAttention(int64_t embed_dim, int64_t num_heads, bool bias = true, Generator* gen = nullptr);
  AttentionOutput forward(const Tensor& query, const Tensor& key, const Tensor& value,
                          const Tensor& key_padding_mask = Tensor(), const Tensor& attn_mask = Tensor(),
                          bool need_weights = true);
  // Self-attention, the output only: forward(x, x, x).output.
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  int64_t embed_dim() const { return e_; }
  int64_t num_heads() const { return h_; }

  Tensor in_proj_weight;  // [3E, E]
  Tensor in_proj_bias;    // [3E] or undefined
  std::shared_ptr<Linear> out_proj;

 private:
  int64_t e_, h_;
};

}  // namespace sx::nn
