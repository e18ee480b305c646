// DICOM reader: every transfer syntax, the stored-bits / rescale / window / MONOCHROME1 pipeline,
// agreement with pydicom on its own test files, and rejection of bad files.
#include <gtest/gtest.h>

#include <gdcmAttribute.h>
#include <gdcmImage.h>
#include <gdcmImageWriter.h>
#include <gdcmReader.h>
#include <gdcmWriter.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "io/dicom.h"
#include "io/dicom_write.h"
#include "io_test_util.h"
#include "tensor/errors.h"

// LeakSanitizer: GDCM 3.0.21 (Debian) leaks small buffers on its *error* paths when a JPEG-LS or
// JPEG 2000 codestream is corrupt (gdcm::JPEGLSCodec::Decode / GetHeaderInfo,
// gdcm::JPEG2000Codec::GetHeaderInfo -> opj_create_decompress never destroyed). The corruption and
// fuzz tests below reach those paths on purpose. These third-party leaks are suppressed by name so
// that any leak of our own still fails the sanitizer build. (LSan reads this hook when it exists.)
extern "C" const char* __lsan_default_suppressions() {
  return "leak:gdcm::JPEGLSCodec::Decode\n"
         "leak:gdcm::JPEGLSCodec::GetHeaderInfo\n"
         "leak:gdcm::JPEG2000Codec::GetHeaderInfo\n"
         "leak:gdcm::JPEG2000Codec::DecodeByStreamsCommon\n";
}
// Full stack unwinding on malloc, so the suppressions above see GDCM's frames below OpenJPEG's
// (which is built without frame pointers).
extern "C" const char* __asan_default_options() { return "fast_unwind_on_malloc=0"; }

