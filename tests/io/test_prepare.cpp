// The prepare cache (resumable, crash-safe, bad files counted) and the dataset reading it; .npy.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "io/dataset.h"
#include "io/dicom_write.h"
#include "io/j2k_reduced.h"
#include "io/transforms.h"
#include "io/npy.h"
#include "io/prepare.h"
#include "io/synth.h"
#include "io_test_util.h"
#include "tensor/errors.h"

namespace sx::io {
namespace {

using test::TempDir;

bool is_file_for_test(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }

TEST(Prepare, CacheMatchesTheDicomsAndTrainingCanReadIt) {
  TempDir dir;
  SynthOptions so;
  so.images = 16;
  so.seed = 4;
  so.size = 80;
  so.progress = false;
  so.out = dir / "vindr";
  synthesize_dataset(so);
  PrepareOptions po;
  po.data = so.out;
  po.out = dir / "cache";
  po.size = 200;  // larger than the images: no resize, so values are exact up to 16-bit rounding
  po.progress = false;
  PrepareSummary s = prepare_cache(po);
  EXPECT_EQ(s.images, 16);
  EXPECT_EQ(s.written, 16);
  EXPECT_EQ(s.failed, 0);
  Dataset dicom = Dataset::open(so.out);
  Dataset cache = Dataset::open(po.out);
  EXPECT_EQ(cache.layout(), Layout::Cache);
  ASSERT_EQ(cache.size(), dicom.size());
  for (int64_t i = 0; i < cache.size(); ++i) {
    ASSERT_EQ(cache.sample(i).image_id, dicom.sample(i).image_id);
    EXPECT_EQ(cache.sample(i).boxes.size(), dicom.sample(i).boxes.size());
    LoadedImage a = dicom.load(i), b = cache.load(i);
    ASSERT_EQ(a.image.width, b.image.width);
    ASSERT_EQ(a.image.height, b.image.height);
    for (size_t k = 0; k < a.image.px.size(); ++k) ASSERT_NEAR(a.image.px[k], b.image.px[k], 0.5 / 65535 + 1e-6);
  }
  // No journal and no temporary files are left.
  for (const auto& n : test::list_dir(po.out)) {
    EXPECT_EQ(n.find("journal"), std::string::npos) << n;
    EXPECT_EQ(n.find(".tmp."), std::string::npos) << n;
  }
}

TEST(Prepare, ResizedCacheScalesBoxesAndResumes) {
  TempDir dir;
  SynthOptions so;
  so.images = 12;
  so.seed = 8;
  so.size = 128;
  so.progress = false;
  so.out = dir / "vindr";
  synthesize_dataset(so);
  PrepareOptions po;
  po.data = so.out;
  po.out = dir / "cache";
  po.size = 64;
  po.progress = false;
  po.threads = 2;
  // Break one file: it is reported and counted, the rest is cached.
  Dataset dicom = Dataset::open(so.out);
  const Sample& victim = dicom.sample(1);
  std::string bytes = test::slurp(victim.path);
  test::spit(victim.path, bytes.substr(0, bytes.size() / 2));
  PrepareSummary s = prepare_cache(po);
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(s.written + s.failed, 12);
  ASSERT_EQ(s.errors.size(), 1u);
  EXPECT_NE(s.errors[0].find(victim.image_id), std::string::npos);
  // The cache dataset stops on the failed image by default, skips it on request.
  EXPECT_THROW(Dataset::open(po.out), IOError);
  DatasetOptions skip;
  skip.skip_bad_rows = true;
  Dataset cache = Dataset::open(po.out, skip);
  EXPECT_EQ(cache.size(), dicom.size() - 1);
  for (int64_t i = 0; i < cache.size(); ++i) {
    LoadedImage li = cache.load(i);
    EXPECT_EQ(std::max(li.image.width, li.image.height), 64);
    EXPECT_EQ(li.orig_height, 128);
    const Sample& s0 = cache.sample(i);
    for (size_t j = 0; j < s0.boxes.size(); ++j) {
      EXPECT_NEAR(li.boxes[j].x1, s0.boxes[j].x1 * li.image.width / li.orig_width, 1e-3);
      EXPECT_NEAR(li.boxes[j].y2, s0.boxes[j].y2 * li.image.height / li.orig_height, 1e-3);
    }
  }
  // A loader over the cache reports scales relative to the original image.
  LoaderOptions lo;
  lo.batch_size = 4;
  lo.workers = 1;
  lo.transform.size = 32;
  DataLoader dl(cache, {0, 1, 2}, lo);
  dl.start_epoch(0);
  Batch b;
  ASSERT_TRUE(dl.next(b));
  for (const Target& t : b.targets) {
    EXPECT_NEAR(t.scale_y * t.orig_height, t.resized_height, 1e-3);
    EXPECT_EQ(t.orig_height, 128);
  }
  // Resume: repair the file, rerun: only the failed image is redone.
  test::spit(victim.path, bytes);
  PrepareSummary r = prepare_cache(po);
  EXPECT_EQ(r.skipped, 11);
  EXPECT_EQ(r.written, 1);
  EXPECT_EQ(r.failed, 0);
  EXPECT_EQ(Dataset::open(po.out).size(), dicom.size());
}

// A partial download: prepare refuses (one line: how many listed images are missing, per split,
// the first few) before decoding anything, and writes the full list to CACHE/missing.txt; with
// allow_missing it prepares the images present. The missing ones never become one line each.
TEST(Prepare, APartialDownloadIsSummarisedListedAndRefusedUnlessAllowed) {
  TempDir dir;
  SynthOptions so;
  so.images = 14;
  so.seed = 5;
  so.size = 64;
  so.progress = false;
  so.out = dir / "vindr";
  synthesize_dataset(so);
  DatasetOptions tr, te;
  tr.split = "train";
  te.split = "test";
  Dataset train = Dataset::open(so.out, tr), test_split = Dataset::open(so.out, te);
  ASSERT_GE(train.size(), 3);
  ASSERT_GE(test_split.size(), 2);
  // Keep one image of each split; move the others away.
  std::vector<std::string> moved;
  for (const Dataset* d : {&train, &test_split})
    for (int64_t i = 1; i < d->size(); ++i) {
      moved.push_back(d->sample(i).path);
      ASSERT_EQ(std::rename(moved.back().c_str(), (moved.back() + ".away").c_str()), 0);
    }
  const int64_t listed = train.size() + test_split.size(), missing = listed - 2;
  PrepareOptions po;
  po.data = so.out;
  po.out = dir / "cache";
  po.size = 32;
  po.progress = false;
  const std::string list = po.out + "/missing.txt";
  try {
    prepare_cache(po);
    FAIL() << "expected an IOError";
  } catch (const IOError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_NE(m.find(std::to_string(missing) + " of " + std::to_string(listed) + " listed images"), std::string::npos) << m;
    EXPECT_NE(m.find("train: " + std::to_string(train.size() - 1) + " of " + std::to_string(train.size())),
              std::string::npos) << m;
    EXPECT_NE(m.find("test: " + std::to_string(test_split.size() - 1) + " of " + std::to_string(test_split.size())),
              std::string::npos) << m;
    EXPECT_NE(m.find(moved[0]), std::string::npos) << m;  // the first few are named
    EXPECT_NE(m.find(list), std::string::npos) << m;
    EXPECT_NE(m.find("--allow-missing"), std::string::npos) << m;
  }
  std::string text = test::slurp(list);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), missing);
  for (const auto& p : moved) EXPECT_NE(text.find(p + "\n"), std::string::npos) << p;
  EXPECT_TRUE(test::list_dir(po.out + "/images/train").empty());  // nothing decoded

