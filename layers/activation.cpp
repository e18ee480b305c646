#include "layers/activation.h"

#include <sstream>

#include "tensor/ops.h"

namespace sx::nn {

Tensor ReLU::forward(const Tensor& x) { return relu(x); }

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  SX_CHECK(p >= 0.0 && p <= 1.0, "dropout: p must be in [0, 1], got ", p);
  if (!training || p == 0.0) return x;
  if (p == 1.0) return mul(x, Tensor::zeros(x.shape(), x.dtype(), x.device()));
  Tensor keep = bernoulli(Tensor::full(x.shape(), 1.0 - p, x.dtype(), x.device()), gen);
  return mul(mul(x, keep), 1.0 / (1.0 - p));
}

Dropout::Dropout(double p, uint64_t seed) : Module("Dropout"), p_(p), gen_(seed) {
  SX_CHECK(p >= 0.0 && p <= 1.0, "Dropout: p must be in [0, 1], got ", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p_, is_training(), gen_); }

std::string Dropout::extra_repr() const {
  std::ostringstream os;
  os << "p=" << p_;
  return os.str();
}

}  // namespace sx::nn