namespace sx::io {
namespace {

using test::TempDir;

DicomWriteSpec spec(int rows, int cols, DicomCodec codec) {
  DicomWriteSpec s;
  s.rows = rows;
  s.columns = cols;
  s.codec = codec;
  s.study_uid = "1.2.826.0.1.1";
  s.series_uid = "1.2.826.0.1.2";
  s.sop_uid = "1.2.826.0.1.3";
  return s;
}

std::vector<uint16_t> ramp(int rows, int cols, int bits) {
  std::vector<uint16_t> v(static_cast<size_t>(rows) * cols);
  const int maxv = (1 << bits) - 1;
  for (int y = 0; y < rows; ++y)
    for (int x = 0; x < cols; ++x) v[static_cast<size_t>(y) * cols + x] = static_cast<uint16_t>((x * 97 + y * 31 + (x * y) % 13) % (maxv + 1));
  // The extremes appear too.
  v[0] = 0;
  v[1] = static_cast<uint16_t>(maxv);
  return v;
}

std::string expect_io_error(const std::string& path, const DicomLimits& lim = {}) {
  try {
    read_dicom(path, lim);
  } catch (const IOError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected sx::IOError, got another exception: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected an error reading " << path;
  return "";
}

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

// ---- pipeline maths ------------------------------------------------------------------------

TEST(Dicom, WindowFunctionFollowsTheStandard) {
  // c = 2048, w = 4096: lo = 2047.5 - 2047.5 = 0 -> x <= 0 gives 0; hi = 4095 -> x > 4095 gives 1.
  EXPECT_EQ(dicom_window(0.0f, 2048, 4096), 0.0f);
  EXPECT_EQ(dicom_window(4096.0f, 2048, 4096), 1.0f);
  EXPECT_NEAR(dicom_window(2047.5f, 2048, 4096), 0.5f, 1e-6);
  EXPECT_NEAR(dicom_window(1000.0f, 2048, 4096), (1000 - 2047.5) / 4095.0 + 0.5, 1e-6);
  // Narrow window: c = 100, w = 11 -> [94.5, 104.5].
  EXPECT_EQ(dicom_window(94.5f, 100, 11), 0.0f);
  EXPECT_NEAR(dicom_window(99.5f, 100, 11), 0.5f, 1e-6);
  EXPECT_EQ(dicom_window(104.6f, 100, 11), 1.0f);
}

TEST(Dicom, Monochrome1IsInvertedMonochrome2AfterNormalisation) {
  TempDir dir;
  const int rows = 24, cols = 30;
  auto px = ramp(rows, cols, 12);
  std::vector<uint16_t> inv(px.size());
  for (size_t i = 0; i < px.size(); ++i) inv[i] = static_cast<uint16_t>(4095 - px[i]);
  DicomWriteSpec s2 = spec(rows, cols, DicomCodec::Jpeg2000Lossless);
  // The window must be symmetric under v -> 4095 - v (centre 2048 in the standard's convention).
  s2.window_center = 2048;
  s2.window_width = 4096;
  DicomWriteSpec s1 = s2;
  s1.photometric = "MONOCHROME1";
  write_dicom(dir / "m2.dcm", px.data(), s2);
  write_dicom(dir / "m1.dcm", inv.data(), s1);
  for (WindowMode m : {WindowMode::None, WindowMode::Dicom, WindowMode::MinMax}) {
    WindowOptions o;
    o.mode = m;
    auto a = window_image(read_dicom(dir / "m2.dcm"), o);
    auto b = window_image(read_dicom(dir / "m1.dcm"), o);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5) << window_mode_name(m) << " pixel " << i;
    // Bone bright: the largest MONOCHROME2 value maps to the top of the range.
    EXPECT_GT(a[1], 0.99f);
    EXPECT_LT(a[0], 0.01f);
  }
}

TEST(Dicom, RescaleAndWindowMaths) {
  TempDir dir;
  const int rows = 8, cols = 10;
  auto px = ramp(rows, cols, 12);
  DicomWriteSpec s = spec(rows, cols, DicomCodec::ExplicitLE);
  s.rescale_slope = 0.5;
  s.rescale_intercept = -100;
  s.window_center = 400;
  s.window_width = 600;
  write_dicom(dir / "r.dcm", px.data(), s);
  DicomImage img = read_dicom(dir / "r.dcm");
  EXPECT_DOUBLE_EQ(img.info.rescale_slope, 0.5);
  EXPECT_DOUBLE_EQ(img.info.rescale_intercept, -100);
  ASSERT_TRUE(img.info.has_window);
  EXPECT_DOUBLE_EQ(img.info.window_center, 400);
  EXPECT_DOUBLE_EQ(img.info.window_width, 600);
  for (size_t i = 0; i < px.size(); ++i) ASSERT_FLOAT_EQ(img.values[i], px[i] * 0.5f - 100.0f);
  EXPECT_DOUBLE_EQ(img.range_lo, -100);
  EXPECT_DOUBLE_EQ(img.range_hi, 4095 * 0.5 - 100);
  WindowUsed used;
  auto w = window_image(img, {}, &used);
  EXPECT_EQ(used.source, "dicom");
  for (size_t i = 0; i < px.size(); ++i) ASSERT_FLOAT_EQ(w[i], dicom_window(px[i] * 0.5f - 100.0f, 400, 600));
  // Min-max and percentile windows span [0, 1].
  WindowOptions mm;
  mm.mode = WindowMode::MinMax;
  auto w2 = window_image(img, mm, &used);
  EXPECT_FLOAT_EQ(*std::min_element(w2.begin(), w2.end()), 0.0f);
  EXPECT_FLOAT_EQ(*std::max_element(w2.begin(), w2.end()), 1.0f);
  WindowOptions pc;
  pc.mode = WindowMode::Percentile;
  pc.pct_low = 10;
  pc.pct_high = 90;
  auto w3 = window_image(img, pc, &used);
  int zeros = 0, ones = 0;
  for (float v : w3) zeros += v == 0.0f, ones += v == 1.0f;
  EXPECT_GE(zeros, 5);
  EXPECT_GE(ones, 5);
  EXPECT_EQ(used.source, "percentile");
}

TEST(Dicom, NoWindowTagsFallsBackToMinMax) {
  TempDir dir;
  auto px = ramp(6, 6, 12);
  DicomWriteSpec s = spec(6, 6, DicomCodec::ExplicitLE);
  s.write_window = false;
  write_dicom(dir / "n.dcm", px.data(), s);
  DicomImage img = read_dicom(dir / "n.dcm");
  EXPECT_FALSE(img.info.has_window);
  WindowUsed used;
  auto w = window_image(img, {}, &used);
  EXPECT_EQ(used.source, "min-max (no window tags)");
  EXPECT_FLOAT_EQ(*std::max_element(w.begin(), w.end()), 1.0f);
}

TEST(Dicom, SignedDataIsSignExtendedFromBitsStored) {
  TempDir dir;
  const int rows = 4, cols = 5;
  // 12-bit two's complement in 16-bit words, upper bits left zero (as many writers do).
  std::vector<int> values = {-2048, -1, 0, 1, 2047, -100, 100, -2000, 2000, -7};
  std::vector<uint16_t> px(rows * cols);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint16_t>(values[i % values.size()] & 0x0FFF);
  DicomWriteSpec s = spec(rows, cols, DicomCodec::ExplicitLE);
  s.pixel_representation = 1;
  write_dicom(dir / "s.dcm", px.data(), s);
  DicomInfo info;
  auto got = read_dicom_stored(dir / "s.dcm", &info);
  EXPECT_EQ(info.pixel_representation, 1);
  for (size_t i = 0; i < px.size(); ++i) EXPECT_EQ(got[i], values[i % values.size()]) << i;
  DicomImage img = read_dicom(dir / "s.dcm");
  EXPECT_DOUBLE_EQ(img.range_lo, -2048);
  EXPECT_DOUBLE_EQ(img.range_hi, 2047);
}

TEST(Dicom, BitsAboveHighBitAreMaskedInNativeData) {
  TempDir dir;
  const int rows = 3, cols = 4;
  std::vector<uint16_t> px(rows * cols), expect(rows * cols);
  for (size_t i = 0; i < px.size(); ++i) {
    expect[i] = static_cast<uint16_t>((i * 301) & 0x0FFF);
    px[i] = static_cast<uint16_t>(expect[i] | 0xA000);  // garbage (e.g. overlay bits) above bit 11
  }
  DicomWriteSpec s = spec(rows, cols, DicomCodec::ExplicitLE);
  write_dicom(dir / "m.dcm", px.data(), s);
  DicomInfo info;
  auto got = read_dicom_stored(dir / "m.dcm", &info);
  for (size_t i = 0; i < px.size(); ++i) EXPECT_EQ(got[i], expect[i]);
  EXPECT_FALSE(info.bits_widened);
}

// The VinDr trap: a JPEG 2000 codestream with more precision than BitsStored says.
TEST(Dicom, Jpeg2000PrecisionAboveBitsStoredKeepsTheValues) {
  TempDir dir;
  const int rows = 16, cols = 16;
  std::vector<uint16_t> px(rows * cols);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint16_t>(i * 211 % 16000);  // needs 14 bits
  DicomWriteSpec s = spec(rows, cols, DicomCodec::Jpeg2000Lossless);
  s.bits_stored = 16;
  const std::string p16 = dir / "p16.dcm", p12 = dir / "p12.dcm";
  write_dicom(p16, px.data(), s);
  // Rewrite the header only: BitsStored 12, HighBit 11 (the codestream still says 16 bits).
  gdcm::Reader r;
  r.SetFileName(p16.c_str());
  ASSERT_TRUE(r.Read());
  gdcm::DataSet& ds = r.GetFile().GetDataSet();
  gdcm::Attribute<0x0028, 0x0101> bs{12};
  gdcm::Attribute<0x0028, 0x0102> hb{11};
  ds.Replace(bs.GetAsDataElement());
  ds.Replace(hb.GetAsDataElement());
  gdcm::Writer w;
  w.SetFile(r.GetFile());
  w.SetFileName(p12.c_str());
  ASSERT_TRUE(w.Write());
  DicomInfo info;
  auto got = read_dicom_stored(p12, &info);
  EXPECT_EQ(info.bits_stored, 12);
  EXPECT_TRUE(info.bits_widened);
  for (size_t i = 0; i < px.size(); ++i) ASSERT_EQ(got[i], px[i]) << "value lost at " << i;
  DicomImage img = read_dicom(p12);
  EXPECT_DOUBLE_EQ(img.range_hi, 65535);
}

// Reads `in`, lets `edit` change the data set, writes `out` (the file meta kept as read).
template <class F>
std::string rewrite_dicom(const std::string& in, const std::string& out, F edit) {
  gdcm::Reader r;
  r.SetFileName(in.c_str());
  if (!r.Read()) return "cannot read " + in;
  edit(r.GetFile().GetDataSet());
  gdcm::Writer w;
  w.CheckFileMetaInformationOff();
  w.SetFile(r.GetFile());
  w.SetFileName(out.c_str());
  return w.Write() ? "" : "cannot write " + out;
}

// A JPEG 2000 codestream whose signedness (SIZ Ssiz bit 7) disagrees with PixelRepresentation: the
// codestream's precision bits are read with the header's signedness. Only a codestream narrower
// than BitsAllocated shows it (at 16 bits the 16-bit word already reads either way), and GDCM
// always encodes at BitsAllocated, so the narrow cases come from pydicom's 13-bit file.
TEST(Dicom, Jpeg2000SignednessMismatchFollowsTheHeader) {
  TempDir dir;
  // (a) GDCM's 16-bit unsigned codestream under a header rewritten to PixelRepresentation 1 and
  // BitsStored 12: the codestream's 16 bits, read as signed, give the values back (4095 is not -1:
  // the codestream, not BitsStored, decides the width, as for the VinDr files above; pydicom agrees).
  const int rows = 16, cols = 16;
  std::vector<uint16_t> px(rows * cols);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint16_t>((i * 37) & 0x0FFF);
  px[0] = 0x0FFF;
  DicomWriteSpec s = spec(rows, cols, DicomCodec::Jpeg2000Lossless);
  write_dicom(dir / "u.dcm", px.data(), s);
  ASSERT_EQ(rewrite_dicom(dir / "u.dcm", dir / "u_pr1.dcm",
                          [](gdcm::DataSet& ds) { ds.Replace(gdcm::Attribute<0x0028, 0x0103>{1}.GetAsDataElement()); }),
            "");
  DicomInfo info;
  auto got = read_dicom_stored(dir / "u_pr1.dcm", &info);
  ASSERT_EQ(info.pixel_representation, 1);
  for (size_t i = 0; i < px.size(); ++i) ASSERT_EQ(got[i], px[i]) << "pixel " << i;

  // (b) The other direction, PixelRepresentation 0 over a signed 13-bit codestream: pydicom's file
  // with the codestream's sign bit set (then it decodes to value - 4096, a valid signed 13-bit
  // stream) and the header set to unsigned. The header wins: the 13 bits read as unsigned.
  const std::string src = test::data_dir() + "/pydicom/J2K_pixelrep_mismatch.dcm";
  std::string bytes = test::slurp(src);
  const size_t soc = bytes.find(std::string("\xFF\x4F\xFF\x51", 4));
  ASSERT_NE(soc, std::string::npos);
  ASSERT_EQ(static_cast<unsigned char>(bytes[soc + 42]), 0x0Cu);  // unsigned, 13 bits
  bytes[soc + 42] = static_cast<char>(0x8C);                      // signed, 13 bits
  const std::string pr_tag("\x28\x00\x03\x01US\x02\x00", 8);
  const size_t pr = bytes.find(pr_tag);
  ASSERT_NE(pr, std::string::npos);
  bytes[pr + 8] = 0;  // PixelRepresentation 0
  test::spit(dir / "s13_pr0.dcm", bytes);
  std::vector<int32_t> ref = read_dicom_stored(src);  // pydicom's values (checked below against it)
  got = read_dicom_stored(dir / "s13_pr0.dcm", &info);
  ASSERT_EQ(info.pixel_representation, 0);
  EXPECT_TRUE(info.j2k_sign_mismatch);
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(got[i], ((ref[i] & 0x1FFF) - 4096) & 0x1FFF) << "pixel " << i << " (pydicom " << ref[i] << ")";
  EXPECT_FALSE(info.bits_widened);
  // The reduced-resolution decoder would average wrapped values: it decodes in full instead.
  DicomImage small = read_dicom_for_size(dir / "s13_pr0.dcm", 64);
  EXPECT_EQ(small.reduce, 0);
  EXPECT_FLOAT_EQ(small.values[0], static_cast<float>(got[0]));
}

// pydicom's J2K_pixelrep_mismatch.dcm (PixelRepresentation 1, unsigned 13-bit codestream): pydicom
// gives -2000 at [0, 0]; the bits as unsigned would be 6192 (2^13 apart).
TEST(DicomPydicom, J2kPixelRepresentationMismatchFollowsTheHeader) {
  const std::string path = test::data_dir() + "/pydicom/J2K_pixelrep_mismatch.dcm";
  DicomImage full = read_dicom(path);
  EXPECT_EQ(full.info.pixel_representation, 1);
  EXPECT_FLOAT_EQ(full.values[0], -2000);
  EXPECT_FLOAT_EQ(full.min_value, -2000);
  EXPECT_FLOAT_EQ(full.max_value, 1896);
  DicomImage small = read_dicom_for_size(path, 128);
  EXPECT_EQ(small.reduce, 0);
  EXPECT_FLOAT_EQ(small.values[0], -2000);
  EXPECT_FLOAT_EQ(small.min_value, -2000);
  EXPECT_FLOAT_EQ(small.max_value, 1896);
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

// ---- agreement with pydicom (fixtures from scripts/fixtures/io_pydicom.py) ----------------------

struct PydicomRow {
  std::string name, photometric, ts, handler;
  int rows, cols, bits_stored, pixrep, tolerance, stride;
  double slope, intercept;
  long long sum, sum_sq;
};

std::vector<PydicomRow> read_manifest() {
  std::ifstream f(test::data_dir() + "/pydicom/manifest.txt");
  std::vector<PydicomRow> out;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream is(line);
    PydicomRow r;
    is >> r.name >> r.rows >> r.cols >> r.bits_stored >> r.pixrep >> r.photometric >> r.ts >> r.slope >> r.intercept >>
        r.handler >> r.tolerance >> r.stride >> r.sum >> r.sum_sq;
    out.push_back(r);
  }
  return out;
}

TEST(DicomPydicom, AgreesWithPydicomOnItsTestFiles) {
  auto rows = read_manifest();
  ASSERT_GE(rows.size(), 10u) << "fixture manifest missing";
  for (const auto& r : rows) {
    SCOPED_TRACE(r.name + " (" + r.ts + ", decoded by pydicom's " + r.handler + " handler)");
    const std::string path = test::data_dir() + "/pydicom/" + r.name;
    DicomInfo info;
    std::vector<int32_t> got;
    ASSERT_NO_THROW(got = read_dicom_stored(path, &info));
    EXPECT_EQ(info.rows, r.rows);
    EXPECT_EQ(info.columns, r.cols);
    EXPECT_EQ(info.transfer_syntax_uid, r.ts);
    EXPECT_EQ(info.photometric, r.photometric);
    std::string ref = test::slurp(path + ".i32");
    const size_t n = ref.size() / 4;
    ASSERT_EQ(n, (got.size() + r.stride - 1) / r.stride);
    int maxdiff = 0;
    for (size_t k = 0; k < n; ++k) {
      int32_t v;
      std::memcpy(&v, ref.data() + 4 * k, 4);
      maxdiff = std::max(maxdiff, std::abs(v - got[k * r.stride]));
    }
    EXPECT_LE(maxdiff, r.tolerance);
    long long sum = 0, sum_sq = 0;
    for (int32_t v : got) sum += v, sum_sq += static_cast<long long>(v) * v;
    if (r.tolerance == 0) {
      EXPECT_EQ(sum, r.sum);
      EXPECT_EQ(sum_sq, r.sum_sq);
    } else {
      EXPECT_LE(std::llabs(sum - r.sum), static_cast<long long>(got.size()) * r.tolerance);
    }
    // Modality values follow the file's rescale.
    DicomImage img = read_dicom(path);
    EXPECT_DOUBLE_EQ(img.info.rescale_slope, r.slope);
    EXPECT_DOUBLE_EQ(img.info.rescale_intercept, r.intercept);
    EXPECT_FLOAT_EQ(img.values[5], static_cast<float>(got[5] * r.slope + r.intercept));
  }
}

TEST(DicomPydicom, RejectsItsBadFilesWithTheReason) {
  std::ifstream f(test::data_dir() + "/pydicom/reject.txt");
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    auto tab = line.find('\t');
    ASSERT_NE(tab, std::string::npos);
    const std::string name = line.substr(0, tab), why = line.substr(tab + 1);
    const std::string path = test::data_dir() + "/pydicom/" + name;
    std::string msg = expect_io_error(path);
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(why), std::string::npos) << name << ": " << msg;
    ++n;
  }
  EXPECT_GE(n, 4);
}

