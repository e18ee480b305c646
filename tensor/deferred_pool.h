// A cache of memory blocks that become reusable only after the device has finished with them.
//
// Used for pinned (page-locked) host memory: the data loader fills a pinned batch buffer, the
// host->device copy from it runs asynchronously on a device stream, and the buffer's tensor may be
// dropped by the host before that copy has run. Freeing the block with cudaFreeHost would wait for
// the device (a hidden sync per batch), and handing it straight to the next batch would let the
// loader overwrite data the copy has not read yet. So deallocate() records a *fence* (CUDA events
// on the device streams) and parks the block as pending; allocate() first promotes every pending
// block whose fence has completed, then reuses the best-fitting free block (at most twice the
// size asked for), and only then allocates a new one. Free blocks above `cache_limit` bytes are
// returned to the system (largest first), so the cache stays bounded.
//
// The pool is generic over the fence so that the CPU tests drive it with fake fences; the hooks
// say how to allocate, free, record a fence, test it and release it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sx {

struct DeferredPoolStats {
  int64_t system_allocs = 0;  // blocks obtained from the system (cudaHostAlloc) so far
  int64_t system_frees = 0;   // blocks returned to the system so far
  int64_t reuses = 0;         // allocations served from the cache
  int64_t pending = 0;        // blocks waiting for their fence now
  int64_t cached_bytes = 0;   // bytes in free (ready) blocks now
};

template <class Fence>
class DeferredPool {
 public:
  struct Hooks {
    std::function<void*(size_t)> alloc;          // a new block of exactly this many bytes
    std::function<void(void*)> free;             // give a block back to the system
    std::function<Fence()> record;               // a fence after all work queued so far
    std::function<bool(const Fence&)> done;      // has the fence completed? (never blocks)
    std::function<void(Fence&)> release;         // destroy a fence
  };
  DeferredPool(Hooks hooks, size_t granularity, size_t cache_limit)
      : h_(std::move(hooks)), gran_(granularity), limit_(cache_limit) {}

  size_t round(size_t n) const { return ((n ? n : 1) + gran_ - 1) / gran_ * gran_; }

  void* allocate(size_t nbytes) {
    const size_t size = round(nbytes);
    {
      std::lock_guard<std::mutex> lk(mu_);
      promote_ready();
      auto it = free_.lower_bound(size);
      if (it != free_.end() && it->first <= 2 * size) {
        void* p = it->second;
        live_[p] = it->first;
        cached_ -= it->first;
        free_.erase(it);
        ++stats_.reuses;
        return p;
      }
    }
    void* p = h_.alloc(size);
    std::lock_guard<std::mutex> lk(mu_);
    live_[p] = size;
    ++stats_.system_allocs;
    return p;
  }

  void deallocate(void* p) {
    Fence f = h_.record();
    std::lock_guard<std::mutex> lk(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) {  // not ours: nothing to do (and the fence is not needed)
      h_.release(f);
      return;
    }
    pending_.push_back(Pending{p, it->second, std::move(f)});
    live_.erase(it);
  }

  DeferredPoolStats stats() {
    std::lock_guard<std::mutex> lk(mu_);
    DeferredPoolStats s = stats_;
    s.pending = static_cast<int64_t>(pending_.size());
    s.cached_bytes = static_cast<int64_t>(cached_);
    return s;
  }

 private:
  struct Pending {
    void* ptr;
    size_t size;
    Fence fence;
  };
  // Under mu_: pending blocks whose fence completed become free; then enforce the cache limit.
  void promote_ready() {
    for (size_t i = 0; i < pending_.size();) {
      if (h_.done(pending_[i].fence)) {
        h_.release(pending_[i].fence);
        free_.emplace(pending_[i].size, pending_[i].ptr);
        cached_ += pending_[i].size;
        pending_[i] = std::move(pending_.back());
        pending_.pop_back();
      } else {
        ++i;
      }
    }
    while (cached_ > limit_ && !free_.empty()) {
      auto big = std::prev(free_.end());
      cached_ -= big->first;
      h_.free(big->second);
      ++stats_.system_frees;
      free_.erase(big);
    }
  }

  Hooks h_;
  size_t gran_, limit_;
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  std::unordered_map<void*, size_t> live_;
  std::vector<Pending> pending_;
  size_t cached_ = 0;
  DeferredPoolStats stats_;
};

}  // namespace sx
