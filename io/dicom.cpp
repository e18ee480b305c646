// The DICOM reader's header side (see dicom.h): raw element access (explicit, so malformed values
// can never trip a GDCM assertion), Modality/VOI LUT sequences, the header fields of DicomInfo with
// their validation, the file checks run before GDCM parses a file, and read_dicom_info. The pixel
// data: io/dicom_codestream.cpp and io/dicom_decode.cpp; windowing: io/dicom_window.cpp.
#include "io/dicom.h"

#include <gdcmByteValue.h>
#include <gdcmDataSet.h>
#include <gdcmFileMetaInformation.h>
#include <gdcmReader.h>
#include <gdcmSequenceOfItems.h>
#include <gdcmTrace.h>
#include <gdcmTransferSyntax.h>
#include <gdcmUIDs.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <sstream>

#include "io/atomic_file.h"
#include "io/dicom_internal.h"
#include "io/dicom_scan.h"
#include "tensor/errors.h"

namespace sx::io::dicom_detail {
namespace {

// Library code never prints: GDCM's warnings (to stderr by default) are switched off once.
void quiet_gdcm() {
  static std::once_flag once;
  std::call_once(once, [] {
    gdcm::Trace::SetWarning(false);
    gdcm::Trace::SetDebug(false);
    gdcm::Trace::SetError(false);
  });
}

// ---- raw element access (explicit, so malformed values can never trip a GDCM assertion) --------

std::string trim_dicom(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  size_t a = 0;
  while (a < s.size() && s[a] == ' ') ++a;
  return s.substr(a);
}

const gdcm::ByteValue* byte_value(const gdcm::DataSet& ds, uint16_t g, uint16_t e) {
  const gdcm::Tag t(g, e);
  if (!ds.FindDataElement(t)) return nullptr;
  const gdcm::DataElement& de = ds.GetDataElement(t);
  if (de.IsEmpty()) return nullptr;
  return de.GetByteValue();
}

std::string get_string(const gdcm::DataSet& ds, uint16_t g, uint16_t e) {
  const gdcm::ByteValue* bv = byte_value(ds, g, e);
  if (!bv || !bv->GetPointer()) return "";
  return trim_dicom(std::string(bv->GetPointer(), bv->GetLength()));
}

// k-th value of a backslash-separated DS/IS string.
bool get_number(const gdcm::DataSet& ds, uint16_t g, uint16_t e, double* out, int k = 0) {
  std::string s = get_string(ds, g, e);
  if (s.empty()) return false;
  size_t pos = 0;
  for (int i = 0; i < k; ++i) {
    pos = s.find('\\', pos);
    if (pos == std::string::npos) return false;
    ++pos;
  }
  std::string v = trim_dicom(s.substr(pos, s.find('\\', pos) - pos));
  while (!v.empty() && v[0] == ' ') v.erase(0, 1);
  if (v.empty()) return false;
  char* end = nullptr;
  double d = std::strtod(v.c_str(), &end);
  if (end == v.c_str() || !std::isfinite(d)) return false;
  *out = d;
  return true;
}

// GDCM's reader byte-swaps binary values of big-endian files into little-endian order in memory,
// so binary values are always read as little endian here (`big_endian` is kept for clarity).
uint16_t load_u16(const char* p, bool /*big_endian*/) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(b[0] | (b[1] << 8));
}

// k-th value of a US/SS element (binary).
bool get_u16(const gdcm::DataSet& ds, uint16_t g, uint16_t e, bool big_endian, int* out, int k = 0) {
  const gdcm::ByteValue* bv = byte_value(ds, g, e);
  if (!bv || !bv->GetPointer() || bv->GetLength() < static_cast<uint32_t>(2 * (k + 1))) return false;
  *out = load_u16(bv->GetPointer() + 2 * k, big_endian);
  return true;
}

}  // namespace

[[noreturn]] void fail(const std::string& path, const std::string& why) { throw IOError(path + ": " + why); }