// ---- bad inputs ----------------------------------------------------------------------------

TEST(DicomBad, EmptyAndNonDicomFiles) {
  TempDir dir;
  test::spit(dir / "empty.dcm", "");
  EXPECT_NE(expect_io_error(dir / "empty.dcm").find("empty file"), std::string::npos);
  test::spit(dir / "text.dcm", "this is not a DICOM file at all, just some text\n");
  std::string m = expect_io_error(dir / "text.dcm");
  EXPECT_NE(m.find("text.dcm"), std::string::npos) << m;
  EXPECT_NE(expect_io_error(dir / "missing.dcm").find("cannot open"), std::string::npos);
  EXPECT_THROW(read_dicom_info(dir / "empty.dcm"), IOError);
  EXPECT_THROW(read_dicom_info(dir / "text.dcm"), IOError);
}

TEST(DicomBad, TruncatedAtManyCutPoints) {
  TempDir dir;
  auto px = ramp(64, 48, 12);
  for (DicomCodec c : {DicomCodec::ExplicitLE, DicomCodec::Jpeg2000Lossless, DicomCodec::JpegLsLossless, DicomCodec::Rle}) {
    std::string bytes = encode_dicom(px.data(), spec(64, 48, c));
    for (double frac : {0.05, 0.2, 0.5, 0.8, 0.95, 0.99}) {
      size_t cut = static_cast<size_t>(bytes.size() * frac);
      const std::string p = dir / "cut.dcm";
      test::spit(p, bytes.substr(0, cut));
      try {
        std::vector<int32_t> got = read_dicom_stored(p);
        ADD_FAILURE() << dicom_codec_name(c) << " cut at " << cut << "/" << bytes.size() << " was accepted";
      } catch (const IOError& e) {
        EXPECT_NE(std::string(e.what()).find(p), std::string::npos);
      }
    }
    // Cutting just the last bytes of the file (the end of the codestream / pixel data).
    test::spit(dir / "cut2.dcm", bytes.substr(0, bytes.size() - 2));
    EXPECT_THROW(read_dicom_stored(dir / "cut2.dcm"), IOError) << dicom_codec_name(c);
  }
}

