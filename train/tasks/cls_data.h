// Stage-1 data for the trainer: the io/ loader behind the ClsBatchSource interface, and the
// dataset/split/loader set-up shared by `train-cls` and `eval-cls`.
//
// Resume positions the loader inside an epoch by starting the epoch and discarding the batches
// before `first_batch`: the loader's order and augmentation are functions of (seed, epoch,
// position) (io/dataset.h), so the batches that follow are exactly those of the uninterrupted run.
// (The discarded batches are still decoded, by the worker threads; with the `prepare` cache that is
// cheap.)
#pragma once
#include <memory>
#include <string>

#include "io/dataset.h"
#include "models/resnet.h"
#include "train/tasks/cls_train.h"

namespace sx::train {

class LoaderClsSource : public ClsBatchSource {
 public:
  LoaderClsSource(const io::Dataset& ds, std::vector<int64_t> pool, io::LoaderOptions opt);
  int64_t num_batches() const override { return loader_->num_batches(); }
  int64_t num_samples() const override { return loader_->epoch_size(); }
  void start_epoch(int64_t epoch, int64_t first_batch) override;
  bool next(ClsBatch& batch) override;
  // A new loader over the same data with the shard set (LoaderOptions::shard_wrap off).
  void shard(int rank, int count) override;

 private:
  const io::Dataset& ds_;
  std::vector<int64_t> pool_;
  io::LoaderOptions opt_;
  std::unique_ptr<io::DataLoader> loader_;
  io::Batch raw_;
};

struct ClsDataOptions {
  std::string root;            // --data, or --cache when given
  std::string split = "train";
  double val_fraction = 0.1;   // train-cls: the validation share (whole studies)
  uint64_t seed = 0;
  int size = 224;
  int channels = 1;
  int batch = 32;
  int workers = 2;
  std::string sampling = "shuffle";  // shuffle | balanced
  double hflip = 0.5;
  bool skip_bad_rows = false;
  // Listed images whose file is absent (io::check_missing_images): the full list goes to
  // `missing_list` (when not empty); the open throws unless allow_missing.
  bool allow_missing = false;
  std::string missing_list;
};

// The opened dataset and the sample indices of train/val (train-cls) or of the whole split
// (eval-cls: `train` holds them all, `val` is empty).
struct ClsData {
  std::unique_ptr<io::Dataset> dataset;
  io::SplitIndices split;
  std::string missing_note;    // one line when images were left out (allow_missing), else ""
};
ClsData open_cls_data(const ClsDataOptions& opt, bool split_validation);

// Loader options for training (augmentation on) or evaluation (sequential, no augmentation).
io::LoaderOptions cls_loader_options(const ClsDataOptions& opt, bool training);

// The stage-1 model with one output (the abnormal logit) and `channels` input channels: a ResNet
// ("resnet18" | "resnet34" | "resnet50" | "resnet101" | "18" ...) or a DenseNet ("densenet121" |
// "densenet169" | "densenet201", the VinDr-SpineXR authors' classifiers). ValueError naming the
// choices for anything else.
std::shared_ptr<nn::Module> make_cls_model(const std::string& arch, int channels, uint64_t seed);
// The --arch choices of make_cls_model, for help texts and errors; check_cls_arch throws ValueError
// naming them for anything else (without building a model).
extern const char* const kClsArchChoices;
void check_cls_arch(const std::string& arch);

// Loads ImageNet weights (a torchvision state dict saved as safetensors) into a stage-1 model:
// the first conv folded to one channel when needed, the 1000-class head (fc.* / classifier.*)
// dropped. Throws ValueError when anything but the head is missing, unexpected or mis-shaped;
// returns the report otherwise.
nn::LoadReport load_pretrained_backbone(const std::string& path, nn::Module& model);

}  // namespace sx::train
