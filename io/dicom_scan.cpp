#include "io/dicom_scan.h"

#include <zlib.h>

#include <cstring>
#include <vector>

#include "tensor/errors.h"

namespace sx::io {
namespace {

struct Incomplete {};  // thrown when the prefix buffer ends before the pixel data (header reads)

enum class Enc { ExplicitLE, ImplicitLE, ExplicitBE };

bool valid_vr(const unsigned char* p) {
  static const char* const kVrs[] = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD",
                                     "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI",
                                     "UL", "UN", "UR", "US", "UT", "UV"};
  for (const char* v : kVrs)
    if (p[0] == static_cast<unsigned char>(v[0]) && p[1] == static_cast<unsigned char>(v[1])) return true;
  return false;
}

bool long_vr(const unsigned char* p) {
  static const char* const kLong[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"};
  for (const char* v : kLong)
    if (p[0] == static_cast<unsigned char>(v[0]) && p[1] == static_cast<unsigned char>(v[1])) return true;
  return false;
}

class Walker {
 public:
  Walker(const unsigned char* d, int64_t n, std::string name, bool stop, bool prefix)
      : d_(d), n_(n), name_(std::move(name)), stop_(stop), prefix_(prefix) {}

  [[noreturn]] void bad(const std::string& why, int64_t at) {
    if (prefix_ && at >= n_ - 16) throw Incomplete{};
    throw IOError(name_ + ": " + why + " (offset " + std::to_string(at) + ")");
  }
  void need(int64_t pos, int64_t k, const char* what) {
    if (pos < 0 || k < 0 || pos + k > n_) {
      if (prefix_) throw Incomplete{};
      bad(std::string("truncated file: ") + what + " runs past the end of the file", pos);
    }
  }
  uint16_t u16(int64_t p, bool be) const {
    return be ? static_cast<uint16_t>((d_[p] << 8) | d_[p + 1]) : static_cast<uint16_t>(d_[p] | (d_[p + 1] << 8));
  }
  uint32_t u32(int64_t p, bool be) const {
    return be ? (uint32_t(d_[p]) << 24) | (uint32_t(d_[p + 1]) << 16) | (uint32_t(d_[p + 2]) << 8) | d_[p + 3]
              : uint32_t(d_[p]) | (uint32_t(d_[p + 1]) << 8) | (uint32_t(d_[p + 2]) << 16) | (uint32_t(d_[p + 3]) << 24);
  }

  // Walks a data set in [pos, end) (end < 0: until an item delimiter, returned position after it).
  // Returns the position after the last element.
  int64_t dataset(int64_t pos, int64_t end, Enc enc, int depth, bool top) {
    if (depth > 24) bad("sequences nested too deeply", pos);
    const bool be = enc == Enc::ExplicitBE;
    for (;;) {
      if (end >= 0 && pos == end) return pos;
      if (end >= 0 && pos > end) bad("data element runs past the end of its item", pos);
      if (end < 0 && pos >= n_) {
        if (prefix_) throw Incomplete{};
        bad("truncated file: item without its delimiter", pos);
      }
      need(pos, 8, "a data element header");
      const uint16_t g = u16(pos, be), e = u16(pos + 2, be);
      if (g == 0xFFFE) {
        // Item delimiter ends an undefined-length item; anything else here is corrupt.
        if (e == 0xE00D && end < 0) return pos + 8;
        bad("unexpected item tag in a data set", pos);
      }
      if (top && g == 0x7FE0 && e == 0x0010 && enc != Enc::ImplicitLE) {
        // GDCM asserts on a pixel data element whose VR is not OB/OW: refuse it here.
        const unsigned char* vr = d_ + pos + 4;
        if (!(vr[0] == 'O' && (vr[1] == 'B' || vr[1] == 'W'))) bad("corrupt pixel data element: VR is not OB or OW", pos);
        need(pos, 12, "the pixel data element header");
      }
      if (top && stop_ && g == 0x7FE0 && e == 0x0010) {
        pixel_at_ = pos;
        return pos;
      }
      if (top && g == 0x7FE0 && e == 0x0010) pixel_at_ = pos;
      int64_t len, head;
      bool is_sq = false, implicit_nested = enc == Enc::ImplicitLE;
      if (enc == Enc::ImplicitLE) {
        len = u32(pos + 4, false);
        head = 8;
      } else {
        const unsigned char* vr = d_ + pos + 4;
        if (!valid_vr(vr)) bad("corrupt data element: invalid VR", pos);
        if (long_vr(vr)) {
          need(pos, 12, "a data element header");
          len = u32(pos + 8, be);
          head = 12;
        } else {
          len = u16(pos + 6, be);
          head = 8;
        }
        is_sq = vr[0] == 'S' && vr[1] == 'Q';
        if (vr[0] == 'U' && vr[1] == 'N' && len == 0xFFFFFFFFLL) implicit_nested = true, is_sq = true;
      }
      pos += head;
      if (len == 0xFFFFFFFFLL) {
        if (g == 0x7FE0 && e == 0x0010) {
          pos = fragments(pos);
        } else {
          // Undefined length: a sequence of items up to the sequence delimiter.
          pos = sequence(pos, -1, implicit_nested ? Enc::ImplicitLE : enc, depth);
        }
      } else {
        need(pos, len, "a data element value");
        if (is_sq) sequence(pos, pos + len, implicit_nested ? Enc::ImplicitLE : enc, depth);
        pos += len;
      }
    }
  }

  // Items of a sequence in [pos, end) or up to the sequence delimiter (end < 0).
  int64_t sequence(int64_t pos, int64_t end, Enc enc, int depth) {
    const bool be = enc == Enc::ExplicitBE;
    for (;;) {
      if (end >= 0 && pos == end) return pos;
      need(pos, 8, "a sequence item");
      const uint16_t g = u16(pos, be), e = u16(pos + 2, be);
      const int64_t len = u32(pos + 4, be);
      if (g != 0xFFFE) bad("corrupt sequence: expected an item tag", pos);
      if (e == 0xE0DD) {
        if (end >= 0) bad("sequence delimiter inside a defined-length sequence", pos);
        return pos + 8;
      }
      if (e != 0xE000) bad("corrupt sequence: expected an item tag", pos);
      pos += 8;
      if (len == 0xFFFFFFFFLL) {
        pos = dataset(pos, -1, enc, depth + 1, false);
      } else {
        need(pos, len, "a sequence item");
        dataset(pos, pos + len, enc, depth + 1, false);
        pos += len;
      }
      if (end >= 0 && pos > end) bad("sequence item runs past the end of its sequence", pos);
    }
  }

  // Encapsulated pixel data: items of defined length up to the sequence delimiter.
  int64_t fragments(int64_t pos) {
    int count = 0;
    for (;;) {
      need(pos, 8, "an encapsulated pixel data item");
      const uint16_t g = u16(pos, false), e = u16(pos + 2, false);
      const int64_t len = u32(pos + 4, false);
      if (g != 0xFFFE) bad("corrupt encapsulated pixel data: expected an item tag", pos);
      if (e == 0xE0DD) {
        if (count < 2) bad("encapsulated pixel data has no fragment", pos);
        return pos + 8;
      }
      if (e != 0xE000 || len == 0xFFFFFFFFLL) bad("corrupt encapsulated pixel data item", pos);
      if (count > 0 && len == 0) bad("empty pixel data fragment", pos);
      pos += 8;
      need(pos, len, "a pixel data fragment");
      pos += len;
      ++count;
    }
  }

  int64_t pixel_at_ = -1;

 private:
  const unsigned char* d_;
  int64_t n_;
  std::string name_;
  bool stop_, prefix_;
};

}  // namespace

DicomScan scan_dicom(const unsigned char* data, int64_t size, const std::string& name, bool stop_at_pixel_data,
                     bool* incomplete) {
  if (incomplete) *incomplete = false;
  DicomScan out;
  const bool prefix = incomplete != nullptr;
  Walker w(data, size, name, stop_at_pixel_data, prefix);
  try {
    int64_t pos = 0;
    const bool preamble = size >= 132 && std::memcmp(data + 128, "DICM", 4) == 0;
    if (preamble) pos = 132;
    // File meta group (explicit VR little endian), if present.
    int64_t meta_start = pos;
    while (pos + 8 <= size && w.u16(pos, false) == 0x0002) {
      const unsigned char* vr = data + pos + 4;
      if (!valid_vr(vr)) w.bad("corrupt file meta header: invalid VR", pos);
      int64_t len, head;
      if (long_vr(vr)) {
        w.need(pos, 12, "a file meta element");
        len = w.u32(pos + 8, false);
        head = 12;
      } else {
        len = w.u16(pos + 6, false);
        head = 8;
      }
      if (len == 0xFFFFFFFFLL) w.bad("file meta element with undefined length", pos);
      w.need(pos + head, len, "a file meta element");
      if (w.u16(pos + 2, false) == 0x0010) {
        std::string ts(reinterpret_cast<const char*>(data + pos + head), static_cast<size_t>(len));
        while (!ts.empty() && (ts.back() == '\0' || ts.back() == ' ')) ts.pop_back();
        out.transfer_syntax = ts;
      }
      pos += head + len;
    }
    if (preamble && pos == meta_start) w.bad("file meta header (group 0002) missing after the DICM marker", pos);
    if (pos >= size) {
      if (prefix && pos >= size) throw Incomplete{};
      w.bad(pos == 0 ? "empty file" : "truncated file: no data set after the file meta header", pos);
    }
    out.dataset_offset = pos;
    Enc enc = Enc::ExplicitLE;
    const std::string& ts = out.transfer_syntax;
    if (ts == "1.2.840.10008.1.2") enc = Enc::ImplicitLE;
    else if (ts == "1.2.840.10008.1.2.2") enc = Enc::ExplicitBE;
    else if (ts.empty()) {
      // No meta group: guess like GDCM does (a valid VR at byte 4 means explicit; a byte-swapped
      // small group number means big endian).
      w.need(pos, 8, "the first data element");
      const bool vr_ok = valid_vr(data + pos + 4);
      const uint16_t gle = w.u16(pos, false), gbe = w.u16(pos, true);
      enc = !vr_ok ? Enc::ImplicitLE : (gle > 0x00FF && gbe <= 0x00FF ? Enc::ExplicitBE : Enc::ExplicitLE);
    }
    if (ts == "1.2.840.10008.1.2.1.99") {
      // Deflate: inflate the whole rest (raw deflate) and walk it as explicit little endian.
      if (stop_at_pixel_data && prefix) {
        // A prefix cannot be inflated to the end; ask for the whole file.
        if (incomplete) *incomplete = true;
        return out;
      }
      z_stream z;
      std::memset(&z, 0, sizeof z);
      if (inflateInit2(&z, -15) != Z_OK) w.bad("cannot initialise zlib", pos);
      std::vector<unsigned char> buf;
      std::vector<unsigned char> chunk(1 << 16);
      z.next_in = const_cast<unsigned char*>(data + pos);
      z.avail_in = static_cast<uInt>(size - pos);
      int rc = Z_OK;
      const size_t cap = size_t(1) << 31;
      while (rc == Z_OK) {
        z.next_out = chunk.data();
        z.avail_out = static_cast<uInt>(chunk.size());
        rc = inflate(&z, Z_NO_FLUSH);
        buf.insert(buf.end(), chunk.data(), chunk.data() + (chunk.size() - z.avail_out));
        if (buf.size() > cap) break;
        if (rc == Z_BUF_ERROR && z.avail_in == 0) break;
      }
      inflateEnd(&z);
      if (rc != Z_STREAM_END) throw IOError(name + ": truncated or corrupt deflated data set");
      Walker inner(buf.data(), static_cast<int64_t>(buf.size()), name + " (inflated)", stop_at_pixel_data, false);
      inner.dataset(0, static_cast<int64_t>(buf.size()), Enc::ExplicitLE, 0, true);
      out.reached_pixel_data = inner.pixel_at_ >= 0;
      return out;
    }
    w.dataset(pos, size, enc, 0, true);
    out.pixel_data_offset = w.pixel_at_;
    out.reached_pixel_data = w.pixel_at_ >= 0;
  } catch (const Incomplete&) {
    if (incomplete) *incomplete = true;
  }
  return out;
}

}  // namespace sx::io
