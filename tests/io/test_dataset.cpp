// Datasets (release and flat layouts), the study split, samplers, transforms and the loader.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "io/dataset.h"
#include "io/synth.h"
#include "io/transforms.h"
#include "io_test_util.h"
#include "tensor/errors.h"

namespace sx::io {
namespace {

using test::TempDir;

// One small synthetic release shared by the tests of this file.
class DatasetTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    SynthOptions o;
    o.images = 36;
    o.seed = 9;
    o.size = 96;
    o.progress = false;
    o.out = dir_->path + "/vindr";
    synthesize_dataset(o);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string root() { return dir_->path + "/vindr"; }
  static TempDir* dir_;
};
TempDir* DatasetTest::dir_ = nullptr;

TEST_F(DatasetTest, OpensTheReleaseLayout) {
  Dataset ds = Dataset::open(root());
  EXPECT_EQ(ds.layout(), Layout::Release);
  ASSERT_GT(ds.size(), 10);
  AnnotationTable t = read_annotations(root() + "/annotations/train.csv");
  ASSERT_EQ(ds.size(), static_cast<int64_t>(t.images.size()));
  for (int64_t i = 0; i < ds.size(); ++i) {
    const Sample& s = ds.sample(i);
    EXPECT_EQ(s.label, s.boxes.empty() ? 0 : 1);
    EXPECT_EQ(s.height, 96);  // read from the header at open (check_boxes)
    EXPECT_GT(s.width, 0);
  }
  LoadedImage li = ds.load(0);
  EXPECT_EQ(li.image.height, 96);
  EXPECT_EQ(li.orig_height, 96);
  for (float v : li.image.px) ASSERT_TRUE(v >= 0.0f && v <= 1.0f);
  DatasetOptions test_split;
  test_split.split = "test";
  Dataset dt = Dataset::open(root(), test_split);
  EXPECT_EQ(ds.size() + dt.size(), 36);
  EXPECT_THROW(ds.sample(ds.size()), ValueError);
}

TEST_F(DatasetTest, OpensTheFlatLayoutAndReportsMissingFiles) {
  TempDir flat;
  std::string csv = test::slurp(root() + "/annotations/train.csv");
  test::spit(flat / "annotations_train.csv", csv);
  Dataset rel = Dataset::open(root());
  for (const Sample& s : rel.samples())
    ASSERT_EQ(::link(s.path.c_str(), (flat / (s.image_id + ".dicom")).c_str()), 0);
  Dataset ds = Dataset::open(flat.path);
  EXPECT_EQ(ds.layout(), Layout::Flat);
  EXPECT_EQ(ds.size(), rel.size());
  // A missing image stops the open (naming the CSV line and the file) unless allow_missing leaves
  // it out and lists it; it is not a bad CSV row (skip_bad_rows does not cover it).
  const std::string gone = flat / (rel.sample(2).image_id + ".dicom");
  ::unlink(gone.c_str());
  try {
    Dataset::open(flat.path);
    FAIL();
  } catch (const IOError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("annotations_train.csv:"), std::string::npos) << m;
    EXPECT_NE(m.find("1 of " + std::to_string(rel.size()) + " listed images"), std::string::npos) << m;
    EXPECT_NE(m.find(gone), std::string::npos) << m;
  }
  DatasetOptions skip;
  skip.skip_bad_rows = true;
  EXPECT_THROW(Dataset::open(flat.path, skip), IOError);
  DatasetOptions allow;
  allow.allow_missing = true;
  Dataset ds2 = Dataset::open(flat.path, allow);
  EXPECT_EQ(ds2.size(), rel.size() - 1);
  EXPECT_EQ(ds2.listed(), rel.size());
  EXPECT_TRUE(ds2.bad_rows().empty());
  ASSERT_EQ(ds2.missing().size(), 1u);
  EXPECT_EQ(ds2.missing()[0].image_id, rel.sample(2).image_id);
  EXPECT_EQ(ds2.missing()[0].path, gone);
  EXPECT_EQ(ds2.missing()[0].split, "train");
  EXPECT_THROW(Dataset::open(flat / "nothing-here"), IOError);
}

