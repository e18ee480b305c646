// The VinDr-SpineXR dataset as training sees it: samples, splits, sampling and the batch loader.
//
// ---- What training uses (summary) ----------------------------------------------------------------
//   sx::io::DatasetOptions o;  o.split = "train";
//   sx::io::Dataset ds = sx::io::Dataset::open("/data/vindr-spinexr", o);   // or a `prepare` cache
//   auto sp = sx::io::split_by_study(ds, 0.2, /*seed=*/1);                   // no study in both
//   sx::io::LoaderOptions lo;  lo.batch_size = 8;  lo.transform.size = 512;  lo.transform.channels = 3;
//   lo.transform.hflip_prob = 0.5;  lo.sampling = sx::io::SamplingMode::RepeatFactor;
//   sx::io::DataLoader train(ds, sp.train, lo);
//   for (int epoch = 0; ...; ++epoch) {
//     train.start_epoch(epoch);
//     sx::io::Batch b;
//     while (train.next(b)) {
//       // b.images       float32 [B, C, H, W], normalised ((v - mean) / std), pinned on CUDA builds
//       // b.image_labels float32 [B]: 1 = abnormal (any lesion), 0 = normal
//       // b.targets[i].boxes  float32 [n, 4] xyxy in the pixels of b.images (resized + padded)
//       // b.targets[i].labels int64 [n], class ids in ds.classes() order (the paper's 7 classes)
//       // b.targets[i].scale_x/scale_y (resized px per original px), orig_width/orig_height,
//       //   resized_width/resized_height, flipped, image_id, study_id, index (into ds)
//     }
//   }
//
// ---- Layouts -----------------------------------------------------------------------------------
//   release: ROOT/annotations/{train,test}.csv + ROOT/{train,test}_images/<image_id>.dicom
//   flat:    ROOT/annotations_{train,test}.csv (or annotations_train.csv) + ROOT/<image_id>.dicom
//   cache:   ROOT/spinexr_cache.csv (the index written by `spinexr prepare`) + ROOT/annotations/*.csv
//            + ROOT/images/<split>/<image_id>.png (16-bit, windowed, bone bright, resized)
// Each sample is one image of the CSV (normal images included). Abnormal = any lesion box.
//
// ---- Errors ------------------------------------------------------------------------------------
// Bad CSV rows follow annotations.h (stop on the first, or skip_bad_rows: skip, count, list in
// bad_rows()). When image sizes are known at open (cache index, or check_boxes reading the DICOM
// headers), boxes outside the image are bad rows too.
// Missing images (listed in the CSV, no file; for a cache: not in its index) are not bad rows: a
// partial download lacks thousands of them. By default open() throws one line counting them and
// naming the first few; allow_missing leaves them out and lists them in missing() (the CLI then
// writes the full list with check_missing_images and stops unless --allow-missing).
//
// ---- Determinism -------------------------------------------------------------------------------
// The order of an epoch is a function of (seed, epoch); the augmentation of the sample at position p
// of epoch e is drawn from its own counter-based stream (seed, e, p). Workers only decide *when* a
// batch is made, never *what* is in it, so batches are identical for any number of workers.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "io/annotations.h"
#include "io/dicom.h"
#include "io/transforms.h"
#include "tensor/tensor.h"

namespace sx::io {

enum class Layout { Release, Flat, Cache };
const char* layout_name(Layout l);

// Where a split's files are under root (the layout detection of Dataset::open): the layout, the
// annotation CSV (which may not exist) and the image folder ("" for a cache).
struct DatasetFiles {
  Layout layout = Layout::Release;
  std::string csv, image_dir;
};
DatasetFiles locate_dataset_files(const std::string& root, const std::string& split);

struct DatasetOptions {
  std::string split = "train";             // "train" or "test"
  ClassMap classes = ClassMap::vindr_default();
  bool skip_bad_rows = false;
  bool allow_missing = false;              // listed images without a file: left out, in missing() (else throw)
  bool check_boxes = true;                 // read DICOM headers at open to check boxes vs image size
  std::string annotations;                 // override the CSV path (optional)
  WindowOptions window;                    // DICOM windowing when loading (ignored for a cache)
  DicomLimits limits;
};

struct Sample {
  std::string image_id, study_id, series_id, rad_id;
  std::string path;                        // the DICOM (or cached PNG) file
  int label = 0;                           // 1 abnormal, 0 normal
  std::vector<Box> boxes;                  // original pixel space
  int width = 0, height = 0;               // original size (0 until known)
  float cache_scale = 1.0f;                // cache: stored px per original px
};

// A listed image whose file is absent (see Errors above).
struct MissingImage {
  std::string split, image_id;
  std::string path;                        // where the file was looked for
  std::string csv;                         // the CSV that lists it, and its first line there
  int line = 0;
};

// An image as loaded (before transforms): values in [0, 1], bone bright.
struct LoadedImage {
  GreyF image;
  std::vector<Box> boxes;                  // in `image` pixels (scaled for a cache)
  int orig_width = 0, orig_height = 0;
  float pre_scale = 1.0f;                  // image px per original px (1 for DICOM)
};

class Dataset {
 public:
  Dataset() = default;
  // Detects the layout under root. Throws sx::IOError on missing files or bad rows (see above).
  static Dataset open(const std::string& root, const DatasetOptions& opt = {});
  // A dataset over explicit samples (tests, tools).
  static Dataset from_samples(std::vector<Sample> samples, ClassMap classes, Layout layout = Layout::Release,
                              WindowOptions window = {});

