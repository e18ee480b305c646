// Module base: registration, recursive traversal with dotted names, state dicts, placement.
#include "layers/module.h"

#include <algorithm>
#include <sstream>

#include "tensor/autograd.h"

namespace sx::nn {

// ---- StateDict -------------------------------------------------------------------------------
StateDict::StateDict(const NamedTensors& items) {
  for (const auto& kv : items) set(kv.first, kv.second);
}

void StateDict::set(const std::string& name, const Tensor& t) {
  auto it = index_.find(name);
  if (it != index_.end()) {
    items_[it->second].second = t;
    return;
  }
  index_[name] = items_.size();
  items_.emplace_back(name, t);
}

const Tensor& StateDict::at(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) SX_THROW(ValueError, "state_dict: no key '", name, "'");
  return items_[it->second].second;
}

bool StateDict::erase(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) return false;
  items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(it->second));
  index_.clear();
  for (size_t i = 0; i < items_.size(); ++i) index_[items_[i].first] = i;
  return true;
}

std::vector<std::string> StateDict::keys() const {
  std::vector<std::string> k;
  k.reserve(items_.size());
  for (const auto& kv : items_) k.push_back(kv.first);
  return k;
}

std::string LoadReport::str(size_t max_listed) const {
  std::ostringstream os;
  os << "loaded " << loaded << " tensors";
  // A short list is printed name by name; a long one (a backbone loaded into a detector leaves
  // its whole FPN and heads "missing") as one line of module prefixes with counts.
  auto list = [&](const char* what, const std::vector<std::string>& v) {
    if (v.empty()) return;
    os << "\n  " << what << " (" << v.size() << "):";
    if (v.size() <= max_listed) {
      for (const auto& s : v) os << "\n    " << s;
      return;
    }
    std::vector<std::pair<std::string, int64_t>> groups;  // in first-seen order
    for (const auto& s : v) {
      const size_t a = s.find('.');
      const size_t b = a == std::string::npos ? a : s.find('.', a + 1);
      const std::string prefix = b == std::string::npos ? s : s.substr(0, b) + ".*";
      if (groups.empty() || groups.back().first != prefix) {
        auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == prefix; });
        if (it == groups.end()) {
          groups.emplace_back(prefix, 0);
          it = groups.end() - 1;
        }
        ++it->second;
      } else {
        ++groups.back().second;
      }
    }
    os << "\n    ";
    for (size_t i = 0; i < groups.size(); ++i) os << (i ? ", " : "") << groups[i].first << " " << groups[i].second;
  };
  list("missing keys", missing);
  list("unexpected keys", unexpected);
  list("mis-shaped keys", mismatched);
  return os.str();
}

// ---- Module ----------------------------------------------------------------------------------
Tensor Module::forward(const Tensor&) {
  SX_THROW(ValueError, type_name_, ": forward(Tensor) is not supported by this module");
}

static void check_local_name(const std::string& type, const std::string& name) {
  SX_CHECK(!name.empty() && name.find('.') == std::string::npos, type,
           ": a parameter/buffer/child name must be non-empty and contain no '.', got '", name, "'");
}

Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_local_name(type_name_, name);
  SX_CHECK(t.defined(), type_name_, ": parameter '", name, "' is undefined");
  for (const auto& e : params_) SX_CHECK(e.name != name, type_name_, ": duplicate parameter '", name, "'");
  t.set_requires_grad(requires_grad);
  params_.push_back({name, t, true});
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t, bool persistent) {
  check_local_name(type_name_, name);
  SX_CHECK(t.defined(), type_name_, ": buffer '", name, "' is undefined");
  for (const auto& e : buffers_) SX_CHECK(e.name != name, type_name_, ": duplicate buffer '", name, "'");
  buffers_.push_back({name, t, persistent});
  return t;
}

void Module::register_child(const std::string& name, std::shared_ptr<Module> m) {
  check_local_name(type_name_, name);
  SX_CHECK(m != nullptr, type_name_, ": child '", name, "' is null");
  for (const auto& c : children_) SX_CHECK(c.first != name, type_name_, ": duplicate child '", name, "'");
  children_.emplace_back(name, std::move(m));
}

