// Weight initialisation helpers (torch.nn.init equivalents) drawing from an sx::Generator on the
// host, so a seed gives the same weights on every machine and thread count. Each call reserves
// numel counters of the generator (Generator::advance) and computes value i from counter first+i
// with the counter-based functions of tensor/random_math.h. Results are CPU tensors; modules move
// them with to(device).
#pragma once
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace sx::nn::init {

// U(lo, hi).
Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen, DType dtype = DType::Float32);
// N(0, std^2).
Tensor normal(const Shape& shape, double std, Generator& gen, DType dtype = DType::Float32);
// fan_in = shape[1] * prod(shape[2:]), fan_out = shape[0] * prod(shape[2:]) (torch's rule).
int64_t fan_in(const Shape& shape);
int64_t fan_out(const Shape& shape);
// kaiming_normal_(mode="fan_out", nonlinearity="relu"): N(0, 2 / fan_out).
Tensor kaiming_normal_fan_out(const Shape& shape, Generator& gen, DType dtype = DType::Float32);
// torch's default for Linear/Conv weights (kaiming_uniform_ with a = sqrt(5)) and their biases:
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
Tensor default_weight(const Shape& shape, Generator& gen, DType dtype = DType::Float32);
Tensor default_bias(int64_t n, int64_t fan_in, Generator& gen, DType dtype = DType::Float32);
// xavier_uniform_ (Glorot & Bengio 2010): U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).
Tensor xavier_uniform(const Shape& shape, Generator& gen, double gain = 1.0, DType dtype = DType::Float32);

// The generator used when a layer is built without one (seed 0); not thread-safe.
Generator& default_generator();

}  // namespace sx::nn::init
