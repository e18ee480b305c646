#include "io/dataset.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <set>

#include "io/atomic_file.h"
#include "io/image_io.h"
#include "tensor/errors.h"
#include "tensor/random_math.h"

namespace sx::io {

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Release: return "release";
    case Layout::Flat: return "flat";
    case Layout::Cache: return "cache";
  }
  return "?";
}

namespace {

bool is_file(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
bool is_dir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

struct CacheEntry {
  std::string file;
  int orig_w = 0, orig_h = 0, w = 0, h = 0;
  bool ok = false;
  std::string status;
};

std::map<std::string, CacheEntry> read_cache_index(const std::string& root, const std::string& split) {
  const std::string path = root + "/spinexr_cache.csv";
  std::string text = read_file(path, uint64_t(1) << 30);
  std::map<std::string, CacheEntry> out;
  size_t pos = 0;
  int line = 0;
  std::map<std::string, int> col;
  while (pos < text.size()) {
    size_t e = text.find('\n', pos);
    if (e == std::string::npos) e = text.size();
    std::string l = text.substr(pos, e - pos);
    pos = e + 1;
    ++line;
    if (!l.empty() && l.back() == '\r') l.pop_back();
    if (l.empty()) continue;
    auto f = split_csv_line(l);
    if (col.empty()) {
      for (size_t i = 0; i < f.size(); ++i) col[f[i]] = static_cast<int>(i);
      for (const char* k : {"image_id", "split", "file", "orig_width", "orig_height", "width", "height", "status"})
        if (!col.count(k)) SX_THROW(IOError, path, ":", line, ": cache index has no '", k, "' column");
      continue;
    }
    if (f.size() != col.size()) SX_THROW(IOError, path, ":", line, ": expected ", col.size(), " columns, got ", f.size());
    if (f[col["split"]] != split) continue;
    CacheEntry c;
    c.file = f[col["file"]];
    try {
      c.orig_w = std::stoi(f[col["orig_width"]]);
      c.orig_h = std::stoi(f[col["orig_height"]]);
      c.w = std::stoi(f[col["width"]]);
      c.h = std::stoi(f[col["height"]]);
    } catch (const std::exception&) {
      c.orig_w = c.orig_h = c.w = c.h = 0;
    }
    c.status = f[col["status"]];
    c.ok = c.status == "ok" && c.w > 0 && c.h > 0 && c.orig_w > 0 && c.orig_h > 0;
    out[f[col["image_id"]]] = c;  // a later line (a resumed run) wins
  }
  return out;
}

}  // namespace

Dataset Dataset::from_samples(std::vector<Sample> samples, ClassMap classes, Layout layout, WindowOptions window) {
  Dataset d;
  d.samples_ = std::move(samples);
  d.classes_ = std::move(classes);
  d.layout_ = layout;
  d.window_ = window;
  return d;
}

const Sample& Dataset::sample(int64_t i) const {
  SX_CHECK(i >= 0 && i < size(), "Dataset: index ", i, " out of range [0, ", size(), ")");
  return samples_[static_cast<size_t>(i)];
}

DatasetFiles locate_dataset_files(const std::string& root, const std::string& split) {
  if (is_file(root + "/spinexr_cache.csv")) return {Layout::Cache, root + "/annotations/" + split + ".csv", ""};
  if (is_file(root + "/annotations/" + split + ".csv"))
    return {Layout::Release, root + "/annotations/" + split + ".csv", root + "/" + split + "_images"};
  return {Layout::Flat, root + "/annotations_" + split + ".csv", root};
}

Dataset Dataset::open(const std::string& root_in, const DatasetOptions& opt) {
  SX_CHECK(opt.split == "train" || opt.split == "test", "Dataset: split must be train or test, got '", opt.split, "'");
  std::string root = root_in;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  if (!is_dir(root)) SX_THROW(IOError, root, ": not a folder");
  Dataset d;
  d.root_ = root;
  d.split_ = opt.split;
  d.classes_ = opt.classes;
  d.window_ = opt.window;
  d.limits_ = opt.limits;
  const DatasetFiles files = locate_dataset_files(root, opt.split);
  d.layout_ = files.layout;
  std::string csv = files.csv;
  const std::string image_dir = files.image_dir;
  if (!opt.annotations.empty()) csv = opt.annotations;
  if (!is_file(csv))
    SX_THROW(IOError, root, ": no annotations for split '", opt.split, "' (looked for ", csv,
             "; expected the release layout annotations/", opt.split, ".csv, the flat annotations_", opt.split,
             ".csv, or a prepare cache)");
  CsvOptions co;
  co.skip_bad_rows = opt.skip_bad_rows;
  AnnotationTable table = read_annotations(csv, d.classes_, co);
  d.bad_rows_ = table.bad_rows;
  auto bad = [&](int line, const std::string& why) {
    BadRow b{csv, line, why};
    if (!opt.skip_bad_rows) throw IOError(b.str());
    d.bad_rows_.push_back(b);
  };

  std::map<std::string, CacheEntry> cache;
  if (d.layout_ == Layout::Cache) cache = read_cache_index(root, opt.split);
  d.listed_ = static_cast<int64_t>(table.images.size());
  auto missing = [&](const ImageAnnotation& a, const std::string& path) {
    d.missing_.push_back({opt.split, a.image_id, path, csv, a.first_line});
  };

  for (ImageAnnotation& a : table.images) {
    Sample s;
    s.image_id = a.image_id;
    s.study_id = a.study_id;
    s.series_id = a.series_id;
    s.rad_id = a.rad_id;
    if (d.layout_ == Layout::Cache) {
      auto it = cache.find(a.image_id);
      if (it == cache.end()) {  // prepared with --allow-missing while its DICOM was absent
        missing(a, root + "/images/" + opt.split + "/" + a.image_id + ".png");
        continue;
      }
      if (!it->second.ok) {
        bad(a.first_line, "image " + a.image_id + " failed in prepare: " + it->second.status);
        continue;
      }
      s.path = root + "/" + it->second.file;
      s.width = it->second.orig_w;
      s.height = it->second.orig_h;
      s.cache_scale = static_cast<float>(it->second.w) / it->second.orig_w;
      try {
        check_boxes_in_image(a, s.width, s.height, csv, opt.skip_bad_rows, &d.bad_rows_);
      } catch (const IOError&) {
        throw;
      }
    } else {
      s.path = image_dir + "/" + a.image_id + ".dicom";
      if (!is_file(s.path) && is_file(image_dir + "/" + a.image_id + ".dcm")) s.path = image_dir + "/" + a.image_id + ".dcm";
      if (!is_file(s.path)) {
        missing(a, s.path);
        continue;
      }
      if (opt.check_boxes) {
        DicomInfo info;
        try {
          info = read_dicom_info(s.path, opt.limits);
        } catch (const IOError& e) {
          bad(a.first_line, e.what());
          continue;
        }
        s.width = info.columns;
        s.height = info.rows;
        check_boxes_in_image(a, s.width, s.height, csv, opt.skip_bad_rows, &d.bad_rows_);
      }
    }
    s.boxes = a.boxes;
    s.label = s.boxes.empty() ? 0 : 1;
    d.samples_.push_back(std::move(s));
  }
  if (!d.missing_.empty() && !opt.allow_missing) {
    const MissingImage& m = d.missing_.front();
    SX_THROW(IOError, m.csv, ":", m.line, ": ", missing_images_summary(d.missing_, {{opt.split, d.listed_}}),
             " (allow_missing / --allow-missing leaves them out)");
  }
  return d;
}

// ---- missing images --------------------------------------------------------------------------------

std::string missing_images_summary(const std::vector<MissingImage>& missing,
                                   const std::vector<std::pair<std::string, int64_t>>& listed_per_split, size_t first) {
  int64_t listed = 0;
  for (const auto& sl : listed_per_split) listed += sl.second;
  std::string s = std::to_string(missing.size()) + " of " + std::to_string(listed) + " listed images are missing (";
  for (size_t k = 0; k < listed_per_split.size(); ++k) {
    const auto& [split, n] = listed_per_split[k];
    const auto m = std::count_if(missing.begin(), missing.end(), [&](const MissingImage& x) { return x.split == split; });
    s += (k ? ", " : "") + split + ": " + std::to_string(m) + " of " + std::to_string(n);
  }
  s += listed_per_split.empty() ? "first: " : "; first: ";
  for (size_t k = 0; k < missing.size() && k < first; ++k) s += (k ? ", " : "") + missing[k].path;
  if (missing.size() > first) s += ", ...";
  return s + ")";
}

void write_missing_list(const std::string& path, const std::vector<MissingImage>& missing) {
  std::string text;
  for (const MissingImage& m : missing) text += m.path + "\n";
  write_file_atomic(path, text);
}

std::string check_missing_images(const Dataset& ds, const std::string& list_path, bool allow) {
  if (ds.missing().empty()) return "";
  if (!list_path.empty()) write_missing_list(list_path, ds.missing());
  const std::string what = ds.root() + ": " + missing_images_summary(ds.missing(), {{ds.split(), ds.listed()}});
  if (!allow)
    SX_THROW(IOError, what, list_path.empty() ? "" : "; full list in " + list_path, " (--allow-missing leaves them out)");
  return what;
}

LoadedImage Dataset::load(int64_t i, int max_side) const {
  const Sample& s = sample(i);
  LoadedImage out;
  if (layout_ == Layout::Cache) {
    GreyImage g = read_image(s.path);
    const float k = g.bit_depth == 16 ? 1.0f / 65535.0f : 1.0f / 255.0f;
    out.image = GreyF(g.width, g.height);
    for (size_t j = 0; j < g.pixels.size(); ++j) out.image.px[j] = g.pixels[j] * k;
    out.orig_width = s.width;
    out.orig_height = s.height;
    const float sx = static_cast<float>(g.width) / s.width, sy = static_cast<float>(g.height) / s.height;
    out.pre_scale = sx;
    out.boxes = s.boxes;
    for (Box& b : out.boxes) b.x1 *= sx, b.x2 *= sx, b.y1 *= sy, b.y2 *= sy;
    return out;
  }
  DicomImage dcm = max_side > 0 ? read_dicom_for_size(s.path, max_side, limits_) : read_dicom(s.path, limits_);
  std::vector<float> v = window_image(dcm, window_);
  out.image.width = dcm.info.columns;
  out.image.height = dcm.info.rows;
  out.image.px = std::move(v);
  out.orig_width = dcm.full_columns;
  out.orig_height = dcm.full_rows;
  ImageAnnotation a;
  a.image_id = s.image_id;
  a.boxes = s.boxes;
  // Sizes were not checked at open (check_boxes off): drop boxes outside silently.
  if (s.width == 0) check_boxes_in_image(a, out.orig_width, out.orig_height, "", true, nullptr);
  out.boxes = a.boxes;
  const float sx = static_cast<float>(out.image.width) / out.orig_width, sy = static_cast<float>(out.image.height) / out.orig_height;
  out.pre_scale = sx;
  if (sx != 1.0f || sy != 1.0f)
    for (Box& b : out.boxes) b.x1 *= sx, b.x2 *= sx, b.y1 *= sy, b.y2 *= sy;
  return out;
}

// ---- splits and sampling -------------------------------------------------------------------------

namespace {
uint64_t mix(uint64_t a, uint64_t b) { return sx::rng::mix64(sx::rng::mix64(a + 0x9e3779b97f4a7c15ULL) ^ b); }

// Fisher-Yates with a counter-based stream.
template <class T>
void shuffle(std::vector<T>& v, uint64_t seed) {
  for (size_t i = v.size(); i > 1; --i) {
    size_t j = static_cast<size_t>(sx::rng::uniform(seed, i) * i);
    std::swap(v[i - 1], v[j]);
  }
}
}  // namespace

SplitIndices split_by_study(const Dataset& ds, double val_fraction, uint64_t seed) {
  SX_CHECK(val_fraction >= 0 && val_fraction <= 1, "split_by_study: val_fraction must be in [0, 1], got ", val_fraction);
  std::map<std::string, std::vector<int64_t>> by_study;
  for (int64_t i = 0; i < ds.size(); ++i) by_study[ds.sample(i).study_id].push_back(i);
  std::vector<std::string> studies;
  for (auto& kv : by_study) studies.push_back(kv.first);  // sorted: independent of CSV order
  shuffle(studies, mix(seed, 0x5917));
  SplitIndices out;
  const double want = val_fraction * ds.size();
  for (const auto& st : studies) {
    auto& dst = static_cast<double>(out.val.size()) < want ? out.val : out.train;
    for (int64_t i : by_study[st]) dst.push_back(i);
  }
  std::sort(out.train.begin(), out.train.end());
  std::sort(out.val.begin(), out.val.end());
  return out;
}

SamplingMode parse_sampling_mode(const std::string& s) {
  if (s == "sequential") return SamplingMode::Sequential;
  if (s == "shuffle") return SamplingMode::Shuffle;
  if (s == "balanced" || s == "class-balanced") return SamplingMode::ClassBalanced;
  if (s == "rfs" || s == "repeat-factor") return SamplingMode::RepeatFactor;
  SX_THROW(ValueError, "unknown sampling '", s, "' (expected sequential, shuffle, balanced or rfs)");
}

std::vector<double> repeat_factors(const Dataset& ds, const std::vector<int64_t>& pool, double t) {
  SX_CHECK(t > 0, "repeat_factors: threshold must be > 0, got ", t);
  const int C = ds.classes().num_classes();
  std::vector<int64_t> count(static_cast<size_t>(C), 0);
  for (int64_t i : pool) {
    std::set<int> cls;
    for (const Box& b : ds.sample(i).boxes) cls.insert(b.label);
    for (int c : cls)
      if (c >= 0 && c < C) ++count[c];
  }
  std::vector<double> rc(static_cast<size_t>(C), 1.0);
  for (int c = 0; c < C; ++c)
    if (count[c] > 0) rc[c] = std::max(1.0, std::sqrt(t / (static_cast<double>(count[c]) / pool.size())));
  std::vector<double> r;
  r.reserve(pool.size());
  for (int64_t i : pool) {
    double v = 1.0;
    for (const Box& b : ds.sample(i).boxes)
      if (b.label >= 0 && b.label < C) v = std::max(v, rc[b.label]);
    r.push_back(v);
  }
  return r;
}

std::vector<int64_t> epoch_order(const Dataset& ds, const std::vector<int64_t>& pool, SamplingMode mode, uint64_t seed,
                                 int64_t epoch, double rfs_threshold) {
  const uint64_t s = mix(mix(seed, 0xE90C), static_cast<uint64_t>(epoch));
  std::vector<int64_t> order;
  switch (mode) {
    case SamplingMode::Sequential:
      return pool;
    case SamplingMode::Shuffle:
      order = pool;
      shuffle(order, s);
      return order;
    case SamplingMode::ClassBalanced: {
      std::vector<int64_t> cls[2];
      for (int64_t i : pool) cls[ds.sample(i).label ? 1 : 0].push_back(i);
      order.reserve(pool.size());
      for (size_t k = 0; k < pool.size(); ++k) {
        int c = sx::rng::uniform(s, 2 * k) < 0.5 ? 0 : 1;
        if (cls[c].empty()) c = 1 - c;
        const auto& v = cls[c];
        order.push_back(v[static_cast<size_t>(sx::rng::uniform(s, 2 * k + 1) * v.size())]);
      }
      return order;
    }
    case SamplingMode::RepeatFactor: {
      std::vector<double> r = repeat_factors(ds, pool, rfs_threshold);
      for (size_t k = 0; k < pool.size(); ++k) {
        // Stochastic rounding: floor(r) copies, plus one more with probability frac(r).
        double fl = std::floor(r[k]);
        int reps = static_cast<int>(fl) + (sx::rng::uniform(mix(s, 0x2F5), k) < r[k] - fl ? 1 : 0);
        for (int j = 0; j < reps; ++j) order.push_back(pool[k]);
      }
      shuffle(order, mix(s, 0x5F));
      return order;
    }
  }
  return order;
}

// ---- batches ----------------------------------------------------------------------------------

Batch make_batch(const Dataset& ds, const std::vector<int64_t>& order, int64_t k, int64_t epoch, const LoaderOptions& opt) {
  SX_CHECK(opt.batch_size >= 1, "DataLoader: batch_size must be >= 1, got ", opt.batch_size);
  SX_CHECK(opt.transform.channels == 1 || opt.transform.channels == 3, "DataLoader: channels must be 1 or 3, got ",
           opt.transform.channels);
  SX_CHECK(opt.transform.std > 0, "DataLoader: normalisation std must be > 0, got ", opt.transform.std);
  const int64_t n = static_cast<int64_t>(order.size());
  const int64_t begin = k * opt.batch_size, end = std::min<int64_t>(n, begin + opt.batch_size);
  SX_CHECK(begin < end, "DataLoader: batch ", k, " is beyond the epoch (", n, " samples)");
  std::vector<Transformed> items;
  Batch b;
  b.batch_index = k;
  int H = 0, W = 0;
  for (int64_t p = begin; p < end; ++p) {
    const int64_t idx = order[static_cast<size_t>(p)];
    // The longest side this batch can need: lets JPEG 2000 decode at a reduced resolution.
    int max_side = 0;
    if (opt.transform.mode == ResizeMode::Longest)
      max_side = static_cast<int>(std::ceil(opt.transform.size * std::max(1.0, opt.augment ? opt.transform.scale_max : 1.0)));
    else if (opt.transform.max_size > 0)
      max_side = static_cast<int>(std::ceil(opt.transform.max_size * std::max(1.0, opt.augment ? opt.transform.scale_max : 1.0)));
    LoadedImage li = ds.load(idx, max_side);
    AugRng rng(mix(mix(opt.seed, static_cast<uint64_t>(epoch) + 0xA5A5), static_cast<uint64_t>(p)));
    Transformed t = apply_transforms(li.image, li.boxes, opt.transform, opt.augment ? &rng : nullptr);
    const Sample& s = ds.sample(idx);
    Target tg;
    const int64_t nb = static_cast<int64_t>(t.boxes.size());
    tg.boxes = Tensor::empty({nb, 4}, DType::Float32);
    tg.labels = Tensor::empty({nb}, DType::Int64);
    float* bp = nb ? tg.boxes.data<float>() : nullptr;
    int64_t* lp = nb ? tg.labels.data<int64_t>() : nullptr;
    for (int64_t j = 0; j < nb; ++j) {
      const Box& bx = t.boxes[static_cast<size_t>(j)];
      bp[4 * j] = bx.x1, bp[4 * j + 1] = bx.y1, bp[4 * j + 2] = bx.x2, bp[4 * j + 3] = bx.y2;
      lp[j] = bx.label;
    }
    tg.scale_x = t.scale_x * li.pre_scale;
    tg.scale_y = t.scale_y * (li.orig_height ? static_cast<float>(li.image.height) / li.orig_height : 1.0f);
    tg.orig_width = li.orig_width;
    tg.orig_height = li.orig_height;
    tg.resized_width = t.resized_width;
    tg.resized_height = t.resized_height;
    tg.image_label = s.label;
    tg.flipped = t.flipped;
    tg.index = idx;
    tg.image_id = s.image_id;
    tg.study_id = s.study_id;
    b.targets.push_back(std::move(tg));
    H = std::max(H, t.image.height);
    W = std::max(W, t.image.width);
    items.push_back(std::move(t));
  }
  const int64_t B = static_cast<int64_t>(items.size()), C = opt.transform.channels;
  const bool pinned = opt.pin_memory && sx::cuda_available();  // never in a CPU-only build
  b.images = Tensor::empty({B, C, H, W}, DType::Float32, Device::cpu(), pinned);
  b.image_labels = Tensor::empty({B}, DType::Float32, Device::cpu(), pinned);
  float* dst = b.images.data<float>();
  float* lab = b.image_labels.data<float>();
  const float mean = opt.transform.mean, inv_std = 1.0f / opt.transform.std;
  const float pad = (0.0f - mean) * inv_std;
  const size_t plane = static_cast<size_t>(H) * W;
  for (int64_t i = 0; i < B; ++i) {
    const GreyF& g = items[static_cast<size_t>(i)].image;
    float* p0 = dst + static_cast<size_t>(i) * C * plane;
    for (int y = 0; y < H; ++y) {
      float* row = p0 + static_cast<size_t>(y) * W;
      if (y < g.height) {
        const float* src = g.px.data() + static_cast<size_t>(y) * g.width;
        for (int x = 0; x < g.width; ++x) row[x] = (src[x] - mean) * inv_std;
        std::fill(row + g.width, row + W, pad);
      } else {
        std::fill(row, row + W, pad);
      }
    }
    for (int64_t c = 1; c < C; ++c) std::copy(p0, p0 + plane, p0 + c * plane);
    lab[i] = static_cast<float>(b.targets[static_cast<size_t>(i)].image_label);
  }
  return b;
}

// ---- DataLoader --------------------------------------------------------------------------------

DataLoader::DataLoader(const Dataset& ds, std::vector<int64_t> pool, LoaderOptions opt)
    : ds_(&ds), pool_(std::move(pool)), opt_(std::move(opt)) {
  SX_CHECK(opt_.batch_size >= 1, "DataLoader: batch_size must be >= 1, got ", opt_.batch_size);
  SX_CHECK(opt_.workers >= 0, "DataLoader: workers must be >= 0, got ", opt_.workers);
  SX_CHECK(opt_.prefetch >= 1, "DataLoader: prefetch must be >= 1, got ", opt_.prefetch);
  SX_CHECK(opt_.shard_count >= 1 && opt_.shard_rank >= 0 && opt_.shard_rank < opt_.shard_count, "DataLoader: shard ",
           opt_.shard_rank, " of ", opt_.shard_count, " is out of range");
  for (int64_t i : pool_) SX_CHECK(i >= 0 && i < ds.size(), "DataLoader: pool index ", i, " out of range [0, ", ds.size(), ")");
}

DataLoader::~DataLoader() { stop(); }

std::vector<int64_t> shard_batches(int64_t global_batches, int rank, int count, bool drop_last, bool wrap) {
  SX_CHECK(count >= 1 && rank >= 0 && rank < count, "DataLoader: shard ", rank, " of ", count, " is out of range");
  std::vector<int64_t> out;
  if (global_batches <= 0) return out;
  if (!wrap) {
    for (int64_t g = rank; g < global_batches; g += count) out.push_back(g);
    return out;
  }
  const int64_t per_rank = drop_last ? global_batches / count : (global_batches + count - 1) / count;
  for (int64_t k = 0; k < per_rank; ++k) out.push_back((k * count + rank) % global_batches);
  return out;
}

int64_t DataLoader::num_batches() const {
  int64_t n = static_cast<int64_t>(order_.empty() ? pool_.size() : order_.size());
  const int64_t global = opt_.drop_last ? n / opt_.batch_size : (n + opt_.batch_size - 1) / opt_.batch_size;
  if (!opt_.shard_wrap)
    return static_cast<int64_t>(shard_batches(global, opt_.shard_rank, opt_.shard_count, opt_.drop_last, false).size());
  return opt_.drop_last ? global / opt_.shard_count : (global + opt_.shard_count - 1) / opt_.shard_count;
}

void DataLoader::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_task_.notify_all();
  cv_ready_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  std::lock_guard<std::mutex> lk(mu_);
  ready_.clear();
  errors_.clear();
  stopping_ = false;
}

