// Gradient buckets (see bucketer.h for the rules).
#include "tensor/dist/bucketer.h"

#include "tensor/autograd.h"
#include "tensor/grad_hooks.h"
#include "tensor/ops.h"

namespace sx::dist {

Bucketer::Bucketer(ProcessGroup& pg, std::vector<Tensor> params, int64_t bucket_bytes)
    : pg_(pg), params_(std::move(params)) {
  SX_CHECK(bucket_bytes > 0, "dist: bucket size must be > 0 bytes, got ", bucket_bytes);
  bucket_of_.assign(params_.size(), 0);
  int64_t bytes = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const Tensor& p = params_[k];
    SX_CHECK(p.dtype() == DType::Float32, "dist: data-parallel training needs float32 parameters, parameter ", k,
             " is ", dtype_name(p.dtype()));
    const int64_t b = p.numel() * 4;
    if (bucket_params_.empty() || (bytes > 0 && bytes + b > bucket_bytes)) {
      bucket_params_.emplace_back();
      bytes = 0;
    }
    bucket_params_.back().push_back(k);
    bucket_of_[k] = bucket_params_.size() - 1;
    bytes += b;
  }
  ready_count_.assign(bucket_params_.size(), 0);
  param_ready_.assign(params_.size(), 0);
  flat_.resize(bucket_params_.size());
  work_.resize(bucket_params_.size());
  for (size_t k = 0; k < params_.size(); ++k)
    hooks_.push_back(add_post_accumulate_grad_hook(params_[k], [this, k](const Tensor&) { on_ready(k); }));
}

Bucketer::~Bucketer() {
  for (int64_t h : hooks_) remove_post_accumulate_grad_hook(h);
}

void Bucketer::on_ready(size_t k) {
  if (param_ready_[k]) return;  // a second backward before finish(): the first pass's launch stands
  param_ready_[k] = 1;
  ++ready_count_[bucket_of_[k]];
  launch_ready();
}

void Bucketer::launch_ready() {
  while (next_launch_ < bucket_params_.size() &&
         ready_count_[next_launch_] == static_cast<int64_t>(bucket_params_[next_launch_].size())) {
    launch(next_launch_++);
  }
}

// The bucket's gradients (zeros where a parameter has none) and one had-a-gradient flag per
// parameter, in one flat buffer, averaged across the ranks.
void Bucketer::launch(size_t b) {
  NoGradGuard ng;
  std::vector<Tensor> parts;
  const auto& idx = bucket_params_[b];
  const Device dev = params_[idx.front()].device();
  Tensor flags = Tensor::empty({static_cast<int64_t>(idx.size())}, DType::Float32);
  float* fp = flags.data<float>();
  for (size_t i = 0; i < idx.size(); ++i) {
    const Tensor& p = params_[idx[i]];
    const Tensor g = p.grad();
    fp[i] = g.defined() ? 1.0f : 0.0f;
    parts.push_back(g.defined() ? g.reshape({-1}) : Tensor::zeros({p.numel()}, DType::Float32, p.device()));
  }
  parts.push_back(flags.to(dev));
  flat_[b] = cat(parts, 0).contiguous();
  work_[b] = pg_.all_reduce_async(flat_[b], ReduceOp::Avg);
}

void Bucketer::finish() {
  NoGradGuard ng;
  last_in_backward_ = static_cast<int64_t>(next_launch_);
  // What backward did not make ready (unused parameters, or held back behind them), in order.
  while (next_launch_ < bucket_params_.size()) launch(next_launch_++);
  for (size_t b = 0; b < bucket_params_.size(); ++b) {
    work_[b]->wait();
    const auto& idx = bucket_params_[b];
    int64_t off = 0;
    const int64_t nflags = static_cast<int64_t>(idx.size());
    const int64_t total = flat_[b].numel();
    const std::vector<double> flags = flat_[b].slice(0, total - nflags, total).to_vector();
    for (size_t i = 0; i < idx.size(); ++i) {
      Tensor& p = params_[idx[i]];
      const int64_t n = p.numel();
      if (flags[i] > 0) {
        Tensor avg = flat_[b].slice(0, off, off + n).reshape(p.shape());
        Tensor g = p.grad();
        if (g.defined()) g.copy_(avg);
        else p.set_grad(avg.clone());
      }
      off += n;
    }
    flat_[b] = Tensor();
    work_[b].reset();
  }
  std::fill(ready_count_.begin(), ready_count_.end(), 0);
  std::fill(param_ready_.begin(), param_ready_.end(), 0);
  next_launch_ = 0;
}

}  // namespace sx::dist
