// The DICOM reader's decoding (see dicom.h, steps 1-3): GDCM decodes the pixel data after the
// header and codestream checks, the stored bits are kept or sign-extended, the rescale or modality
// LUT gives modality values; read_dicom_for_size decodes JPEG 2000 at a coarser resolution level.
#include <gdcmByteValue.h>
#include <gdcmDataSet.h>
#include <gdcmFileMetaInformation.h>
#include <gdcmFragment.h>
#include <gdcmImage.h>
#include <gdcmImageReader.h>
#include <gdcmReader.h>
#include <gdcmSequenceOfFragments.h>
#include <gdcmTransferSyntax.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "io/dicom.h"
#include "io/dicom_internal.h"
#include "io/dicom_scan.h"
#include "io/j2k_reduced.h"
#include "tensor/errors.h"

namespace sx::io {
namespace {

using dicom_detail::apply_lut;
using dicom_detail::check_file_size;
using dicom_detail::check_pixel_element;
using dicom_detail::explain_read_failure;
using dicom_detail::fail;
using dicom_detail::header_signedness;
using dicom_detail::j2k_fragment_sign;
using dicom_detail::Lut;
using dicom_detail::parse_info;
using dicom_detail::read_lut;
using dicom_detail::scan_file;

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

}  // namespace sx::io
