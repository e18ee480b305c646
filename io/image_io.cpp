#include "io/image_io.h"

#include <zlib.h>

#include <cstring>

#include "io/atomic_file.h"
#include "io/jpeg_markers.h"
#include "tensor/errors.h"

// stb_image: the implementation lives here and only here, with static linkage and only the two
// decoders we need. STBI_MAX_DIMENSIONS is stb's own guard; ours (ImageLimits) runs first.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MAX_DIMENSIONS (1 << 16)
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace sx::io {
namespace {

void check_dims(int64_t w, int64_t h, const ImageLimits& lim, const std::string& name) {
  if (w <= 0 || h <= 0) SX_THROW(IOError, name, ": image has no pixels (", w, " x ", h, ")");
  if (w > lim.max_side || h > lim.max_side)
    SX_THROW(IOError, name, ": image is ", w, " x ", h, ", beyond the limit of ", lim.max_side,
             " pixels per side");
  if (w * h > lim.max_pixels)
    SX_THROW(IOError, name, ": image is ", w, " x ", h, " = ", w * h, " pixels, beyond the limit of ",
             lim.max_pixels);
}

void put_be32(std::string& s, uint32_t v) {
  char b[4] = {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  s.append(b, 4);
}

void put_chunk(std::string& out, const char type[4], const void* data, size_t n) {
  put_be32(out, static_cast<uint32_t>(n));
  size_t start = out.size();
  out.append(type, 4);
  if (n) out.append(static_cast<const char*>(data), n);
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32(crc, reinterpret_cast<const Bytef*>(out.data() + start), static_cast<uInt>(n + 4));
  put_be32(out, static_cast<uint32_t>(crc));
}

// raw: height rows of `row_bytes` bytes (already big-endian for 16-bit). bpp: bytes per pixel.
std::string encode_png_raw(const uint8_t* raw, int width, int height, int bit_depth, int color_type,
                           size_t row_bytes, int level) {
  SX_CHECK(width > 0 && height > 0, "encode_png: image must be non-empty, got ", width, " x ", height);
  SX_CHECK(level >= 0 && level <= 9, "encode_png: zlib level must be 0..9, got ", level);
  // Filter "Up": each byte minus the byte above it (the first row is stored as is, filter 0).
  const size_t stride = row_bytes + 1;
  std::vector<uint8_t> filtered(stride * static_cast<size_t>(height));
  for (int y = 0; y < height; ++y) {
    uint8_t* dst = filtered.data() + stride * y;
    const uint8_t* cur = raw + row_bytes * y;
    if (y == 0) {
      dst[0] = 0;
      std::memcpy(dst + 1, cur, row_bytes);
    } else {
      dst[0] = 2;
      const uint8_t* up = cur - row_bytes;
      for (size_t i = 0; i < row_bytes; ++i) dst[1 + i] = static_cast<uint8_t>(cur[i] - up[i]);
    }
  }
  uLongf cap = compressBound(static_cast<uLong>(filtered.size()));
  std::vector<uint8_t> z(cap);
  int rc = compress2(z.data(), &cap, filtered.data(), static_cast<uLong>(filtered.size()), level);
  if (rc != Z_OK) SX_THROW(IOError, "encode_png: zlib compress2 failed with code ", rc);

  std::string out("\x89PNG\r\n\x1a\n", 8);
  std::string ihdr;
  put_be32(ihdr, static_cast<uint32_t>(width));
  put_be32(ihdr, static_cast<uint32_t>(height));
  ihdr.push_back(static_cast<char>(bit_depth));
  ihdr.push_back(static_cast<char>(color_type));
  ihdr.push_back(0);  // compression: deflate
  ihdr.push_back(0);  // filter method 0
  ihdr.push_back(0);  // no interlace
  put_chunk(out, "IHDR", ihdr.data(), ihdr.size());
  put_chunk(out, "IDAT", z.data(), cap);
  put_chunk(out, "IEND", nullptr, 0);
  return out;
}

}  // namespace

std::string encode_png(const uint8_t* pixels, int width, int height, int channels, int level) {
  SX_CHECK(channels == 1 || channels == 3, "write_png: channels must be 1 or 3, got ", channels);
  SX_CHECK(width > 0 && height > 0 && width <= (1 << 24) && height <= (1 << 24),
           "write_png: bad size ", width, " x ", height);
  SX_CHECK(pixels != nullptr, "write_png: null pixels");
  size_t row = static_cast<size_t>(width) * channels;
  return encode_png_raw(pixels, width, height, 8, channels == 1 ? 0 : 2, row, level);
}

std::string encode_png16(const uint16_t* pixels, int width, int height, int level) {
  SX_CHECK(width > 0 && height > 0 && width <= (1 << 24) && height <= (1 << 24),
           "write_png16: bad size ", width, " x ", height);
  SX_CHECK(pixels != nullptr, "write_png16: null pixels");
  size_t n = static_cast<size_t>(width) * static_cast<size_t>(height);
  std::vector<uint8_t> be(2 * n);
  for (size_t i = 0; i < n; ++i) {
    be[2 * i] = static_cast<uint8_t>(pixels[i] >> 8);
    be[2 * i + 1] = static_cast<uint8_t>(pixels[i] & 0xff);
  }
  return encode_png_raw(be.data(), width, height, 16, 0, static_cast<size_t>(width) * 2, level);
}

void write_png(const std::string& path, const uint8_t* pixels, int width, int height, int channels) {
  write_file_atomic(path, encode_png(pixels, width, height, channels));
}

void write_png16(const std::string& path, const uint16_t* pixels, int width, int height) {
  write_file_atomic(path, encode_png16(pixels, width, height));
}

GreyImage decode_image(const void* data, size_t size, const std::string& name, const ImageLimits& limits) {
  if (size < 8) SX_THROW(IOError, name, ": not a PNG or JPEG file (", size, " bytes)");
  if (size > static_cast<size_t>(INT32_MAX)) SX_THROW(IOError, name, ": file too large (", size, " bytes)");
  const auto* bytes = static_cast<const stbi_uc*>(data);
  const int len = static_cast<int>(size);
  // Debian's stb_image is v2.27, whose Huffman table builder writes past its arrays when a table
  // declares more than 256 codes (fixed upstream in 2.28; found by the sanitizer fuzz test): JPEG
  // headers are walked first (jpeg_markers.h).
  if (bytes[0] == 0xFF && bytes[1] == 0xD8) {
    const std::string why = check_jpeg_markers(bytes, size);
    if (!why.empty()) SX_THROW(IOError, name, ": ", why);
  }
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(bytes, len, &w, &h, &comp)) {
    const char* why = stbi_failure_reason();
    SX_THROW(IOError, name, ": not a readable PNG or JPEG (", why ? why : "unknown format", ")");
  }
  check_dims(w, h, limits, name);
  GreyImage img;
  img.width = w;
  img.height = h;
  const size_t n = static_cast<size_t>(w) * static_cast<size_t>(h);
  int w2 = 0, h2 = 0, c2 = 0;
  if (stbi_is_16_bit_from_memory(bytes, len)) {
    stbi_us* p = stbi_load_16_from_memory(bytes, len, &w2, &h2, &c2, 1);
    if (!p) SX_THROW(IOError, name, ": corrupt or truncated image (", stbi_failure_reason(), ")");
    img.bit_depth = 16;
    img.pixels.assign(p, p + n);
    stbi_image_free(p);
  } else {
    stbi_uc* p = stbi_load_from_memory(bytes, len, &w2, &h2, &c2, 1);
    if (!p) SX_THROW(IOError, name, ": corrupt or truncated image (", stbi_failure_reason(), ")");
    img.bit_depth = 8;
    img.pixels.assign(p, p + n);
    stbi_image_free(p);
  }
  if (w2 != w || h2 != h) SX_THROW(IOError, name, ": header says ", w, " x ", h, " but decoded ", w2, " x ", h2);
  return img;
}

GreyImage read_image(const std::string& path, const ImageLimits& limits) {
  // A PNG/JPEG holds at most a few bytes per pixel after compression, so the file size is bounded
  // by the pixel limit too (generously, for stored/uncompressed PNG).
  std::string bytes = read_file(path, static_cast<uint64_t>(limits.max_pixels) * 8 + (1 << 20));
  return decode_image(bytes.data(), bytes.size(), path, limits);
}

}  // namespace sx::io
