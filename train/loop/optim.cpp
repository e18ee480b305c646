// SGD and AdamW: the bookkeeping (groups, state, checkpoints) here; the updates themselves are the
// kernels of kernels/optim (CPU loop and CUDA kernel sharing kernels/optim/optim_math.h). See optim.h.
#include "train/loop/optim.h"

#include <cmath>
#include <sstream>

#include "kernels/optim/optim.h"
#include "tensor/autograd.h"
#include "tensor/dtype.h"
#include "tensor/errors.h"

namespace sx::optim {

namespace {
std::string num(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

// The gradient as a contiguous tensor of the parameter's dtype on its device.
Tensor grad_for(const Tensor& p, const char* who, size_t i) {
  Tensor g = p.grad();
  SX_CHECK(g.shape() == p.shape(), who, ": gradient of parameter ", i, " has shape ", shape_str(g.shape()),
           ", parameter ", shape_str(p.shape()));
  SX_CHECK(g.device() == p.device(), who, ": gradient of parameter ", i, " is on ", g.device().str(),
           ", parameter on ", p.device().str());
  if (g.dtype() != p.dtype()) g = g.to(p.dtype());
  return g.contiguous();
}

void check_param(const Tensor& p, const char* who, size_t i) {
  SX_CHECK(p.defined(), who, ": parameter ", i, " is undefined");
  SX_CHECK(p.dtype() == DType::Float32 || p.dtype() == DType::Float64, who, ": parameter ", i,
           " must be float32 or float64, got ", dtype_name(p.dtype()));
  SX_CHECK(p.is_contiguous(), who, ": parameter ", i, " must be contiguous");
}
}  // namespace

Optimizer::Optimizer(std::vector<ParamGroup> groups, double lr, double wd, const char* who)
    : groups_(std::move(groups)), lr_(lr), default_wd_(wd) {
  SX_CHECK(std::isfinite(lr) && lr >= 0, who, ": lr must be finite and >= 0, got ", lr);
  SX_CHECK(std::isfinite(wd) && wd >= 0, who, ": weight_decay must be finite and >= 0, got ", wd);
  for (size_t g = 0; g < groups_.size(); ++g)
    for (const auto& p : groups_[g].params) {
      check_param(p, who, flat_.size());
      for (const auto& q : flat_)
        SX_CHECK(q.impl() != p.impl(), who, ": parameter ", flat_.size(), " appears twice");
      flat_.push_back(p);
      group_of_.push_back(g);
    }
}

void Optimizer::zero_grad() {
  for (auto& p : flat_) {
    Tensor h = p;
    h.zero_grad();
  }
}

std::map<std::string, std::string> Optimizer::hyper_params() const {
  return {{"type", name()}, {"lr", num(lr_)}, {"num_params", std::to_string(flat_.size())}};
}

Tensor Optimizer::find_state(const NamedTensors& tensors, size_t i, const std::string& key) const {
  std::string want = std::to_string(i) + "." + key;
  for (const auto& [n, t] : tensors)
    if (n == want) {
      if (key != "step")
        SX_CHECK(t.shape() == flat_[i].shape(), name(), ": state '", want, "' has shape ", shape_str(t.shape()),
                 " but parameter ", i, " has ", shape_str(flat_[i].shape()));
      return t;
    }
  return Tensor();
}

namespace {
std::vector<ParamGroup> one_group(std::vector<Tensor> params) {
  ParamGroup g;
  g.params = std::move(params);
  return {g};
}
}  // namespace

// ---- SGD ----------------------------------------------------------------------------------------

SGD::SGD(std::vector<Tensor> params, const SgdOptions& opt) : SGD(one_group(std::move(params)), opt) {}

SGD::SGD(std::vector<ParamGroup> groups, const SgdOptions& opt)
    : Optimizer(std::move(groups), opt.lr, opt.weight_decay, "SGD"), opt_(opt) {
  SX_CHECK(opt.momentum >= 0, "SGD: momentum must be >= 0, got ", opt.momentum);
  SX_CHECK(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0),
           "SGD: Nesterov momentum requires a momentum and zero dampening (momentum ", opt.momentum,
           ", dampening ", opt.dampening, ")");
  momentum_.resize(flat_.size());
}

void SGD::step() {
  NoGradGuard ng;
  for (size_t i = 0; i < flat_.size(); ++i) {
    const Tensor& p = flat_[i];
    if (!p.grad().defined()) continue;
    Tensor g = grad_for(p, "SGD", i);
    kernels::SgdStepArgs a{lr_ * groups_[group_of_[i]].lr_scale, opt_.momentum, opt_.dampening,
                           group_weight_decay(group_of_[i]), opt_.nesterov, false};
    if (opt_.momentum != 0.0 && !momentum_[i].defined()) {
      momentum_[i] = Tensor::empty(p.shape(), p.dtype(), p.device());
      a.first_step = true;
    }
    kernels::sgd_step(p, g, momentum_[i], a);
  }
}

NamedTensors SGD::state_tensors() const {
  NamedTensors out;
  for (size_t i = 0; i < momentum_.size(); ++i)
    if (momentum_[i].defined()) out.push_back({std::to_string(i) + ".momentum_buffer", momentum_[i]});
  return out;
}

std::map<std::string, std::string> SGD::hyper_params() const {
  auto h = Optimizer::hyper_params();
  h["momentum"] = num(opt_.momentum);
  h["dampening"] = num(opt_.dampening);
  h["weight_decay"] = num(opt_.weight_decay);
  h["nesterov"] = opt_.nesterov ? "1" : "0";
  return h;
}

void SGD::load_state(const NamedTensors& tensors) {
  for (const auto& [n, t] : tensors) {
    auto dot = n.find('.');
    SX_CHECK(dot != std::string::npos && n.substr(dot + 1) == "momentum_buffer", "SGD: unexpected state '", n, "'");
    size_t i = std::stoul(n.substr(0, dot));
    SX_CHECK(i < flat_.size(), "SGD: state '", n, "' names parameter ", i, " but there are ", flat_.size());
  }
  for (size_t i = 0; i < flat_.size(); ++i) {
    Tensor t = find_state(tensors, i, "momentum_buffer");
    momentum_[i] = t.defined() ? t.to(flat_[i].device(), flat_[i].dtype()).contiguous().clone() : Tensor();
  }
}

// ---- AdamW --------------------------------------------------------------------------------------

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& opt) : AdamW(one_group(std::move(params)), opt) {}

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& opt)
    : Optimizer(std::move(groups), opt.lr, opt.weight_decay, "AdamW"), opt_(opt) {
  SX_CHECK(opt.beta1 >= 0 && opt.beta1 < 1 && opt.beta2 >= 0 && opt.beta2 < 1, "AdamW: betas must be in [0, 1), got (",
           opt.beta1, ", ", opt.beta2, ")");
  SX_CHECK(opt.eps >= 0, "AdamW: eps must be >= 0, got ", opt.eps);
  exp_avg_.resize(flat_.size());
  exp_avg_sq_.resize(flat_.size());
  steps_.assign(flat_.size(), 0);
}

