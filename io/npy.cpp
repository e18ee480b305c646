#include "io/npy.h"

#include <cstring>

#include "io/atomic_file.h"
#include "tensor/errors.h"

namespace sx::io {

std::string encode_npy(const void* data, size_t elem_size, const std::string& descr, const std::vector<int64_t>& shape) {
  std::string sh = "(";
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    SX_CHECK(shape[i] >= 0, "npy: negative dimension ", shape[i]);
    sh += std::to_string(shape[i]);
    sh += (shape.size() == 1 || i + 1 < shape.size()) ? "," : "";
    if (i + 1 < shape.size()) sh += " ";
    n *= shape[i];
  }
  sh += ")";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + sh + ", }";
  // magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  out.append(static_cast<const char*>(data), static_cast<size_t>(n) * elem_size);
  return out;
}

void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  write_file_atomic(path, encode_npy(data, 4, "<f4", shape));
}

std::vector<float> read_npy_f32(const std::string& path, std::vector<int64_t>* shape) {
  std::string b = read_file(path);
  if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0) SX_THROW(IOError, path, ": not a .npy file");
  const size_t hl = static_cast<unsigned char>(b[8]) | (static_cast<unsigned char>(b[9]) << 8);
  if (10 + hl > b.size()) SX_THROW(IOError, path, ": truncated .npy header");
  const std::string h = b.substr(10, hl);
  if (h.find("'<f4'") == std::string::npos || h.find("'fortran_order': False") == std::string::npos)
    SX_THROW(IOError, path, ": only C-order little-endian float32 is read, header ", h);
  auto p = h.find("'shape': (");
  if (p == std::string::npos) SX_THROW(IOError, path, ": no shape in header");
  std::vector<int64_t> s;
  int64_t n = 1;
  for (size_t i = p + 10; i < h.size() && h[i] != ')';) {
    if (h[i] >= '0' && h[i] <= '9') {
      int64_t v = 0;
      while (i < h.size() && h[i] >= '0' && h[i] <= '9') v = v * 10 + (h[i++] - '0');
      s.push_back(v);
      n *= v;
    } else {
      ++i;
    }
  }
  if (b.size() - 10 - hl != static_cast<size_t>(n) * 4) SX_THROW(IOError, path, ": data size does not match the shape");
  std::vector<float> out(static_cast<size_t>(n));
  if (n) std::memcpy(out.data(), b.data() + 10 + hl, static_cast<size_t>(n) * 4);
  if (shape) *shape = s;
  return out;
}

}  // namespace sx::io