TEST(DicomBad, CorruptedCodestreams) {
  TempDir dir;
  auto px = ramp(64, 48, 12);
  for (DicomCodec c : {DicomCodec::Jpeg2000Lossless, DicomCodec::JpegLsLossless}) {
    std::string bytes = encode_dicom(px.data(), spec(64, 48, c));
    // The codestream starts with FF4F (J2K SOC) or FFD8 (JPEG SOI): corrupt its header markers.
    size_t soc = bytes.find(c == DicomCodec::Jpeg2000Lossless ? std::string("\xFF\x4F\xFF\x51", 4) : std::string("\xFF\xD8", 2));
    ASSERT_NE(soc, std::string::npos);
    std::string bad = bytes;
    for (size_t i = soc; i < soc + 24 && i < bad.size(); ++i) bad[i] = static_cast<char>(0x5A);
    test::spit(dir / "bad.dcm", bad);
    EXPECT_THROW(read_dicom_stored(dir / "bad.dcm"), IOError) << dicom_codec_name(c);
    // Remove the end-of-codestream marker (a stream cut inside the fragment, length fixed up).
    std::string noeoc = bytes;
    size_t eoc = noeoc.rfind(std::string("\xFF\xD9", 2));
    ASSERT_NE(eoc, std::string::npos);
    noeoc[eoc] = 0;
    noeoc[eoc + 1] = 0;
    test::spit(dir / "noeoc.dcm", noeoc);
    std::string m;
    try {
      read_dicom_stored(dir / "noeoc.dcm");
    } catch (const IOError& e) {
      m = e.what();
    }
    EXPECT_NE(m.find("truncated or corrupt"), std::string::npos) << dicom_codec_name(c) << ": " << m;
  }
}

