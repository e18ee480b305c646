// Multi-head attention (attention.h), composed from differentiable ops, step for step as torch's
// F.multi_head_attention_forward (so its golden values match to rounding).
#include "layers/attention.h"

#include <cmath>
#include <limits>
#include <sstream>

#include "layers/init.h"
#include "tensor/ops.h"

namespace sx::nn {
namespace {

// [T, N, E] -> [N * H, T, hd]: the heads of each batch element become batch entries.
Tensor split_heads(const Tensor& x, int64_t H) {
  const int64_t T = x.size(0), N = x.size(1), hd = x.size(2) / H;
  return x.reshape({T, N * H, hd}).transpose(0, 1);
}

void check_mask(const Tensor& m, const Shape& want, const char* name) {
  SX_CHECK(m.dtype() == DType::Bool, "MultiheadAttention: ", name, " must be Bool (true = masked), got ",
           dtype_name(m.dtype()));
  SX_CHECK(m.shape() == want, "MultiheadAttention: ", name, " must be ", shape_str(want), ", got ",
           shape_str(m.shape()));
}

}  // namespace

MultiheadAttention::MultiheadAttention(int64_t embed_dim, int64_t num_heads, bool bias, Generator* gen)
    : Module("MultiheadAttention"), e_(embed_dim), h_(num_heads) {
  SX_CHECK(embed_dim >= 1 && num_heads >= 1 && embed_dim % num_heads == 0, "MultiheadAttention: embed_dim (",
           embed_dim, ") must be a positive multiple of num_heads (", num_heads, ")");
  Generator& g = gen ? *gen : init::default_generator();
  const double a = std::sqrt(6.0 / static_cast<double>(embed_dim + 3 * embed_dim));  // xavier_uniform
  in_proj_weight = register_parameter("in_proj_weight", init::uniform({3 * embed_dim, embed_dim}, -a, a, g));
  if (bias) in_proj_bias = register_parameter("in_proj_bias", Tensor::zeros({3 * embed_dim}));
  out_proj = register_module("out_proj", std::make_shared<Linear>(embed_dim, embed_dim, bias, &g));
  if (bias) {
    NoGradGuard ng;
    out_proj->bias.fill_(0.0);
  }
}

AttentionOutput MultiheadAttention::forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                            const Tensor& key_padding_mask, const Tensor& attn_mask,
                                            bool need_weights) {
  SX_CHECK(query.dim() == 3 && query.size(2) == e_, "MultiheadAttention: query must be [L, N, ", e_, "], got ",
           shape_str(query.shape()));
  SX_CHECK(key.dim() == 3 && key.shape() == value.shape() && key.size(1) == query.size(1) && key.size(2) == e_,
           "MultiheadAttention: key and value must be [S, ", query.size(1), ", ", e_, "], got ",
           shape_str(key.shape()), " and ", shape_str(value.shape()));
  const int64_t L = query.size(0), N = query.size(1), S = key.size(0), hd = e_ / h_;
  auto part = [&](int64_t i) {
    Tensor w = in_proj_weight.narrow(0, i * e_, e_);
    Tensor b = in_proj_bias.defined() ? in_proj_bias.narrow(0, i * e_, e_) : Tensor();
    return std::make_pair(w, b);
  };
  auto [wq, bq] = part(0);
  auto [wk, bk] = part(1);
  auto [wv, bv] = part(2);
  Tensor q = split_heads(linear(query, wq, bq), h_);  // [N*H, L, hd]
  Tensor k = split_heads(linear(key, wk, bk), h_);    // [N*H, S, hd]
  Tensor v = split_heads(linear(value, wv, bv), h_);  // [N*H, S, hd]
  q = div(q, std::sqrt(static_cast<double>(hd)));
  Tensor scores = matmul(q, k.transpose(1, 2));  // [N*H, L, S]
  if (attn_mask.defined() || key_padding_mask.defined()) {
    Tensor masked = Tensor::zeros({1, L, S}, DType::Bool, query.device());
    if (attn_mask.defined()) {
      check_mask(attn_mask, {L, S}, "attn_mask");
      masked = logical_or(masked, attn_mask.unsqueeze(0));
    }
    if (key_padding_mask.defined()) {
      check_mask(key_padding_mask, {N, S}, "key_padding_mask");
      // [N, S] -> [N, H, L, S] -> [N*H, L, S] (the heads of batch element n are rows n*H .. n*H+H-1).
      Tensor kpm = key_padding_mask.reshape({N, 1, 1, S}).expand({N, h_, L, S}).reshape({N * h_, L, S});
      masked = logical_or(masked, kpm);
    }
    const Tensor ninf = Tensor::full({}, -std::numeric_limits<double>::infinity(), scores.dtype(), scores.device());
    scores = where(masked, ninf, scores);
  }
  Tensor attn = softmax(scores, -1);
  Tensor o = matmul(attn, v);                                 // [N*H, L, hd]
  o = o.transpose(0, 1).contiguous().reshape({L * N, e_});   // [L, N*H, hd] -> [L*N, E]
  AttentionOutput r;
  r.output = out_proj->forward(o).reshape({L, N, e_});
  if (need_weights) r.weights = mean(attn.reshape({N, h_, L, S}), {1});
  return r;
}

Tensor MultiheadAttention::forward(const Tensor& x) { return forward(x, x, x, Tensor(), Tensor(), false).output; }

std::string MultiheadAttention::extra_repr() const {
  std::ostringstream os;
  os << "embed_dim=" << e_ << ", num_heads=" << h_ << ", bias=" << (in_proj_bias.defined() ? "True" : "False");
  return os.str();
}

}  // namespace sx::nn
