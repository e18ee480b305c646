// In-memory classification data for the trainer (tests, the toy command, small experiments):
// images [M, C, H, W] and labels [M] held on the CPU, served in batches.
//
// Order and augmentation are pure functions of (seed, epoch, position), so start_epoch(e, b) can
// position the source anywhere (exact resume): the epoch's permutation is a Fisher-Yates shuffle
// driven by a Generator seeded with mix(seed, epoch); a sample's horizontal flip is decided by the
// counter-based draw rng::uniform(seed ^ epoch-key, sample index) (tensor/random_math.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/tasks/cls_train.h"

namespace sx::train {

class InMemoryClsSource : public ClsBatchSource {
 public:
  // shuffle/flip off for evaluation. The last, partial batch is kept unless drop_last.
  InMemoryClsSource(Tensor images, Tensor labels, int64_t batch_size, bool shuffle, bool hflip, uint64_t seed,
                    bool drop_last = false, std::vector<std::string> ids = {});
  int64_t num_batches() const override;
  int64_t num_samples() const override { return images_.size(0); }
  void start_epoch(int64_t epoch, int64_t first_batch) override;
  bool next(ClsBatch& batch) override;
  void shard(int rank, int count) override;
  // The sample order of an epoch (for tests).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  Tensor images_, labels_;
  std::vector<std::string> ids_;
  int64_t batch_;
  bool shuffle_, hflip_, drop_last_;
  uint64_t seed_;
  int64_t epoch_ = 0;
  std::vector<int64_t> order_;
  std::vector<int64_t> batch_ids_;  // the epoch's batches this source yields (all, or its shard's)
  size_t next_ = 0;                 // index into batch_ids_
  int shard_rank_ = 0, shard_count_ = 1;
};

}  // namespace sx::train