// Rewrites one US element of a native file (Rows, Columns, ...).
std::string with_us(const std::string& bytes, uint16_t g, uint16_t e, uint16_t value) {
  std::istringstream is(bytes);
  gdcm::Reader r;
  r.SetStream(is);
  if (!r.Read()) return "";
  gdcm::DataElement de(gdcm::Tag(g, e));
  de.SetVR(gdcm::VR::US);
  char v[2] = {static_cast<char>(value & 0xff), static_cast<char>(value >> 8)};
  de.SetByteValue(v, 2);
  r.GetFile().GetDataSet().Replace(de);
  gdcm::Writer w;
  w.SetFile(r.GetFile());
  std::ostringstream os;
  w.SetStream(os);
  w.Write();
  return os.str();
}

TEST(DicomBad, OversizedHeadersAreRejectedBeforeAllocating) {
  TempDir dir;
  auto px = ramp(16, 16, 12);
  for (DicomCodec c : {DicomCodec::ExplicitLE, DicomCodec::Jpeg2000Lossless}) {
    std::string bytes = encode_dicom(px.data(), spec(16, 16, c));
    test::spit(dir / "big.dcm", with_us(with_us(bytes, 0x0028, 0x0010, 65000), 0x0028, 0x0011, 65000));
    std::string m = expect_io_error(dir / "big.dcm");
    EXPECT_NE(m.find("beyond the limit"), std::string::npos) << m;
    // Within the limits, but more than the native pixel data holds.
    test::spit(dir / "tall.dcm", with_us(bytes, 0x0028, 0x0010, 4000));
    m = expect_io_error(dir / "tall.dcm");
    if (c == DicomCodec::ExplicitLE) {
      EXPECT_NE(m.find("truncated pixel data"), std::string::npos) << m;
    }
  }
  // A configurable limit.
  std::string ok = encode_dicom(px.data(), spec(16, 16, DicomCodec::ExplicitLE));
  test::spit(dir / "ok.dcm", ok);
  DicomLimits lim;
  lim.max_side = 8;
  EXPECT_NE(expect_io_error(dir / "ok.dcm", lim).find("beyond the limit"), std::string::npos);
  lim = {};
  lim.max_file_bytes = 100;
  EXPECT_NE(expect_io_error(dir / "ok.dcm", lim).find("beyond the limit"), std::string::npos);
}