// First item of a Modality/VOI LUT sequence: LUT Descriptor (0028,3002) + LUT Data (0028,3006).
bool read_lut(const gdcm::DataSet& ds, uint16_t seq_elem, bool big_endian, bool first_signed, const std::string& path,
              Lut* lut) {
  const gdcm::Tag t(0x0028, seq_elem);
  if (!ds.FindDataElement(t)) return false;
  gdcm::SmartPointer<gdcm::SequenceOfItems> sq = ds.GetDataElement(t).GetValueAsSQ();
  if (!sq || sq->GetNumberOfItems() == 0) return false;
  const gdcm::DataSet& item = sq->GetItem(1).GetNestedDataSet();
  int n = 0, first = 0, bits = 0;
  if (!get_u16(item, 0x0028, 0x3002, big_endian, &n, 0) || !get_u16(item, 0x0028, 0x3002, big_endian, &first, 1) ||
      !get_u16(item, 0x0028, 0x3002, big_endian, &bits, 2))
    fail(path, "LUT sequence (0028," + std::to_string(seq_elem) + ") has no valid LUT Descriptor");
  int64_t entries = n == 0 ? 65536 : n;
  const gdcm::ByteValue* data = byte_value(item, 0x0028, 0x3006);
  if (!data || !data->GetPointer()) fail(path, "LUT sequence has no LUT Data");
  if (bits < 1 || bits > 16) fail(path, "LUT Descriptor says " + std::to_string(bits) + " bits per entry");
  if (static_cast<int64_t>(data->GetLength()) < 2 * entries)
    fail(path, "LUT Data holds " + std::to_string(data->GetLength()) + " bytes, the descriptor needs " +
                   std::to_string(2 * entries));
  lut->first = first_signed ? static_cast<int16_t>(first) : first;
  lut->bits = bits;
  lut->table.resize(static_cast<size_t>(entries));
  for (int64_t i = 0; i < entries; ++i) lut->table[i] = load_u16(data->GetPointer() + 2 * i, big_endian);
  return true;
}

float apply_lut(const Lut& lut, double v) {
  int64_t i = static_cast<int64_t>(std::floor(v)) - lut.first;
  i = std::min<int64_t>(std::max<int64_t>(i, 0), static_cast<int64_t>(lut.table.size()) - 1);
  return lut.table[i];
}

