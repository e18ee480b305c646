#include "io/dicom.h"

#include <gdcmByteValue.h>
#include <gdcmDataSet.h>
#include <gdcmFileMetaInformation.h>
#include <gdcmFragment.h>
#include <gdcmImage.h>
#include <gdcmExplicitDataElement.h>
#include <gdcmImageReader.h>
#include <gdcmImplicitDataElement.h>
#include <gdcmSequenceOfFragments.h>
#include <gdcmSequenceOfItems.h>
#include <gdcmTrace.h>
#include <gdcmTransferSyntax.h>
#include <gdcmUIDs.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <sstream>

#include "io/atomic_file.h"
#include "io/dicom_scan.h"
#include "io/j2k_reduced.h"
#include "io/jpeg_markers.h"
#include "tensor/errors.h"

namespace sx::io {
namespace {

const char* const kDeflate = "1.2.840.10008.1.2.1.99";

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

[[noreturn]] void fail(const std::string& path, const std::string& why) { throw IOError(path + ": " + why); }

struct Lut {
  int64_t first = 0;
  int bits = 16;
  std::vector<uint16_t> table;
};

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

// Size and components of a JPEG / JPEG-LS (SOF marker) or JPEG 2000 (SIZ marker) codestream, so a
// header that disagrees with its codestream is caught before a decoder fills a buffer of the wrong
// size. Returns false when the stream starts with neither (the decoder then has the last word).
bool codestream_size(const unsigned char* p, int64_t n, int* w, int* h, int* comps, int* precision) {
  auto be16 = [&](int64_t i) { return (p[i] << 8) | p[i + 1]; };
  auto be32 = [&](int64_t i) { return (uint32_t(p[i]) << 24) | (uint32_t(p[i + 1]) << 16) | (uint32_t(p[i + 2]) << 8) | p[i + 3]; };
  if (n >= 42 && p[0] == 0xFF && p[1] == 0x4F && p[2] == 0xFF && p[3] == 0x51) {
    const uint32_t xs = be32(8), ys = be32(12), xo = be32(16), yo = be32(20);
    if (xo > xs || yo > ys) return false;
    *w = static_cast<int>(std::min<uint32_t>(xs - xo, 1u << 30));
    *h = static_cast<int>(std::min<uint32_t>(ys - yo, 1u << 30));
    *comps = be16(40);
    *precision = n >= 43 ? (p[42] & 0x7F) + 1 : 0;
    return true;
  }
  if (n >= 4 && p[0] == 0xFF && p[1] == 0xD8) {
    JpegHeader jh;
    const std::string why = check_jpeg_markers(p, static_cast<size_t>(n), &jh);
    if (!why.empty()) throw IOError(why);
    *w = jh.width;
    *h = jh.height;
    *comps = jh.components;
    *precision = jh.precision;
    return true;
  }
  return false;
}

// Signedness and precision of a JPEG 2000 codestream (SIZ marker, first component's Ssiz: bit 7 =
// signed, bits 0-6 = precision - 1). False when the bytes are not a raw J2K codestream.
bool j2k_sign(const unsigned char* p, int64_t n, bool* is_signed, int* precision) {
  if (n < 43 || p[0] != 0xFF || p[1] != 0x4F || p[2] != 0xFF || p[3] != 0x51) return false;
  *is_signed = (p[42] & 0x80) != 0;
  *precision = (p[42] & 0x7F) + 1;
  return true;
}

// PixelRepresentation vs the JPEG 2000 codestream's signedness. Some encoders write an unsigned
// codestream for PixelRepresentation 1 (or the reverse). GDCM's decoder then hands back the
// codestream's reading of the bits (it switches its pixel format to the codestream's sign), e.g.
// 6192 where the value is -2000 (pydicom's J2K_pixelrep_mismatch.dcm: 13-bit codestream, 2^13
// apart). The rule here, as pydicom's J2K corrections (config.APPLY_J2K_CORRECTIONS): the DICOM
// header wins. The codestream's `precision` low bits are read as two's complement when
// PixelRepresentation is 1, as unsigned when it is 0; BitsStored is not used, the codestream
// decides the width as for any encapsulated value (step 2 in dicom.h). At precision 16 the two
// readings of a 16-bit word already agree; only narrower codestreams change. Returns the value for
// decoded value `v`.
int32_t header_signedness(int32_t v, int precision, bool header_signed) {
  const uint32_t bits = static_cast<uint32_t>(v) & ((precision >= 32 ? 0u : (1u << precision)) - 1u);
  if (header_signed && precision < 32 && (bits >> (precision - 1)) != 0)
    return static_cast<int32_t>(static_cast<int64_t>(bits) - (int64_t(1) << precision));
  return static_cast<int32_t>(bits);
}

// The first fragment of encapsulated JPEG 2000 pixel data, when it is a raw codestream: its
// signedness and precision (see header_signedness). False otherwise (not J2K, or a JP2 wrapper).
bool j2k_fragment_sign(const gdcm::File& file, const DicomInfo& in, bool* is_signed, int* precision) {
  if (!in.encapsulated) return false;
  if (in.transfer_syntax_uid != "1.2.840.10008.1.2.4.90" && in.transfer_syntax_uid != "1.2.840.10008.1.2.4.91")
    return false;
  const gdcm::SequenceOfFragments* sf =
      file.GetDataSet().GetDataElement(gdcm::Tag(0x7fe0, 0x0010)).GetSequenceOfFragments();
  if (!sf || sf->GetNumberOfFragments() == 0) return false;
  const gdcm::ByteValue* bv = sf->GetFragment(0).GetByteValue();
  if (!bv || !bv->GetPointer()) return false;
  return j2k_sign(reinterpret_cast<const unsigned char*>(bv->GetPointer()), bv->GetLength(), is_signed, precision);
}

// The checks that must pass before decoding: the pixel data holds what the header promises.
void check_pixel_element(const gdcm::File& file, const DicomInfo& in, int64_t ds_offset) {
  const gdcm::DataElement& pde = file.GetDataSet().GetDataElement(gdcm::Tag(0x7fe0, 0x0010));
  const int64_t need = int64_t(in.rows) * in.columns * (in.bits_allocated / 8);
  const gdcm::SequenceOfFragments* sf = pde.GetSequenceOfFragments();
  if (in.encapsulated) {
    if (!sf || sf->GetNumberOfFragments() == 0) fail(in.path, "encapsulated pixel data has no fragments");
    uint64_t total = 0;
    for (unsigned i = 0; i < sf->GetNumberOfFragments(); ++i) total += sf->GetFragment(i).GetVL();
    if (total < 4) fail(in.path, "encapsulated pixel data is empty (" + std::to_string(total) + " bytes)");
    const std::string& ts = in.transfer_syntax_uid;
    const bool jpeg_family = ts.rfind("1.2.840.10008.1.2.4.", 0) == 0;  // JPEG, JPEG-LS, JPEG 2000
    if (jpeg_family) {
      const gdcm::ByteValue* first = sf->GetFragment(0).GetByteValue();
      int w = 0, h = 0, comps = 0, prec = 0;
      bool known = false;
      try {
        known = first && first->GetPointer() &&
                codestream_size(reinterpret_cast<const unsigned char*>(first->GetPointer()), first->GetLength(), &w, &h, &comps, &prec);
      } catch (const IOError& e) {
        fail(in.path, std::string("compressed pixel data is corrupt: ") + e.what());
      }
      if (known) {
        // GDCM picks its decoder by precision and crashes on impossible ones: check them here.
        if (prec < 2 || prec > in.bits_allocated)
          fail(in.path, "corrupt codestream: precision " + std::to_string(prec) + " bits with BitsAllocated " +
                            std::to_string(in.bits_allocated));
        if (comps != 1)
          fail(in.path, "colour codestream (" + std::to_string(comps) + " components); a single grey frame is expected");
        if (w != in.columns || h != in.rows)
          fail(in.path, "the codestream is " + std::to_string(w) + " x " + std::to_string(h) + " (width x height) but the header says " +
                            std::to_string(in.columns) + " x " + std::to_string(in.rows));
      }
      const gdcm::Fragment& last = sf->GetFragment(sf->GetNumberOfFragments() - 1);
      const gdcm::ByteValue* bv = last.GetByteValue();
      if (!bv || !bv->GetPointer() || bv->GetLength() < 2) fail(in.path, "last pixel data fragment is empty");
      const auto* p = reinterpret_cast<const unsigned char*>(bv->GetPointer());
      const int64_t n = bv->GetLength();
      // The marker ends the stream; fragments are padded to even length (with 00, or FF by some
      // encoders), so it is looked for among the last few bytes.
      bool eoc = false;
      for (int64_t k = n - 2; k >= 0 && k >= n - 8 && !eoc; --k) eoc = p[k] == 0xFF && p[k + 1] == 0xD9;
      if (!eoc)
        fail(in.path, "compressed pixel data is truncated or corrupt (no end-of-codestream marker FFD9 in " +
                          in.transfer_syntax_name + ")");
    }
  } else {
    const gdcm::ByteValue* bv = pde.GetByteValue();
    if (!bv) fail(in.path, "pixel data element holds no bytes");
    // GDCM pads a value cut by the end of the file, so the data set's encoded length is compared
    // with the file size (not for deflate, whose data set is compressed).
    if (in.transfer_syntax_uid != "1.2.840.10008.1.2.1.99") {
      struct stat st;
      if (::stat(in.path.c_str(), &st) == 0) {
        const gdcm::TransferSyntax ts = file.GetHeader().GetDataSetTransferSyntax();
        const uint64_t ds_len = ts.IsImplicit() ? static_cast<uint64_t>(file.GetDataSet().GetLength<gdcm::ImplicitDataElement>())
                                                : static_cast<uint64_t>(file.GetDataSet().GetLength<gdcm::ExplicitDataElement>());
        if (static_cast<uint64_t>(st.st_size) < static_cast<uint64_t>(ds_offset) + ds_len)
          fail(in.path, "truncated file: " + std::to_string(st.st_size) + " bytes, its elements need " +
                            std::to_string(ds_offset + ds_len) + " (truncated pixel data)");
      }
    }
    if (static_cast<int64_t>(bv->GetLength()) < need)
      fail(in.path, "truncated pixel data: " + std::to_string(bv->GetLength()) + " bytes, the header needs " +
                        std::to_string(need) + " (" + std::to_string(in.rows) + " x " + std::to_string(in.columns) +
                        " x " + std::to_string(in.bits_allocated / 8) + ")");
  }
}

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

struct Decoded {
  DicomInfo info;
  std::vector<int32_t> stored;
  const gdcm::File* file = nullptr;
};

// Reads, validates and decodes; fills stored values (step 2 of the pipeline).
void decode(const std::string& path, const DicomLimits& lim, gdcm::ImageReader& reader, Decoded& out) {
  const int64_t fsize = check_file_size(path, lim);
  const DicomScan scan = scan_file(path, fsize, false);
  const int64_t ds_offset = scan.dataset_offset;
  {
    // A plain read first: header values and codestream headers are validated before
    // gdcm::ImageReader, which asserts on some of them while reading (SamplesPerPixel > 4, a
    // corrupt JPEG header met in its lossy-flag probe, ...).
    gdcm::Reader plain;
    plain.SetFileName(path.c_str());
    bool pok = false;
    try {
      pok = plain.Read();
    } catch (const std::exception& e) {
      fail(path, std::string("not a readable DICOM file (") + e.what() + ")");
    }
    if (!pok) explain_read_failure(plain.GetFile(), path);
    DicomInfo pre = parse_info(plain.GetFile(), path, lim, scan.reached_pixel_data);
    check_pixel_element(plain.GetFile(), pre, ds_offset);
  }
  reader.SetFileName(path.c_str());
  bool ok = false;
  try {
    ok = reader.Read();
  } catch (const std::exception& e) {
    fail(path, std::string("not a readable DICOM file (") + e.what() + ")");
  }
  if (!ok) explain_read_failure(reader.GetFile(), path);
  DicomInfo in = parse_info(reader.GetFile(), path, lim, reader.GetFile().GetDataSet().FindDataElement(gdcm::Tag(0x7fe0, 0x0010)));
  check_pixel_element(reader.GetFile(), in, ds_offset);

  const gdcm::Image& image = reader.GetImage();
  const gdcm::PixelFormat& pf = image.GetPixelFormat();
  const unsigned int* dims = image.GetDimensions();
  if (image.GetNumberOfDimensions() < 2 || dims[0] != static_cast<unsigned>(in.columns) ||
      dims[1] != static_cast<unsigned>(in.rows))
    fail(path, "GDCM's image dimensions disagree with Rows/Columns");
  if (pf.GetSamplesPerPixel() != 1) fail(path, "colour image (SamplesPerPixel " + std::to_string(pf.GetSamplesPerPixel()) + ")");
  const int gba = pf.GetBitsAllocated();
  if (gba != in.bits_allocated) fail(path, "GDCM's BitsAllocated " + std::to_string(gba) + " disagrees with the header");
  const int64_t npx = int64_t(in.rows) * in.columns;
  const uint64_t expect = static_cast<uint64_t>(npx) * (gba / 8);
  const unsigned long len = image.GetBufferLength();
  if (len != expect)
    fail(path, "decoded size would be " + std::to_string(len) + " bytes, expected " + std::to_string(expect));
  std::vector<char> buf(len);
  bool got = false;
  try {
    got = image.GetBuffer(buf.data());
  } catch (const std::exception& e) {
    fail(path, std::string("cannot decode pixel data (") + e.what() + ")");
  }
  if (!got) fail(path, "cannot decode pixel data (" + in.transfer_syntax_name + "): corrupt or truncated");

  // Step 2: stored bits.
  const bool is_signed = in.pixel_representation == 1;
  // A JPEG 2000 codestream whose signedness disagrees with the header: the header wins (see
  // header_signedness). check_pixel_element made sure its precision is <= BitsAllocated.
  bool j2k_signed = false;
  int j2k_prec = 0;
  const bool sign_fix = j2k_fragment_sign(reader.GetFile(), in, &j2k_signed, &j2k_prec) && j2k_signed != is_signed &&
                        j2k_prec >= 2 && j2k_prec <= gba;
  const int bs = in.bits_stored, shift = in.high_bit + 1 - in.bits_stored;
  const uint32_t mask = bs >= 32 ? 0xffffffffu : ((1u << bs) - 1);
  out.stored.resize(static_cast<size_t>(npx));
  int32_t* dst = out.stored.data();
  bool widened = false;
  const int64_t lo_s = is_signed ? -(int64_t(1) << (bs - 1)) : 0;
  const int64_t hi_s = is_signed ? (int64_t(1) << (bs - 1)) - 1 : (int64_t(1) << bs) - 1;
  for (int64_t i = 0; i < npx; ++i) {
    uint32_t raw;
    int32_t as_signed;
    if (gba == 16) {
      uint16_t u;
      std::memcpy(&u, buf.data() + 2 * i, 2);
      raw = u;
      as_signed = static_cast<int16_t>(u);
    } else {
      raw = static_cast<uint8_t>(buf[i]);
      as_signed = static_cast<int8_t>(buf[i]);
    }
    int32_t v;
    if (in.encapsulated) {
      // The codec is authoritative: no masking, the decoded value is kept (read with the header's
      // signedness when the codestream's differs).
      if (sign_fix) v = header_signedness(static_cast<int32_t>(raw), j2k_prec, is_signed);
      else v = is_signed ? as_signed : static_cast<int32_t>(raw);
      if (v < lo_s || v > hi_s) widened = true;
    } else {
      uint32_t s = (raw >> shift) & mask;
      v = static_cast<int32_t>(s);
      if (is_signed && bs < 32 && (s & (1u << (bs - 1)))) v = static_cast<int32_t>(static_cast<int64_t>(s) - (int64_t(1) << bs));
    }
    dst[i] = v;
  }
  in.bits_widened = widened;
  in.j2k_sign_mismatch = sign_fix;
  out.info = in;
  out.file = &reader.GetFile();
}

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
  const DicomScan scan = scan_file(path, check_file_size(path, lim), true);
  return read_header(path, lim, scan.reached_pixel_data, scan.transfer_syntax == kDeflate);
}

std::vector<int32_t> read_dicom_stored(const std::string& path, DicomInfo* info, const DicomLimits& lim) {
  gdcm::ImageReader reader;
  Decoded d;
  decode(path, lim, reader, d);
  if (info) *info = d.info;
  return std::move(d.stored);
}

namespace {

// Steps 3 (rescale / modality LUT) and the VOI LUT lookup, shared by the full and reduced decoders.
DicomImage finish_image(Decoded& d, const std::string& path) {
  DicomImage img;
  img.info = d.info;
  const DicomInfo& in = img.info;
  const gdcm::DataSet& ds = d.file->GetDataSet();
  const bool be = d.file->GetHeader().GetDataSetTransferSyntax().GetSwapCode() == gdcm::SwapCode::BigEndian;
  const bool is_signed = in.pixel_representation == 1;
  const int bs = in.bits_widened ? in.bits_allocated : in.bits_stored;
  double lo = is_signed ? -std::ldexp(1.0, bs - 1) : 0.0;
  double hi = is_signed ? std::ldexp(1.0, bs - 1) - 1 : std::ldexp(1.0, bs) - 1;

  const size_t n = d.stored.size();
  img.values.resize(n);
  float* v = img.values.data();
  const int32_t* s = d.stored.data();
  Lut mlut;
  if (in.has_modality_lut && read_lut(ds, 0x3000, be, is_signed, path, &mlut)) {
    for (size_t i = 0; i < n; ++i) v[i] = apply_lut(mlut, s[i]);
    lo = 0;
    hi = std::ldexp(1.0, mlut.bits) - 1;
  } else {
    const float slope = static_cast<float>(in.rescale_slope), icpt = static_cast<float>(in.rescale_intercept);
    if (slope == 1.0f && icpt == 0.0f) {
      for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(s[i]);
    } else {
      for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(s[i]) * slope + icpt;
    }
    double a = lo * in.rescale_slope + in.rescale_intercept, b = hi * in.rescale_slope + in.rescale_intercept;
    lo = std::min(a, b);
    hi = std::max(a, b);
  }
  img.range_lo = lo;
  img.range_hi = hi;
  if (n) {
    auto mm = std::minmax_element(v, v + n);
    img.min_value = *mm.first;
    img.max_value = *mm.second;
  }
  Lut vlut;
  if (in.has_voi_lut && read_lut(ds, 0x3010, be, is_signed || in.rescale_intercept < 0, path, &vlut)) {
    img.voi_first = vlut.first;
    img.voi_bits = vlut.bits;
    img.voi_lut = std::move(vlut.table);
  }
  return img;
}

}  // namespace

DicomImage read_dicom(const std::string& path, const DicomLimits& lim) {
  gdcm::ImageReader reader;
  Decoded d;
  decode(path, lim, reader, d);
  DicomImage img = finish_image(d, path);
  img.full_rows = img.info.rows;
  img.full_columns = img.info.columns;
  return img;
}

DicomImage read_dicom_for_size(const std::string& path, int max_side, const DicomLimits& lim) {
  SX_CHECK(max_side > 0, "read_dicom_for_size: max_side must be positive, got ", max_side);
  if (j2k_reduced_available()) {
    const int64_t fsize = check_file_size(path, lim);
    const DicomScan scan = scan_file(path, fsize, false);
    if (scan.transfer_syntax == "1.2.840.10008.1.2.4.90" || scan.transfer_syntax == "1.2.840.10008.1.2.4.91") {
      gdcm::Reader reader;
      reader.SetFileName(path.c_str());
      bool ok = false;
      try {
        ok = reader.Read();
      } catch (const std::exception&) {
        ok = false;
      }
      if (ok) {
        DicomInfo in = parse_info(reader.GetFile(), path, lim, scan.reached_pixel_data);
        check_pixel_element(reader.GetFile(), in, scan.dataset_offset);
        // The final size (longest side max_side, never enlarged), and the coarsest resolution level
        // still at least that large.
        const double sc = std::min(1.0, static_cast<double>(max_side) / std::max(in.rows, in.columns));
        const int64_t tw = std::max<int64_t>(1, std::llround(in.columns * sc)), th = std::max<int64_t>(1, std::llround(in.rows * sc));
        int r = 0;
        while (r < 8 && ((int64_t(in.columns) + (int64_t(1) << (r + 1)) - 1) >> (r + 1)) >= tw &&
               ((int64_t(in.rows) + (int64_t(1) << (r + 1)) - 1) >> (r + 1)) >= th)
          ++r;
        const gdcm::SequenceOfFragments* sf =
            reader.GetFile().GetDataSet().GetDataElement(gdcm::Tag(0x7fe0, 0x0010)).GetSequenceOfFragments();
        // A codestream whose signedness disagrees with PixelRepresentation is decoded in full: its
        // wavelet bands average the codestream's values, which wrap where the header's values change
        // sign, so no coarse level holds the right picture (the full decode fixes each value).
        bool j2k_signed = false;
        int j2k_prec = 0;
        if (j2k_fragment_sign(reader.GetFile(), in, &j2k_signed, &j2k_prec) && j2k_signed != (in.pixel_representation == 1))
          r = 0;
        if (r > 0 && sf) {
          std::vector<uint8_t> cs;
          for (unsigned i = 0; i < sf->GetNumberOfFragments(); ++i) {
            const gdcm::ByteValue* bv = sf->GetFragment(i).GetByteValue();
            if (bv && bv->GetPointer()) cs.insert(cs.end(), bv->GetPointer(), bv->GetPointer() + bv->GetLength());
          }
          J2kImage j;
          if (j2k_decode_reduced(cs.data(), cs.size(), r, &j) && j.full_width == in.columns && j.full_height == in.rows) {
            Decoded d;
            d.info = in;
            d.info.rows = j.height;
            d.info.columns = j.width;
            const bool sg = in.pixel_representation == 1;
            const int bs = in.bits_stored;
            const int64_t lo = sg ? -(int64_t(1) << (bs - 1)) : 0, hi = sg ? (int64_t(1) << (bs - 1)) - 1 : (int64_t(1) << bs) - 1;
            bool widened = false;
            for (int32_t v : j.values) widened |= v < lo || v > hi;
            d.info.bits_widened = widened;
            d.stored = std::move(j.values);
            d.file = &reader.GetFile();
            DicomImage img = finish_image(d, path);
            img.full_rows = in.rows;
            img.full_columns = in.columns;
            img.reduce = r;
            return img;
          }
        }
      }
    }
  }
  return read_dicom(path, lim);
}

// ---- windowing -------------------------------------------------------------------------------

WindowMode parse_window_mode(const std::string& s) {
  if (s == "none") return WindowMode::None;
  if (s == "dicom") return WindowMode::Dicom;
  if (s == "minmax" || s == "min-max") return WindowMode::MinMax;
  if (s == "percentile") return WindowMode::Percentile;
  SX_THROW(ValueError, "unknown windowing '", s, "' (expected none, dicom, minmax or percentile)");
}

const char* window_mode_name(WindowMode m) {
  switch (m) {
    case WindowMode::None: return "none";
    case WindowMode::Dicom: return "dicom";
    case WindowMode::MinMax: return "minmax";
    case WindowMode::Percentile: return "percentile";
  }
  return "?";
}

std::vector<float> window_image(const DicomImage& img, const WindowOptions& opt, WindowUsed* used) {
  const size_t n = img.values.size();
  std::vector<float> out(n);
  const float* v = img.values.data();
  WindowUsed u;
  auto linear = [&](double lo, double hi) {
    const double w = hi - lo;
    const float a = w > 0 ? static_cast<float>(1.0 / w) : 0.0f, b = static_cast<float>(lo);
    for (size_t i = 0; i < n; ++i) {
      float t = (v[i] - b) * a;
      out[i] = t < 0 ? 0.0f : (t > 1 ? 1.0f : t);
    }
    u.center = (lo + hi) / 2;
    u.width = w;
  };
  switch (opt.mode) {
    case WindowMode::None:
      linear(img.range_lo, img.range_hi);
      u.source = "none";
      break;
    case WindowMode::MinMax:
      linear(img.min_value, img.max_value);
      u.source = "min-max";
      break;
    case WindowMode::Percentile: {
      SX_CHECK(opt.pct_low >= 0 && opt.pct_low < opt.pct_high && opt.pct_high <= 100, "window: percentiles must satisfy 0 <= low < high <= 100, got ",
               opt.pct_low, ", ", opt.pct_high);
      // On a strided sample of at most ~1M values (enough for a percentile of a radiograph).
      std::vector<float> s;
      size_t step = std::max<size_t>(1, n / (1u << 20));
      s.reserve(n / step + 1);
      for (size_t i = 0; i < n; i += step) s.push_back(v[i]);
      double lo = img.min_value, hi = img.max_value;
      if (!s.empty()) {
        size_t kl = static_cast<size_t>(opt.pct_low / 100.0 * (s.size() - 1));
        size_t kh = static_cast<size_t>(opt.pct_high / 100.0 * (s.size() - 1));
        std::nth_element(s.begin(), s.begin() + kl, s.end());
        lo = s[kl];
        std::nth_element(s.begin(), s.begin() + kh, s.end());
        hi = s[kh];
      }
      linear(lo, hi);
      u.source = "percentile";
      break;
    }
    case WindowMode::Dicom:
      if (!img.voi_lut.empty()) {
        const double scale = 1.0 / (std::ldexp(1.0, img.voi_bits) - 1);
        const int64_t last = static_cast<int64_t>(img.voi_lut.size()) - 1;
        for (size_t i = 0; i < n; ++i) {
          int64_t k = static_cast<int64_t>(std::floor(v[i])) - img.voi_first;
          k = k < 0 ? 0 : (k > last ? last : k);
          out[i] = static_cast<float>(std::min(1.0, img.voi_lut[k] * scale));
        }
        u.source = "voi-lut";
        u.center = img.voi_first + img.voi_lut.size() / 2.0;
        u.width = static_cast<double>(img.voi_lut.size());
      } else if (img.info.has_window) {
        const double c = img.info.window_center, w = img.info.window_width;
        for (size_t i = 0; i < n; ++i) out[i] = dicom_window(v[i], c, w);
        u.center = c;
        u.width = w;
        u.source = "dicom";
      } else {
        linear(img.min_value, img.max_value);
        u.source = "min-max (no window tags)";
      }
      break;
  }
  if (img.info.monochrome1())
    for (size_t i = 0; i < n; ++i) out[i] = 1.0f - out[i];
  if (used) *used = u;
  return out;
}

}  // namespace sx::io
