// DICOM images through GDCM: one grey frame in, modality values and a normalised image out.
//
// Pixel pipeline, in this order (PS3.3 C.7.6.3, C.11):
//   1. decode the pixel data with GDCM: every transfer syntax it supports (JPEG 2000 lossless and
//      lossy, JPEG-LS, JPEG lossless/baseline, RLE, explicit/implicit little endian, big endian,
//      deflate);
//   2. stored bits: keep bits [HighBit-BitsStored+1, HighBit], mask (unsigned) or sign-extend
//      (PixelRepresentation 1). For *encapsulated* (compressed) syntaxes the codec's output is
//      authoritative: VinDr files exist whose JPEG 2000 codestream has more precision than
//      BitsStored says, so there a value that does not fit BitsStored widens the stored range to
//      BitsAllocated instead of being masked (info.bits_widened records it). No decoded value is lost.
//      A JPEG 2000 codestream whose signedness disagrees with PixelRepresentation follows the header:
//      its bits are read as the header says (as pydicom's J2K corrections do; pydicom's
//      J2K_pixelrep_mismatch.dcm gives -2000, not 6192); info.j2k_sign_mismatch records it.
//   3. Modality LUT Sequence if present, else Rescale Slope/Intercept -> "modality values";
//   4. windowing, by a chosen mode: none (the full stored range), dicom (VOI LUT Sequence if present,
//      else Window Center/Width, first value when multi-valued, linear function of PS3.3
//      C.11.2.1.2.1; falls back to min-max when the file has neither), min-max, or percentile;
//   5. MONOCHROME1 is inverted so that bone is bright -> values in [0, 1].
// The Modality tag is never relied upon (the VinDr release has none).
//
// Untrusted files are validated before any large allocation: every failure is an sx::IOError
// "PATH: reason" -- not DICOM, no pixel data, colour or multi-frame when one grey frame is
// expected (which one is said), sizes beyond DicomLimits or beyond what the file can hold,
// truncated or corrupt pixel data (every GDCM return value is checked, and an encapsulated
// JPEG/JPEG-LS/JPEG 2000 codestream must end with its end marker, so a decoder that "succeeds" on
// a cut stream is caught).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sx::io {

struct DicomLimits {
  int64_t max_side = 16384;                   // rows and columns each at most this
  int64_t max_pixels = int64_t(1) << 27;      // rows * columns at most this (134 Mpx)
  int64_t max_file_bytes = int64_t(1) << 31;  // 2 GiB
};

struct DicomInfo {
  std::string path;
  int rows = 0, columns = 0;
  int bits_allocated = 0, bits_stored = 0, high_bit = 0, pixel_representation = 0;
  int samples_per_pixel = 1, number_of_frames = 1;
  std::string photometric;  // MONOCHROME1 / MONOCHROME2 / ...
  std::string transfer_syntax_uid, transfer_syntax_name;
  bool encapsulated = false;
  bool has_pixel_spacing = false;
  double pixel_spacing_row = 0, pixel_spacing_col = 0;  // mm
  bool has_window = false;
  double window_center = 0, window_width = 0;  // first values
  bool has_voi_lut = false, has_modality_lut = false;
  double rescale_slope = 1, rescale_intercept = 0;
  std::string sex, age, study_uid, series_uid, sop_uid, sop_class_uid, modality;
  bool bits_widened = false;  // set by read_dicom: decoded values exceeded BitsStored (see above)
  bool j2k_sign_mismatch = false;  // set by read_dicom: J2K codestream signedness differs (see above)

  bool monochrome1() const { return photometric == "MONOCHROME1"; }
  std::string str() const;  // "key: value" lines, for `spinexr info`
};

// A decoded frame: modality values (after stored-bits handling and rescale / modality LUT).
struct DicomImage {
  DicomInfo info;
  std::vector<float> values;  // rows * columns, row-major
  float min_value = 0, max_value = 0;
  // Range the stored values can take (after rescale), e.g. [0, 4095] for 12-bit unsigned.
  double range_lo = 0, range_hi = 0;
  // VOI LUT (first item of 0028,3010) when present: first mapped input value, bits, table.
  int64_t voi_first = 0;
  int voi_bits = 0;
  std::vector<uint16_t> voi_lut;
  // Size of the full image; differs from info.rows/columns after a reduced decode.
  int full_rows = 0, full_columns = 0;
  int reduce = 0;  // resolution levels skipped (read_dicom_for_size on JPEG 2000), 0 otherwise
};

// Header only (does not decode the pixel data). Throws sx::IOError.
DicomInfo read_dicom_info(const std::string& path, const DicomLimits& limits = {});
// Header and pixels. Throws sx::IOError.
DicomImage read_dicom(const std::string& path, const DicomLimits& limits = {});
// For a consumer that resizes anyway (prepare, loaders): decodes at the coarsest JPEG 2000
// resolution level whose size is still >= the final size (longest side max_side, never enlarged),
// skipping the finer wavelet levels (see j2k_reduced.h); info.rows/columns are then the decoded
// size and full_rows/full_columns the original. Other syntaxes (or no OpenJPEG) decode in full.
DicomImage read_dicom_for_size(const std::string& path, int max_side, const DicomLimits& limits = {});
// The decoded stored values (after step 2, before rescale) as int32; for round-trip tests.
std::vector<int32_t> read_dicom_stored(const std::string& path, DicomInfo* info = nullptr,
                                       const DicomLimits& limits = {});

enum class WindowMode { None, Dicom, MinMax, Percentile };
WindowMode parse_window_mode(const std::string& s);  // "none", "dicom", "minmax"/"min-max", "percentile"
const char* window_mode_name(WindowMode m);

struct WindowOptions {
  WindowMode mode = WindowMode::Dicom;
  double pct_low = 0.5, pct_high = 99.5;  // for Percentile
};

// What windowing actually did (for the cache index and `info`).
struct WindowUsed {
  double center = 0, width = 0;  // equivalent linear window (lo = c - w/2, hi = c + w/2)
  std::string source;           // "dicom", "voi-lut", "min-max", "percentile", "none", "min-max (no window tags)"
};

// Normalises modality values to [0, 1] (bone bright: MONOCHROME1 inverted). Returns rows*columns.
std::vector<float> window_image(const DicomImage& img, const WindowOptions& opt = {}, WindowUsed* used = nullptr);

// The DICOM linear window function (PS3.3 C.11.2.1.2.1) mapped to [0, 1]:
// x <= c - 0.5 - (w-1)/2 -> 0;  x > c - 0.5 + (w-1)/2 -> 1;  else ((x - (c - 0.5)) / (w - 1) + 0.5).
inline float dicom_window(float x, double c, double w) {
  if (w < 1) w = 1;
  const double lo = c - 0.5 - (w - 1) / 2, hi = c - 0.5 + (w - 1) / 2;
  if (x <= lo) return 0.0f;
  if (x > hi) return 1.0f;
  return w <= 1 ? 1.0f : static_cast<float>((x - (c - 0.5)) / (w - 1) + 0.5);
}

}  // namespace sx::io
