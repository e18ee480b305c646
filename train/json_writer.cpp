// JSON writer; see json_writer.h.
#include "train/json_writer.h"

#include <cstdio>

#include "tensor/errors.h"
#include "train/metrics.h"

namespace sx::train {

std::string JsonWriter::escape(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      case '\b': o += "\\b"; break;
      case '\f': o += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += static_cast<char>(c);
        }
    }
  }
  return o + "\"";
}

void JsonWriter::newline(size_t depth) {
  out_ += '\n';
  out_.append(2 * depth, ' ');
}

void JsonWriter::before_value() {
  SX_CHECK(!done_, "JsonWriter: the document is already complete");
  if (stack_.empty()) return;
  Level& l = stack_.back();
  if (l.is_object) {
    SX_CHECK(l.has_key, "JsonWriter: a value inside an object needs a key first");
    l.has_key = false;
    return;
  }
  if (l.count++ > 0) out_ += l.multiline ? "," : ", ";
  if (l.multiline) newline(stack_.size());
}

JsonWriter& JsonWriter::begin_object() {
  if (!stack_.empty() && !stack_.back().is_object) stack_.back().multiline = true;
  before_value();
  out_ += '{';
  stack_.push_back({true});
  return *this;
}

JsonWriter& JsonWriter::end_object() {
  SX_CHECK(!stack_.empty() && stack_.back().is_object && !stack_.back().has_key, "JsonWriter: unbalanced end_object");
  bool any = stack_.back().count > 0;
  stack_.pop_back();
  if (any) newline(stack_.size());
  out_ += '}';
  if (stack_.empty()) done_ = true;
  return *this;
}

JsonWriter& JsonWriter::begin_array() {
  before_value();
  out_ += '[';
  stack_.push_back({false});
  return *this;
}

JsonWriter& JsonWriter::end_array() {
  SX_CHECK(!stack_.empty() && !stack_.back().is_object, "JsonWriter: unbalanced end_array");
  bool ml = stack_.back().multiline && stack_.back().count > 0;
  stack_.pop_back();
  if (ml) newline(stack_.size());
  out_ += ']';
  if (stack_.empty()) done_ = true;
  return *this;
}

JsonWriter& JsonWriter::key(const std::string& k) {
  SX_CHECK(!stack_.empty() && stack_.back().is_object && !stack_.back().has_key,
           "JsonWriter: key '", k, "' outside an object or after another key");
  Level& l = stack_.back();
  if (l.count++ > 0) out_ += ',';
  newline(stack_.size());
  out_ += escape(k) + ": ";
  l.has_key = true;
  return *this;
}

JsonWriter& JsonWriter::value(double v) {
  before_value();
  out_ += metrics::json_number(v);
  if (stack_.empty()) done_ = true;
  return *this;
}
JsonWriter& JsonWriter::value(int64_t v) {
  before_value();
  out_ += std::to_string(v);
  if (stack_.empty()) done_ = true;
  return *this;
}
JsonWriter& JsonWriter::value(bool v) {
  before_value();
  out_ += v ? "true" : "false";
  if (stack_.empty()) done_ = true;
  return *this;
}
JsonWriter& JsonWriter::value(const std::string& v) {
  before_value();
  out_ += escape(v);
  if (stack_.empty()) done_ = true;
  return *this;
}
JsonWriter& JsonWriter::null() {
  before_value();
  out_ += "null";
  if (stack_.empty()) done_ = true;
  return *this;
}
JsonWriter& JsonWriter::values(const std::vector<double>& v) {
  begin_array();
  for (double x : v) value(x);
  return end_array();
}

std::string JsonWriter::str() const {
  SX_CHECK(stack_.empty() && done_, "JsonWriter: the document is incomplete");
  return out_ + "\n";
}

}  // namespace sx::train
