// The synthetic VinDr-SpineXR generator: release layout, exact round trip, determinism, statistics.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "io/annotations.h"
#include "io/dicom.h"
#include "io/synth.h"
#include "io_test_util.h"

namespace sx::io {
namespace {

using test::TempDir;

TEST(Synth, LosslessRoundTripGivesBackTheGeneratedPixels) {
  TempDir dir;
  int n_mono1 = 0;
  for (int64_t i = 0; i < 12; ++i) {
    SynthImage im = render_synthetic(5, i, 96);
    im.spec.study_uid = "1.2.3";
    im.spec.series_uid = "1.2.3.4";
    im.spec.sop_uid = "1.2.3.4." + std::to_string(i);
    for (DicomCodec c : {DicomCodec::Jpeg2000Lossless, DicomCodec::ExplicitLE, DicomCodec::JpegLsLossless}) {
      im.spec.codec = c;
      const std::string p = dir / ("s" + std::to_string(i) + ".dicom");
      write_dicom(p, im.stored.data(), im.spec);
      DicomInfo info;
      auto got = read_dicom_stored(p, &info);
      EXPECT_EQ(info.bits_allocated, 16);
      EXPECT_EQ(info.bits_stored, 12);
      EXPECT_EQ(info.rows, im.rows);
      EXPECT_EQ(info.columns, im.columns);
      ASSERT_EQ(got.size(), im.stored.size());
      for (size_t k = 0; k < got.size(); ++k) ASSERT_EQ(got[k], im.stored[k]) << dicom_codec_name(c) << " pixel " << k;
    }
    // After the reader's MONOCHROME1 inversion every image shows bone bright: the full-range
    // normalisation equals the display values.
    DicomImage d = read_dicom(dir / ("s" + std::to_string(i) + ".dicom"));
    n_mono1 += d.info.monochrome1();
    WindowOptions none;
    none.mode = WindowMode::None;
    auto w = window_image(d, none);
    for (size_t k = 0; k < w.size(); k += 7) ASSERT_NEAR(w[k], im.display[k] / 4095.0f, 1e-6);
  }
  // The images above covered both photometric interpretations (else the inversion went untested).
  EXPECT_GT(n_mono1, 0);
  EXPECT_LT(n_mono1, 12);
}

TEST(Synth, SameSeedSameBytesWhateverTheThreads) {
  TempDir a, b;
  SynthOptions o;
  o.images = 10;
  o.seed = 42;
  o.size = 80;
  o.progress = false;
  o.out = a.path + "/ds";
  o.threads = 1;
  synthesize_dataset(o);
  o.out = b.path + "/ds";
  o.threads = 3;
  synthesize_dataset(o);
  for (const char* sub : {"annotations", "train_images", "test_images"}) {
    auto na = test::list_dir(a.path + "/ds/" + sub), nb = test::list_dir(b.path + "/ds/" + sub);
    std::sort(na.begin(), na.end());
    std::sort(nb.begin(), nb.end());
    ASSERT_EQ(na, nb) << sub;
    for (const auto& n : na)
      EXPECT_EQ(test::slurp(a.path + "/ds/" + sub + "/" + n), test::slurp(b.path + "/ds/" + sub + "/" + n)) << n;
  }
  // A different seed gives different data.
  TempDir c;
  o.out = c.path + "/ds";
  o.seed = 43;
  synthesize_dataset(o);
  EXPECT_NE(test::slurp(a.path + "/ds/annotations/train.csv"), test::slurp(c.path + "/ds/annotations/train.csv"));
}

TEST(Synth, ReleaseLayoutHeaderAndContents) {
  TempDir dir;
  SynthOptions o;
  o.images = 60;
  o.seed = 3;
  o.size = 96;
  o.progress = false;
  o.out = dir / "vindr";
  SynthSummary s = synthesize_dataset(o);
  EXPECT_EQ(s.images, 60);
  EXPECT_EQ(s.train_images + s.test_images, 60);
  EXPECT_GT(s.test_images, 0);
  const std::string header = "study_id,series_id,image_id,rad_id,lesion_type,xmin,ymin,xmax,ymax\n";
  std::set<std::string> train_studies, rads, codecs, photometric, modality;
  int64_t images = 0, boxes = 0;
  for (const char* split : {"train", "test"}) {
    const std::string csv = o.out + "/annotations/" + split + ".csv";
    EXPECT_EQ(test::slurp(csv).substr(0, header.size()), header);
    AnnotationTable t = read_annotations(csv);
    for (const ImageAnnotation& a : t.images) {
      ++images;
      if (std::string(split) == "train") train_studies.insert(a.study_id);
      else EXPECT_EQ(train_studies.count(a.study_id), 0u) << "study in both splits";
      rads.insert(a.rad_id);
      EXPECT_EQ(a.image_id.size(), 32u);
      const std::string img = o.out + "/" + split + "_images/" + a.image_id + ".dicom";
      DicomInfo in = read_dicom_info(img);
      EXPECT_EQ(in.bits_allocated, 16);
      EXPECT_EQ(in.bits_stored, 12);
      EXPECT_EQ(in.rows, 96);
      codecs.insert(in.transfer_syntax_uid);
      photometric.insert(in.photometric);
      modality.insert(in.modality);
      EXPECT_EQ(a.has_normal_row, a.boxes.empty());
      for (const Box& b : a.boxes) {
        ++boxes;
        EXPECT_GE(b.x1, 0);
        EXPECT_GE(b.y1, 0);
        EXPECT_LE(b.x2, in.columns);
        EXPECT_LE(b.y2, in.rows);
        // Lesions are not tiny: at least ~6% of the image height on each side.
        EXPECT_GE(b.x2 - b.x1, 0.06f * in.rows) << "class " << b.label << " " << a.image_id;
        EXPECT_GE(b.y2 - b.y1, 0.06f * in.rows) << "class " << b.label << " " << a.image_id;
      }
    }
  }
  EXPECT_EQ(images, 60);
  EXPECT_EQ(boxes, s.boxes);
  EXPECT_GE(rads.size(), 2u);
  EXPECT_TRUE(codecs.count("1.2.840.10008.1.2.4.90"));
  EXPECT_TRUE(photometric.count("MONOCHROME2"));
  EXPECT_TRUE(modality.count(""));  // no Modality on some
}

TEST(Synth, ClassFrequenciesAndNormalFractionAreShapedLikeTheRelease) {
  std::map<int, int> per_class;
  int normal = 0, n = 300, mono1 = 0, j2k = 0;
  std::map<int, std::vector<float>> widths, heights;
  for (int i = 0; i < n; ++i) {
    SynthImage im = render_synthetic(11, i, 128);
    normal += im.boxes.empty();
    mono1 += im.spec.photometric == "MONOCHROME1";
    j2k += im.spec.codec == DicomCodec::Jpeg2000Lossless;
    for (const Box& b : im.boxes) {
      ++per_class[b.label];
      widths[b.label].push_back(b.x2 - b.x1);
      heights[b.label].push_back(b.y2 - b.y1);
    }
  }
  EXPECT_NEAR(normal / double(n), 0.5, 0.1);
  EXPECT_GT(mono1, 10);
  EXPECT_LT(mono1, n / 3);
  EXPECT_GT(j2k, n * 0.65);
  ASSERT_EQ(per_class.size(), 7u) << "every class appears";
  for (int c = 1; c < 7; ++c) {
    EXPECT_GT(per_class[0], 2 * per_class[c]) << "Osteophytes dominate, class " << c;
    EXPECT_GE(per_class[c], 8) << "class " << c;
  }
  auto median = [](std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  // Box shapes as in the release: implants tall, disc narrowing / collapse / spondylolisthesis wide,
  // osteophytes and foraminal stenosis the smallest.
  EXPECT_GT(median(heights[1]), median(widths[1]));
  EXPECT_GT(median(widths[4]), 1.5f * median(heights[4]));
  EXPECT_GT(median(widths[5]), median(heights[5]));
  EXPECT_GT(median(widths[2]), median(heights[2]));
  EXPECT_LT(median(widths[0]) * median(heights[0]), median(widths[6]) * median(heights[6]));
  EXPECT_LT(median(widths[3]) * median(heights[3]), median(widths[1]) * median(heights[1]));
}

TEST(Synth, LesionsAreVisible) {
  // Inside an osteophyte or implant box the image is brighter than the image mean.
  int checked = 0;
  for (int i = 0; i < 80 && checked < 20; ++i) {
    SynthImage im = render_synthetic(2, i, 128);
    double mean = 0;
    for (uint16_t v : im.display) mean += v;
    mean /= im.display.size();
    for (const Box& b : im.boxes) {
      if (b.label != 0 && b.label != 1) continue;
      uint16_t mx = 0;
      for (int y = static_cast<int>(b.y1); y < static_cast<int>(b.y2); ++y)
        for (int x = static_cast<int>(b.x1); x < static_cast<int>(b.x2); ++x) mx = std::max(mx, im.display[y * im.columns + x]);
      EXPECT_GT(mx, mean + 1200) << "image " << i << " class " << b.label;
      ++checked;
    }
  }
  EXPECT_GE(checked, 10);
}

}  // namespace
}  // namespace sx::io