void AdamW::step() {
  NoGradGuard ng;
  for (size_t i = 0; i < flat_.size(); ++i) {
    const Tensor& p = flat_[i];
    if (!p.grad().defined()) continue;
    Tensor g = grad_for(p, "AdamW", i);
    if (!exp_avg_[i].defined()) {
      exp_avg_[i] = Tensor::zeros(p.shape(), p.dtype(), p.device());
      exp_avg_sq_[i] = Tensor::zeros(p.shape(), p.dtype(), p.device());
    }
    kernels::AdamWStepArgs a{lr_ * groups_[group_of_[i]].lr_scale, opt_.beta1, opt_.beta2, opt_.eps,
                             group_weight_decay(group_of_[i]), ++steps_[i]};
    kernels::adamw_step(p, g, exp_avg_[i], exp_avg_sq_[i], a);
  }
}

NamedTensors AdamW::state_tensors() const {
  NamedTensors out;
  for (size_t i = 0; i < flat_.size(); ++i) {
    if (!exp_avg_[i].defined()) continue;
    std::string k = std::to_string(i);
    out.push_back({k + ".exp_avg", exp_avg_[i]});
    out.push_back({k + ".exp_avg_sq", exp_avg_sq_[i]});
    out.push_back({k + ".step", Tensor::full({1}, static_cast<double>(steps_[i]), DType::Int64)});
  }
  return out;
}

