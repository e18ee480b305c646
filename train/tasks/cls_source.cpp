// In-memory classification source; see cls_source.h.
#include "train/tasks/cls_source.h"

#include <cstring>
#include <numeric>

#include "io/dataset.h"
#include "tensor/errors.h"
#include "tensor/random.h"
#include "tensor/random_math.h"

namespace sx::train {

InMemoryClsSource::InMemoryClsSource(Tensor images, Tensor labels, int64_t batch_size, bool shuffle, bool hflip,
                                     uint64_t seed, bool drop_last, std::vector<std::string> ids)
    : images_(images.cpu().to(DType::Float32).contiguous()),
      labels_(labels.cpu().to(DType::Float32).contiguous()),
      ids_(std::move(ids)),
      batch_(batch_size),
      shuffle_(shuffle),
      hflip_(hflip),
      drop_last_(drop_last),
      seed_(seed) {
  SX_CHECK(images_.dim() == 4, "InMemoryClsSource: images must be [M, C, H, W], got ", shape_str(images_.shape()));
  SX_CHECK(labels_.dim() == 1 && labels_.size(0) == images_.size(0), "InMemoryClsSource: labels must be [",
           images_.size(0), "], got ", shape_str(labels_.shape()));
  SX_CHECK(batch_size > 0, "InMemoryClsSource: batch size must be > 0, got ", batch_size);
  SX_CHECK(ids_.empty() || static_cast<int64_t>(ids_.size()) == images_.size(0), "InMemoryClsSource: ", ids_.size(),
           " ids for ", images_.size(0), " images");
  start_epoch(0, 0);
}

int64_t InMemoryClsSource::num_batches() const {
  int64_t m = images_.size(0);
  const int64_t all = drop_last_ ? m / batch_ : (m + batch_ - 1) / batch_;
  return static_cast<int64_t>(io::shard_batches(all, shard_rank_, shard_count_, drop_last_, false).size());
}

void InMemoryClsSource::shard(int rank, int count) {
  SX_CHECK(count >= 1 && rank >= 0 && rank < count, "InMemoryClsSource: shard ", rank, " of ", count, " is out of range");
  shard_rank_ = rank;
  shard_count_ = count;
}

std::vector<int64_t> InMemoryClsSource::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order(images_.size(0));
  std::iota(order.begin(), order.end(), 0);
  if (shuffle_) {
    Generator g(rng::mix64(seed_ * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(epoch) + 1));
    for (int64_t i = static_cast<int64_t>(order.size()) - 1; i > 0; --i) std::swap(order[i], order[g.randint(0, i + 1)]);
  }
  return order;
}

void InMemoryClsSource::start_epoch(int64_t epoch, int64_t first_batch) {
  SX_CHECK(epoch >= 0 && first_batch >= 0, "InMemoryClsSource: bad position epoch ", epoch, " batch ", first_batch);
  epoch_ = epoch;
  order_ = epoch_order(epoch);
  const int64_t m = static_cast<int64_t>(order_.size());
  batch_ids_ = io::shard_batches(drop_last_ ? m / batch_ : (m + batch_ - 1) / batch_, shard_rank_, shard_count_,
                                 drop_last_, false);
  next_ = static_cast<size_t>(std::min<int64_t>(first_batch, static_cast<int64_t>(batch_ids_.size())));
}

bool InMemoryClsSource::next(ClsBatch& b) {
  if (next_ >= batch_ids_.size()) return false;
  const int64_t m = static_cast<int64_t>(order_.size());
  const int64_t pos = batch_ids_[next_++] * batch_;
  int64_t n = std::min(batch_, m - pos);
  const int64_t C = images_.size(1), H = images_.size(2), W = images_.size(3), per = C * H * W;
  b.images = Tensor::empty({n, C, H, W});
  b.labels = Tensor::empty({n});
  b.ids.clear();
  const float* src = images_.data<float>();
  const float* lab = labels_.data<float>();
  float* dst = b.images.data<float>();
  float* dl = b.labels.data<float>();
  const uint64_t flip_key = rng::mix64(seed_ ^ (0xf1f1f1f1ULL + static_cast<uint64_t>(epoch_)));
  for (int64_t k = 0; k < n; ++k) {
    int64_t i = order_[pos + k];
    const float* s = src + i * per;
    float* d = dst + k * per;
    bool flip = hflip_ && rng::uniform(flip_key, static_cast<uint64_t>(i)) < 0.5;
    if (!flip) {
      std::memcpy(d, s, sizeof(float) * per);
    } else {
      for (int64_t r = 0; r < C * H; ++r)
        for (int64_t x = 0; x < W; ++x) d[r * W + x] = s[r * W + (W - 1 - x)];
    }
    dl[k] = lab[i];
    b.ids.push_back(ids_.empty() ? std::to_string(i) : ids_[i]);
  }
  return true;
}

}  // namespace sx::train
