// The DICOM reader's checks of the pixel data before decoding (see dicom.h): the pixel data holds
// what the header promises. A JPEG / JPEG-LS / JPEG 2000 codestream must agree with the header in
// size, components and precision and end with its end marker; native pixel data must be as long as
// the header needs. And the signedness of a JPEG 2000 codestream against PixelRepresentation.
#include <gdcmByteValue.h>
#include <gdcmDataSet.h>
#include <gdcmExplicitDataElement.h>
#include <gdcmFileMetaInformation.h>
#include <gdcmFragment.h>
#include <gdcmImplicitDataElement.h>
#include <gdcmSequenceOfFragments.h>
#include <gdcmTransferSyntax.h>
#include <sys/stat.h>

#include <algorithm>
#include <string>

#include "io/dicom_internal.h"
#include "io/jpeg_markers.h"
#include "tensor/errors.h"

namespace sx::io::dicom_detail {
namespace {

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

}  // namespace

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

}  // namespace sx::io::dicom_detail