// A partial download (most listed images absent): one line that counts them and names the first
// few, never one line per image; the full list goes to a file.
TEST_F(DatasetTest, APartialDownloadIsSummarisedInOneLineAndListedInFull) {
  TempDir part;
  test::spit(part / "annotations_train.csv", test::slurp(root() + "/annotations/train.csv"));
  Dataset rel = Dataset::open(root());
  ASSERT_GT(rel.size(), 20);
  ASSERT_EQ(::link(rel.sample(0).path.c_str(), (part / (rel.sample(0).image_id + ".dicom")).c_str()), 0);
  ASSERT_EQ(::link(rel.sample(5).path.c_str(), (part / (rel.sample(5).image_id + ".dicom")).c_str()), 0);
  const int64_t n_missing = rel.size() - 2;
  const std::string count = std::to_string(n_missing) + " of " + std::to_string(rel.size()) + " listed images";
  try {
    Dataset::open(part.path);
    FAIL();
  } catch (const IOError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_NE(m.find(count), std::string::npos) << m;
    EXPECT_NE(m.find(rel.sample(1).image_id), std::string::npos) << m;  // the first missing ones are named
    EXPECT_EQ(m.find(rel.sample(20).image_id), std::string::npos) << m;  // not all of them
    EXPECT_LT(m.size(), 700u) << m;
  }
  DatasetOptions allow;
  allow.allow_missing = true;
  Dataset ds = Dataset::open(part.path, allow);
  EXPECT_EQ(ds.size(), 2);
  ASSERT_EQ(static_cast<int64_t>(ds.missing().size()), n_missing);
  // check_missing_images: the list (one path per line, all of them), and a throw unless allowed.
  const std::string list = part / "out/missing.txt";
  ::mkdir((part / "out").c_str(), 0755);
  try {
    check_missing_images(ds, list, false);
    FAIL();
  } catch (const IOError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_NE(m.find(count), std::string::npos) << m;
    EXPECT_NE(m.find(list), std::string::npos) << m;
    EXPECT_NE(m.find("--allow-missing"), std::string::npos) << m;
  }
  std::istringstream lines(test::slurp(list));
  std::vector<std::string> got;
  for (std::string l; std::getline(lines, l);) got.push_back(l);
  ASSERT_EQ(static_cast<int64_t>(got.size()), n_missing);
  for (size_t k = 0; k < got.size(); ++k) EXPECT_EQ(got[k], ds.missing()[k].path);
  ::unlink(list.c_str());
  const std::string note = check_missing_images(ds, list, true);
  EXPECT_NE(note.find(count), std::string::npos) << note;
  EXPECT_EQ(note.find('\n'), std::string::npos) << note;
  const std::string again = test::slurp(list);  // written when allowed too
  EXPECT_EQ(std::count(again.begin(), again.end(), '\n'), n_missing);
  // Nothing missing: no note, no list written.
  Dataset full = Dataset::open(root(), allow);
  EXPECT_TRUE(full.missing().empty());
  EXPECT_EQ(check_missing_images(full, part / "out/none.txt", false), "");
  EXPECT_TRUE(test::slurp(part / "out/none.txt").empty());
}

TEST_F(DatasetTest, StudySplitHasNoStudyInBoth) {
  Dataset ds = Dataset::open(root());
  SplitIndices a = split_by_study(ds, 0.3, 7);
  SplitIndices b = split_by_study(ds, 0.3, 7);
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.val, b.val);
  EXPECT_EQ(static_cast<int64_t>(a.train.size() + a.val.size()), ds.size());
  std::set<std::string> tr, va;
  for (int64_t i : a.train) tr.insert(ds.sample(i).study_id);
  for (int64_t i : a.val) va.insert(ds.sample(i).study_id);
  for (const auto& s : va) EXPECT_EQ(tr.count(s), 0u) << s;
  EXPECT_GT(a.val.size(), 0u);
  EXPECT_NEAR(a.val.size() / double(ds.size()), 0.3, 0.15);
  SplitIndices c = split_by_study(ds, 0.3, 8);
  EXPECT_NE(a.val, c.val);
}

