// Learning-rate schedules as pure functions of the step: lr(step) is computed in closed form, so
// the scheduler's whole state is the step counter (saved in checkpoints; a resumed run computes
// exactly the same learning rates).
//
// Usage: before each optimizer step, `sched.apply(opt, step)` sets opt.lr() = sched.lr_at(step)
// for step = 0, 1, 2, ... (the step being taken).
//
// WarmupCosine: linear warmup from base_lr * warmup_start_factor to base_lr over warmup_steps
// (torch's LinearLR), then cosine annealing from base_lr to min_lr over the remaining steps
// (torch's CosineAnnealingLR closed form), min_lr afterwards:
//   s < W:      lr = base * (f + (1 - f) * s / W)
//   W <= s < T: lr = min + (base - min) * (1 + cos(pi * (s - W) / (T - W))) / 2
//   s >= T:     lr = min
// MultiStep: base * gamma^(number of milestones <= s) (torch's MultiStepLR), with the same optional
// linear warmup multiplied in during the first W steps.
// Constant: base (with the optional warmup).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace sx::optim {

class Optimizer;

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  virtual double lr_at(int64_t step) const = 0;
  virtual std::string name() const = 0;
  // Hyper-parameters as strings (stored in checkpoints for reference and checked on resume).
  virtual std::map<std::string, std::string> describe() const = 0;
  // Sets the optimizer's lr for `step`; returns it.
  double apply(Optimizer& opt, int64_t step) const;
};

struct Warmup {
  int64_t steps = 0;
  double start_factor = 0.001;
  double factor(int64_t step) const;  // 1 when past the warmup
};

class WarmupCosine : public LRScheduler {
 public:
  WarmupCosine(double base_lr, int64_t total_steps, Warmup warmup = {}, double min_lr = 0.0);
  double lr_at(int64_t step) const override;
  std::string name() const override { return "cosine"; }
  std::map<std::string, std::string> describe() const override;

 private:
  double base_, min_;
  int64_t total_;
  Warmup warmup_;
};

class MultiStep : public LRScheduler {
 public:
  MultiStep(double base_lr, std::vector<int64_t> milestones, double gamma = 0.1, Warmup warmup = {});
  double lr_at(int64_t step) const override;
  std::string name() const override { return "multistep"; }
  std::map<std::string, std::string> describe() const override;

 private:
  double base_, gamma_;
  std::vector<int64_t> milestones_;
  Warmup warmup_;
};

class Constant : public LRScheduler {
 public:
  explicit Constant(double base_lr, Warmup warmup = {}) : base_(base_lr), warmup_(warmup) {}
  double lr_at(int64_t step) const override { return base_ * warmup_.factor(step); }
  std::string name() const override { return "constant"; }
  std::map<std::string, std::string> describe() const override;

 private:
  double base_;
  Warmup warmup_;
};

// "cosine" | "multistep" | "constant". milestones: comma-separated steps ("6000,8000") or fractions
// of total_steps ("0.6,0.8") for multistep.
std::unique_ptr<LRScheduler> make_scheduler(const std::string& name, double base_lr, int64_t total_steps,
                                            int64_t warmup_steps, const std::string& milestones = "0.67,0.89",
                                            double gamma = 0.1, double min_lr = 0.0);

}  // namespace sx::optim
