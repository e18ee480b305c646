// Gradient buckets for data-parallel training (PyTorch DDP's Reducer, in small).
//
// The parameters are grouped, in reverse order (backward reaches the last layers first), into
// buckets of about bucket_bytes (25 MB by default; a parameter larger than that is a bucket alone).
// Each parameter gets a post-accumulate-grad hook (tensor/grad_hooks.h); when every parameter of
// a bucket has its final gradient, the bucket's gradients are copied into one flat buffer and its
// all-reduce (average) is launched at once, while backward goes on with earlier layers: on CUDA
// the NCCL stream runs beside the backward kernels, on the CPU MPI progresses during the polls.
//
// Order: buckets are launched strictly in index order (bucket k only after buckets < k), because
// every rank must issue its collectives in the same order; a bucket held back by an earlier one is
// launched as soon as that one is.
//
// Unused parameters: a parameter no gradient reached on this rank (a data-dependent graph: e.g. a
// detector batch without positives) holds its bucket back until finish(), which launches what is
// left with zeros in its place. Each bucket also carries one flag per parameter (1: this rank had a
// gradient); after the reduction a parameter that no rank had a gradient for keeps none (so the
// optimizer skips it, as a single process would), and every other gets the average. So every
// parameter is reduced exactly once per step, used or not.
//
// Use: construct once per training run (it registers the hooks; the destructor removes them), call
// finish() after each backward (before clipping and the optimizer step).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "tensor/dist/process_group.h"
#include "tensor/tensor.h"

namespace sx::dist {

class Bucketer {
 public:
  static constexpr int64_t kDefaultBucketBytes = 25LL << 20;
  Bucketer(ProcessGroup& pg, std::vector<Tensor> params, int64_t bucket_bytes = kDefaultBucketBytes);
  ~Bucketer();
  Bucketer(const Bucketer&) = delete;
  Bucketer& operator=(const Bucketer&) = delete;

  // Launches the buckets backward left (unused parameters), waits for every bucket and writes the
  // averaged gradients back into the parameters' .grad. Resets for the next step.
  void finish();

  // The parameter indices (into the constructor's list) of each bucket, in launch order.
  const std::vector<std::vector<size_t>>& buckets() const { return bucket_params_; }
  // Of the last finished step: how many buckets were launched while backward still ran.
  int64_t launched_during_backward() const { return last_in_backward_; }

 private:
  void on_ready(size_t param);
  void launch_ready();
  void launch(size_t b);
  ProcessGroup& pg_;
  std::vector<Tensor> params_;
  std::vector<std::vector<size_t>> bucket_params_;
  std::vector<size_t> bucket_of_;
  std::vector<int64_t> ready_count_;
  std::vector<char> param_ready_;
  std::vector<Tensor> flat_;
  std::vector<std::shared_ptr<Work>> work_;
  size_t next_launch_ = 0;
  int64_t last_in_backward_ = 0;
  std::vector<int64_t> hooks_;
};

}  // namespace sx::dist