// Header fields from the data set; does not touch pixel data.
DicomInfo parse_info(const gdcm::File& file, const std::string& path, const DicomLimits& lim, bool has_pixel_data) {
  const gdcm::DataSet& ds = file.GetDataSet();
  const gdcm::FileMetaInformation& fmi = file.GetHeader();
  gdcm::TransferSyntax ts = fmi.GetDataSetTransferSyntax();
  DicomInfo in;
  in.path = path;
  in.transfer_syntax_uid = gdcm::TransferSyntax::GetTSString(ts) ? gdcm::TransferSyntax::GetTSString(ts) : "";
  {
    gdcm::UIDs uid;  // GDCM's name table, e.g. "JPEG 2000 Image Compression (Lossless Only)"
    if (!in.transfer_syntax_uid.empty() && uid.SetFromUID(in.transfer_syntax_uid.c_str()) && uid.GetName())
      in.transfer_syntax_name = uid.GetName();
    else
      in.transfer_syntax_name = in.transfer_syntax_uid;
  }
  if (in.transfer_syntax_uid.empty()) in.transfer_syntax_uid = get_string(fmi, 0x0002, 0x0010);
  in.encapsulated = ts.IsEncapsulated();
  const bool be = ts.GetSwapCode() == gdcm::SwapCode::BigEndian;

  if (!has_pixel_data) fail(path, "no pixel data (7FE0,0010)");
  int rows = 0, cols = 0, ba = 0, bs = 0, hb = 0, pr = 0, spp = 1;
  if (!get_u16(ds, 0x0028, 0x0010, be, &rows) || !get_u16(ds, 0x0028, 0x0011, be, &cols))
    fail(path, "missing Rows/Columns");
  if (!get_u16(ds, 0x0028, 0x0100, be, &ba)) fail(path, "missing BitsAllocated");
  if (!get_u16(ds, 0x0028, 0x0101, be, &bs)) bs = ba;
  if (!get_u16(ds, 0x0028, 0x0102, be, &hb)) hb = bs - 1;
  get_u16(ds, 0x0028, 0x0103, be, &pr);
  get_u16(ds, 0x0028, 0x0002, be, &spp);
  in.rows = rows;
  in.columns = cols;
  in.bits_allocated = ba;
  in.bits_stored = bs;
  in.high_bit = hb;
  in.pixel_representation = pr;
  in.samples_per_pixel = spp;
  double frames = 1;
  if (get_number(ds, 0x0028, 0x0008, &frames)) in.number_of_frames = static_cast<int>(frames);
  in.photometric = get_string(ds, 0x0028, 0x0004);

  if (spp != 1 || (in.photometric != "MONOCHROME1" && in.photometric != "MONOCHROME2"))
    fail(path, "colour image (PhotometricInterpretation '" + in.photometric + "', SamplesPerPixel " +
                   std::to_string(spp) + "); a single grey frame is expected");
  if (in.number_of_frames != 1)
    fail(path, "multi-frame image (" + std::to_string(in.number_of_frames) + " frames); a single grey frame is expected");
  if (ba != 8 && ba != 16) fail(path, "BitsAllocated " + std::to_string(ba) + " is not supported (8 or 16)");
  if (bs < 1 || bs > ba || hb < bs - 1 || hb >= ba)
    fail(path, "inconsistent pixel format: BitsAllocated " + std::to_string(ba) + ", BitsStored " + std::to_string(bs) +
                   ", HighBit " + std::to_string(hb));
  if (pr != 0 && pr != 1) fail(path, "PixelRepresentation " + std::to_string(pr) + " (expected 0 or 1)");
  const int64_t r64 = rows, c64 = cols;
  if (r64 <= 0 || c64 <= 0) fail(path, "image has no pixels (" + std::to_string(rows) + " x " + std::to_string(cols) + ")");
  if (r64 > lim.max_side || c64 > lim.max_side || r64 * c64 > lim.max_pixels)
    fail(path, "image of " + std::to_string(rows) + " x " + std::to_string(cols) + " is beyond the limit (" +
                   std::to_string(lim.max_side) + " per side, " + std::to_string(lim.max_pixels) + " pixels)");

  double a = 0, b = 0;
  if (get_number(ds, 0x0028, 0x0030, &a, 0) && get_number(ds, 0x0028, 0x0030, &b, 1)) {
    in.has_pixel_spacing = true;
    in.pixel_spacing_row = a;
    in.pixel_spacing_col = b;
  } else if (get_number(ds, 0x0018, 0x1164, &a, 0) && get_number(ds, 0x0018, 0x1164, &b, 1)) {
    in.has_pixel_spacing = true;  // Imager Pixel Spacing (CR/DX)
    in.pixel_spacing_row = a;
    in.pixel_spacing_col = b;
  }
  if (get_number(ds, 0x0028, 0x1050, &a) && get_number(ds, 0x0028, 0x1051, &b) && b > 0) {
    in.has_window = true;
    in.window_center = a;
    in.window_width = b;
  }
  if (get_number(ds, 0x0028, 0x1053, &a) && a != 0) in.rescale_slope = a;
  if (get_number(ds, 0x0028, 0x1052, &a)) in.rescale_intercept = a;
  in.has_modality_lut = ds.FindDataElement(gdcm::Tag(0x0028, 0x3000));
  in.has_voi_lut = ds.FindDataElement(gdcm::Tag(0x0028, 0x3010));
  in.sex = get_string(ds, 0x0010, 0x0040);
  in.age = get_string(ds, 0x0010, 0x1010);
  in.study_uid = get_string(ds, 0x0020, 0x000d);
  in.series_uid = get_string(ds, 0x0020, 0x000e);
  in.sop_uid = get_string(ds, 0x0008, 0x0018);
  in.sop_class_uid = get_string(ds, 0x0008, 0x0016);
  // The VinDr release's files carry the SOP Class UID only in the file meta (MediaStorageSOPClassUID).
  if (in.sop_class_uid.empty()) in.sop_class_uid = get_string(fmi, 0x0002, 0x0002);
  in.modality = get_string(ds, 0x0008, 0x0060);
  return in;
}

int64_t check_file_size(const std::string& path, const DicomLimits& lim) {
  quiet_gdcm();
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  if (st.st_size == 0) fail(path, "empty file (0 bytes), not DICOM");
  if (st.st_size > lim.max_file_bytes)
    fail(path, "file of " + std::to_string(st.st_size) + " bytes is beyond the limit of " +
                   std::to_string(lim.max_file_bytes));
  return static_cast<int64_t>(st.st_size);
}

// Structural check of the file before GDCM parses it (see dicom_scan.h). Header-only reads walk
// a prefix of the file up to the pixel data, and the whole file only when the prefix is too short.
DicomScan scan_file(const std::string& path, int64_t file_size, bool header_only) {
  if (header_only) {
    const int64_t prefix = std::min<int64_t>(file_size, 256 * 1024);
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail(path, std::string("cannot open: ") + std::strerror(errno));
    std::vector<unsigned char> b(static_cast<size_t>(prefix));
    size_t got = std::fread(b.data(), 1, b.size(), f);
    std::fclose(f);
    if (static_cast<int64_t>(got) != prefix) fail(path, "short read");
    if (prefix < file_size) {
      bool incomplete = false;
      DicomScan s = scan_dicom(b.data(), prefix, path, true, &incomplete);
      if (!incomplete && s.reached_pixel_data) return s;
    } else {
      return scan_dicom(b.data(), prefix, path, true);
    }
  }
  std::string bytes = read_file(path, static_cast<uint64_t>(file_size) + 1);
  return scan_dicom(reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int64_t>(bytes.size()), path,
                    header_only);
}

