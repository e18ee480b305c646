// Precise BatchNorm statistics; see precise_bn.h.
#include "train/loop/precise_bn.h"

#include <vector>

#include "layers/batchnorm.h"
#include "tensor/autograd.h"
#include "tensor/errors.h"

namespace sx::train {

int64_t recompute_batchnorm_statistics(nn::Module& model, int64_t num_batches,
                                       const std::function<bool()>& forward_next) {
  SX_CHECK(num_batches >= 0, "precise BN: the number of batches must be >= 0, got ", num_batches);
  std::vector<nn::BatchNorm2d*> bns;
  std::vector<double> momenta;
  for (auto& [name, m] : model.named_modules()) {
    auto* bn = dynamic_cast<nn::BatchNorm2d*>(m);
    if (bn && bn->running_mean.defined() && bn->running_var.defined()) {
      bns.push_back(bn);
      momenta.push_back(bn->momentum());
    }
  }
  if (bns.empty() || num_batches == 0) return 0;
  const bool was_training = model.is_training();
  model.train();
  int64_t k = 0;
  try {
    NoGradGuard ng;
    while (k < num_batches) {
      // Batch k+1 gets weight 1/(k+1): running = (k/(k+1)) running + (1/(k+1)) batch, the
      // cumulative average (the first batch replaces whatever the EMA held).
      for (auto* bn : bns) bn->set_momentum(1.0 / static_cast<double>(k + 1));
      if (!forward_next()) break;
      ++k;
    }
  } catch (...) {
    for (size_t i = 0; i < bns.size(); ++i) bns[i]->set_momentum(momenta[i]);
    model.train(was_training);
    throw;
  }
  for (size_t i = 0; i < bns.size(); ++i) bns[i]->set_momentum(momenta[i]);
  model.train(was_training);
  return k;
}

}  // namespace sx::train
