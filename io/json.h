// JSON in the product goes through nlohmann-json (Debian: nlohmann-json3-dev); this header names
// the value type and the few file helpers every writer and reader shares. Only the forward
// declarations are included here; a .cpp that builds or reads values includes <nlohmann/json.hpp>.
//
//   io::Json j;  j["auroc"] = 0.91;  j["ci"] = {0.89, 0.93};
//   io::write_json_atomic(path, j);                  // two-space indentation, trailing newline
//   io::Json r = io::read_json_file(path);           // IOError "<path>: malformed JSON at byte N: .."
//
// Objects keep their keys in insertion order (nlohmann::ordered_json), so files read in the order
// they were written. Non-finite numbers are written as null. A string that is not valid UTF-8
// cannot be written: json_text throws ValueError rather than emit an invalid document.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace sx::io {

using Json = nlohmann::ordered_json;

// The document text: indent >= 0 pretty-prints with that many spaces and ends with a newline;
// indent < 0 gives the compact one-line form without a newline. Throws ValueError for invalid UTF-8.
std::string json_text(const Json& j, int indent = 2);
// json_text(j) written with write_file_atomic.
void write_json_atomic(const std::string& path, const Json& j);
// Parses a whole document (nothing but whitespace after the value). Throws IOError naming `source`
// and the byte offset when the text is not JSON.
Json parse_json(const std::string& text, const std::string& source);
// parse_json(read_file(path), path).
Json read_json_file(const std::string& path);

}  // namespace sx::io