TEST(Transforms, ResizeKeepsMeansAndConstants) {
  GreyF img(40, 30);
  for (int i = 0; i < 40 * 30; ++i) img.px[i] = static_cast<float>((i * 7919) % 101) / 100.0f;
  double m0 = 0;
  for (float v : img.px) m0 += v;
  m0 /= img.px.size();
  GreyF small = resize_image(img, 10, 15);  // area: exact average of 4 x 2 blocks
  for (int y = 0; y < 15; ++y)
    for (int x = 0; x < 10; ++x) {
      double s = 0;
      for (int dy = 0; dy < 2; ++dy)
        for (int dx = 0; dx < 4; ++dx) s += img.at(4 * x + dx, 2 * y + dy);
      ASSERT_NEAR(small.at(x, y), s / 8, 1e-5);
    }
  GreyF odd = resize_image(img, 13, 7);
  double m1 = 0;
  for (float v : odd.px) m1 += v;
  EXPECT_NEAR(m1 / odd.px.size(), m0, 0.01);
  GreyF c(9, 5, 0.25f);
  for (float v : resize_image(c, 23, 11).px) ASSERT_NEAR(v, 0.25f, 1e-6);
  // Linear upsampling of a horizontal ramp stays a ramp (half-pixel centres).
  GreyF ramp(4, 1);
  for (int x = 0; x < 4; ++x) ramp.px[x] = static_cast<float>(x);
  GreyF up = resize_image(ramp, 8, 1);
  EXPECT_NEAR(up.px[2], 0.75f, 1e-6);  // output centre 2.5 -> input 0.75
  EXPECT_NEAR(up.px[0], 0.0f, 1e-6);   // clamped edge
  EXPECT_THROW(resize_image(ramp, 0, 1), ValueError);
}

// The bright rectangle drawn at `b` must land exactly on the transformed box.
TEST(Transforms, BoxesFollowResizeFlipAndPadExactly) {
  const int W = 120, H = 80;
  GreyF img(W, H, 0.0f);
  Box b{30, 20, 70, 50, 3, 2};
  for (int y = 20; y < 50; ++y)
    for (int x = 30; x < 70; ++x) img.px[y * W + x] = 1.0f;
  TransformOptions o;
  o.size = 64;
  o.hflip_prob = 0.5;
  o.scale_min = 0.75;
  o.scale_max = 1.25;
  int flips = 0;
  for (uint64_t seed = 0; seed < 12; ++seed) {
    AugRng rng(seed);
    Transformed t = apply_transforms(img, {b}, o, &rng);
    flips += t.flipped;
    ASSERT_EQ(t.boxes.size(), 1u);
    EXPECT_EQ(t.image.width % 32, 0);
    EXPECT_EQ(t.image.height % 32, 0);
    EXPECT_EQ(t.boxes[0].label, 3);
    // Where the image is bright (>= 0.5), compute the extent: it matches the box within a pixel.
    int x0 = 1 << 20, y0 = 1 << 20, x1 = -1, y1 = -1;
    for (int y = 0; y < t.image.height; ++y)
      for (int x = 0; x < t.image.width; ++x)
        if (t.image.at(x, y) >= 0.5f) x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x), y1 = std::max(y1, y);
    EXPECT_NEAR(t.boxes[0].x1, x0, 1.0) << seed;
    EXPECT_NEAR(t.boxes[0].y1, y0, 1.0) << seed;
    EXPECT_NEAR(t.boxes[0].x2, x1 + 1, 1.0) << seed;
    EXPECT_NEAR(t.boxes[0].y2, y1 + 1, 1.0) << seed;
    // And exactly by the formula.
    float sx = t.scale_x, sy = t.scale_y;
    float ex1 = t.flipped ? t.resized_width - 70 * sx : 30 * sx;
    EXPECT_FLOAT_EQ(t.boxes[0].x1, ex1);
    EXPECT_FLOAT_EQ(t.boxes[0].y1, 20 * sy);
    EXPECT_FLOAT_EQ(t.boxes[0].y2, 50 * sy);
  }
  EXPECT_GT(flips, 0);
  EXPECT_LT(flips, 12);
  // Without an Rng nothing random happens: longest side -> 64, padded to 64 x 64.
  Transformed t = apply_transforms(img, {b}, o, nullptr);
  EXPECT_EQ(t.resized_width, 64);
  EXPECT_EQ(t.resized_height, 43);
  EXPECT_EQ(t.image.width, 64);
  EXPECT_EQ(t.image.height, 64);
  EXPECT_FALSE(t.flipped);
  // Shortest side with a cap.
  TransformOptions s;
  s.mode = ResizeMode::Shortest;
  s.size = 40;
  s.max_size = 50;
  EXPECT_FLOAT_EQ(resize_scale(W, H, s), 50.0f / 120.0f);
  // Photometric augmentation stays in [0, 1] and changes values.
  TransformOptions p;
  p.size = 120;
  p.brightness = 0.2;
  p.contrast = 0.3;
  p.gamma = 0.3;
  AugRng rng(3);
  Transformed q = apply_transforms(img, {}, p, &rng);
  bool changed = false;
  for (size_t i = 0; i < q.image.px.size(); ++i) {
    ASSERT_GE(q.image.px[i], 0.0f);
    ASSERT_LE(q.image.px[i], 1.0f);
  }
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) changed |= std::fabs(q.image.at(x, y) - img.at(x, y)) > 1e-3;
  EXPECT_TRUE(changed);
}

