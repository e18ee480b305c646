// BatchNorm2d and FrozenBatchNorm2d.
//
// BatchNorm2d (torch.nn.BatchNorm2d): parameters weight [C] (=1), bias [C] (=0); buffers
// running_mean (=0), running_var (=1), num_batches_tracked (int64 scalar). In training mode it
// normalises with the batch statistics and updates the running ones (momentum 0.1, unbiased
// variance); in eval mode it uses the running ones. See kernels/batchnorm/batchnorm.h for the math.
//
// FrozenBatchNorm2d (torchvision.ops.FrozenBatchNorm2d): weight, bias, running_mean, running_var
// are all buffers (never trained, not counted as parameters); always the eval-mode affine map,
// whatever train()/eval() says. Loading ignores "num_batches_tracked" like torchvision.
#pragma once
#include "layers/module.h"

namespace sx::nn {

// Functional batch norm. In training mode running_mean/var are updated in place (when defined).
// Differentiable w.r.t. x, weight and bias in both modes.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                  Tensor running_var, bool training, double momentum, double eps);

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, double momentum = 0.1,
                       bool affine = true, bool track_running_stats = true);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  // Sets running stats to 0/1 and num_batches_tracked to 0.
  void reset_running_stats();

  int64_t num_features() const { return num_features_; }
  double eps() const { return eps_; }
  double momentum() const { return momentum_; }
  // 1 makes the running statistics the last batch's (what precise BN uses to read them).
  void set_momentum(double m);

  Tensor weight, bias;                     // [C] parameters (undefined when !affine)
  Tensor running_mean, running_var;        // [C] buffers
  Tensor num_batches_tracked;              // [] int64 buffer

 private:
  int64_t num_features_;
  double eps_, momentum_;
  bool track_running_stats_;
};

class FrozenBatchNorm2d : public Module {
 public:
  explicit FrozenBatchNorm2d(int64_t num_features, double eps = 1e-5);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  Tensor weight, bias, running_mean, running_var;  // [C] buffers

 protected:
  bool ignores_state_key(const std::string& local_name) const override;

 private:
  int64_t num_features_;
  double eps_;
};

}  // namespace sx::nn
