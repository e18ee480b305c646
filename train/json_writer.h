// A small streaming JSON writer for metrics.json and run summaries (no parser needed here).
//
//   JsonWriter w;
//   w.begin_object().key("auroc").value(0.91).key("ci").begin_array().value(0.89).value(0.93).end_array()
//    .end_object();
//   io::write_file_atomic(path, w.str());
//
// Numbers use metrics::json_number (shortest round-trip form, NaN/Inf as null). Strings are
// escaped per RFC 8259. Objects are pretty-printed with two-space indentation; arrays of scalars
// stay on one line. Misuse (a value without a key inside an object, unbalanced ends) throws.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sx::train {

class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(const std::string& k);
  JsonWriter& value(double v);
  JsonWriter& value(int64_t v);
  JsonWriter& value(int v) { return value(static_cast<int64_t>(v)); }
  JsonWriter& value(bool v);
  JsonWriter& value(const std::string& v);
  JsonWriter& value(const char* v) { return value(std::string(v)); }
  JsonWriter& null();
  JsonWriter& values(const std::vector<double>& v);  // an array of numbers
  // The document; throws when objects/arrays are still open.
  std::string str() const;

  static std::string escape(const std::string& s);

 private:
  struct Level {
    bool is_object;
    int count = 0;
    bool has_key = false;
    bool multiline = false;
  };
  void before_value();
  void newline(size_t depth);
  std::string out_;
  std::vector<Level> stack_;
  bool done_ = false;
};

}  // namespace sx::train