Dataset toy_dataset() {
  // 10 images: 6 normal; class 0 in 3 images, class 1 in 1 image.
  std::vector<Sample> s(10);
  for (int i = 0; i < 10; ++i) {
    s[i].image_id = "i" + std::to_string(i);
    s[i].study_id = "s" + std::to_string(i / 2);
  }
  for (int i : {0, 1, 2}) s[i].boxes.push_back(Box{1, 1, 2, 2, 0, 0});
  s[3].boxes.push_back(Box{1, 1, 2, 2, 1, 0});
  for (auto& x : s) x.label = x.boxes.empty() ? 0 : 1;
  return Dataset::from_samples(s, ClassMap::vindr_default());
}

TEST(Sampling, RepeatFactorsFollowLvis) {
  Dataset ds = toy_dataset();
  std::vector<int64_t> pool(10);
  for (int i = 0; i < 10; ++i) pool[i] = i;
  auto r = repeat_factors(ds, pool, 0.5);
  // f(0) = 0.3 -> sqrt(0.5 / 0.3); f(1) = 0.1 -> sqrt(5).
  EXPECT_NEAR(r[0], std::sqrt(0.5 / 0.3), 1e-12);
  EXPECT_NEAR(r[3], std::sqrt(5.0), 1e-12);
  EXPECT_DOUBLE_EQ(r[5], 1.0);
  auto r2 = repeat_factors(ds, pool, 0.01);  // below every frequency: no repeats
  for (double v : r2) EXPECT_DOUBLE_EQ(v, 1.0);
  // Over many epochs the mean number of copies matches the factor.
  double copies3 = 0;
  for (int e = 0; e < 400; ++e) {
    auto o = epoch_order(ds, pool, SamplingMode::RepeatFactor, 1, e, 0.5);
    copies3 += std::count(o.begin(), o.end(), 3);
  }
  EXPECT_NEAR(copies3 / 400, std::sqrt(5.0), 0.1);
}