std::map<std::string, std::string> AdamW::hyper_params() const {
  auto h = Optimizer::hyper_params();
  h["beta1"] = num(opt_.beta1);
  h["beta2"] = num(opt_.beta2);
  h["eps"] = num(opt_.eps);
  h["weight_decay"] = num(opt_.weight_decay);
  return h;
}

void AdamW::load_state(const NamedTensors& tensors) {
  for (const auto& [n, t] : tensors) {
    auto dot = n.find('.');
    std::string key = dot == std::string::npos ? "" : n.substr(dot + 1);
    SX_CHECK(key == "exp_avg" || key == "exp_avg_sq" || key == "step", "AdamW: unexpected state '", n, "'");
    size_t i = std::stoul(n.substr(0, dot));
    SX_CHECK(i < flat_.size(), "AdamW: state '", n, "' names parameter ", i, " but there are ", flat_.size());
  }
  for (size_t i = 0; i < flat_.size(); ++i) {
    Tensor m = find_state(tensors, i, "exp_avg"), v = find_state(tensors, i, "exp_avg_sq"),
           s = find_state(tensors, i, "step");
    SX_CHECK(m.defined() == v.defined() && m.defined() == s.defined(), "AdamW: incomplete state for parameter ", i);
    if (!m.defined()) {
      exp_avg_[i] = exp_avg_sq_[i] = Tensor();
      steps_[i] = 0;
      continue;
    }
    SX_CHECK(s.numel() == 1, "AdamW: state '", i, ".step' must hold one value, got ", shape_str(s.shape()));
    exp_avg_[i] = m.to(flat_[i].device(), flat_[i].dtype()).contiguous().clone();
    exp_avg_sq_[i] = v.to(flat_[i].device(), flat_[i].dtype()).contiguous().clone();
    double st = s.item();
    SX_CHECK(st >= 1 && st == std::floor(st), "AdamW: bad step count ", st, " for parameter ", i);
    steps_[i] = static_cast<int64_t>(st);
  }
}

// ---- helpers ------------------------------------------------------------------------------------

std::unique_ptr<Optimizer> make_optimizer(const std::string& name, std::vector<ParamGroup> groups, double lr,
                                          double weight_decay, double momentum, bool nesterov) {
  if (name == "sgd") {
    SgdOptions o;
    o.lr = lr;
    o.momentum = momentum;
    o.weight_decay = weight_decay;
    o.nesterov = nesterov;
    return std::make_unique<SGD>(std::move(groups), o);
  }
  if (name == "adamw") {
    AdamWOptions o;
    o.lr = lr;
    o.weight_decay = weight_decay;
    return std::make_unique<AdamW>(std::move(groups), o);
  }
  SX_THROW(ValueError, "unknown optimizer '", name, "' (sgd or adamw)");
}

std::vector<ParamGroup> split_no_decay(const std::vector<Tensor>& params) {
  ParamGroup decay, no_decay;
  no_decay.weight_decay = 0.0;
  for (const auto& p : params) (p.dim() <= 1 ? no_decay : decay).params.push_back(p);
  std::vector<ParamGroup> out;
  if (!decay.params.empty()) out.push_back(decay);
  if (!no_decay.params.empty()) out.push_back(no_decay);
  return out;
}

}  // namespace sx::optim