void DataLoader::start_epoch(int64_t epoch) {
  stop();
  epoch_ = epoch;
  order_ = epoch_order(*ds_, pool_, opt_.sampling, opt_.seed, epoch, opt_.rfs_threshold);
  const int64_t n = static_cast<int64_t>(order_.size());
  batch_ids_ = shard_batches(opt_.drop_last ? n / opt_.batch_size : (n + opt_.batch_size - 1) / opt_.batch_size,
                             opt_.shard_rank, opt_.shard_count, opt_.drop_last, opt_.shard_wrap);
  n_batches_ = static_cast<int64_t>(batch_ids_.size());
  next_task_ = 0;
  next_out_ = 0;
  for (int w = 0; w < opt_.workers; ++w) threads_.emplace_back(&DataLoader::worker, this);
}

void DataLoader::worker() {
  for (;;) {
    int64_t k;
    {
      std::unique_lock<std::mutex> lk(mu_);
      // Bounded prefetch: batch k is started only when fewer than `prefetch` batches are ahead.
      cv_task_.wait(lk, [&] { return stopping_ || next_task_ >= n_batches_ || next_task_ < next_out_ + opt_.prefetch; });
      if (stopping_ || next_task_ >= n_batches_) return;
      k = next_task_++;
    }
    Batch b;
    std::exception_ptr err;
    try {
      b = make_batch(*ds_, order_, batch_ids_[static_cast<size_t>(k)], epoch_, opt_);
      b.batch_index = k;
    } catch (...) {
      err = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (err) errors_[k] = err;
      else ready_[k] = std::move(b);
    }
    cv_ready_.notify_all();
  }
}

bool DataLoader::next(Batch& out) {
  if (order_.empty() && n_batches_ == 0 && threads_.empty() && next_out_ == 0) {
    // start_epoch was not called: behave as epoch 0.
    if (!pool_.empty()) start_epoch(0);
  }
  if (next_out_ >= n_batches_) return false;
  const int64_t k = next_out_;
  if (opt_.workers == 0) {
    out = make_batch(*ds_, order_, batch_ids_[static_cast<size_t>(k)], epoch_, opt_);
    out.batch_index = k;
    ++next_out_;
    return true;
  }
  std::unique_lock<std::mutex> lk(mu_);
  cv_ready_.wait(lk, [&] { return ready_.count(k) || errors_.count(k); });
  if (errors_.count(k)) {
    std::exception_ptr e = errors_[k];
    errors_.erase(k);
    ++next_out_;
    lk.unlock();
    cv_task_.notify_all();
    std::rethrow_exception(e);
  }
  out = std::move(ready_[k]);
  ready_.erase(k);
  ++next_out_;
  lk.unlock();
  cv_task_.notify_all();
  return true;
}

}  // namespace sx::io
