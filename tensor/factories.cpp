// Tensor factories: empty/zeros/ones/full/arange and copies from host values.
#include <cmath>
#include <cstring>

#include "tensor/autograd.h"
#include "tensor/tensor.h"

namespace sx {

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device, bool pinned) {
  int64_t n = 1;
  for (int64_t d : shape) {
    SX_CHECK(d >= 0, "empty: negative dimension in shape ", shape_str(shape));
    SX_CHECK(d == 0 || n <= (int64_t(1) << 50) / d, "empty: shape ", shape_str(shape), " is too large");
    n *= d;
  }
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = Storage::allocate(static_cast<size_t>(n) * dtype_size(dtype), device, pinned);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->offset = 0;
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}
Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }

Tensor Tensor::arange(double start, double end, double step, DType dtype, Device device) {
  SX_CHECK(step != 0 && std::isfinite(step) && std::isfinite(start) && std::isfinite(end),
           "arange: invalid range start=", start, " end=", end, " step=", step);
  double len = std::ceil((end - start) / step);
  int64_t n = len > 0 ? static_cast<int64_t>(len) : 0;
  Tensor t = empty({n}, dtype, Device::cpu());
  SX_DISPATCH_ALL(dtype, "arange", [&] {
    scalar_t* p = t.data<scalar_t>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<scalar_t>(start + static_cast<double>(i) * step);
  });
  return device.is_cpu() ? t : t.to(device);
}

Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape, DType dtype, Device device) {
  SX_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
           " values do not fill shape ", shape_str(shape));
  Tensor src = empty(shape, DType::Float64, Device::cpu());
  if (!values.empty()) std::memcpy(src.data_ptr(), values.data(), values.size() * sizeof(double));
  if (dtype == DType::Float64 && device.is_cpu()) return src;
  Tensor out = empty(shape, dtype, device);
  out.copy_(src);
  return out;
}

Tensor Tensor::from_blob_copy(const void* data, const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, Device::cpu());
  size_t bytes = static_cast<size_t>(t.numel()) * dtype_size(dtype);
  if (bytes) std::memcpy(t.data_ptr(), data, bytes);
  return device.is_cpu() ? t : t.to(device);
}

}  // namespace sx
