// PNG and JPEG files: 8/16-bit grey PNG and 8-bit JPEG in, 8-bit (grey or RGB) and 16-bit grey
// PNG out.
//
// Reading uses stb_image compiled with only its PNG and JPEG decoders (image_io.cpp is the one
// translation unit that holds the implementation, with static linkage, so nothing clashes with a
// libstb that something else might link). The header's width and height are read first and checked
// in 64-bit arithmetic against ImageLimits before any pixel buffer is allocated. Colour images are
// converted to grey (stb's integer luma, 77 R + 150 G + 29 B over 256).
//
// Writing uses our own small PNG encoder over zlib rather than stb_image_write, because the latter
// cannot write 16-bit PNG (which the `prepare` cache needs). Each row uses PNG filter "Up", which
// suits smooth radiographs. Every write is atomic (see atomic_file.h): a temporary file in the same
// folder, fsync, rename.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace sx::io {

struct ImageLimits {
  int64_t max_side = 1 << 15;             // width and height each at most this
  int64_t max_pixels = int64_t(1) << 28;  // width * height at most this (256 Mpx)
};

// A decoded grey image. bit_depth 8 (values 0..255) or 16 (0..65535); row-major, no padding.
struct GreyImage {
  int width = 0, height = 0;
  int bit_depth = 8;
  std::vector<uint16_t> pixels;  // width * height values
  uint16_t at(int x, int y) const { return pixels[static_cast<size_t>(y) * width + x]; }
};

// Reads a PNG (8- or 16-bit, grey, grey+alpha, RGB or RGBA: colour is converted to grey, alpha
// dropped) or an 8-bit JPEG. Throws sx::IOError naming the file and the reason (not a PNG/JPEG,
// truncated, corrupt, dimensions beyond the limits).
GreyImage read_image(const std::string& path, const ImageLimits& limits = {});
// Same, from bytes in memory; `name` is used in error messages.
GreyImage decode_image(const void* data, size_t size, const std::string& name,
                       const ImageLimits& limits = {});

// Encodes an 8-bit PNG with 1 (grey) or 3 (RGB) interleaved channels; returns the file bytes.
std::string encode_png(const uint8_t* pixels, int width, int height, int channels, int level = 6);
// Encodes a 16-bit grey PNG (values stored big-endian as PNG requires).
std::string encode_png16(const uint16_t* pixels, int width, int height, int level = 6);

// Atomic writers (temp file + fsync + rename). Throw sx::ValueError on bad arguments and
// sx::IOError on file system errors.
void write_png(const std::string& path, const uint8_t* pixels, int width, int height, int channels);
void write_png16(const std::string& path, const uint16_t* pixels, int width, int height);

}  // namespace sx::io
