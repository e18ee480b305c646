// The run's cost from its first steps (cost_probe.h explains what is measured and how).
#include "train/loop/cost_probe.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "tensor/allocator.h"
#include "tensor/errors.h"

namespace sx::train {

namespace {

// A "Key:   123 kB" line of a /proc file, in bytes; 0 when absent or unreadable.
int64_t proc_kb_field(const char* path, const std::string& key) {
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (line.compare(0, key.size() + 1, key + ":") != 0) continue;
    std::istringstream is(line.substr(key.size() + 1));
    int64_t kb = 0;
    if (is >> kb) return kb * 1024;
  }
  return 0;
}

}  // namespace

void reset_peak_memory(Device device) {
  if (device.is_cuda()) {
    cuda::reset_peak_stats(device.index);
    return;
  }
  // "5" resets the peak resident set size (VmHWM) to the current one (Linux >= 4.0). Where the
  // file cannot be written (some sandboxes), the peak stays the one since the process started.
  std::ofstream f("/proc/self/clear_refs");
  if (f) f << "5" << std::flush;
}

int64_t peak_memory_bytes(Device device) {
  if (device.is_cuda()) return cuda::allocator_stats(device.index).peak_allocated_bytes;
  return proc_kb_field("/proc/self/status", "VmHWM");
}

int64_t device_memory_bytes(Device device) {
  if (device.is_cuda()) return cuda::device_total_memory(device.index);
  return proc_kb_field("/proc/meminfo", "MemTotal");
}

std::string memory_source(Device device) {
  return device.is_cuda() ? "CUDA allocator peak" : "process peak RSS";
}

CostEstimate estimate_cost(const std::vector<double>& step_seconds, int64_t batch, int64_t steps_per_epoch,
                           int64_t steps_left) {
  SX_CHECK(!step_seconds.empty(), "estimate_cost: no step was timed");
  CostEstimate c;
  c.probe_steps = static_cast<int64_t>(step_seconds.size());
  c.batch = batch;
  // The first step pays for one-time work; it is left out when there are others.
  double sum = 0;
  const size_t first = step_seconds.size() > 1 ? 1 : 0;
  for (size_t i = first; i < step_seconds.size(); ++i) sum += step_seconds[i];
  c.seconds_per_step = sum / static_cast<double>(step_seconds.size() - first);
  c.images_per_second = c.seconds_per_step > 0 ? static_cast<double>(batch) / c.seconds_per_step : 0;
  c.steps_per_epoch = steps_per_epoch;
  c.steps_left = steps_left;
  c.epoch_seconds = static_cast<double>(steps_per_epoch) * c.seconds_per_step;
  c.run_seconds = static_cast<double>(steps_left) * c.seconds_per_step;
  return c;
}

int optimizer_state_slots(const std::string& optimizer, double momentum) {
  if (optimizer == "adamw") return 2;  // first and second moments
  return momentum != 0 ? 1 : 0;        // SGD's momentum buffer
}

int64_t fixed_training_bytes(int64_t all_param_bytes, int64_t trainable_bytes, int optimizer_slots) {
  return all_param_bytes + trainable_bytes * (1 + optimizer_slots);
}

int64_t largest_fitting_batch(int64_t peak_bytes, int64_t fixed_bytes, int64_t batch, double max_scale,
                              int64_t device_bytes, double fraction) {
  SX_CHECK(batch >= 1, "largest_fitting_batch: batch must be >= 1, got ", batch);
  SX_CHECK(peak_bytes > fixed_bytes, "largest_fitting_batch: the peak (", peak_bytes,
           " bytes) must exceed the fixed part (", fixed_bytes, " bytes)");
  const double per_image = static_cast<double>(peak_bytes - fixed_bytes) / static_cast<double>(batch) *
                           std::max(1.0, max_scale * max_scale);
  const double room = fraction * static_cast<double>(device_bytes) - static_cast<double>(fixed_bytes);
  if (room < per_image) return 0;
  return static_cast<int64_t>(std::floor(room / per_image));
}

std::string human_bytes(int64_t bytes) {
  char buf[32];
  const double b = static_cast<double>(bytes);
  if (b >= 1e9) std::snprintf(buf, sizeof buf, "%.1f GB", b / 1e9);
  else std::snprintf(buf, sizeof buf, "%.1f MB", b / 1e6);
  return buf;
}

std::string human_seconds(double s) {
  char buf[32];
  if (s >= 86400 * 2) std::snprintf(buf, sizeof buf, "%.1f days", s / 86400);
  else if (s >= 3600) std::snprintf(buf, sizeof buf, "%.1f h", s / 3600);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%.1f min", s / 60);
  else std::snprintf(buf, sizeof buf, "%.1f s", s);
  return buf;
}

std::string format_cost(const CostEstimate& c, int64_t epochs_left) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "cost probe (%lld steps, batch %lld): %.3g img/s (%.3g s/step); peak memory %s",
                static_cast<long long>(c.probe_steps), static_cast<long long>(c.batch), c.images_per_second,
                c.seconds_per_step, human_bytes(c.peak_bytes).c_str());
  std::string out = buf;
  if (c.device_bytes > 0) out += " of " + human_bytes(c.device_bytes);
  out += " (" + c.memory_source + ")\n";
  std::snprintf(buf, sizeof buf,
                "estimate: %s per epoch (%lld steps), %s for the %lld steps left (%lld epochs); validation not included",
                human_seconds(c.epoch_seconds).c_str(), static_cast<long long>(c.steps_per_epoch),
                human_seconds(c.run_seconds).c_str(), static_cast<long long>(c.steps_left),
                static_cast<long long>(epochs_left));
  return out + buf;
}

}  // namespace sx::train
