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

#include "io/atomic_file.h"

namespace sx::safetensors {

namespace {

constexpr uint64_t kMaxHeader = 100ull * 1000 * 1000;  // the reference implementation's limit
constexpr int kMaxDepth = 16;
constexpr size_t kMaxDims = 64;

// ---- a small JSON parser ---------------------------------------------------------------------
// Enough JSON for safetensors headers: objects (order kept), arrays, strings (with escapes),
// numbers (integers are kept exactly), true/false/null. Depth-limited; every error names the
// byte offset.
struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  bool b = false;
  bool is_int = false;
  int64_t i = 0;  // valid when is_int
  double d = 0;
  std::string s;
  std::vector<Json> arr;
  std::vector<std::pair<std::string, Json>> obj;
};

class Parser {
 public:
  Parser(const char* p, size_t n, const std::string& src) : p_(p), n_(n), src_(src) {}

  Json parse_document() {
    Json v = value(0);
    ws();
    if (pos_ != n_) fail("trailing characters after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    SX_THROW(IOError, "safetensors: ", src_, ": malformed header JSON at byte ", pos_, ": ", what);
  }
  void ws() {
    while (pos_ < n_ && (p_[pos_] == ' ' || p_[pos_] == '\t' || p_[pos_] == '\n' || p_[pos_] == '\r')) ++pos_;
  }
  char peek() {
    if (pos_ >= n_) fail("unexpected end");
    return p_[pos_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  bool literal(const char* lit) {
    size_t l = std::strlen(lit);
    if (n_ - pos_ >= l && std::memcmp(p_ + pos_, lit, l) == 0) {
      pos_ += l;
      return true;
    }
    return false;
  }
  Json value(int depth) {
    if (depth > kMaxDepth) fail("nesting too deep");
    ws();
    char c = peek();
    Json v;
    if (c == '{') {
      v.kind = Json::Object;
      ++pos_;
      ws();
      if (peek() == '}') {
        ++pos_;
        return v;
      }
      while (true) {
        ws();
        if (peek() != '"') fail("expected a string key");
        std::string k = string_();
        ws();
        expect(':');
        v.obj.emplace_back(std::move(k), value(depth + 1));
        ws();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = Json::Array;
      ++pos_;
      ws();
      if (peek() == ']') {
        ++pos_;
        return v;
      }
      while (true) {
        v.arr.push_back(value(depth + 1));
        ws();
        if (peek() == ',') {
          ++pos_;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = Json::String;
      v.s = string_();
      return v;
    }
    if (literal("true")) {
      v.kind = Json::Bool;
      v.b = true;
      return v;
    }
    if (literal("false")) {
      v.kind = Json::Bool;
      return v;
    }
    if (literal("null")) return v;
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    fail(std::string("unexpected character '") + c + "'");
  }
  Json number() {
    size_t start = pos_;
    if (p_[pos_] == '-') ++pos_;
    bool digits = false, frac = false;
    while (pos_ < n_ && ((p_[pos_] >= '0' && p_[pos_] <= '9') || p_[pos_] == '.' || p_[pos_] == 'e' ||
                         p_[pos_] == 'E' || p_[pos_] == '+' || p_[pos_] == '-')) {
      if (p_[pos_] >= '0' && p_[pos_] <= '9') digits = true;
      else frac = true;
      ++pos_;
    }
    if (!digits) fail("bad number");
    std::string t(p_ + start, pos_ - start);
    Json v;
    v.kind = Json::Number;
    if (!frac) {
      // Exact integer parse with overflow check.
      bool neg = t[0] == '-';
      uint64_t acc = 0;
      for (size_t k = neg ? 1 : 0; k < t.size(); ++k) {
        uint64_t dgt = static_cast<uint64_t>(t[k] - '0');
        if (acc > (UINT64_MAX - dgt) / 10) fail("integer out of range");
        acc = acc * 10 + dgt;
      }
      if (acc > static_cast<uint64_t>(INT64_MAX)) fail("integer out of range");
      v.is_int = true;
      v.i = neg ? -static_cast<int64_t>(acc) : static_cast<int64_t>(acc);
      v.d = static_cast<double>(v.i);
    } else {
      char* end = nullptr;
      v.d = std::strtod(t.c_str(), &end);
      if (end != t.c_str() + t.size()) fail("bad number");
    }
    return v;
  }
  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  uint32_t hex4() {
    if (n_ - pos_ < 4) fail("short \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char h = p_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= static_cast<uint32_t>(h - '0');
      else if (h >= 'a' && h <= 'f') v |= static_cast<uint32_t>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= static_cast<uint32_t>(h - 'A' + 10);
      else fail("bad \\u escape");
    }
    return v;
  }
  std::string string_() {
    expect('"');
    std::string out;
    while (true) {
      if (pos_ >= n_) fail("unterminated string");
      char c = p_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= n_) fail("unterminated escape");
      char e = p_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {
            if (!(n_ - pos_ >= 2 && p_[pos_] == '\\' && p_[pos_ + 1] == 'u')) fail("lone surrogate");
            pos_ += 2;
            uint32_t lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            fail("lone surrogate");
          }
          put_utf8(out, cp);
          break;
        }
        default: fail(std::string("bad escape '\\") + e + "'");
      }
    }
  }

  const char* p_;
  size_t n_;
  const std::string& src_;
  size_t pos_ = 0;
};

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

std::string json_escape(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
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

  Parser parser(reinterpret_cast<const char*>(bytes + 8), static_cast<size_t>(hlen), source);
  Json root = parser.parse_document();
  if (root.kind != Json::Object) SX_THROW(IOError, "safetensors: ", source, ": header is not a JSON object");

  Contents out;
  std::vector<Entry> entries;
  std::set<std::string> seen;
  for (auto& [name, v] : root.obj) {
    if (!seen.insert(name).second) SX_THROW(IOError, "safetensors: ", source, ": duplicate entry '", name, "'");
    if (name == "__metadata__") {
      if (v.kind != Json::Object) SX_THROW(IOError, "safetensors: ", source, ": __metadata__ is not an object");
      for (auto& [k, mv] : v.obj) {
        if (mv.kind != Json::String)
          SX_THROW(IOError, "safetensors: ", source, ": __metadata__ value of '", k, "' is not a string");
        out.metadata[k] = mv.s;
      }
      continue;
    }
    auto bad = [&](const std::string& why) {
      SX_THROW(IOError, "safetensors: ", source, ": tensor '", name, "': ", why);
    };
    if (name.empty()) bad("empty tensor name");
    if (v.kind != Json::Object) bad("entry is not an object");
    const Json *dt = nullptr, *sh = nullptr, *off = nullptr;
    for (auto& [k, f] : v.obj) {
      if (k == "dtype") dt = &f;
      else if (k == "shape") sh = &f;
      else if (k == "data_offsets") off = &f;
      else bad("unknown field '" + k + "'");
    }
    if (!dt || !sh || !off) bad("needs dtype, shape and data_offsets");
    if (dt->kind != Json::String) bad("dtype is not a string");
    Entry e;
    e.name = name;
    if (!dtype_from_string(dt->s, e.dtype))
      bad("unsupported dtype '" + dt->s + "' (supported: F32, F64, I64, I32, U8, BOOL, F16, BF16)");
    if (sh->kind != Json::Array) bad("shape is not an array");
    if (sh->arr.size() > kMaxDims) bad("too many dimensions");
    uint64_t numel = 1;
    for (const auto& d : sh->arr) {
      if (d.kind != Json::Number || !d.is_int || d.i < 0) bad("shape entries must be non-negative integers");
      e.shape.push_back(d.i);
      uint64_t r;
      if (__builtin_mul_overflow(numel, static_cast<uint64_t>(d.i), &r)) bad("shape overflows");
      numel = r;
    }
    if (off->kind != Json::Array || off->arr.size() != 2) bad("data_offsets must be [begin, end]");
    for (const auto& o : off->arr)
      if (o.kind != Json::Number || !o.is_int || o.i < 0) bad("data_offsets must be non-negative integers");
    e.begin = static_cast<uint64_t>(off->arr[0].i);
    e.end = static_cast<uint64_t>(off->arr[1].i);
    if (e.begin > e.end) bad("data_offsets begin > end");
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, static_cast<uint64_t>(dtype_size(e.dtype)), &nbytes)) bad("byte size overflows");
    if (nbytes != e.end - e.begin) {
      std::ostringstream os;
      os << "dtype " << dt->s << " x shape " << shape_str(e.shape) << " = " << nbytes << " bytes, but data_offsets ["
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
  std::ostringstream hdr;
  hdr << "{";
  bool first = true;
  if (!metadata.empty()) {
    hdr << "\"__metadata__\":{";
    bool f2 = true;
    for (const auto& [k, v] : metadata) {
      hdr << (f2 ? "" : ",") << json_escape(k) << ":" << json_escape(v);
      f2 = false;
    }
    hdr << "}";
    first = false;
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    SX_CHECK(!name.empty() && name != "__metadata__", "safetensors: invalid tensor name '", name, "'");
    SX_CHECK(names.insert(name).second, "safetensors: duplicate tensor name '", name, "'");
    SX_CHECK(t.defined(), "safetensors: tensor '", name, "' is undefined");
    Tensor c = t.detach().contiguous().cpu();
    const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * c.element_size();
    hdr << (first ? "" : ",") << json_escape(name) << ":{\"dtype\":\"" << dtype_to_string(c.dtype())
        << "\",\"shape\":[";
    for (int64_t d = 0; d < c.dim(); ++d) hdr << (d ? "," : "") << c.size(d);
    hdr << "],\"data_offsets\":[" << offset << "," << offset + nbytes << "]}";
    first = false;
    offset += nbytes;
    cpu.push_back(c);
  }
  hdr << "}";
  std::string h = hdr.str();
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
