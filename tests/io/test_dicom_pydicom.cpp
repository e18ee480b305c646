// DICOM reader: agreement with pydicom on its own test files (fixtures from
// scripts/fixtures/io_pydicom.py), its bad files rejected with the reason, and its JPEG 2000 file
// whose codestream signedness disagrees with PixelRepresentation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dicom_test_util.h"
#include "io/dicom.h"
#include "io/dicom_write.h"
#include "io_test_util.h"
#include "tensor/errors.h"

namespace sx::io {
namespace {

using test::expect_io_error;

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

}  // namespace
}  // namespace sx::io
