// Which CPU reduction paths ran (reduce_cpu.cpp): a test hook (issue 15.7), so that a test named
// after a path proves it was taken rather than passing on one thread. Counted once per reduction
// that takes the path.
#pragma once
#include <atomic>
#include <cstdint>

namespace sx::red {

struct ReducePathCounts {
  std::atomic<int64_t> row_chunks{0};  // few long rows: each row cut into one chunk per thread
  std::atomic<int64_t> col_chunks{0};  // column reduction with fewer slabs than threads: r split per thread
  std::atomic<int64_t> wide_tiles{0};  // more than 65536 outputs per slab: tiles of 64 outputs
  void reset() {
    row_chunks = 0;
    col_chunks = 0;
    wide_tiles = 0;
  }
};
ReducePathCounts& cpu_reduce_path_counts();

}  // namespace sx::red
