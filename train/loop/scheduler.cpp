// Learning-rate schedules; see scheduler.h.
#include "train/loop/scheduler.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "tensor/errors.h"
#include "train/loop/optim.h"

namespace sx::optim {
namespace {
std::string num(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}
constexpr double kPi = 3.14159265358979323846;
}  // namespace

double LRScheduler::apply(Optimizer& opt, int64_t step) const {
  double lr = lr_at(step);
  opt.set_lr(lr);
  return lr;
}

double Warmup::factor(int64_t step) const {
  if (steps <= 0 || step >= steps) return 1.0;
  if (step < 0) return start_factor;
  return start_factor + (1.0 - start_factor) * static_cast<double>(step) / static_cast<double>(steps);
}

WarmupCosine::WarmupCosine(double base_lr, int64_t total_steps, Warmup warmup, double min_lr)
    : base_(base_lr), min_(min_lr), total_(total_steps), warmup_(warmup) {
  SX_CHECK(base_lr >= 0 && std::isfinite(base_lr), "cosine schedule: base lr must be >= 0, got ", base_lr);
  SX_CHECK(total_steps > 0, "cosine schedule: total steps must be > 0, got ", total_steps);
  SX_CHECK(warmup.steps >= 0 && warmup.steps <= total_steps, "cosine schedule: warmup steps ", warmup.steps,
           " must be in [0, total steps ", total_steps, "]");
  SX_CHECK(warmup.start_factor > 0 && warmup.start_factor <= 1, "schedule: warmup start factor must be in (0, 1], got ",
           warmup.start_factor);
  SX_CHECK(min_lr >= 0 && min_lr <= base_lr, "cosine schedule: min lr ", min_lr, " must be in [0, base lr ", base_lr, "]");
}

double WarmupCosine::lr_at(int64_t s) const {
  if (s < warmup_.steps) return base_ * warmup_.factor(s);
  if (s >= total_) return min_;
  double t = static_cast<double>(s - warmup_.steps) / static_cast<double>(total_ - warmup_.steps);
  return min_ + (base_ - min_) * (1.0 + std::cos(kPi * t)) / 2.0;
}

std::map<std::string, std::string> WarmupCosine::describe() const {
  return {{"name", name()},
          {"base_lr", num(base_)},
          {"min_lr", num(min_)},
          {"total_steps", std::to_string(total_)},
          {"warmup_steps", std::to_string(warmup_.steps)},
          {"warmup_start_factor", num(warmup_.start_factor)}};
}

MultiStep::MultiStep(double base_lr, std::vector<int64_t> milestones, double gamma, Warmup warmup)
    : base_(base_lr), gamma_(gamma), milestones_(std::move(milestones)), warmup_(warmup) {
  SX_CHECK(base_lr >= 0 && std::isfinite(base_lr), "multistep schedule: base lr must be >= 0, got ", base_lr);
  SX_CHECK(gamma > 0, "multistep schedule: gamma must be > 0, got ", gamma);
  SX_CHECK(warmup.start_factor > 0 && warmup.start_factor <= 1, "schedule: warmup start factor must be in (0, 1], got ",
           warmup.start_factor);
  std::sort(milestones_.begin(), milestones_.end());
}

double MultiStep::lr_at(int64_t s) const {
  int64_t k = std::upper_bound(milestones_.begin(), milestones_.end(), s) - milestones_.begin();
  return base_ * std::pow(gamma_, static_cast<double>(k)) * warmup_.factor(s);
}

std::map<std::string, std::string> MultiStep::describe() const {
  std::string ms;
  for (size_t i = 0; i < milestones_.size(); ++i) ms += (i ? "," : "") + std::to_string(milestones_[i]);
  return {{"name", name()},
          {"base_lr", num(base_)},
          {"gamma", num(gamma_)},
          {"milestones", ms},
          {"warmup_steps", std::to_string(warmup_.steps)},
          {"warmup_start_factor", num(warmup_.start_factor)}};
}

std::map<std::string, std::string> Constant::describe() const {
  return {{"name", name()},
          {"base_lr", num(base_)},
          {"warmup_steps", std::to_string(warmup_.steps)},
          {"warmup_start_factor", num(warmup_.start_factor)}};
}

std::unique_ptr<LRScheduler> make_scheduler(const std::string& name, double base_lr, int64_t total_steps,
                                            int64_t warmup_steps, const std::string& milestones, double gamma,
                                            double min_lr) {
  Warmup w;
  w.steps = std::min<int64_t>(std::max<int64_t>(warmup_steps, 0), std::max<int64_t>(total_steps, 0));
  if (name == "cosine") return std::make_unique<WarmupCosine>(base_lr, total_steps, w, min_lr);
  if (name == "constant") return std::make_unique<Constant>(base_lr, w);
  if (name == "multistep") {
    std::vector<int64_t> ms;
    std::stringstream ss(milestones);
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (item.empty()) continue;
      char* end = nullptr;
      double v = std::strtod(item.c_str(), &end);
      SX_CHECK(end && *end == '\0' && v >= 0, "multistep schedule: bad milestone '", item, "' in '", milestones, "'");
      ms.push_back(v < 1.0 && item.find('.') != std::string::npos ? static_cast<int64_t>(std::llround(v * total_steps))
                                                                  : static_cast<int64_t>(v));
    }
    return std::make_unique<MultiStep>(base_lr, ms, gamma, w);
  }
  SX_THROW(ValueError, "unknown lr schedule '", name, "' (cosine, multistep or constant)");
}

}  // namespace sx::optim
