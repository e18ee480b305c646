// ZeRO stage 1: the optimizer state sharded across the ranks (see zero.h).
#include "train/loop/zero.h"

#include <algorithm>
#include <numeric>

#include "tensor/autograd.h"

namespace sx::train {
namespace {

// The state slots of each optimizer (optim.h): name, and whether it has the parameter's shape
// (else one int64 step count).
struct Slot {
  const char* name;
  bool param_shaped;
};
std::vector<Slot> state_slots(const std::string& optimizer) {
  if (optimizer == "sgd") return {{"momentum_buffer", true}};
  if (optimizer == "adamw") return {{"exp_avg", true}, {"exp_avg_sq", true}, {"step", false}};
  SX_THROW(ValueError, "--zero 1: no state layout known for optimizer '", optimizer, "'");
}

}  // namespace

ZeroShard::ZeroShard(dist::ProcessGroup& group, optim::Optimizer& opt) : group_(group), opt_(opt) {
  const auto& params = opt_.params();
  std::vector<size_t> order(params.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return params[a].numel() > params[b].numel(); });
  std::vector<int64_t> load(static_cast<size_t>(group_.size()), 0);
  owner_.assign(params.size(), 0);
  for (size_t i : order) {
    const int r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owner_[i] = r;
    load[static_cast<size_t>(r)] += params[i].numel();
  }
  state_slots(opt_.name());  // refuses an optimizer whose state layout is unknown, up front
}

void ZeroShard::keep_own_state() {
  optim::NamedTensors own;
  for (const auto& [name, t] : opt_.state_tensors()) {
    const size_t i = std::stoul(name.substr(0, name.find('.')));
    if (owner_[i] == group_.rank()) own.push_back({name, t});
  }
  opt_.load_state(own);
}

void ZeroShard::drop_foreign_grads() {
  for (size_t i = 0; i < opt_.params().size(); ++i)
    if (owner_[i] != group_.rank()) {
      Tensor p = opt_.params()[i];
      p.zero_grad();
    }
}

void ZeroShard::broadcast_params() {
  NoGradGuard ng;
  for (size_t i = 0; i < opt_.params().size(); ++i) group_.broadcast(opt_.params()[i], owner_[i]);
}

void ZeroShard::gather_state() {
  const std::vector<Slot> slots = state_slots(opt_.name());
  optim::NamedTensors mine = opt_.state_tensors(), all;
  auto find = [&](const std::string& name) {
    for (const auto& [n, t] : mine)
      if (n == name) return t;
    return Tensor();
  };
  for (size_t i = 0; i < opt_.params().size(); ++i) {
    const Tensor& p = opt_.params()[i];
    const std::string k = std::to_string(i) + ".";
    // Whether the owner has state for it yet (a parameter never stepped has none).
    Tensor has = Tensor::full({1}, find(k + slots[0].name).defined() ? 1.0 : 0.0, DType::Int64);
    group_.broadcast(has, owner_[i]);
    if (has.to_vector()[0] == 0) continue;
    for (const Slot& s : slots) {
      Tensor t = find(k + s.name);
      if (!t.defined())
        t = s.param_shaped ? Tensor::empty(p.shape(), p.dtype(), p.device()) : Tensor::empty({1}, DType::Int64);
      t = t.contiguous();
      group_.broadcast(t, owner_[i]);
      all.push_back({k + s.name, t});
    }
  }
  opt_.load_state(all);
}

}  // namespace sx::train
