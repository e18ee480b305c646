// Optimizers: SGD (momentum, Nesterov, weight decay) and AdamW, with torch.optim's semantics.
//
// An optimizer holds parameter *handles* (Tensors that share the module's TensorImpl), in groups
// that may differ in weight decay (e.g. no decay on norm weights and biases). step() updates every
// parameter whose gradient is defined, in place, on the parameter's own device, with one fused
// kernel per tensor (kernels/optim: sgd_step / adamw_step, CPU and CUDA sharing optim_math.h).
// Parameters without a gradient are skipped and their state does not advance (as in torch).
//
// The learning rate is a property of the optimizer (the schedulers set it each step); a group's
// lr_scale multiplies it.
//
// State (momentum buffers, Adam moments, per-parameter step counts) is exposed as named tensors
// "<index>.<name>" (index = position of the parameter in the flattened groups) plus a small
// string map of hyper-parameters, so the checkpoint code can store it in a safetensors file and
// load_state() can restore it exactly (values are copied into the parameter's device and dtype).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace sx::optim {

struct ParamGroup {
  std::vector<Tensor> params;
  double weight_decay = -1;  // < 0: use the optimizer's default
  double lr_scale = 1.0;
};

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  // Drops every parameter's gradient (torch's zero_grad(set_to_none=True)).
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  // All parameters, flattened over groups (the indices used by the state names).
  const std::vector<Tensor>& params() const { return flat_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  virtual std::string name() const = 0;

  // State as named tensors ("0.momentum_buffer", "3.exp_avg", ...; undefined state is omitted) and
  // the hyper-parameters as strings. load_state() checks that the names and shapes fit.
  virtual NamedTensors state_tensors() const = 0;
  virtual std::map<std::string, std::string> hyper_params() const;
  virtual void load_state(const NamedTensors& tensors) = 0;

 protected:
  Optimizer(std::vector<ParamGroup> groups, double lr, double default_weight_decay, const char* who);
  double group_weight_decay(size_t g) const {
    return groups_[g].weight_decay < 0 ? default_wd_ : groups_[g].weight_decay;
  }
  // Finds "<i>.<key>" in tensors; undefined when absent. Checks shape against params()[i].
  Tensor find_state(const NamedTensors& tensors, size_t i, const std::string& key) const;
  std::vector<ParamGroup> groups_;
  std::vector<Tensor> flat_;
  std::vector<size_t> group_of_;  // group index of each flattened parameter
  double lr_;
  double default_wd_;
};

struct SgdOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, const SgdOptions& opt);
  SGD(std::vector<ParamGroup> groups, const SgdOptions& opt);
  void step() override;
  std::string name() const override { return "sgd"; }
  NamedTensors state_tensors() const override;
  std::map<std::string, std::string> hyper_params() const override;
  void load_state(const NamedTensors& tensors) override;
  const SgdOptions& options() const { return opt_; }

 private:
  SgdOptions opt_;
  std::vector<Tensor> momentum_;  // undefined until the parameter's first step
};

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};

class AdamW : public Optimizer {
 public:
  AdamW(std::vector<Tensor> params, const AdamWOptions& opt);
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& opt);
  void step() override;
  std::string name() const override { return "adamw"; }
  NamedTensors state_tensors() const override;
  std::map<std::string, std::string> hyper_params() const override;
  void load_state(const NamedTensors& tensors) override;
  const AdamWOptions& options() const { return opt_; }
  int64_t step_count(size_t i) const { return steps_.at(i); }

 private:
  AdamWOptions opt_;
  std::vector<Tensor> exp_avg_, exp_avg_sq_;
  std::vector<int64_t> steps_;
};

// Builds "sgd" (momentum 0.9 unless given) or "adamw" from a name; throws ValueError otherwise.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<ParamGroup> groups, double lr,
                                          double weight_decay, double momentum = 0.9, bool nesterov = false);

// Splits parameters into {decayed, not decayed}: tensors with dim <= 1 (biases, norm weights)
// get weight_decay 0, as is common practice for ResNets.
std::vector<ParamGroup> split_no_decay(const std::vector<Tensor>& params);

}  // namespace sx::optim
