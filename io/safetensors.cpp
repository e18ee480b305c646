// safetensors reader/writer. Every check of the format happens before any tensor is allocated;
// see safetensors.h for the rules.
#include "io/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/json.h"

namespace sx::safetensors {

namespace {

using Json = io::Json;

constexpr uint64_t kMaxHeader = 100ull * 1000 * 1000;  // the reference implementation's limit
constexpr int kMaxDepth = 16;
constexpr size_t kMaxDims = 64;

// ---- header JSON -------------------------------------------------------------------------------
// Parsed by nlohmann-json with a callback that enforces what the DOM would let pass silently:
// a depth limit (kMaxDepth levels of arrays/objects, as before) and no repeated key in any
// object (nlohmann keeps the last of two equal keys). Every failure is an IOError naming the file.
Json parse_header(const char* p, size_t n, const std::string& src) {
  std::vector<std::set<std::string>> keys;  // the keys seen so far in each open object
  auto check = [&](int depth, Json::parse_event_t event, Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
      case Json::parse_event_t::value:
        if (depth > kMaxDepth)
          SX_THROW(IOError, "safetensors: ", src, ": malformed header JSON: nesting too deep (more than ", kMaxDepth,
                   " levels)");
        if (event == Json::parse_event_t::object_start) keys.emplace_back();
        break;
      case Json::parse_event_t::key: {
        const auto& k = parsed.get_ref<const std::string&>();
        if (!keys.back().insert(k).second) {
          if (keys.size() == 1) SX_THROW(IOError, "safetensors: ", src, ": duplicate entry '", k, "'");
          SX_THROW(IOError, "safetensors: ", src, ": malformed header JSON: duplicate key '", k, "'");
        }
        break;
      }
      case Json::parse_event_t::object_end: keys.pop_back(); break;
      case Json::parse_event_t::array_end: break;
    }
    return true;
  };
  try {
    return Json::parse(p, p + n, check);
  } catch (const Json::parse_error& e) {
    // nlohmann says "...; expected end of input" when a complete value is followed by more text.
    const bool trailing = std::string(e.what()).find("; expected end of input") != std::string::npos;
    SX_THROW(IOError, "safetensors: ", src, ": malformed header JSON at byte ", e.byte, ": ",
             trailing ? "trailing characters after the JSON value" : e.what());
  }
}

// A JSON integer in 0 .. 2^63-1 (larger ones were refused before, as out of range).
bool non_negative_int(const Json& v, uint64_t& out) {
  if (v.is_number_unsigned()) {
    out = v.get<uint64_t>();
    return out <= static_cast<uint64_t>(INT64_MAX);
  }
  if (!v.is_number_integer() || v.get<int64_t>() < 0) return false;
  out = static_cast<uint64_t>(v.get<int64_t>());
  return true;
}

// ---- dtypes ------------------------------------------------------------------------------------
bool dtype_from_string(const std::string& s, DType& t) {
  static const std::pair<const char*, DType> table[] = {
      {"F32", DType::Float32}, {"F64", DType::Float64}, {"I64", DType::Int64}, {"I32", DType::Int32},
      {"U8", DType::UInt8},    {"BOOL", DType::Bool},   {"F16", DType::Float16}, {"BF16", DType::BFloat16}};
  for (const auto& [name, dt] : table)
    if (s == name) {
      t = dt;
      return true;
    }
  return false;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  float v;
  if (exp == 0) v = std::ldexp(static_cast<float>(mant), -24);
  else if (exp == 31) v = mant ? NAN : INFINITY;
  else v = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
  return sign ? -v : v;
}
float bf16_to_float(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

}  // namespace

const char* dtype_to_string(DType t) {
  switch (t) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int64: return "I64";
    case DType::Int32: return "I32";
    case DType::UInt8: return "U8";
    case DType::Bool: return "BOOL";
    case DType::Float16: return "F16";
    case DType::BFloat16: return "BF16";
  }
  return "?";
}