void Module::collect(const std::string& prefix, bool params, bool buffers, bool only_persistent,
                     NamedTensors& out) const {
  // torch's order: a module's own parameters, then its own buffers, then each child's
  // (state_dict); named_parameters/named_buffers call this with one kind only.
  if (params)
    for (const auto& e : params_) out.emplace_back(prefix + e.name, e.tensor);
  if (buffers)
    for (const auto& e : buffers_)
      if (!only_persistent || e.persistent) out.emplace_back(prefix + e.name, e.tensor);
  for (const auto& c : children_)
    c.second->collect(prefix + c.first + ".", params, buffers, only_persistent, out);
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  if (!recurse) {
    for (const auto& e : params_) out.emplace_back(e.name, e.tensor);
    return out;
  }
  collect("", true, false, false, out);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> v;
  for (auto& kv : named_parameters(recurse)) v.push_back(kv.second);
  return v;
}

std::vector<Tensor> Module::trainable_parameters() const {
  std::vector<Tensor> v;
  for (auto& kv : named_parameters(true))
    if (kv.second.requires_grad()) v.push_back(kv.second);
  return v;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  if (!recurse) {
    for (const auto& e : buffers_) out.emplace_back(e.name, e.tensor);
    return out;
  }
  collect("", false, true, false, out);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
  return children_;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  // Iterative depth-first traversal in registration order.
  std::vector<std::pair<std::string, Module*>> stack{{"", this}};
  while (!stack.empty()) {
    auto cur = stack.back();
    stack.pop_back();
    out.push_back(cur);
    const auto& ch = cur.second->children_;
    for (auto it = ch.rbegin(); it != ch.rend(); ++it)
      stack.emplace_back(cur.first.empty() ? it->first : cur.first + "." + it->first, it->second.get());
  }
  return out;
}

std::shared_ptr<Module> Module::child(const std::string& dotted_name) const {
  const Module* cur = this;
  std::shared_ptr<Module> found;
  size_t start = 0;
  while (true) {
    size_t dot = dotted_name.find('.', start);
    std::string part = dotted_name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    found.reset();
    for (const auto& c : cur->children_)
      if (c.first == part) found = c.second;
    if (!found) SX_THROW(ValueError, type_name_, ": no sub-module '", dotted_name, "'");
    cur = found.get();
    if (dot == std::string::npos) return found;
    start = dot + 1;
  }
}

static std::pair<std::string, std::string> split_last(const std::string& name) {
  size_t dot = name.rfind('.');
  if (dot == std::string::npos) return {"", name};
  return {name.substr(0, dot), name.substr(dot + 1)};
}

Tensor Module::parameter(const std::string& dotted_name) const {
  auto [path, leaf] = split_last(dotted_name);
  const Module* m = path.empty() ? this : child(path).get();
  for (const auto& e : m->params_)
    if (e.name == leaf) return e.tensor;
  SX_THROW(ValueError, type_name_, ": no parameter '", dotted_name, "'");
}

Tensor Module::buffer(const std::string& dotted_name) const {
  auto [path, leaf] = split_last(dotted_name);
  const Module* m = path.empty() ? this : child(path).get();
  for (const auto& e : m->buffers_)
    if (e.name == leaf) return e.tensor;
  SX_THROW(ValueError, type_name_, ": no buffer '", dotted_name, "'");
}

Module& Module::train(bool on) {
  training_ = on;
  for (auto& c : children_) c.second->train(on);
  return *this;
}

void Module::requires_grad_(bool requires) {
  for (auto& kv : named_parameters(true)) kv.second.set_requires_grad(requires);
}

void Module::zero_grad() {
  for (auto& kv : named_parameters(true)) kv.second.zero_grad();
}

StateDict Module::state_dict() const {
  NamedTensors out;
  // Per module: parameters, then persistent buffers, then children (torch's order).
  struct Rec {
    static void go(const Module& m, const std::string& prefix, NamedTensors& out) {
      for (const auto& e : m.params_) out.emplace_back(prefix + e.name, e.tensor.detach());
      for (const auto& e : m.buffers_)
        if (e.persistent) out.emplace_back(prefix + e.name, e.tensor.detach());
      for (const auto& c : m.children_) go(*c.second, prefix + c.first + ".", out);
    }
  };
  Rec::go(*this, "", out);
  return StateDict(out);
}

