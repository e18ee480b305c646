// safetensors (https://github.com/huggingface/safetensors) read and write.
//
// File layout: an 8-byte little-endian header length L, then L bytes of UTF-8 JSON
//   {"__metadata__": {"k": "v", ...},
//    "name": {"dtype": "F32", "shape": [64, 3, 7, 7], "data_offsets": [begin, end]}, ...}
// then the data section; offsets are relative to its start. Tensors are row-major little-endian.
//
// Reading validates everything before allocating or copying (an untrusted file must not crash
// us or make us allocate absurd memory):
//   - the file holds at least 8 bytes; 0 < L <= 100 MB and 8 + L <= file size;
//   - the header is well-formed JSON (nlohmann-json, depth-limited, a key repeated in any object
//     refused), a top-level object whose entries are objects with exactly a dtype string, a shape
//     array of non-negative integers and data_offsets [begin, end] with begin <= end;
//     __metadata__ maps strings to strings; duplicate names are refused;
//   - dtype in F32, F64, I64, I32, U8, BOOL, F16, BF16 (anything else is refused, naming it);
//   - numel(shape) * dtype size == end - begin, computed with overflow checks;
//   - the byte ranges, sorted by begin, tile the data section exactly: the first begins at 0, each
//     begins where the previous ended, and the last ends at the end of the file (no gaps, no
//     overlaps, nothing trailing).
// Every failure throws sx::IOError naming the file and, where one is involved, the tensor.
// Tensors come back on the CPU, contiguous, in the order of their data offsets; F16/BF16 keep
// their storage-only dtypes unless upcast_half is set (then they become float32).
//
// Writing: tensors in the given order (each made contiguous and copied to the CPU), 8-byte aligned
// header (padded with spaces, as the reference implementation does), written atomically
// (temporary file in the same folder, fsync, rename: io/atomic_file.h).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace sx::safetensors {

using TensorList = std::vector<std::pair<std::string, Tensor>>;
using Metadata = std::map<std::string, std::string>;

struct Contents {
  TensorList tensors;
  Metadata metadata;
};

// Reads and validates a file. `source` in messages is the path.
Contents load(const std::string& path, bool upcast_half = false);
// Parses an in-memory file image; `source` names it in error messages.
Contents parse(const void* data, size_t size, const std::string& source, bool upcast_half = false);

// Serialises to bytes / writes atomically. Names must be unique and non-empty, and must not be
// "__metadata__"; dtypes: any sx::DType.
std::string serialize(const TensorList& tensors, const Metadata& metadata = {});
void save(const std::string& path, const TensorList& tensors, const Metadata& metadata = {});

// "F32" <-> DType::Float32 etc.; parse throws IOError for names we do not support.
const char* dtype_to_string(DType t);

}  // namespace sx::safetensors
