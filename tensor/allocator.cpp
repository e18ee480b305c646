// Host allocation, and the CUDA caching allocator (see allocator.h for the design).
#include "tensor/allocator.h"

#include <atomic>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <new>
#include <sys/mman.h>
#include <unordered_map>
#include <vector>

#include "tensor/deferred_pool.h"
#include "tensor/errors.h"
#ifdef SX_WITH_CUDA
#include "tensor/cuda_context.h"
#endif

namespace sx {

Storage::~Storage() {
  if (data_ && deleter_) deleter_(data_, nbytes_, device_);
}

namespace {

// Bytes of host memory in live tensors and held (live + cached), with their high-water marks.
struct HostCounters {
  std::atomic<int64_t> live{0}, held{0}, peak_live{0}, peak_held{0};
};
HostCounters& host_counters() {
  static HostCounters* c = new HostCounters;  // never destroyed, like the pool
  return *c;
}
void raise_peak(std::atomic<int64_t>& peak, int64_t v) {
  int64_t p = peak.load(std::memory_order_relaxed);
  while (v > p && !peak.compare_exchange_weak(p, v, std::memory_order_relaxed)) {
  }
}
// live and held change by the given bytes (a fresh block: both; a cache hit: live only).
void count_host(int64_t live, int64_t held) {
  HostCounters& c = host_counters();
  if (live) raise_peak(c.peak_live, c.live.fetch_add(live, std::memory_order_relaxed) + live);
  if (held) raise_peak(c.peak_held, c.held.fetch_add(held, std::memory_order_relaxed) + held);
}
size_t host_small_round(size_t nbytes) { return nbytes == 0 ? 64 : (nbytes + 63) / 64 * 64; }

void host_free(void* p, size_t nbytes, Device) {
  const auto n = static_cast<int64_t>(host_small_round(nbytes));
  count_host(-n, -n);
  std::free(p);
}

// Large host blocks (>= 1 MiB) are cached like device blocks. Without this, glibc serves every
// allocation above its mmap threshold (at most 32 MiB) with a fresh mmap, and an op writing a 64 MB
// output pays one page fault per 4 KB page, every time (measured: out-of-place add at 16M floats ran
// at 22% of memcpy bandwidth, in-place at 167%). Cached blocks keep their pages mapped. The cache
// holds at most kHostCacheLimit bytes of free blocks; beyond that blocks go back to the system.
//
// The blocks come from mmap and go back with munmap, not through malloc/free: glibc raises its mmap
// threshold to the size of every mmapped chunk it frees (up to 32 MiB), after which blocks of 1 to
// 32 MiB come from its heap, and a heap chunk freed in the middle of the heap stays resident. A
// block our cache gave back then still counted in the process's memory: measured on a RetinaNet
// R50-FPN step at 1024 px, batch 2, peak RSS 2.35 GB for 1.94 GB of peak live tensors; with every
// block mapped and unmapped here, 1.93 GB (below the live figure: pages a block never touched,
// its rounding, are never resident).
constexpr size_t kHostCacheMin = size_t(1) << 20;
constexpr size_t kHostCacheLimit = size_t(2) << 30;
struct HostPool {
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;
  std::unordered_map<void*, size_t> live;
  size_t cached_bytes = 0;
};
HostPool& host_pool() {
  static HostPool* p = new HostPool;  // never destroyed: tensors may outlive static destructors
  return *p;
}
size_t host_round(size_t n) { return (n + kHostCacheMin - 1) / kHostCacheMin * kHostCacheMin; }
// A block of `size` bytes (a multiple of the page size) straight from the kernel, page-aligned
// (so 64-byte aligned); nullptr when the system has none. host_unmap gives it back at once.
void* host_map(size_t size) {
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}
void host_unmap(void* p, size_t size) { munmap(p, size); }

void* host_cached_alloc(size_t nbytes) {
  HostPool& p = host_pool();
  const size_t size = host_round(nbytes);
  {
    std::lock_guard<std::mutex> lock(p.mu);
    auto it = p.free_blocks.lower_bound(size);
    if (it != p.free_blocks.end() && it->first <= 2 * size) {
      void* ptr = it->second;
      p.live[ptr] = it->first;
      p.cached_bytes -= it->first;
      count_host(static_cast<int64_t>(it->first), 0);
      p.free_blocks.erase(it);
      return ptr;
    }
    // A miss: before taking `size` new bytes from the system, give back cached blocks of at least
    // as many bytes (the largest first; none of them fits this request), so that bytes held
    // (live + cached) grow only when the cache is empty: the peak held stays at the peak live
    // (measured: a RetinaNet step at 1024 px held 0.38 GB of idle cached blocks at its peak).
    size_t freed = 0;
    while (freed < size && !p.free_blocks.empty()) {
      auto big = std::prev(p.free_blocks.end());
      freed += big->first;
      p.cached_bytes -= big->first;
      count_host(0, -static_cast<int64_t>(big->first));
      host_unmap(big->second, big->first);
      p.free_blocks.erase(big);
    }
  }
  void* ptr = host_map(size);
  if (!ptr) return nullptr;
  count_host(static_cast<int64_t>(size), static_cast<int64_t>(size));
  std::lock_guard<std::mutex> lock(p.mu);
  p.live[ptr] = size;
  return ptr;
}

void host_cached_free(void* ptr, size_t, Device) {
  HostPool& p = host_pool();
  std::lock_guard<std::mutex> lock(p.mu);
  auto it = p.live.find(ptr);
  size_t size = it->second;
  p.live.erase(it);
  p.free_blocks.emplace(size, ptr);
  p.cached_bytes += size;
  count_host(-static_cast<int64_t>(size), 0);
  while (p.cached_bytes > kHostCacheLimit && !p.free_blocks.empty()) {
    auto big = std::prev(p.free_blocks.end());  // evict the largest first
    p.cached_bytes -= big->first;
    count_host(0, -static_cast<int64_t>(big->first));
    host_unmap(big->second, big->first);
    p.free_blocks.erase(big);
  }
}

#ifdef SX_WITH_CUDA
// Pinned host memory: a DeferredPool (deferred_pool.h) whose fence is one CUDA event per device
// stream in use, recorded when the host drops the block. Every host->device copy from a pinned
// buffer is queued on its device's stream before the buffer can be dropped, so once those events
// have completed no copy still reads the block and it can hold the next batch. No cudaFreeHost
// (which waits for the device) in steady state, no cudaHostAlloc per batch.
using PinnedFence = std::vector<cudaEvent_t>;
constexpr size_t kPinnedGranularity = size_t(2) << 20;
constexpr size_t kPinnedCacheLimit = size_t(1) << 30;
DeferredPool<PinnedFence>& pinned_pool() {
  static auto* p = new DeferredPool<PinnedFence>(  // never destroyed: tensors may outlive statics
      DeferredPool<PinnedFence>::Hooks{
          [](size_t n) {
            void* q = nullptr;
            SX_CUDA_CHECK(cudaHostAlloc(&q, n, cudaHostAllocDefault));
            return q;
          },
          [](void* q) { cudaFreeHost(q); },
          [] {  // runs in Storage's destructor: never throws
            PinnedFence f;
            int prev = 0;
            cudaGetDevice(&prev);
            for (int d = 0; d < cuda_device_count(); ++d) {
              cudaStream_t st = cuda::stream_if_created(d);
              if (!st) continue;
              cudaSetDevice(d);
              cudaEvent_t e = nullptr;
              if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) == cudaSuccess &&
                  cudaEventRecord(e, st) == cudaSuccess) {
                f.push_back(e);
              } else {
                if (e) cudaEventDestroy(e);
                cudaStreamSynchronize(st);  // no event: wait here instead (correct, only slower)
              }
            }
            cudaSetDevice(prev);
            return f;
          },
          [](const PinnedFence& f) {
            for (cudaEvent_t e : f)
              if (cudaEventQuery(e) != cudaSuccess) return false;
            return true;
          },
          [](PinnedFence& f) {
            for (cudaEvent_t e : f) cudaEventDestroy(e);
            f.clear();
          }},
      kPinnedGranularity, kPinnedCacheLimit);
  return *p;
}
void pinned_free(void* p, size_t, Device) { pinned_pool().deallocate(p); }