TEST(Sampling, OrdersAreDeterministicAndBalanced) {
  Dataset ds = toy_dataset();
  std::vector<int64_t> pool(10);
  for (int i = 0; i < 10; ++i) pool[i] = i;
  auto a = epoch_order(ds, pool, SamplingMode::Shuffle, 5, 0);
  auto b = epoch_order(ds, pool, SamplingMode::Shuffle, 5, 0);
  auto c = epoch_order(ds, pool, SamplingMode::Shuffle, 5, 1);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, pool);
  EXPECT_EQ(epoch_order(ds, pool, SamplingMode::Sequential, 5, 3), pool);
  int abnormal = 0, total = 0;
  for (int e = 0; e < 200; ++e)
    for (int64_t i : epoch_order(ds, pool, SamplingMode::ClassBalanced, 5, e)) abnormal += ds.sample(i).label, ++total;
  EXPECT_NEAR(abnormal / double(total), 0.5, 0.03);
  EXPECT_EQ(parse_sampling_mode("rfs"), SamplingMode::RepeatFactor);
  EXPECT_THROW(parse_sampling_mode("x"), ValueError);
}

std::vector<Batch> run_epoch(const Dataset& ds, const std::vector<int64_t>& pool, LoaderOptions o, int64_t epoch) {
  DataLoader dl(ds, pool, o);
  dl.start_epoch(epoch);
  std::vector<Batch> out;
  Batch b;
  while (dl.next(b)) out.push_back(b);
  EXPECT_EQ(static_cast<int64_t>(out.size()), dl.num_batches());
  return out;
}

TEST_F(DatasetTest, LoaderIsDeterministicWhateverTheWorkers) {
  Dataset ds = Dataset::open(root());
  SplitIndices sp = split_by_study(ds, 0.25, 1);
  LoaderOptions o;
  o.batch_size = 5;
  o.seed = 77;
  o.sampling = SamplingMode::RepeatFactor;
  o.rfs_threshold = 0.3;
  o.transform.size = 64;
  o.transform.channels = 3;
  o.transform.hflip_prob = 0.5;
  o.transform.scale_min = 0.8;
  o.transform.scale_max = 1.2;
  o.transform.brightness = 0.1;
  std::vector<std::vector<Batch>> runs;
  for (int workers : {0, 1, 3}) {
    o.workers = workers;
    o.prefetch = workers == 3 ? 2 : 4;
    runs.push_back(run_epoch(ds, sp.train, o, 2));
  }
  ASSERT_FALSE(runs[0].empty());
  int flipped = 0;
  for (size_t r = 1; r < runs.size(); ++r) {
    ASSERT_EQ(runs[r].size(), runs[0].size());
    for (size_t k = 0; k < runs[0].size(); ++k) {
      const Batch &a = runs[0][k], &b = runs[r][k];
      ASSERT_EQ(a.images.shape(), b.images.shape());
      ASSERT_EQ(std::memcmp(a.images.data<float>(), b.images.data<float>(), a.images.numel() * 4), 0) << "batch " << k;
      ASSERT_EQ(a.targets.size(), b.targets.size());
      for (size_t i = 0; i < a.targets.size(); ++i) {
        EXPECT_EQ(a.targets[i].index, b.targets[i].index);
        EXPECT_EQ(a.targets[i].flipped, b.targets[i].flipped);
        EXPECT_EQ(a.targets[i].boxes.to_vector(), b.targets[i].boxes.to_vector());
        flipped += a.targets[i].flipped;
      }
    }
  }
  EXPECT_GT(flipped, 0);
  // Shapes and contents of a batch.
  const Batch& b = runs[0][0];
  ASSERT_EQ(b.images.dim(), 4);
  EXPECT_EQ(b.images.size(0), static_cast<int64_t>(b.targets.size()));
  EXPECT_EQ(b.images.size(1), 3);
  EXPECT_EQ(b.images.size(2) % 32, 0);
  EXPECT_EQ(b.images.size(3) % 32, 0);
  EXPECT_EQ(b.images.dtype(), DType::Float32);
  const int64_t plane = b.images.size(2) * b.images.size(3);
  const float* p = b.images.data<float>();
  EXPECT_EQ(std::memcmp(p, p + plane, plane * 4), 0);  // grey repeated to 3 channels
  for (size_t i = 0; i < b.targets.size(); ++i) {
    const Target& t = b.targets[i];
    EXPECT_EQ(t.boxes.dtype(), DType::Float32);
    EXPECT_EQ(t.labels.dtype(), DType::Int64);
    EXPECT_EQ(t.boxes.dim(), 2);
    EXPECT_EQ(t.boxes.size(1), 4);
    EXPECT_EQ(t.labels.size(0), t.boxes.size(0));
    EXPECT_EQ(b.image_labels.to_vector()[i], t.image_label);
    EXPECT_EQ(t.image_label, t.boxes.size(0) > 0 ? 1 : 0);
    EXPECT_EQ(t.orig_height, 96);
    EXPECT_NEAR(t.scale_y, static_cast<float>(t.resized_height) / 96, 1e-6);
    const Sample& s = ds.sample(t.index);
    ASSERT_EQ(static_cast<size_t>(t.boxes.size(0)), s.boxes.size());
    auto bv = t.boxes.to_vector();
    for (size_t j = 0; j < s.boxes.size(); ++j) {
      const Box& o0 = s.boxes[j];
      const float ex1 = t.flipped ? t.resized_width - o0.x2 * t.scale_x : o0.x1 * t.scale_x;
      EXPECT_NEAR(bv[4 * j], ex1, 1e-3);
      EXPECT_NEAR(bv[4 * j + 1], o0.y1 * t.scale_y, 1e-3);
    }
  }
  // Another epoch differs; the same epoch again is identical.
  o.workers = 2;
  auto again = run_epoch(ds, sp.train, o, 2);
  EXPECT_EQ(std::memcmp(again[0].images.data<float>(), runs[0][0].images.data<float>(), runs[0][0].images.numel() * 4), 0);
  auto other = run_epoch(ds, sp.train, o, 3);
  bool same = other[0].images.shape() == runs[0][0].images.shape() &&
              std::memcmp(other[0].images.data<float>(), runs[0][0].images.data<float>(), runs[0][0].images.numel() * 4) == 0;
  EXPECT_FALSE(same);
}

