// JSON helpers over nlohmann-json; see json.h.
#include "io/json.h"

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "tensor/errors.h"

namespace sx::io {

std::string json_text(const Json& j, int indent) {
  try {
    // nlohmann writes NaN and infinities as null.
    return indent >= 0 ? j.dump(indent) + "\n" : j.dump();
  } catch (const nlohmann::json::type_error& e) {
    SX_THROW(ValueError, "JSON: cannot write the document: ", e.what());
  }
}

void write_json_atomic(const std::string& path, const Json& j) { write_file_atomic(path, json_text(j)); }

Json parse_json(const std::string& text, const std::string& source) {
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    SX_THROW(IOError, source, ": malformed JSON at byte ", e.byte, ": ", e.what());
  }
}

Json read_json_file(const std::string& path) { return parse_json(read_file(path), path); }

}  // namespace sx::io