  po.allow_missing = true;
  PrepareSummary s = prepare_cache(po);
  EXPECT_EQ(s.images, 2);
  EXPECT_EQ(s.written, 2);
  EXPECT_EQ(s.failed, 0);
  EXPECT_EQ(s.missing, missing);
  EXPECT_TRUE(s.errors.empty());  // the missing files are not one error line each
  EXPECT_NE(s.missing_summary.find(std::to_string(missing) + " of " + std::to_string(listed)), std::string::npos)
      << s.missing_summary;
  EXPECT_EQ(s.missing_summary.find('\n'), std::string::npos);
  text = test::slurp(list);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), missing);
  // The cache of the images present trains: its datasets hold them, the rest listed as missing.
  DatasetOptions allow;
  allow.allow_missing = true;
  Dataset cache = Dataset::open(po.out, allow);
  EXPECT_EQ(cache.size(), 1);
  EXPECT_EQ(static_cast<int64_t>(cache.missing().size()), train.size() - 1);
  EXPECT_THROW(Dataset::open(po.out), IOError);

  // The download completes: the rest is prepared and the stale list goes away.
  for (const auto& p : moved) ASSERT_EQ(std::rename((p + ".away").c_str(), p.c_str()), 0);
  po.allow_missing = false;
  s = prepare_cache(po);
  EXPECT_EQ(s.missing, 0);
  EXPECT_EQ(s.skipped, 2);
  EXPECT_EQ(s.written, missing);
  EXPECT_FALSE(is_file_for_test(list));
}

