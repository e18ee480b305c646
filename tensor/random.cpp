// Generator's scalar draws on the host, over the same per-element math as the tensor draws
// (random_ops_math.h), so a scalar draw is the first element of the matching tensor draw.
#include "tensor/random.h"

#include "tensor/errors.h"
#include "tensor/random_ops_math.h"

namespace sx {

double Generator::uniform() { return rng::uniform(seed_, advance(1)); }

double Generator::normal() {
  const uint64_t first = advance(2 + (offset_ & 1));
  return rng::normal(seed_, rng::normal_base(first));
}

int64_t Generator::randint(int64_t lo, int64_t hi) {
  SX_CHECK(hi > lo, "Generator::randint: empty range [", lo, ", ", hi, ")");
  const uint64_t range = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
  return rng::randint_value(seed_, advance(1), lo, range);
}

}  // namespace sx
