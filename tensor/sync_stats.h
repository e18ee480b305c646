// Host <-> device synchronisation counters.
//
// Every place where the host waits for a CUDA stream counts itself here: sx::cuda::synchronize
// (explicit syncs, and the wait that ends every device-to-host copy) and device-to-host copies
// themselves (`.item()`, `.to_vector()`, `.to(cpu)`). Tests assert that an op never waits (NMS keeps
// its result on the device); benchmarks report the waits per training step. The counters are global
// and atomic; in a CPU-only build they stay zero.
#pragma once
#include <cstdint>

namespace sx {

struct SyncStats {
  int64_t stream_syncs = 0;           // times the host waited for a device stream
  int64_t device_to_host_copies = 0;  // device -> host copies (each also waits once)
};

// The counts since the program started or since the last reset_sync_stats().
SyncStats sync_stats();
void reset_sync_stats();

namespace detail {
void count_stream_sync();
void count_device_to_host_copy();
}  // namespace detail

}  // namespace sx