TEST(Prepare, AKilledRunLeavesAResumableCache) {
  TempDir dir;
  SynthOptions so;
  so.images = 8;
  so.seed = 2;
  so.size = 64;
  so.progress = false;
  so.out = dir / "vindr";
  synthesize_dataset(so);
  PrepareOptions po;
  po.data = so.out;
  po.out = dir / "cache";
  po.size = 32;
  po.progress = false;
  prepare_cache(po);
  // Simulate a run killed before writing the index: the index is gone, the journal holds two
  // finished lines and a torn one; a stray temporary PNG lies around.
  std::string index = test::slurp(po.out + "/spinexr_cache.csv");
  ::unlink((po.out + "/spinexr_cache.csv").c_str());
  size_t l1 = index.find('\n'), l2 = index.find('\n', l1 + 1), l3 = index.find('\n', l2 + 1);
  test::spit(po.out + "/spinexr_cache.journal", index.substr(l1 + 1, l3 - l1) + index.substr(l3 + 1, 20));
  PrepareSummary r = prepare_cache(po);
  EXPECT_EQ(r.skipped, 2);
  EXPECT_EQ(r.written, 6);
  Dataset ds = Dataset::open(po.out, [] {
    DatasetOptions o;
    o.split = "train";
    return o;
  }());
  EXPECT_GT(ds.size(), 0);
}

TEST(ReducedJ2k, CloseToTheFullDecodeThenResize) {
  if (!j2k_reduced_available()) GTEST_SKIP() << "built without OpenJPEG headers: no reduced-resolution decoding";
  TempDir dir;
  SynthImage im = render_synthetic(6, 3, 600);
  im.spec.codec = DicomCodec::Jpeg2000Lossless;
  im.spec.study_uid = "1.2";
  im.spec.series_uid = "1.3";
  im.spec.sop_uid = "1.4";
  const std::string p = dir / "a.dicom";
  write_dicom(p, im.stored.data(), im.spec);
  DicomImage red = read_dicom_for_size(p, 140);
  EXPECT_EQ(red.reduce, 2);  // 600 -> 150 >= 140
  EXPECT_EQ(red.full_rows, 600);
  EXPECT_EQ(red.info.rows, 150);
  EXPECT_EQ(red.full_columns, im.columns);
  // Against full decode + area resize to the same size: close (the codec's low-pass band differs
  // from an area average by a little, mostly at edges).
  DicomImage full = read_dicom(p);
  GreyF f;
  f.width = full.info.columns;
  f.height = full.info.rows;
  f.px = full.values;
  GreyF ref = resize_image(f, red.info.columns, red.info.rows);
  double mad = 0, bias = 0;
  for (size_t i = 0; i < ref.px.size(); ++i) mad += std::fabs(ref.px[i] - red.values[i]), bias += ref.px[i] - red.values[i];
  mad /= ref.px.size();
  bias /= ref.px.size();
  // The synthetic images carry per-pixel noise of ~60 units that the two low-pass filters average
  // differently; about 1% of the 12-bit range on average, and no bias.
  EXPECT_LT(mad, 80.0) << "mean abs difference in 12-bit units";
  EXPECT_LT(std::fabs(bias), 5.0);
  // prepare_image uses it and gives the requested size.
  PreparedImage pi = prepare_image(p, 140);
  EXPECT_EQ(pi.reduce, 2);
  EXPECT_EQ(pi.orig_height, 600);
  EXPECT_EQ(pi.height, 140);
  // A size needing the full resolution decodes in full.
  EXPECT_EQ(read_dicom_for_size(p, 400).reduce, 0);
  // Other syntaxes are decoded in full.
  im.spec.codec = DicomCodec::ExplicitLE;
  write_dicom(dir / "b.dicom", im.stored.data(), im.spec);
  DicomImage nb = read_dicom_for_size(dir / "b.dicom", 140);
  EXPECT_EQ(nb.reduce, 0);
  EXPECT_EQ(nb.info.rows, 600);
  // Garbage is refused without printing or throwing.
  J2kImage j;
  const uint8_t junk[8] = {0xFF, 0x4F, 0xFF, 0x51, 0, 0, 0, 0};
  EXPECT_FALSE(j2k_decode_reduced(junk, sizeof junk, 1, &j));
}

TEST(Npy, RoundTripAndHeader) {
  TempDir dir;
  std::vector<float> v(6 * 7);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.5f - 3;
  write_npy_f32(dir / "a.npy", v.data(), {6, 7});
  std::string b = test::slurp(dir / "a.npy");
  EXPECT_EQ(b.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t hl = static_cast<unsigned char>(b[8]) | (static_cast<unsigned char>(b[9]) << 8);
  EXPECT_EQ((10 + hl) % 64, 0u);
  EXPECT_NE(b.find("'shape': (6, 7)"), std::string::npos);
  std::vector<int64_t> shape;
  auto back = read_npy_f32(dir / "a.npy", &shape);
  EXPECT_EQ(shape, (std::vector<int64_t>{6, 7}));
  EXPECT_EQ(back, v);
  std::string one = encode_npy(v.data(), 4, "<f4", {3});
  EXPECT_NE(one.find("'shape': (3,)"), std::string::npos);
  test::spit(dir / "bad.npy", "nope");
  EXPECT_THROW(read_npy_f32(dir / "bad.npy", nullptr), IOError);
}

}  // namespace
}  // namespace sx::io
