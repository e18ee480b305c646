#include "layers/linear.h"

#include <sstream>

#include "layers/init.h"
#include "tensor/ops.h"

namespace sx::nn {

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  SX_CHECK(x.dim() >= 1 && weight.dim() == 2 && x.size(-1) == weight.size(1), "linear: input ",
           shape_str(x.shape()), " does not fit weight ", shape_str(weight.shape()));
  Tensor y = matmul(x, weight.t());
  if (bias.defined()) y = add(y, bias);
  return y;
}

Linear::Linear(int64_t in_features, int64_t out_features, bool bias, Generator* gen)
    : Module("Linear"), in_(in_features), out_(out_features) {
  SX_CHECK(in_features >= 1 && out_features >= 1, "Linear: features must be >= 1, got in ", in_features, ", out ",
           out_features);
  Generator& g = gen ? *gen : init::default_generator();
  weight = register_parameter("weight", init::default_weight({out_features, in_features}, g));
  if (bias) this->bias = register_parameter("bias", init::default_bias(out_features, in_features, g));
}

void Linear::reset_parameters(Generator& gen) {
  NoGradGuard ng;
  weight.copy_(init::default_weight(weight.shape(), gen));
  if (bias.defined()) bias.copy_(init::default_bias(out_, in_, gen));
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

std::string Linear::extra_repr() const {
  std::ostringstream os;
  os << "in_features=" << in_ << ", out_features=" << out_ << ", bias=" << (bias.defined() ? "True" : "False");
  return os.str();
}

}  // namespace sx::nn