[[noreturn]] void explain_read_failure(const gdcm::File& f, const std::string& path) {
  const gdcm::DataSet& ds = f.GetDataSet();
  if (ds.IsEmpty()) fail(path, "not a DICOM file (GDCM could not parse it)");
  if (!ds.FindDataElement(gdcm::Tag(0x7fe0, 0x0010)))
    fail(path, "no pixel data (7FE0,0010), or the file is truncated before it");
  fail(path, "unreadable DICOM image (GDCM rejected the file: truncated, or a corrupt image module)");
}

namespace {

// Reads the header (up to the pixel data) with a plain gdcm::Reader and validates it. Runs before
// gdcm::ImageReader, which asserts on some values (SamplesPerPixel > 4, ...) instead of failing.
DicomInfo read_header(const std::string& path, const DicomLimits& lim, bool has_pixel_data, bool deflated) {
  gdcm::Reader reader;
  reader.SetFileName(path.c_str());
  std::set<gdcm::Tag> skip;
  skip.insert(gdcm::Tag(0x7fe0, 0x0010));
  bool ok = false;
  try {
    // GDCM cannot stop early inside a deflated data set: read it all then.
    ok = deflated ? reader.Read() : reader.ReadUpToTag(gdcm::Tag(0x7fe0, 0x0010), skip);
  } catch (const std::exception& e) {
    fail(path, std::string("not a readable DICOM file (") + e.what() + ")");
  }
  if (!ok) fail(path, "not a DICOM file, or its header is truncated or corrupt");
  if (reader.GetFile().GetDataSet().IsEmpty()) fail(path, "not a DICOM file");
  return parse_info(reader.GetFile(), path, lim, has_pixel_data);
}

}  // namespace
}  // namespace sx::io::dicom_detail

namespace sx::io {
namespace {

const char* const kDeflate = "1.2.840.10008.1.2.1.99";

}  // namespace

std::string DicomInfo::str() const {
  std::ostringstream os;
  os << "path: " << path << "\n"
     << "rows: " << rows << "\ncolumns: " << columns << "\n"
     << "bits_allocated: " << bits_allocated << "\nbits_stored: " << bits_stored << "\nhigh_bit: " << high_bit
     << "\npixel_representation: " << pixel_representation << (pixel_representation ? " (signed)" : " (unsigned)")
     << "\nphotometric: " << photometric << "\ntransfer_syntax: " << transfer_syntax_uid << " (" << transfer_syntax_name
     << ")\n";
  if (has_pixel_spacing) os << "pixel_spacing_mm: " << pixel_spacing_row << " x " << pixel_spacing_col << "\n";
  else os << "pixel_spacing_mm: (absent)\n";
  if (has_window) os << "window_center: " << window_center << "\nwindow_width: " << window_width << "\n";
  else os << "window: (absent)\n";
  if (has_voi_lut) os << "voi_lut: present\n";
  if (has_modality_lut) os << "modality_lut: present\n";
  os << "rescale_slope: " << rescale_slope << "\nrescale_intercept: " << rescale_intercept << "\n"
     << "sex: " << sex << "\nage: " << age << "\nmodality: " << (modality.empty() ? "(absent)" : modality) << "\n"
     << "sop_class_uid: " << sop_class_uid << "\nstudy_uid: " << study_uid << "\nseries_uid: " << series_uid
     << "\nsop_uid: " << sop_uid << "\n";
  if (bits_widened) os << "note: decoded values exceed BitsStored; stored range widened to BitsAllocated\n";
  if (j2k_sign_mismatch)
    os << "note: the JPEG 2000 codestream is " << (pixel_representation ? "unsigned" : "signed")
       << " but PixelRepresentation is " << pixel_representation << "; values read as the header says\n";
  return os.str();
}

DicomInfo read_dicom_info(const std::string& path, const DicomLimits& lim) {
  const DicomScan scan = dicom_detail::scan_file(path, dicom_detail::check_file_size(path, lim), true);
  return dicom_detail::read_header(path, lim, scan.reached_pixel_data, scan.transfer_syntax == kDeflate);
}

}  // namespace sx::io