// One caching pool per device. Never destroyed (tensors may outlive static destructors).
struct DevicePool {
  std::mutex mu;
  std::multimap<size_t, void*> free_blocks;     // size -> block, for best-fit reuse
  std::unordered_map<void*, size_t> live;       // block -> its (rounded) size
  AllocatorStats stats;
};

constexpr int kMaxDevices = 64;
DevicePool& pool(int device) {
  static DevicePool* pools = new DevicePool[kMaxDevices];
  SX_CHECK(device >= 0 && device < kMaxDevices, "invalid CUDA device index ", device);
  return pools[device];
}

size_t round_size(size_t n) {
  if (n == 0) n = 1;
  if (n < (1u << 20)) return (n + 511) / 512 * 512;
  return (n + (2u << 20) - 1) / (2u << 20) * (2u << 20);
}

void release_cached(int device, DevicePool& p) {
  cuda::set_device(device);
  for (auto& kv : p.free_blocks) {
    cudaFree(kv.second);
    p.stats.reserved_bytes -= static_cast<int64_t>(kv.first);
    p.stats.num_device_frees++;
  }
  p.free_blocks.clear();
}

void* device_alloc(size_t nbytes, int device) {
  DevicePool& p = pool(device);
  size_t size = round_size(nbytes);
  std::lock_guard<std::mutex> lock(p.mu);
  // Best fit among cached blocks, but never more than twice the request (limits waste).
  auto it = p.free_blocks.lower_bound(size);
  void* ptr = nullptr;
  if (it != p.free_blocks.end() && it->first <= 2 * size) {
    size = it->first;
    ptr = it->second;
    p.free_blocks.erase(it);
  } else {
    cuda::set_device(device);
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err != cudaSuccess) {
      cudaGetLastError();
      release_cached(device, p);  // give the cache back and try once more
      err = cudaMalloc(&ptr, size);
      if (err != cudaSuccess) {
        cudaGetLastError();
        SX_THROW(CudaError, "CUDA out of memory: tried to allocate ", nbytes, " bytes on cuda:", device,
                 " (", p.stats.allocated_bytes, " bytes in use, ", p.stats.reserved_bytes, " reserved)");
      }
    }
    p.stats.reserved_bytes += static_cast<int64_t>(size);
    p.stats.num_device_mallocs++;
  }
  p.live[ptr] = size;
  p.stats.allocated_bytes += static_cast<int64_t>(size);
  if (p.stats.allocated_bytes > p.stats.peak_allocated_bytes)
    p.stats.peak_allocated_bytes = p.stats.allocated_bytes;
  return ptr;
}

