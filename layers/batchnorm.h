// BatchNorm2d and FrozenBatchNorm2d.
//
// BatchNorm2d (torch.nn.BatchNorm2d): parameters weight [C] (=1), bias [C] (=0); buffers
// running_mean (=0), running_var (=1), num_batches_tracked (int64 scalar). In training mode it
// normalises with the batch statistics and updates the running ones (momentum 0.1, unbiased
// variance); in eval mode it uses the running ones. See kernels/batchnorm/batchnorm.h for the math.
//
// Synchronised BatchNorm (torch.nn.SyncBatchNorm; layers/sync_batchnorm.cpp): a BatchNorm2d given a
// process group (set_sync_group, or convert_sync_batchnorm over a whole model) normalises, in
// training mode, with the statistics of the batch of all ranks together, and its backward gives each
// rank's input the gradient through those shared statistics. With several ranks that is the layer of
// one process holding the whole batch. Evaluation mode, or a group of one rank: plain BatchNorm2d.
//
// FrozenBatchNorm2d (torchvision.ops.FrozenBatchNorm2d): weight, bias, running_mean, running_var
// are all buffers (never trained, not counted as parameters); always the eval-mode affine map,
// whatever train()/eval() says. Loading ignores "num_batches_tracked" like torchvision.
#pragma once
#include <memory>

#include "layers/module.h"
#include "tensor/dist/process_group.h"

namespace sx::nn {

// Functional batch norm. In training mode running_mean/var are updated in place (when defined).
// Differentiable w.r.t. x, weight and bias in both modes.
Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                  Tensor running_var, bool training, double momentum, double eps);

// Batch norm in training mode with the statistics of all ranks of `group` (every rank calls it, for
// the same layers in the same order): per channel the ranks' counts, sums and squared deviations
// are gathered and combined (mean, biased variance to normalise, unbiased for running_var, updated
// with momentum as batch_norm does); backward all-reduces the sums of g and g * (x - mean), so the
// input gradient is the exact gradient of the sum of the ranks' losses. Differentiable w.r.t. x,
// weight and bias. With a group of one rank it is batch_norm's training mode (computed this way).
Tensor sync_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                       Tensor running_var, double momentum, double eps, dist::ProcessGroup& group);

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
  // Synchronised statistics across the ranks of `group` in training mode (null: this process only).
  // The group must be one of its own (ProcessGroup::dup): its collectives run inside forward and
  // backward. convert_sync_batchnorm sets it on every BatchNorm2d of a model.
  void set_sync_group(std::shared_ptr<dist::ProcessGroup> group) { sync_group_ = std::move(group); }
  const std::shared_ptr<dist::ProcessGroup>& sync_group() const { return sync_group_; }

  Tensor weight, bias;                     // [C] parameters (undefined when !affine)
  Tensor running_mean, running_var;        // [C] buffers
  Tensor num_batches_tracked;              // [] int64 buffer

 private:
  int64_t num_features_;
  double eps_, momentum_;
  bool track_running_stats_;
  std::shared_ptr<dist::ProcessGroup> sync_group_;
};

// torch.nn.SyncBatchNorm.convert_sync_batchnorm: every BatchNorm2d of `model` synchronises its
// statistics over one duplicate of `group` (group.dup(): a communicator of their own, so their
// collectives never pair with the gradient buckets' on `group`). Collective: every rank calls it
// with the same model. Returns how many layers were converted (0: the model has no BatchNorm2d,
// e.g. a detector with FrozenBatchNorm2d). With a group of one rank nothing changes but the count.
int convert_sync_batchnorm(Module& model, dist::ProcessGroup& group);

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
