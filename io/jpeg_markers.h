// A walk over the marker segments of a JPEG / JPEG-LS stream header (SOI up to the first SOS).
//
// Third-party decoders trust these headers too much: stb_image 2.27 overflows a table on a Huffman
// table with more than 256 codes, and GDCM's JPEG codecs assert (abort the process) when libjpeg
// reports a corrupt header. So headers are checked here first: every segment starts with a marker,
// fits in the buffer, Huffman tables declare at most 256 codes and fit in their segment, and a frame
// header (SOF) comes before the first scan (SOS). Returns "" when sound, else the reason.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sx::io {

struct JpegHeader {
  int width = 0, height = 0, components = 0, precision = 0;
};

inline std::string check_jpeg_markers(const unsigned char* p, size_t n, JpegHeader* hdr = nullptr) {
  if (n < 4 || p[0] != 0xFF || p[1] != 0xD8) return "no JPEG start-of-image marker";
  bool sof = false;
  size_t i = 2;
  while (i + 4 <= n) {
    if (p[i] != 0xFF) return "corrupt JPEG header (no marker at byte " + std::to_string(i) + ")";
    const int m = p[i + 1];
    if (m == 0xFF) {
      ++i;
      continue;
    }
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
      i += 2;
      continue;
    }
    if (m == 0xD8 || m == 0xD9 || m == 0x00) return "corrupt JPEG header (unexpected marker before the first scan)";
    const size_t len = (static_cast<size_t>(p[i + 2]) << 8) | p[i + 3];
    if (len < 2 || i + 2 + len > n) return "corrupt or truncated JPEG header (segment at byte " + std::to_string(i) + ")";
    const bool is_sof = (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) || m == 0xF7;
    if (is_sof) {
      if (len < 8) return "corrupt JPEG frame header";
      const int comps = p[i + 9];
      if (len != 8 + 3 * static_cast<size_t>(comps)) return "corrupt JPEG frame header (length)";
      if (hdr) {
        hdr->precision = p[i + 4];
        hdr->height = (p[i + 5] << 8) | p[i + 6];
        hdr->width = (p[i + 7] << 8) | p[i + 8];
        hdr->components = comps;
      }
      sof = true;
    } else if (m == 0xC4) {
      size_t k = i + 4;
      const size_t end = i + 2 + len;
      while (k < end) {
        if (k + 17 > end) return "corrupt JPEG Huffman table";
        if ((p[k] >> 4) > 1 || (p[k] & 15) > 3) return "corrupt JPEG Huffman table (class/id)";
        size_t count = 0;
        for (int b = 1; b <= 16; ++b) count += p[k + b];
        if (count > 256) return "corrupt JPEG Huffman table (" + std::to_string(count) + " codes)";
        k += 17 + count;
        if (k > end) return "corrupt JPEG Huffman table";
      }
    } else if (m == 0xDA) {
      if (!sof) return "corrupt JPEG: scan before any frame header";
      const size_t ns = len >= 3 ? p[i + 4] : 0;
      if (ns < 1 || ns > 4 || len != 6 + 2 * ns) return "corrupt JPEG scan header";
      return "";
    }
    i += 2 + len;
  }
  return "truncated JPEG header (no scan)";
}

}  // namespace sx::io
