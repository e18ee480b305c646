// Tensor: a strided view of a reference-counted Storage, with an optional autograd record.
//
// A Tensor is a cheap handle (a shared pointer to TensorImpl). Views (reshape, permute, narrow,
// expand, ...) share storage and differ in shape/strides/offset; contiguous() copies only when
// needed. Copies between devices or dtypes are explicit: to(Device), to(DType). Nothing here ever
// synchronises with a GPU behind the caller's back; item() and to(cpu) are the explicit syncs.
//
// Autograd (see autograd.h): a tensor that requires grad and was produced by an op holds grad_fn,
// the node that knows how to send its gradient back to the op's inputs. Leaves accumulate their
// gradient into grad() (+=); interior gradients are written once per backward pass.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "tensor/allocator.h"
#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/errors.h"

namespace sx {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[2, 3]"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

struct Node;
class Tensor;

struct AutogradMeta {
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;          // null for leaves
  std::shared_ptr<class TensorImpl> grad;  // accumulated gradient of a leaf (or retained)
  bool retain_grad = false;
};

class TensorImpl {
 public:
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;  // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;
  std::unique_ptr<AutogradMeta> autograd;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories (factories.cpp) --------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu(),
                      bool pinned = false);
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::Float32,
                     Device device = Device::cpu());
  // [start, end) with step, like torch.arange.
  static Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::Int64,
                       Device device = Device::cpu());
  static Tensor arange(int64_t end, DType dtype = DType::Int64, Device device = Device::cpu()) {
    return arange(0.0, static_cast<double>(end), 1.0, dtype, device);
  }
  // A CPU tensor holding a copy of the values (cast to dtype).
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape,
                            DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor from_blob_copy(const void* data, const Shape& shape, DType dtype,
                               Device device = Device::cpu());
  static Tensor scalar(double v, DType dtype = DType::Float32, Device device = Device::cpu()) {
    return full({}, v, dtype, device);
  }
  // Uses a tensor's storage for a new shape with given strides/offset (no copy, no autograd).
  static Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset);

  // ---- metadata -------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl()->shape; }
  const Shape& strides() const { return impl()->strides; }
  int64_t offset() const { return impl()->offset; }
  int64_t dim() const { return static_cast<int64_t>(impl()->shape.size()); }
  int64_t size(int64_t d) const;    // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const { return shape_numel(impl()->shape); }
  DType dtype() const { return impl()->dtype; }
  Device device() const { return impl()->storage->device(); }
  bool is_cuda() const { return device().is_cuda(); }
  bool is_contiguous() const;
  size_t element_size() const { return dtype_size(dtype()); }
  const std::shared_ptr<Storage>& storage() const { return impl()->storage; }
  TensorImpl* impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same_storage(const Tensor& o) const { return defined() && o.defined() && storage() == o.storage(); }

  // Pointer to the first element (storage + offset). data<T>() checks that T matches dtype.
  void* data_ptr() const;
  template <class T>
  T* data() const {
    check_dtype(dtype_of<T>::value, "data<T>()");
    return static_cast<T*>(data_ptr());
  }

  // ---- values ---------------------------------------------------------------------------
  // Value of a one-element tensor as double (explicit device->host sync for CUDA tensors).
  double item() const;
  template <class T> T item() const { return static_cast<T>(item()); }
  // All values as doubles, in row-major order (copies to the CPU).
  std::vector<double> to_vector() const;
  template <class T> std::vector<T> to_vector_as() const {
    auto v = to_vector();
    return std::vector<T>(v.begin(), v.end());
  }

  // ---- copies (differentiable) ----------------------------------------------------------
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  Tensor to(Device device, DType dtype) const;
  Tensor cpu() const { return to(Device::cpu()); }
  Tensor cuda(int index = 0) const { return to(Device::cuda(index)); }
  Tensor clone() const;
  Tensor contiguous() const;  // returns *this when already contiguous

  // ---- in-place (no autograd; refused on a leaf that requires grad while grad mode is on) ----
  Tensor& copy_(const Tensor& src);  // src broadcast to this shape, any dtype/device
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }

  // ---- views (differentiable; share storage) --------------------------------------------
  Tensor view(const Shape& shape) const;     // requires compatible strides; -1 infers one dim
  Tensor reshape(const Shape& shape) const;  // view when possible, else a contiguous copy
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;  // 2-D transpose
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;  // clamps like Python
  Tensor select(int64_t dim, int64_t index) const;  // removes dim
  Tensor squeeze(int64_t dim) const;
  Tensor squeeze() const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor expand(const Shape& shape) const;  // broadcast; -1 keeps a size
  Tensor expand_as(const Tensor& other) const { return expand(other.shape()); }

  // ---- autograd -------------------------------------------------------------------------
  bool requires_grad() const;
  Tensor& set_requires_grad(bool requires = true);  // only on leaves
  bool is_leaf() const;
  Tensor grad() const;          // undefined until a backward pass reached this leaf
  void set_grad(const Tensor& g);
  void zero_grad();             // drops the gradient (like torch's set_to_none=True)
  void retain_grad();           // keep the gradient of a non-leaf after backward
  const std::shared_ptr<Node>& grad_fn() const;
  void set_grad_fn(std::shared_ptr<Node> fn);  // used by ops (autograd.cpp)
  // Backward from this tensor. Without grad the tensor must hold one element (seed 1).
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;
  Tensor detach() const;  // same storage, no autograd history

  std::string str(int64_t max_per_dim = 6) const;  // shape, dtype, device and values (summarised)

  void check_dtype(DType expected, const char* what) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Whether any operands need grad *and* grad mode is on.
bool any_requires_grad(std::initializer_list<Tensor> ts);

}  // namespace sx
