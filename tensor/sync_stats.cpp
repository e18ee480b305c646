#include "tensor/sync_stats.h"

#include <atomic>

namespace sx {
namespace {
std::atomic<int64_t> g_syncs{0};
std::atomic<int64_t> g_d2h{0};
}  // namespace

SyncStats sync_stats() { return SyncStats{g_syncs.load(), g_d2h.load()}; }

void reset_sync_stats() {
  g_syncs = 0;
  g_d2h = 0;
}

namespace detail {
void count_stream_sync() { g_syncs.fetch_add(1, std::memory_order_relaxed); }
void count_device_to_host_copy() { g_d2h.fetch_add(1, std::memory_order_relaxed); }
}  // namespace detail

}  // namespace sx