// The distributed sampler through the loader: the shards of W ranks with batch B, step by step,
// are the single loader's batches of W x B (same images, same augmentation), repeat-factor
// sampling included; every image of the epoch once when W divides the batches.
TEST_F(DatasetTest, ShardedLoadersTogetherAreTheWholeBatch) {
  Dataset ds = Dataset::open(root());
  SplitIndices sp = split_by_study(ds, 0.25, 1);
  LoaderOptions o;
  o.seed = 5;
  o.workers = 1;
  o.sampling = SamplingMode::RepeatFactor;
  o.rfs_threshold = 0.3;
  o.transform.size = 48;
  o.transform.channels = 1;
  o.transform.hflip_prob = 0.5;
  o.batch_size = 4;
  o.drop_last = true;  // whole global batches: the shards cover them exactly
  const std::vector<Batch> whole = run_epoch(ds, sp.train, o, 1);
  o.batch_size = 2;
  std::vector<std::vector<Batch>> shards;
  for (int r = 0; r < 2; ++r) {
    o.shard_rank = r;
    o.shard_count = 2;
    shards.push_back(run_epoch(ds, sp.train, o, 1));
  }
  ASSERT_FALSE(whole.empty());
  ASSERT_EQ(shards[0].size(), whole.size());
  ASSERT_EQ(shards[1].size(), whole.size());
  for (size_t k = 0; k < whole.size(); ++k)
    for (int r = 0; r < 2; ++r)
      for (size_t i = 0; i < 2; ++i) {
        const Target &a = shards[r][k].targets[i], &b = whole[k].targets[2 * r + i];
        EXPECT_EQ(a.index, b.index) << "step " << k << " rank " << r;
        EXPECT_EQ(a.flipped, b.flipped);
        EXPECT_EQ(a.boxes.to_vector(), b.boxes.to_vector());
      }
  // Same seed, same shards.
  EXPECT_EQ(run_epoch(ds, sp.train, o, 1)[0].targets[0].index, shards[1][0].targets[0].index);
}

