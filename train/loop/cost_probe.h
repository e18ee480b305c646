// The cost of a run, known before it has spent it: the training loop (train/loop/loop.h) times its
// first few steps (the probe; they are the run's real first steps, so nothing is wasted and the
// weights, the data order and every generator are exactly those of a run without a probe), reads
// the peak memory they reached, and prints the estimated time per epoch and for the whole run and
// the peak memory against what the device has. `--dry-run` stops right after, writing nothing.
//
// What is measured:
//   seconds per step  the mean wall time of the probe's steps after the first (the first pays for
//                     one-time work: buffer growth, cuDNN's algorithm search, thread start-up);
//                     with one probe step, that step. Data loading waits are included: the rate
//                     is what the run will see.
//   peak memory       CPU: the process's peak resident set (VmHWM of /proc/self/status, reset at
//                     the start of the run through /proc/self/clear_refs where the kernel allows,
//                     otherwise the peak since the process started); CUDA: the caching allocator's
//                     peak of live bytes (tensor/allocator.h).
//   device memory     CPU: MemTotal of /proc/meminfo; CUDA: the device's total memory.
// The estimate covers the training steps only (validation, precise BN and checkpoints come on top).
//
// On CUDA a batch that would not fit is refused before the run goes on: the probe's peak is split
// into a fixed part (weights, their gradients and the optimizer's state, counted from the
// parameters) and a part per image, the per-image part scaled by the largest random scale squared
// (scale jitter makes some batches bigger than the probe's), and the largest batch that fits in 95%
// of the device is named in the error.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/device.h"

namespace sx::train {

// Memory the probe reads. reset_peak_memory() starts a new high-water mark where the platform allows.
void reset_peak_memory(Device device);
int64_t peak_memory_bytes(Device device);    // 0 when unknown
int64_t device_memory_bytes(Device device);  // 0 when unknown
std::string memory_source(Device device);    // "process peak RSS" | "CUDA allocator peak"

// What the probe measured and what it predicts.
struct CostEstimate {
  int64_t probe_steps = 0;      // steps timed (including the first)
  int64_t batch = 0;            // images per step
  double seconds_per_step = 0;
  double images_per_second = 0;
  int64_t steps_per_epoch = 0;
  int64_t steps_left = 0;       // steps of the run still to do after the probe
  double epoch_seconds = 0;     // steps_per_epoch x seconds_per_step
  double run_seconds = 0;       // steps_left x seconds_per_step
  int64_t peak_bytes = 0;
  int64_t device_bytes = 0;
  int64_t fixed_bytes = 0;      // weights + gradients + optimizer state
  std::string memory_source;
};

// The estimate from the probe's step times (seconds, in order).
CostEstimate estimate_cost(const std::vector<double>& step_seconds, int64_t batch, int64_t steps_per_epoch,
                           int64_t steps_left);

// Bytes a training run holds whatever the batch: the weights (all parameters and buffers), a
// gradient per trainable parameter, and `optimizer_slots` tensors of state per trainable parameter
// (SGD with momentum 1, AdamW 2).
int64_t fixed_training_bytes(int64_t all_param_bytes, int64_t trainable_bytes, int optimizer_slots);
int optimizer_state_slots(const std::string& optimizer, double momentum);

// The largest batch whose estimated peak, fixed + (peak - fixed) / batch x b x max_scale^2, fits in
// `fraction` of the device; 0 when not even one image fits. Needs batch >= 1 and peak > fixed.
int64_t largest_fitting_batch(int64_t peak_bytes, int64_t fixed_bytes, int64_t batch, double max_scale,
                              int64_t device_bytes, double fraction = 0.95);

// "1.3 GB", "512.0 MB"; "2.4 h", "13.5 min", "42.0 s".
std::string human_bytes(int64_t bytes);
std::string human_seconds(double seconds);
// The probe's report, two lines: the rate and the memory, then the estimate.
std::string format_cost(const CostEstimate& c, int64_t epochs_left);

}  // namespace sx::train