TEST(DicomBad, ColourMultiFrameAndNoPixelData) {
  TempDir dir;
  // RGB image written by GDCM.
  {
    gdcm::ImageWriter w;
    gdcm::Image& im = w.GetImage();
    im.SetNumberOfDimensions(2);
    im.SetDimension(0, 4);
    im.SetDimension(1, 3);
    im.SetPixelFormat(gdcm::PixelFormat(gdcm::PixelFormat::UINT8));
    im.GetPixelFormat().SetSamplesPerPixel(3);
    im.SetPhotometricInterpretation(gdcm::PhotometricInterpretation::RGB);
    std::vector<char> buf(4 * 3 * 3, 7);
    gdcm::DataElement pde(gdcm::Tag(0x7fe0, 0x0010));
    pde.SetByteValue(buf.data(), static_cast<uint32_t>(buf.size()));
    im.SetDataElement(pde);
    const std::string p = dir / "rgb.dcm";
    w.SetFileName(p.c_str());
    ASSERT_TRUE(w.Write());
    std::string m = expect_io_error(p);
    EXPECT_NE(m.find("colour"), std::string::npos) << m;
    EXPECT_NE(m.find("RGB"), std::string::npos) << m;
  }
  // Multi-frame grey.
  {
    gdcm::ImageWriter w;
    gdcm::Image& im = w.GetImage();
    im.SetNumberOfDimensions(3);
    im.SetDimension(0, 4);
    im.SetDimension(1, 3);
    im.SetDimension(2, 2);
    im.SetPixelFormat(gdcm::PixelFormat(gdcm::PixelFormat::UINT16));
    im.SetPhotometricInterpretation(gdcm::PhotometricInterpretation::MONOCHROME2);
    std::vector<char> buf(4 * 3 * 2 * 2, 1);
    gdcm::DataElement pde(gdcm::Tag(0x7fe0, 0x0010));
    pde.SetByteValue(buf.data(), static_cast<uint32_t>(buf.size()));
    im.SetDataElement(pde);
    const std::string p = dir / "mf.dcm";
    w.SetFileName(p.c_str());
    ASSERT_TRUE(w.Write());
    std::string m = expect_io_error(p);
    EXPECT_NE(m.find("multi-frame"), std::string::npos) << m;
    EXPECT_NE(m.find("2 frames"), std::string::npos) << m;
  }
  // A data set with no pixel data.
  {
    auto px = ramp(4, 4, 12);
    std::string bytes = encode_dicom(px.data(), spec(4, 4, DicomCodec::ExplicitLE));
    std::istringstream is(bytes);
    gdcm::Reader r;
    r.SetStream(is);
    ASSERT_TRUE(r.Read());
    r.GetFile().GetDataSet().Remove(gdcm::Tag(0x7fe0, 0x0010));
    gdcm::Writer w;
    w.SetFile(r.GetFile());
    const std::string p = dir / "nopix.dcm";
    w.SetFileName(p.c_str());
    ASSERT_TRUE(w.Write());
    EXPECT_NE(expect_io_error(p).find("no pixel data"), std::string::npos);
    EXPECT_THROW(read_dicom_info(p), IOError);
  }
}

