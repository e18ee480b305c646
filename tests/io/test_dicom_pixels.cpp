// DICOM reader: the pixel pipeline (dicom.h steps 2-5): the window function, MONOCHROME1, rescale
// and windowing maths, signed data, masking above HighBit, and the JPEG 2000 cases where the
// codestream disagrees with the header (precision above BitsStored, signedness).
#include <gdcmAttribute.h>
#include <gdcmDataSet.h>
#include <gdcmReader.h>
#include <gdcmWriter.h>
#include <gtest/gtest.h>

#include <algorithm>
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

}  // namespace
}  // namespace sx::io
