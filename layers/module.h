// Module: the base of every layer and model, in the style of torch.nn.Module.
//
// A module owns
//   - parameters: tensors the optimizer updates (requires_grad unless frozen),
//   - buffers: state that is saved but not trained (BatchNorm running statistics),
//   - children: named sub-modules.
// Names compose with dots exactly like PyTorch: a parameter "weight" of the child "conv1" of the
// child "layer1.0" is "layer1.0.conv1.weight". The order of registration is the order of
// named_parameters() and state_dict() (so it equals torchvision's when registration follows
// torchvision's __init__ order).
//
// Parameter handles are stable: a layer keeps a copy of the Tensor handle it registered (e.g.
// Conv2d::weight), and to(device)/to(dtype)/load_state_dict() change the tensors *in place*
// (the TensorImpl behind the handle gets the new storage), so handles held by the layer, by
// optimizers or by tests stay valid.
//
// State dicts: an insertion-ordered name -> Tensor map (StateDict). load_state_dict() copies
// values into the existing tensors (converting dtype/device), and reports missing, unexpected and
// mis-shaped keys; in strict mode any of those throws sx::ValueError carrying the same report.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace sx::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// An insertion-ordered map from names to tensors (like Python's OrderedDict).
class StateDict {
 public:
  StateDict() = default;
  // Implicit on purpose: a safetensors file's tensor list converts directly.
  StateDict(const NamedTensors& items);  // NOLINT(google-explicit-constructor)

  // Inserts, or replaces the value in place (keeping the position) when the name exists.
  void set(const std::string& name, const Tensor& t);
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // Throws sx::ValueError "state_dict: no key 'x'" when absent.
  const Tensor& at(const std::string& name) const;
  // Removes the key when present; returns whether it was.
  bool erase(const std::string& name);
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  std::vector<std::string> keys() const;
  const NamedTensors& items() const { return items_; }
  NamedTensors::const_iterator begin() const { return items_.begin(); }
  NamedTensors::const_iterator end() const { return items_.end(); }

 private:
  NamedTensors items_;
  std::map<std::string, size_t> index_;
};

// What load_state_dict() found.
struct LoadReport {
  std::vector<std::string> missing;     // in the module, not in the state dict
  std::vector<std::string> unexpected;  // in the state dict, not in the module
  std::vector<std::string> mismatched;  // "name: expected [64, 3, 7, 7], got [64, 1, 7, 7]"
  int64_t loaded = 0;                   // tensors copied
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  // Multi-line human-readable summary (empty lists omitted). A list longer than max_listed is
  // shown as its module prefixes (first two name components) with counts.
  std::string str(size_t max_listed = 8) const;
};

class Module {
 public:
  explicit Module(std::string type_name = "Module") : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The computation. The default throws ValueError naming the module type (for containers
  // whose forward has a different signature).
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  const std::string& type_name() const { return type_name_; }

  // ---- registration (called from constructors) ---------------------------------------------
  // Registers a parameter (sets requires_grad(requires_grad) on it) and returns the same handle.
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  // Registers a buffer (never requires grad). `persistent` buffers appear in state_dict().
  Tensor register_buffer(const std::string& name, Tensor t, bool persistent = true);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    register_child(name, m);
    return m;
  }

  // ---- access --------------------------------------------------------------------------------
  // Recursive (dotted names) unless recurse=false. Frozen parameters are included.
  NamedTensors named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  // Only those with requires_grad (what an optimizer should see).
  std::vector<Tensor> trainable_parameters() const;
  NamedTensors named_buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  // This module ("" name) and every descendant, depth-first in registration order.
  std::vector<std::pair<std::string, Module*>> named_modules();
  // Lookup by dotted name; throws ValueError when absent.
  Tensor parameter(const std::string& dotted_name) const;
  Tensor buffer(const std::string& dotted_name) const;
  std::shared_ptr<Module> child(const std::string& dotted_name) const;

  // ---- mode ----------------------------------------------------------------------------------
  // Sets training mode here and in every descendant. Returns *this.
  virtual Module& train(bool on = true);
  Module& eval() { return train(false); }
  bool is_training() const { return training_; }

  // Sets requires_grad on every parameter (recursive): freezing = requires_grad_(false).
  void requires_grad_(bool requires);
  // Drops the gradients of all parameters.
  void zero_grad();

  // ---- state ---------------------------------------------------------------------------------
  // Parameters and persistent buffers, registration order, dotted names. The tensors share
  // storage with the module (detached handles): clone() them to snapshot.
  StateDict state_dict() const;
  LoadReport load_state_dict(const StateDict& sd, bool strict = true);

  // ---- placement -------------------------------------------------------------------------------
  // Moves/casts all parameters and buffers in place (floating tensors only for dtype; integer
  // buffers such as num_batches_tracked keep their dtype). Gradients are dropped.
  Module& to(Device device);
  Module& to(DType dtype);
  // Device of the first parameter or buffer (CPU when there is none).
  Device device() const;

  int64_t num_parameters(bool trainable_only = false) const;

  // A short tree of the module: "ResNet(\n  (conv1): Conv2d(3, 64, ...)\n ...)".
  std::string str() const;
  // One-line description of this module alone (layers override: "Conv2d(3, 64, k=7, s=2, p=3)").
  virtual std::string extra_repr() const { return ""; }

 protected:
  // State-dict keys (local name, without prefix) this module silently accepts and ignores when
  // loading (FrozenBatchNorm2d ignores "num_batches_tracked" like torchvision's).
  virtual bool ignores_state_key(const std::string& local_name) const { return false; }
  void register_child(const std::string& name, std::shared_ptr<Module> m);

 private:
  struct Entry {
    std::string name;
    Tensor tensor;
    bool persistent = true;
  };
  void collect(const std::string& prefix, bool params, bool buffers, bool only_persistent,
               NamedTensors& out) const;
  std::string str_indented(int indent) const;

  std::string type_name_;
  bool training_ = true;
  std::vector<Entry> params_;
  std::vector<Entry> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

// Runs children in order; their names are "0", "1", ... (like torch.nn.Sequential).
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  explicit Sequential(std::vector<std::shared_ptr<Module>> mods);
  // Appends under the next index name; returns the module.
  template <class M>
  std::shared_ptr<M> push_back(std::shared_ptr<M> m) {
    register_child(std::to_string(size_), m);
    ++size_;
    return m;
  }
  size_t size() const { return size_; }
  std::shared_ptr<Module> operator[](size_t i) const;
  Tensor forward(const Tensor& x) override;

 private:
  size_t size_ = 0;
};

}  // namespace sx::nn