// Inputs found by a sanitizer fuzz run that crashed or aborted inside GDCM before the checks.
TEST(DicomBad, FuzzRegressions) {
  TempDir dir;
  auto px = ramp(48, 40, 12);
  const std::string jpeg = encode_dicom(px.data(), spec(48, 40, DicomCodec::JpegLossless));
  const size_t sof = jpeg.find(std::string("\xFF\xC3\x00\x0B", 4));
  ASSERT_NE(sof, std::string::npos);
  // (1) SOF precision 37: GDCM picked no codec and dereferenced null.
  std::string a = jpeg;
  a[sof + 4] = 37;
  test::spit(dir / "a.dcm", a);
  EXPECT_NE(expect_io_error(dir / "a.dcm").find("precision 37"), std::string::npos);
  // (2) The marker after the frame header damaged: GDCM's JPEG header probe asserted.
  std::string b = jpeg;
  b[sof + 13] = static_cast<char>(0x92);
  test::spit(dir / "b.dcm", b);
  EXPECT_NE(expect_io_error(dir / "b.dcm").find("corrupt JPEG header"), std::string::npos);
  // (3) The pixel data element's VR damaged: GDCM asserted in a header-only read.
  const std::string j2k = encode_dicom(px.data(), spec(48, 40, DicomCodec::Jpeg2000Lossless));
  const size_t pd = j2k.rfind(std::string("\xE0\x7F\x10\x00OB", 6));
  ASSERT_NE(pd, std::string::npos);
  std::string c = j2k;
  c[pd + 4] = static_cast<char>(0xD8);
  test::spit(dir / "c.dcm", c);
  EXPECT_THROW(read_dicom_info(dir / "c.dcm"), IOError);
  EXPECT_NE(expect_io_error(dir / "c.dcm").find("VR"), std::string::npos);
}

TEST(DicomBad, RandomByteFlipsNeverCrash) {
  // Fuzz-style: flip bytes all over a valid file; every outcome must be a value or an IOError.
  TempDir dir;
  auto px = ramp(32, 32, 12);
  for (DicomCodec c : {DicomCodec::ExplicitLE, DicomCodec::Jpeg2000Lossless, DicomCodec::JpegLsLossless, DicomCodec::Rle}) {
    std::string bytes = encode_dicom(px.data(), spec(32, 32, c));
    uint64_t s = 12345;
    for (int trial = 0; trial < 25; ++trial) {
      std::string b = bytes;
      for (int k = 0; k < 8; ++k) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        b[(s >> 33) % b.size()] = static_cast<char>(s >> 17);
      }
      test::spit(dir / "f.dcm", b);
      try {
        DicomImage img = read_dicom(dir / "f.dcm");
        EXPECT_EQ(img.values.size(), static_cast<size_t>(img.info.rows) * img.info.columns);
      } catch (const IOError&) {
      }
    }
  }
}

}  // namespace
}  // namespace sx::io