LoadReport Module::load_state_dict(const StateDict& sd, bool strict) {
  LoadReport rep;
  // Gather our tensors and the modules that own each prefix (for ignores_state_key).
  std::map<std::string, Tensor> mine;
  std::vector<std::string> order;
  std::map<std::string, Module*> by_prefix;
  for (auto& [name, m] : named_modules()) {
    by_prefix[name.empty() ? "" : name + "."] = m;
  }
  for (auto& kv : state_dict()) {
    mine[kv.first] = Tensor();
    order.push_back(kv.first);
  }
  // Handles that share the TensorImpl with the registered tensor (not the detached copies).
  for (auto& [prefix, m] : by_prefix) {
    for (auto& e : m->params_) mine[prefix + e.name] = e.tensor;
    for (auto& e : m->buffers_)
      if (e.persistent) mine[prefix + e.name] = e.tensor;
  }
  std::vector<std::pair<Tensor, Tensor>> copies;  // (dst, src)
  for (const auto& [name, src] : sd) {
    auto it = mine.find(name);
    if (it == mine.end()) {
      auto [path, leaf] = split_last(name);
      auto mit = by_prefix.find(path.empty() ? "" : path + ".");
      if (mit != by_prefix.end() && mit->second->ignores_state_key(leaf)) continue;
      rep.unexpected.push_back(name);
      continue;
    }
    const Tensor& dst = it->second;
    if (!src.defined() || src.shape() != dst.shape()) {
      rep.mismatched.push_back(name + ": expected " + shape_str(dst.shape()) + ", got " +
                               (src.defined() ? shape_str(src.shape()) : std::string("undefined")));
      continue;
    }
    copies.emplace_back(dst, src);
  }
  for (const auto& name : order)
    if (!sd.contains(name)) rep.missing.push_back(name);
  if (strict && !rep.ok())
    SX_THROW(ValueError, "load_state_dict (", type_name_, ", strict): ", rep.str(static_cast<size_t>(-1)));
  NoGradGuard ng;
  for (auto& [dst, src] : copies) {
    Tensor d = dst;
    d.copy_(src);
    ++rep.loaded;
  }
  return rep;
}

// Replace the contents of the TensorImpl behind `dst` with those of `src` (same handle, new
// storage), keeping dst's autograd flags; the gradient is dropped.
static void assign_in_place(Tensor& dst, const Tensor& src) {
  bool rg = dst.requires_grad();
  TensorImpl* d = dst.impl();
  TensorImpl* s = src.impl();
  d->storage = s->storage;
  d->shape = s->shape;
  d->strides = s->strides;
  d->offset = s->offset;
  d->dtype = s->dtype;
  if (rg) {
    dst.zero_grad();
  }
}

Module& Module::to(Device device) {
  NoGradGuard ng;
  for (auto& [prefix, m] : named_modules()) {
    for (auto& e : m->params_)
      if (e.tensor.device() != device) assign_in_place(e.tensor, e.tensor.detach().to(device));
    for (auto& e : m->buffers_)
      if (e.tensor.device() != device) assign_in_place(e.tensor, e.tensor.detach().to(device));
  }
  return *this;
}

Module& Module::to(DType dtype) {
  NoGradGuard ng;
  for (auto& [prefix, m] : named_modules()) {
    for (auto& e : m->params_)
      if (is_floating(e.tensor.dtype()) && e.tensor.dtype() != dtype)
        assign_in_place(e.tensor, e.tensor.detach().to(dtype));
    for (auto& e : m->buffers_)
      if (is_floating(e.tensor.dtype()) && e.tensor.dtype() != dtype)
        assign_in_place(e.tensor, e.tensor.detach().to(dtype));
  }
  return *this;
}

Device Module::device() const {
  auto p = named_parameters(true);
  if (!p.empty()) return p.front().second.device();
  auto b = named_buffers(true);
  if (!b.empty()) return b.front().second.device();
  return Device::cpu();
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (auto& kv : named_parameters(true))
    if (!trainable_only || kv.second.requires_grad()) n += kv.second.numel();
  return n;
}

std::string Module::str_indented(int indent) const {
  std::ostringstream os;
  os << type_name_ << "(" << extra_repr();
  if (!children_.empty()) {
    os << "\n";
    for (const auto& c : children_)
      os << std::string(indent + 2, ' ') << "(" << c.first << "): " << c.second->str_indented(indent + 2)
         << "\n";
    os << std::string(indent, ' ');
  }
  os << ")";
  return os.str();
}

std::string Module::str() const { return str_indented(0); }

// ---- Sequential ------------------------------------------------------------------------------
Sequential::Sequential(std::vector<std::shared_ptr<Module>> mods) : Module("Sequential") {
  for (auto& m : mods) push_back(m);
}

std::shared_ptr<Module> Sequential::operator[](size_t i) const {
  SX_CHECK(i < size_, "Sequential: index ", i, " out of range for ", size_, " modules");
  return named_children()[i].second;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (auto& c : named_children()) y = c.second->forward(y);
  return y;
}

}  // namespace sx::nn
