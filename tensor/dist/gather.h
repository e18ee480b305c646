// Gathering variable-sized results from every rank (sx::dist), for the work that is sharded but
// must end in one answer: sharded validation gathers each rank's predictions and computes the
// metrics once, on the whole set (train/tasks: the classifier's and the detectors' validate()).
//
// all_gather_bytes: every rank's byte string, in rank order, on every rank. The process group's
// all_gather takes equal shapes, so the lengths go first (one int64 each), then the bytes padded to
// the longest, as int64 words on `device` (a CPU tensor through MPI, a CUDA one through NCCL: the
// group's own transport for that device).
//
// ByteWriter / ByteReader: the plain little serialisation the gathered records use (numbers as
// their bytes, strings with their length). The reader checks every read against the end.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "tensor/dist/process_group.h"

namespace sx::dist {

std::vector<std::string> all_gather_bytes(ProcessGroup& pg, const std::string& mine, Device device);

class ByteWriter {
 public:
  template <typename T>
  void put(T v) {
    static_assert(std::is_arithmetic_v<T>, "ByteWriter::put takes numbers");
    bytes_.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    bytes_.append(s);
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

class ByteReader {
 public:
  explicit ByteReader(const std::string& bytes) : bytes_(bytes) {}
  template <typename T>
  T get() {
    static_assert(std::is_arithmetic_v<T>, "ByteReader::get returns numbers");
    need(sizeof(T));
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string get_string() {
    const uint64_t n = get<uint64_t>();
    need(n);
    std::string s = bytes_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  bool done() const { return pos_ == bytes_.size(); }

 private:
  void need(uint64_t n) const {
    SX_CHECK(n <= bytes_.size() - pos_, "dist: a gathered record ends early (", bytes_.size() - pos_,
             " bytes left, ", n, " needed)");
  }
  const std::string& bytes_;
  size_t pos_ = 0;
};

}  // namespace sx::dist