void device_free(void* ptr, size_t, Device dev) {
  DevicePool& p = pool(dev.index);
  std::lock_guard<std::mutex> lock(p.mu);
  auto it = p.live.find(ptr);
  if (it == p.live.end()) return;  // not ours: cannot happen through Storage
  size_t size = it->second;
  p.live.erase(it);
  p.stats.allocated_bytes -= static_cast<int64_t>(size);
  // Stream-ordered reuse: all work on this device runs on one stream (cuda_context.h), so a later
  // kernel using this block is queued after every kernel that used it before.
  p.free_blocks.emplace(size, ptr);
}
#endif

}  // namespace

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device, bool pinned) {
  if (device.is_cpu()) {
#ifdef SX_WITH_CUDA
    if (pinned && cuda_available()) {
      void* p = pinned_pool().allocate(nbytes);
      return std::make_shared<Storage>(p, nbytes, device, &pinned_free);
    }
#endif
    (void)pinned;
    if (nbytes >= kHostCacheMin) {
      void* p = host_cached_alloc(nbytes);
      if (!p) SX_THROW(Error, "out of host memory: tried to allocate ", nbytes, " bytes");
      return std::make_shared<Storage>(p, nbytes, device, &host_cached_free);
    }
    const size_t n = host_small_round(nbytes);
    void* p = std::aligned_alloc(64, n);
    if (!p) SX_THROW(Error, "out of host memory: tried to allocate ", nbytes, " bytes");
    count_host(static_cast<int64_t>(n), static_cast<int64_t>(n));
    return std::make_shared<Storage>(p, nbytes, device, &host_free);
  }
#ifdef SX_WITH_CUDA
  SX_CHECK(device.index < cuda_device_count(), "CUDA device cuda:", device.index,
           " is not available (", cuda_device_count(), " device(s) found)");
  void* p = device_alloc(nbytes, device.index);
  return std::make_shared<Storage>(p, nbytes, device, &device_free);
#else
  SX_THROW(NotBuiltError, "a CUDA tensor was requested (", device.str(), ") but spinexr was built without CUDA");
#endif
}

AllocatorStats host_allocator_stats() {
  HostCounters& c = host_counters();
  AllocatorStats s;
  s.allocated_bytes = c.live.load(std::memory_order_relaxed);
  s.reserved_bytes = c.held.load(std::memory_order_relaxed);
  s.peak_allocated_bytes = c.peak_live.load(std::memory_order_relaxed);
  s.peak_reserved_bytes = c.peak_held.load(std::memory_order_relaxed);
  return s;
}

namespace cuda {
DeferredPoolStats pinned_pool_stats() {
#ifdef SX_WITH_CUDA
  return pinned_pool().stats();
#else
  return DeferredPoolStats{};
#endif
}

AllocatorStats allocator_stats(int device) {
#ifdef SX_WITH_CUDA
  DevicePool& p = pool(device);
  std::lock_guard<std::mutex> lock(p.mu);
  return p.stats;
#else
  (void)device;
  return {};
#endif
}
void reset_peak_stats(int device) {
#ifdef SX_WITH_CUDA
  DevicePool& p = pool(device);
  std::lock_guard<std::mutex> lock(p.mu);
  p.stats.peak_allocated_bytes = p.stats.allocated_bytes;
#else
  (void)device;
#endif
}
int64_t device_total_memory(int device) {
#ifdef SX_WITH_CUDA
  int prev = 0;
  SX_CUDA_CHECK(cudaGetDevice(&prev));
  SX_CUDA_CHECK(cudaSetDevice(device));
  size_t free_b = 0, total_b = 0;
  const cudaError_t e = cudaMemGetInfo(&free_b, &total_b);
  SX_CUDA_CHECK(cudaSetDevice(prev));
  SX_CUDA_CHECK(e);
  return static_cast<int64_t>(total_b);
#else
  (void)device;
  return 0;
#endif
}
void empty_cache() {
#ifdef SX_WITH_CUDA
  for (int d = 0; d < cuda_device_count(); ++d) {
    DevicePool& p = pool(d);
    std::lock_guard<std::mutex> lock(p.mu);
    release_cached(d, p);
  }
#endif
}
}  // namespace cuda

}  // namespace sx
