#include "kernels/conv2d/conv2d_path_stats.h"

namespace sx::kernels::cpu {

Conv2dPathCounts& conv2d_path_counts() {
  static Conv2dPathCounts counts;
  return counts;
}

}  // namespace sx::kernels::cpu
