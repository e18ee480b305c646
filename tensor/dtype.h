// Element types. float16/bfloat16 are storage-only types reserved for mixed precision on CUDA;
// the enum and the casts do not block them, but no arithmetic op accepts them yet.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sx {

enum class DType : uint8_t { Float32, Float64, Int32, Int64, UInt8, Bool, Float16, BFloat16 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
inline bool is_floating(DType t) {
  return t == DType::Float32 || t == DType::Float64 || t == DType::Float16 || t == DType::BFloat16;
}
inline bool is_integral(DType t) { return !is_floating(t) && t != DType::Bool; }

// C++ type -> DType.
template <class T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::Int32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::UInt8; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };

// The dtype two operands promote to (NumPy/PyTorch style: float beats int, wider beats narrower).
DType promote_types(DType a, DType b);

}  // namespace sx

// SX_DISPATCH_ALL(dtype, name, ...): runs the lambda-like body with `scalar_t` bound to the C++
// type of dtype. SX_DISPATCH_FLOAT restricts to float32/float64.
#define SX_DISPATCH_CASE(DT, T, ...) \
  case DT: {                         \
    using scalar_t = T;              \
    __VA_ARGS__();                   \
    break;                           \
  }
#define SX_DISPATCH_ALL(dtype, name, ...)                                               \
  [&] {                                                                                 \
    switch (dtype) {                                                                    \
      SX_DISPATCH_CASE(::sx::DType::Float32, float, __VA_ARGS__)                        \
      SX_DISPATCH_CASE(::sx::DType::Float64, double, __VA_ARGS__)                       \
      SX_DISPATCH_CASE(::sx::DType::Int32, int32_t, __VA_ARGS__)                        \
      SX_DISPATCH_CASE(::sx::DType::Int64, int64_t, __VA_ARGS__)                        \
      SX_DISPATCH_CASE(::sx::DType::UInt8, uint8_t, __VA_ARGS__)                        \
      SX_DISPATCH_CASE(::sx::DType::Bool, bool, __VA_ARGS__)                            \
      default:                                                                          \
        throw ::sx::ValueError(std::string(name) + ": unsupported dtype " +             \
                               ::sx::dtype_name(dtype));                                \
    }                                                                                   \
  }()
#define SX_DISPATCH_FLOAT(dtype, name, ...)                                             \
  [&] {                                                                                 \
    switch (dtype) {                                                                    \
      SX_DISPATCH_CASE(::sx::DType::Float32, float, __VA_ARGS__)                        \
      SX_DISPATCH_CASE(::sx::DType::Float64, double, __VA_ARGS__)                       \
      default:                                                                          \
        throw ::sx::ValueError(std::string(name) + ": expected float32 or float64, got " + \
                               ::sx::dtype_name(dtype));                                \
    }                                                                                   \
  }()
