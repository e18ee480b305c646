// DICOM reader: every transfer syntax written with GDCM and read back, the header's metadata, and a
// deterministic writer. The pixel pipeline: test_dicom_pixels.cpp; agreement with pydicom:
// test_dicom_pydicom.cpp; bad files: test_dicom_bad.cpp.
#include <gdcmReader.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "dicom_test_util.h"
#include "io/dicom.h"
#include "io/dicom_write.h"
#include "io_test_util.h"
#include "tensor/errors.h"

namespace sx::io {
namespace {

using test::ramp;
using test::rewrite_dicom;
using test::spec;
using test::TempDir;

// ---- every transfer syntax: write with GDCM, read back ------------------------------------------

struct CodecCase {
  DicomCodec codec;
  const char* uid;
  int tolerance;
};

class DicomCodecs : public ::testing::TestWithParam<CodecCase> {};

TEST_P(DicomCodecs, RoundTripGivesBackThePixels) {
  const CodecCase c = GetParam();
  TempDir dir;
  const int rows = 37, cols = 53;  // odd sizes on purpose
  auto px = ramp(rows, cols, 12);
  DicomWriteSpec s = spec(rows, cols, c.codec);
  const std::string path = dir / "x.dcm";
  write_dicom(path, px.data(), s);
  DicomInfo info;
  std::vector<int32_t> got = read_dicom_stored(path, &info);
  EXPECT_EQ(info.transfer_syntax_uid, c.uid);
  EXPECT_EQ(info.rows, rows);
  EXPECT_EQ(info.columns, cols);
  EXPECT_EQ(info.bits_allocated, 16);
  EXPECT_EQ(info.bits_stored, 12);
  ASSERT_EQ(got.size(), px.size());
  int maxdiff = 0;
  double sumdiff = 0;
  for (size_t i = 0; i < px.size(); ++i) {
    const int d = std::abs(got[i] - static_cast<int>(px[i]));
    maxdiff = std::max(maxdiff, d);
    sumdiff += d;
  }
  if (c.tolerance == 0) EXPECT_EQ(maxdiff, 0) << dicom_codec_name(c.codec);  // lossless: exact
  else EXPECT_LE(sumdiff / px.size(), c.tolerance) << dicom_codec_name(c.codec);  // lossy: mean error
  // Header-only read agrees with the full read.
  DicomInfo h = read_dicom_info(path);
  EXPECT_EQ(h.rows, rows);
  EXPECT_EQ(h.columns, cols);
  EXPECT_EQ(h.transfer_syntax_uid, c.uid);
}

INSTANTIATE_TEST_SUITE_P(
    AllSyntaxes, DicomCodecs,
    ::testing::Values(CodecCase{DicomCodec::ExplicitLE, "1.2.840.10008.1.2.1", 0},
                      CodecCase{DicomCodec::ImplicitLE, "1.2.840.10008.1.2", 0},
                      CodecCase{DicomCodec::ExplicitBE, "1.2.840.10008.1.2.2", 0},
                      CodecCase{DicomCodec::Deflate, "1.2.840.10008.1.2.1.99", 0},
                      CodecCase{DicomCodec::Rle, "1.2.840.10008.1.2.5", 0},
                      CodecCase{DicomCodec::JpegLossless, "1.2.840.10008.1.2.4.70", 0},
                      CodecCase{DicomCodec::JpegLsLossless, "1.2.840.10008.1.2.4.80", 0},
                      CodecCase{DicomCodec::Jpeg2000Lossless, "1.2.840.10008.1.2.4.90", 0},
                      // Lossy: mean absolute error bounded (the ramp has sharp edges on purpose).
                      CodecCase{DicomCodec::JpegBaseline, "1.2.840.10008.1.2.4.51", 40},
                      CodecCase{DicomCodec::Jpeg2000, "1.2.840.10008.1.2.4.91", 400}),
    [](const ::testing::TestParamInfo<CodecCase>& i) {
      std::string n = dicom_codec_name(i.param.codec);
      for (char& ch : n)
        if (ch == '-') ch = '_';
      return n;
    });

TEST(Dicom, EightBitBaselineJpeg) {
  TempDir dir;
  std::vector<uint8_t> px(40 * 48);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((i % 48) * 5);
  DicomWriteSpec s = spec(40, 48, DicomCodec::JpegBaseline);
  s.bits_allocated = 8;
  s.bits_stored = 8;
  write_dicom(dir / "j.dcm", px.data(), s);
  DicomInfo info;
  auto got = read_dicom_stored(dir / "j.dcm", &info);
  EXPECT_EQ(info.transfer_syntax_uid, "1.2.840.10008.1.2.4.50");
  double err = 0;
  for (size_t i = 0; i < px.size(); ++i) err += std::abs(got[i] - px[i]);
  EXPECT_LT(err / px.size(), 4.0);
}

TEST(Dicom, MetadataIsExposedAndModalityNotNeeded) {
  TempDir dir;
  auto px = ramp(10, 12, 12);
  DicomWriteSpec s = spec(10, 12, DicomCodec::Jpeg2000Lossless);
  s.sex = "F";
  s.age = "061Y";
  s.pixel_spacing = 0.139;
  s.write_modality = false;
  write_dicom(dir / "a.dcm", px.data(), s);
  DicomInfo in = read_dicom_info(dir / "a.dcm");
  EXPECT_EQ(in.modality, "");
  EXPECT_EQ(in.sex, "F");
  EXPECT_EQ(in.age, "061Y");
  EXPECT_TRUE(in.has_pixel_spacing);
  EXPECT_NEAR(in.pixel_spacing_row, 0.139, 1e-9);
  EXPECT_EQ(in.study_uid, "1.2.826.0.1.1");
  EXPECT_EQ(in.series_uid, "1.2.826.0.1.2");
  EXPECT_EQ(in.sop_uid, "1.2.826.0.1.3");
  EXPECT_EQ(in.photometric, "MONOCHROME2");
  EXPECT_NE(in.str().find("1.2.840.10008.1.2.4.90"), std::string::npos) << in.str();
  s.write_modality = true;
  write_dicom(dir / "b.dcm", px.data(), s);
  EXPECT_EQ(read_dicom_info(dir / "b.dcm").modality, "CR");
}

// The release's files carry the SOP Class UID only in the file meta (MediaStorageSOPClassUID,
// 0002,0002), not in the data set (0008,0016): `info` falls back to it.
TEST(Dicom, SopClassFallsBackToTheFileMeta) {
  TempDir dir;
  auto px = ramp(10, 12, 12);
  DicomWriteSpec s = spec(10, 12, DicomCodec::Jpeg2000Lossless);
  s.sop_class_uid = "1.2.840.10008.5.1.4.1.1.1.1";  // Digital X-Ray Image Storage - For Presentation
  write_dicom(dir / "a.dcm", px.data(), s);
  EXPECT_EQ(read_dicom_info(dir / "a.dcm").sop_class_uid, s.sop_class_uid);
  ASSERT_EQ(rewrite_dicom(dir / "a.dcm", dir / "meta_only.dcm",
                          [](gdcm::DataSet& ds) { ds.Remove(gdcm::Tag(0x0008, 0x0016)); }),
            "");
  {
    gdcm::Reader r;  // the fixture is what it should be: no (0008,0016), (0002,0002) present
    r.SetFileName((dir / "meta_only.dcm").c_str());
    ASSERT_TRUE(r.Read());
    ASSERT_FALSE(r.GetFile().GetDataSet().FindDataElement(gdcm::Tag(0x0008, 0x0016)));
    ASSERT_TRUE(r.GetFile().GetHeader().FindDataElement(gdcm::Tag(0x0002, 0x0002)));
  }
  DicomInfo in = read_dicom_info(dir / "meta_only.dcm");
  EXPECT_EQ(in.sop_class_uid, s.sop_class_uid);
  EXPECT_NE(in.str().find("sop_class_uid: " + s.sop_class_uid + "\n"), std::string::npos) << in.str();
  EXPECT_EQ(read_dicom(dir / "meta_only.dcm").info.sop_class_uid, s.sop_class_uid);
}

TEST(Dicom, WriterIsDeterministic) {
  TempDir dir;
  auto px = ramp(20, 20, 12);
  for (DicomCodec c : {DicomCodec::Jpeg2000Lossless, DicomCodec::JpegLsLossless, DicomCodec::ExplicitLE}) {
    std::string a = encode_dicom(px.data(), spec(20, 20, c));
    std::string b = encode_dicom(px.data(), spec(20, 20, c));
    EXPECT_EQ(a, b) << dicom_codec_name(c);
  }
}

}  // namespace
}  // namespace sx::io
