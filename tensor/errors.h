// Typed exceptions and precondition checks. Library code throws; only the CLI prints and exits.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace sx {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ValueError : Error { using Error::Error; };      // bad argument values or shapes
struct IOError : Error { using Error::Error; };         // files: missing, malformed, truncated
struct CudaError : Error { using Error::Error; };       // CUDA runtime / cuBLAS / cuDNN failures
struct NotBuiltError : Error { using Error::Error; };   // asked for CUDA in a CPU-only build

namespace detail {
inline void stream_all(std::ostringstream&) {}
template <class T, class... R>
void stream_all(std::ostringstream& os, const T& v, const R&... r) {
  os << v;
  stream_all(os, r...);
}
template <class... A>
std::string cat(const A&... a) {
  std::ostringstream os;
  stream_all(os, a...);
  return os.str();
}
}  // namespace detail

}  // namespace sx

// SX_CHECK(cond, parts...): throw sx::ValueError with the message built from parts
// ("roi_align: rois must be [K,5], got ", shape).
#define SX_CHECK(cond, ...)                                                  \
  do {                                                                       \
    if (!(cond)) throw ::sx::ValueError(::sx::detail::cat(__VA_ARGS__));     \
  } while (0)
#define SX_THROW(Type, ...) throw ::sx::Type(::sx::detail::cat(__VA_ARGS__))