  int64_t size() const { return static_cast<int64_t>(samples_.size()); }
  const Sample& sample(int64_t i) const;
  const std::vector<Sample>& samples() const { return samples_; }
  Layout layout() const { return layout_; }
  const ClassMap& classes() const { return classes_; }
  const std::vector<BadRow>& bad_rows() const { return bad_rows_; }
  const std::string& root() const { return root_; }
  const std::string& split() const { return split_; }
  // Images the CSV lists (samples, missing ones and those dropped as bad rows).
  int64_t listed() const { return listed_; }
  // With allow_missing: the listed images whose file is absent, in CSV order.
  const std::vector<MissingImage>& missing() const { return missing_; }

  // Decodes sample i (thread-safe; no shared mutable state). With max_side > 0 the caller promises
  // to resize to at most that longest side, so a JPEG 2000 DICOM may be decoded at a reduced
  // resolution (read_dicom_for_size); boxes and pre_scale then refer to the decoded size.
  LoadedImage load(int64_t i, int max_side = 0) const;

 private:
  std::vector<Sample> samples_;
  ClassMap classes_;
  Layout layout_ = Layout::Release;
  WindowOptions window_;
  DicomLimits limits_;
  std::vector<BadRow> bad_rows_;
  std::string root_, split_;
  int64_t listed_ = 0;
  std::vector<MissingImage> missing_;
};

// ---- missing images (a partial download) -----------------------------------------------------------

// One line: "N of M listed images are missing (train: a of b, test: c of d; first: PATH, PATH, PATH)",
// the splits in the order given (with their listed counts), at most `first` paths named.
std::string missing_images_summary(const std::vector<MissingImage>& missing,
                                   const std::vector<std::pair<std::string, int64_t>>& listed_per_split,
                                   size_t first = 3);
// The full list, one path per line, written atomically.
void write_missing_list(const std::string& path, const std::vector<MissingImage>& missing);
// For a dataset opened with allow_missing. Nothing missing: returns "". Otherwise writes the full
// list to `list_path` (unless empty) and, unless `allow`, throws IOError "ROOT: <summary>; full list
// in LIST (--allow-missing leaves them out)"; with `allow` returns "ROOT: <summary>" (for a note).
std::string check_missing_images(const Dataset& ds, const std::string& list_path, bool allow);

// ---- splits and sampling -------------------------------------------------------------------------

struct SplitIndices {
  std::vector<int64_t> train, val;
};
// Studies are shuffled with the seed and the first ~val_fraction of the *images* (whole studies)
// go to validation. No study is in both.
SplitIndices split_by_study(const Dataset& ds, double val_fraction, uint64_t seed);

enum class SamplingMode {
  Sequential,      // pool order, no shuffle (evaluation)
  Shuffle,         // a permutation per epoch
  ClassBalanced,   // |pool| draws with replacement, normal and abnormal equally likely (classifier)
  RepeatFactor,    // LVIS / Detectron2 repeat-factor sampling, then shuffled
};
SamplingMode parse_sampling_mode(const std::string& s);  // sequential|shuffle|balanced|rfs

// Repeat factor of each pool image: r(c) = max(1, sqrt(t / f(c))) with f(c) the fraction of pool
// images containing class c; r(image) = max over its classes (1 for a normal image).
std::vector<double> repeat_factors(const Dataset& ds, const std::vector<int64_t>& pool, double threshold);

// The dataset indices of one epoch (deterministic in seed and epoch).
std::vector<int64_t> epoch_order(const Dataset& ds, const std::vector<int64_t>& pool, SamplingMode mode,
                                 uint64_t seed, int64_t epoch, double rfs_threshold = 0.1);

// ---- the loader ---------------------------------------------------------------------------------

struct LoaderOptions {
  int batch_size = 8;
  int workers = 2;            // decoding threads (0: decode on the calling thread in next())
  int prefetch = 4;           // batches ready or in flight at most
  bool drop_last = false;
  SamplingMode sampling = SamplingMode::Shuffle;
  double rfs_threshold = 0.1;
  uint64_t seed = 0;
  bool augment = true;        // apply the random parts of `transform`
  bool pin_memory = true;     // pinned batch buffers (CUDA builds with a GPU only)
  TransformOptions transform;
  // Data-parallel shard (distributed sampler): this loader yields the global batches
  // shard_batches(...) of each epoch's order, batch_size being the per-rank batch.
  int shard_rank = 0, shard_count = 1;
  // false (sharded evaluation): no wrap-around padding, every global batch taken exactly once
  // across the ranks (the last ranks may take one batch fewer).
  bool shard_wrap = true;
};

// The distributed sampler. Every rank computes the same epoch order (a function of seed and epoch,
// repeat-factor sampling included) and cuts it into the same global batches of batch_size; rank r of
// W takes global batches r, r + W, r + 2W, ... So the ranks' batches of step s are the consecutive
// global batches sW .. sW + W - 1: together exactly the batch of W x batch_size a single process
// would take at that step, with the same per-position augmentation. Every rank takes
// ceil(G / W) batches (G global ones, all ranks must step together); when W does not divide G the
// last ranks' final batches wrap to the epoch's first batches (as torch's DistributedSampler pads),
// otherwise each image of the epoch is seen exactly once across the ranks. With drop_last the ranks
// take floor(G / W) batches instead (the incomplete last step is dropped, as one process with
// W x batch_size would drop its incomplete batch).
// wrap = false (sharded evaluation, where every image must count once): rank r takes the global
// batches r, r + W, ... below G, no padding, so ranks may take different numbers of batches.
std::vector<int64_t> shard_batches(int64_t global_batches, int rank, int count, bool drop_last = false,
                                   bool wrap = true);

struct Target {
  Tensor boxes;               // float32 [n, 4], xyxy in batch image pixels
  Tensor labels;              // int64 [n]
  float scale_x = 1, scale_y = 1;
  int orig_width = 0, orig_height = 0;
  int resized_width = 0, resized_height = 0;
  int image_label = 0;
  bool flipped = false;
  int64_t index = -1;         // dataset index
  std::string image_id, study_id;
};

struct Batch {
  Tensor images;              // float32 [B, C, H, W]
  Tensor image_labels;        // float32 [B]
  std::vector<Target> targets;
  int64_t batch_index = -1;   // within the epoch
};

// Builds batch `k` of an epoch order on the calling thread (what a worker does).
Batch make_batch(const Dataset& ds, const std::vector<int64_t>& order, int64_t k, int64_t epoch,
                 const LoaderOptions& opt);

class DataLoader {
 public:
  // The dataset must outlive the loader. `pool` lists the dataset indices to draw from.
  DataLoader(const Dataset& ds, std::vector<int64_t> pool, LoaderOptions opt);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  void start_epoch(int64_t epoch);   // stops any running epoch, then starts this one
  bool next(Batch& out);             // false when the epoch is over; rethrows a worker's error
  int64_t num_batches() const;       // of the current (or next) epoch
  int64_t epoch_size() const { return static_cast<int64_t>(order_.size()); }
  const LoaderOptions& options() const { return opt_; }

 private:
  void stop();
  void worker();
  const Dataset* ds_;
  std::vector<int64_t> pool_, order_;
  std::vector<int64_t> batch_ids_;  // the epoch's global batch of each of this loader's batches
  LoaderOptions opt_;
  int64_t epoch_ = 0, n_batches_ = 0;
  int64_t next_task_ = 0, next_out_ = 0;
  bool stopping_ = false;
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, std::exception_ptr> errors_;
  std::mutex mu_;
  std::condition_variable cv_task_, cv_ready_;
  std::vector<std::thread> threads_;
};

}  // namespace sx::io