Contents parse(const void* data, size_t size, const std::string& source, bool upcast_half) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  if (size < 8) SX_THROW(IOError, "safetensors: ", source, ": file too short (", size, " bytes) for the header length");
  uint64_t hlen = 0;
  for (int k = 7; k >= 0; --k) hlen = (hlen << 8) | bytes[k];
  if (hlen == 0 || hlen > kMaxHeader)
    SX_THROW(IOError, "safetensors: ", source, ": header length ", hlen, " is out of range (1..", kMaxHeader, ")");
  if (hlen > size - 8)
    SX_THROW(IOError, "safetensors: ", source, ": header length ", hlen, " runs past the end of the file (", size,
             " bytes)");
  const uint64_t data_start = 8 + hlen;
  const uint64_t data_size = size - data_start;

  const Json root = parse_header(reinterpret_cast<const char*>(bytes + 8), static_cast<size_t>(hlen), source);
  if (!root.is_object()) SX_THROW(IOError, "safetensors: ", source, ": header is not a JSON object");

  Contents out;
  std::vector<Entry> entries;
  for (const auto& [name, v] : root.items()) {  // duplicate names were refused by parse_header
    if (name == "__metadata__") {
      if (!v.is_object()) SX_THROW(IOError, "safetensors: ", source, ": __metadata__ is not an object");
      for (const auto& [k, mv] : v.items()) {
        if (!mv.is_string())
          SX_THROW(IOError, "safetensors: ", source, ": __metadata__ value of '", k, "' is not a string");
        out.metadata[k] = mv.get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& why) {
      SX_THROW(IOError, "safetensors: ", source, ": tensor '", name, "': ", why);
    };
    if (name.empty()) bad("empty tensor name");
    if (!v.is_object()) bad("entry is not an object");
    const Json *dt = nullptr, *sh = nullptr, *off = nullptr;
    for (const auto& [k, f] : v.items()) {
      if (k == "dtype") dt = &f;
      else if (k == "shape") sh = &f;
      else if (k == "data_offsets") off = &f;
      else bad("unknown field '" + k + "'");
    }
    if (!dt || !sh || !off) bad("needs dtype, shape and data_offsets");
    if (!dt->is_string()) bad("dtype is not a string");
    const std::string& dts = dt->get_ref<const std::string&>();
    Entry e;
    e.name = name;
    if (!dtype_from_string(dts, e.dtype))
      bad("unsupported dtype '" + dts + "' (supported: F32, F64, I64, I32, U8, BOOL, F16, BF16)");
    if (!sh->is_array()) bad("shape is not an array");
    if (sh->size() > kMaxDims) bad("too many dimensions");
    uint64_t numel = 1;
    for (const auto& d : *sh) {
      uint64_t di;
      if (!non_negative_int(d, di)) bad("shape entries must be non-negative integers");
      e.shape.push_back(static_cast<int64_t>(di));
      uint64_t r;
      if (__builtin_mul_overflow(numel, di, &r)) bad("shape overflows");
      numel = r;
    }
    if (!off->is_array() || off->size() != 2) bad("data_offsets must be [begin, end]");
    if (!non_negative_int((*off)[0], e.begin) || !non_negative_int((*off)[1], e.end))
      bad("data_offsets must be non-negative integers");
    if (e.begin > e.end) bad("data_offsets begin > end");
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(e.dtype)), &nbytes)) bad("byte size overflows");
    if (nbytes != e.end - e.begin) {
      std::ostringstream os;
      os << "dtype " << dts << " x shape " << shape_str(e.shape) << " = " << nbytes << " bytes, but data_offsets ["
         << e.begin << ", " << e.end << "] hold " << (e.end - e.begin);
      bad(os.str());
    }
    if (e.end > data_size) {
      std::ostringstream os;
      os << "data_offsets [" << e.begin << ", " << e.end << "] run past the data section (" << data_size << " bytes)";
      bad(os.str());
    }
    entries.push_back(std::move(e));
  }
  // The byte ranges must tile the data section: contiguous, no gaps, no overlaps, nothing after.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  for (const auto& e : entries) {
    if (e.begin != cursor) {
      SX_THROW(IOError, "safetensors: ", source, ": tensor '", e.name, "': data begins at ", e.begin, " but ",
               (e.begin < cursor ? "the previous tensor ends at " : "there is a gap after byte "), cursor,
               " (offsets must be contiguous)");
    }
    cursor = e.end;
  }
  if (cursor != data_size)
    SX_THROW(IOError, "safetensors: ", source, ": the tensors cover ", cursor, " bytes but the data section holds ",
             data_size, " bytes");

  // Validated: now allocate and copy.
  const unsigned char* base = bytes + data_start;
  for (const auto& e : entries) {
    const unsigned char* src = base + e.begin;
    if (upcast_half && (e.dtype == DType::Float16 || e.dtype == DType::BFloat16)) {
      Tensor t = Tensor::empty(e.shape, DType::Float32);
      float* dst = t.data<float>();
      const int64_t n = t.numel();
      for (int64_t k = 0; k < n; ++k) {
        uint16_t h = static_cast<uint16_t>(src[2 * k] | (src[2 * k + 1] << 8));
        dst[k] = e.dtype == DType::Float16 ? half_to_float(h) : bf16_to_float(h);
      }
      out.tensors.emplace_back(e.name, t);
      continue;
    }
    if (e.dtype == DType::Bool) {
      for (uint64_t k = 0; k < e.end - e.begin; ++k)
        if (src[k] > 1)
          SX_THROW(IOError, "safetensors: ", source, ": tensor '", e.name, "': BOOL byte ", k, " is ",
                   static_cast<int>(src[k]), " (must be 0 or 1)");
    }
    out.tensors.emplace_back(e.name, Tensor::from_blob_copy(src, e.shape, e.dtype));
  }
  return out;
}

