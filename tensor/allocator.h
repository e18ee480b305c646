// Memory for tensors.
//
// CPU: 64-byte aligned host memory (optionally page-locked "pinned" memory on CUDA builds, for the
// data loader's batch buffers so host->device copies can be asynchronous). Pinned blocks are pooled
// (deferred_pool.h): a dropped block is reused once the device streams have passed the point where
// it was dropped, so steady-state training does no cudaHostAlloc/cudaFreeHost per batch.
// CUDA: a caching allocator per device. Blocks are rounded up (512 B granularity below 1 MiB,
// 2 MiB above) and, when freed, kept in a size-ordered free list for reuse instead of being handed
// back with cudaFree. Because all work on a device runs in one stream (see cuda_context.h), a block
// freed by the host can be reused immediately: any later kernel that uses it is ordered after the
// kernels that used it before. So in steady state (a training loop with fixed shapes) there is no
// cudaMalloc or cudaFree per op. empty_cache() returns the cached blocks to the driver.
// Host blocks of 1 MiB and more are cached the same way (bounded at 2 GiB of free blocks), so
// large CPU outputs do not pay fresh page faults on every op.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "tensor/deferred_pool.h"
#include "tensor/device.h"

namespace sx {

// A reference-counted block of memory on one device.
class Storage {
 public:
  Storage(void* data, size_t nbytes, Device device, void (*deleter)(void*, size_t, Device))
      : data_(data), nbytes_(nbytes), device_(device), deleter_(deleter) {}
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  // Bumped by every in-place write through the Tensor API (copy_, fill_, add_, mul_), so autograd
  // can tell that a tensor an op saved for its backward was changed afterwards.
  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

  // Allocate nbytes on device (pinned host memory when pinned and CUDA is available).
  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device, bool pinned = false);

 private:
  void* data_;
  size_t nbytes_;
  Device device_;
  void (*deleter_)(void*, size_t, Device);
  uint64_t version_ = 0;
};

struct AllocatorStats {
  int64_t allocated_bytes = 0;       // bytes in live tensors
  int64_t reserved_bytes = 0;        // bytes held from the driver (live + cached)
  int64_t peak_allocated_bytes = 0;  // high-water mark of allocated_bytes
  int64_t peak_reserved_bytes = 0;   // high-water mark of reserved_bytes (host only, for now)
  int64_t num_device_mallocs = 0;    // cudaMalloc calls so far (a steady state adds none)
  int64_t num_device_frees = 0;      // cudaFree calls so far
};

// Stats of host memory held for CPU tensors (allocated_bytes: in live tensors, block sizes as
// rounded; reserved_bytes: live + the cached free blocks; their high-water marks since the start of
// the process). Two relaxed atomic updates per allocation; num_device_* stay zero.
AllocatorStats host_allocator_stats();

namespace cuda {
// Stats of the caching allocator on one device (all zero in a CPU-only build).
AllocatorStats allocator_stats(int device = 0);
void reset_peak_stats(int device = 0);
// The device's total memory in bytes (cudaMemGetInfo; 0 in a CPU-only build).
int64_t device_total_memory(int device = 0);
// Return every cached, unused block to the driver.
void empty_cache();
// The pinned host-memory pool (deferred_pool.h): blocks from cudaHostAlloc, reuses, pending.
DeferredPoolStats pinned_pool_stats();
}  // namespace cuda

}  // namespace sx