// Sharded evaluation (shard_wrap off): the ranks' batches r, r + W, ... are the single loader's
// batches (the last one short), each once, no padding; a rank may have one batch fewer, or none.
TEST_F(DatasetTest, EvaluationShardsAreTheWholeLoaderWithoutPadding) {
  EXPECT_EQ(shard_batches(5, 0, 2, false, false), (std::vector<int64_t>{0, 2, 4}));
  EXPECT_EQ(shard_batches(5, 1, 2, false, false), (std::vector<int64_t>{1, 3}));
  EXPECT_TRUE(shard_batches(1, 1, 2, false, false).empty());
  Dataset ds = Dataset::open(root());
  std::vector<int64_t> pool;
  for (int64_t i = 0; i < ds.size(); ++i) pool.push_back(i);
  LoaderOptions o;
  o.workers = 0;
  o.sampling = SamplingMode::Sequential;
  o.augment = false;
  o.transform.size = 32;
  o.batch_size = 3;
  const std::vector<Batch> whole = run_epoch(ds, pool, o, 0);
  o.shard_count = 2;
  o.shard_wrap = false;
  size_t seen = 0;
  for (int r = 0; r < 2; ++r) {
    o.shard_rank = r;
    DataLoader dl(ds, pool, o);
    dl.start_epoch(0);
    EXPECT_EQ(dl.num_batches(), static_cast<int64_t>((whole.size() - r + 1) / 2));
    const std::vector<Batch> mine = run_epoch(ds, pool, o, 0);
    ASSERT_EQ(mine.size(), static_cast<size_t>(dl.num_batches()));
    for (size_t k = 0; k < mine.size(); ++k) {
      const Batch& w = whole[2 * k + r];
      ASSERT_EQ(mine[k].targets.size(), w.targets.size());
      for (size_t i = 0; i < w.targets.size(); ++i) EXPECT_EQ(mine[k].targets[i].index, w.targets[i].index);
      seen += w.targets.size();
    }
  }
  EXPECT_EQ(seen, pool.size()) << "every image exactly once";
}

TEST_F(DatasetTest, LoaderStopsEarlyAndReportsErrors) {
  Dataset ds = Dataset::open(root());
  std::vector<int64_t> pool;
  for (int64_t i = 0; i < ds.size(); ++i) pool.push_back(i);
  LoaderOptions o;
  o.batch_size = 4;
  o.workers = 2;
  o.prefetch = 1;
  o.transform.size = 32;
  o.drop_last = true;
  {
    DataLoader dl(ds, pool, o);
    dl.start_epoch(0);
    EXPECT_EQ(dl.num_batches(), ds.size() / 4);
    Batch b;
    ASSERT_TRUE(dl.next(b));
    // Destroyed mid-epoch: workers stop cleanly.
  }
  // A sample whose file vanished: the error reaches next() with the file name.
  std::vector<Sample> s = ds.samples();
  s[1].path = dir_->path + "/gone.dicom";
  Dataset broken = Dataset::from_samples(s, ClassMap::vindr_default());
  o.drop_last = false;
  o.sampling = SamplingMode::Sequential;
  DataLoader dl(broken, {0, 1, 2}, o);
  dl.start_epoch(0);
  Batch b;
  try {
    dl.next(b);
    FAIL();
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("gone.dicom"), std::string::npos);
  }
  EXPECT_THROW(DataLoader(ds, {999}, o), ValueError);
  // An empty pool is a normal (empty) epoch.
  DataLoader empty(ds, {}, o);
  empty.start_epoch(0);
  EXPECT_FALSE(empty.next(b));
}

}  // namespace
}  // namespace sx::io
