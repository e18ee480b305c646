// Helpers shared by the DICOM reader's tests (test_dicom*.cpp): a write spec with fixed UIDs, a
// test pattern, the message of an expected sx::IOError, and a data set rewrite through GDCM.
#pragma once
#include <gdcmDataSet.h>
#include <gdcmReader.h>
#include <gdcmWriter.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "io/dicom.h"
#include "io/dicom_write.h"
#include "tensor/errors.h"

namespace sx::io::test {

inline DicomWriteSpec spec(int rows, int cols, DicomCodec codec) {
  DicomWriteSpec s;
  s.rows = rows;
  s.columns = cols;
  s.codec = codec;
  s.study_uid = "1.2.826.0.1.1";
  s.series_uid = "1.2.826.0.1.2";
  s.sop_uid = "1.2.826.0.1.3";
  return s;
}

inline std::vector<uint16_t> ramp(int rows, int cols, int bits) {
  std::vector<uint16_t> v(static_cast<size_t>(rows) * cols);
  const int maxv = (1 << bits) - 1;
  for (int y = 0; y < rows; ++y)
    for (int x = 0; x < cols; ++x) v[static_cast<size_t>(y) * cols + x] = static_cast<uint16_t>((x * 97 + y * 31 + (x * y) % 13) % (maxv + 1));
  // The extremes appear too.
  v[0] = 0;
  v[1] = static_cast<uint16_t>(maxv);
  return v;
}

inline std::string expect_io_error(const std::string& path, const DicomLimits& lim = {}) {
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

}  // namespace sx::io::test
