// What the files of the DICOM reader (io/dicom.h) share:
//
//   io/dicom.cpp             header: element access, LUTs, DicomInfo, file checks, read_dicom_info
//   io/dicom_codestream.cpp  the pixel data holds what the header promises (sizes, J2K signedness)
//   io/dicom_decode.cpp      decoding: stored bits, rescale / modality LUT, reduced JPEG 2000 reads
//   io/dicom_window.cpp      windowing to [0, 1]
//
// Internal to io/dicom*.cpp. Every failure is an sx::IOError "PATH: reason".
#pragma once
#include <gdcmDataSet.h>
#include <gdcmFile.h>

#include <cstdint>
#include <string>
#include <vector>

#include "io/dicom.h"
#include "io/dicom_scan.h"

namespace sx::io::dicom_detail {

[[noreturn]] void fail(const std::string& path, const std::string& why);

// ---- header (io/dicom.cpp) ---------------------------------------------------------------------

struct Lut {
  int64_t first = 0;
  int bits = 16;
  std::vector<uint16_t> table;
};

// First item of a Modality/VOI LUT sequence: LUT Descriptor (0028,3002) + LUT Data (0028,3006).
bool read_lut(const gdcm::DataSet& ds, uint16_t seq_elem, bool big_endian, bool first_signed, const std::string& path,
              Lut* lut);
float apply_lut(const Lut& lut, double v);

// Header fields from the data set; does not touch pixel data.
DicomInfo parse_info(const gdcm::File& file, const std::string& path, const DicomLimits& lim, bool has_pixel_data);
// The file's size, checked against the limits (and GDCM silenced, once).
int64_t check_file_size(const std::string& path, const DicomLimits& lim);
// Structural check of the file before GDCM parses it (see dicom_scan.h).
DicomScan scan_file(const std::string& path, int64_t file_size, bool header_only);
// Why GDCM could not read the file.
[[noreturn]] void explain_read_failure(const gdcm::File& f, const std::string& path);

// ---- pixel data checks (io/dicom_codestream.cpp) ------------------------------------------------

// A decoded value `v` of a `precision`-bit JPEG 2000 codestream read with the header's signedness.
int32_t header_signedness(int32_t v, int precision, bool header_signed);
// The first fragment of encapsulated JPEG 2000 pixel data, when it is a raw codestream: its
// signedness and precision. False otherwise (not J2K, or a JP2 wrapper).
bool j2k_fragment_sign(const gdcm::File& file, const DicomInfo& in, bool* is_signed, int* precision);
// The checks that must pass before decoding: the pixel data holds what the header promises.
void check_pixel_element(const gdcm::File& file, const DicomInfo& in, int64_t ds_offset);

}  // namespace sx::io::dicom_detail
