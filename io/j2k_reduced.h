// JPEG 2000 decoding at a reduced resolution, straight through OpenJPEG.
//
// A JPEG 2000 codestream is a wavelet pyramid: with R resolution levels, the image at 1/2^r of each
// side is the low-pass band after R-1-r inverse transforms, and the decoder can stop there, skipping
// the entropy decoding of every finer code-block (most of the work). When a 2949 x 1470 radiograph
// is wanted at 512 px, decoding at r = 2 (737 x 368) and then area-resizing gives nearly the same
// picture as decoding everything and resizing, several times faster. GDCM does not expose this, so
// it is done here with OpenJPEG itself (when the build found it: SX_HAVE_OPENJPEG).
//
// The reduced image is the codec's low-pass band, not an exact area average: values differ from the
// full-resolution pipeline by rounding-level amounts (tests bound the difference).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sx::io {

struct J2kImage {
  int width = 0, height = 0;   // of the decoded (reduced) image
  int full_width = 0, full_height = 0;
  int precision = 0;
  bool is_signed = false;
  int levels = 0;              // resolution levels in the codestream (reduce must be < levels)
  std::vector<int32_t> values;
};

// True when built with OpenJPEG.
bool j2k_reduced_available();
// Reads the main header only: sizes, precision, resolution levels. False when not a J2K codestream.
bool j2k_probe(const uint8_t* data, size_t size, J2kImage* info);
// Decodes one grey component at 1/2^reduce. False (never throws, never prints) when OpenJPEG
// refuses the stream; the caller then falls back to the full decoder.
bool j2k_decode_reduced(const uint8_t* data, size_t size, int reduce, J2kImage* out, int threads = 1);

}  // namespace sx::io
