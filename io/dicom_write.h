// Writing grey DICOM images through GDCM (for the synthetic dataset and the tests).
//
// The caller gives stored values (16- or 8-bit words) and a spec; the pixels are compressed with
// gdcm::ImageChangeTransferSyntax into the asked transfer syntax and the file is written atomically.
// Nothing time- or host-dependent goes into the file: every UID comes from the spec, no creation
// date or time is written, so the same spec and pixels give the same bytes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sx::io {

enum class DicomCodec {
  ExplicitLE,        // 1.2.840.10008.1.2.1
  ImplicitLE,        // 1.2.840.10008.1.2
  ExplicitBE,        // 1.2.840.10008.1.2.2 (retired, still read)
  Deflate,           // 1.2.840.10008.1.2.1.99
  Rle,               // 1.2.840.10008.1.2.5
  JpegLossless,      // 1.2.840.10008.1.2.4.70 (process 14, selection value 1)
  JpegBaseline,      // 1.2.840.10008.1.2.4.50 (8-bit) / .51 extended (12-bit): lossy
  JpegLsLossless,    // 1.2.840.10008.1.2.4.80
  Jpeg2000Lossless,  // 1.2.840.10008.1.2.4.90 (the VinDr release's)
  Jpeg2000,          // 1.2.840.10008.1.2.4.91 (lossy allowed)
};
const char* dicom_codec_name(DicomCodec c);

struct DicomWriteSpec {
  int rows = 0, columns = 0;
  int bits_allocated = 16, bits_stored = 12, pixel_representation = 0;
  std::string photometric = "MONOCHROME2";  // or MONOCHROME1
  DicomCodec codec = DicomCodec::Jpeg2000Lossless;
  bool write_window = true;
  double window_center = 2047.5, window_width = 4095;
  bool write_rescale = true;
  double rescale_slope = 1, rescale_intercept = 0;
  bool write_modality = false;  // the VinDr release has no Modality tag
  std::string modality = "CR";
  std::string sop_class_uid = "1.2.840.10008.5.1.4.1.1.1";  // CR Image Storage
  std::string study_uid, series_uid, sop_uid;                // required (deterministic UIDs)
  std::string sex = "O", age = "050Y";
  double pixel_spacing = 0.14;  // mm; <= 0: not written
  std::string study_date = "20200101", study_time = "120000";  // fixed: never the clock
};

// Encodes a DICOM file in memory. `pixels` holds rows*columns stored values in the low bits of
// 16-bit words (bits_allocated 16) or in bytes (8; pass uint8 data reinterpreted). Throws
// sx::ValueError on a bad spec, sx::IOError when GDCM fails.
std::string encode_dicom(const void* pixels, const DicomWriteSpec& spec);
// Same, written atomically to `path`.
void write_dicom(const std::string& path, const void* pixels, const DicomWriteSpec& spec);

}  // namespace sx::io