Contents load(const std::string& path, bool upcast_half) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) SX_THROW(IOError, "safetensors: cannot open '", path, "'");
  const std::streamoff size = f.tellg();
  if (size < 0) SX_THROW(IOError, "safetensors: cannot read the size of '", path, "'");
  f.seekg(0);
  // Check the header length against the file size before reading the rest into memory.
  unsigned char head[8];
  if (size < 8 || !f.read(reinterpret_cast<char*>(head), 8))
    SX_THROW(IOError, "safetensors: ", path, ": file too short (", size, " bytes) for the header length");
  uint64_t hlen = 0;
  for (int k = 7; k >= 0; --k) hlen = (hlen << 8) | head[k];
  if (hlen == 0 || hlen > kMaxHeader || hlen > static_cast<uint64_t>(size) - 8)
    SX_THROW(IOError, "safetensors: ", path, ": header length ", hlen, " is out of range for a file of ", size,
             " bytes");
  std::string buf(static_cast<size_t>(size), '\0');
  std::memcpy(&buf[0], head, 8);
  if (!f.read(&buf[8], size - 8)) SX_THROW(IOError, "safetensors: ", path, ": read failed");
  return parse(buf.data(), buf.size(), path, upcast_half);
}

std::string serialize(const TensorList& tensors, const Metadata& metadata) {
  std::set<std::string> names;
  std::vector<Tensor> cpu;
  cpu.reserve(tensors.size());
  // Keys in writing order: __metadata__, then the tensors as given, each {dtype, shape, data_offsets}.
  Json hdr = Json::object();
  if (!metadata.empty()) {
    Json& md = hdr["__metadata__"] = Json::object();
    for (const auto& [k, v] : metadata) md[k] = v;
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    SX_CHECK(!name.empty() && name != "__metadata__", "safetensors: invalid tensor name '", name, "'");
    SX_CHECK(names.insert(name).second, "safetensors: duplicate tensor name '", name, "'");
    SX_CHECK(t.defined(), "safetensors: tensor '", name, "' is undefined");
    Tensor c = t.detach().contiguous().cpu();
    const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * c.element_size();
    Json shape = Json::array();
    for (int64_t d = 0; d < c.dim(); ++d) shape.push_back(c.size(d));
    hdr[name] = Json{{"dtype", dtype_to_string(c.dtype())}, {"shape", std::move(shape)},
                     {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    cpu.push_back(c);
  }
  std::string h = io::json_text(hdr, -1);  // compact; ValueError for a name that is not UTF-8
  while (h.size() % 8 != 0) h += ' ';
  std::string out;
  out.reserve(8 + h.size() + offset);
  uint64_t hl = h.size();
  for (int k = 0; k < 8; ++k) out += static_cast<char>((hl >> (8 * k)) & 0xFF);
  out += h;
  for (const auto& c : cpu) {
    const size_t nbytes = static_cast<size_t>(c.numel()) * c.element_size();
    if (nbytes) out.append(static_cast<const char*>(c.data_ptr()), nbytes);
  }
  return out;
}

void save(const std::string& path, const TensorList& tensors, const Metadata& metadata) {
  std::string bytes = serialize(tensors, metadata);
  io::write_file_atomic(path, bytes.data(), bytes.size());
}

}  // namespace sx::safetensors
