// NumPy .npy files (format version 1.0): float32 / uint16 arrays for analysis in NumPy.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sx::io {

// Encodes a C-order array; descr is the NumPy dtype string ("<f4", "<u2", "<i4").
std::string encode_npy(const void* data, size_t elem_size, const std::string& descr, const std::vector<int64_t>& shape);
// Written atomically.
void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape);

// Reads a little-endian float32 .npy (C order) -- for tests and tools. Throws sx::IOError.
std::vector<float> read_npy_f32(const std::string& path, std::vector<int64_t>* shape);

}  // namespace sx::io
