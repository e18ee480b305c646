// Atomic file writes: a file is either absent, its old version, or complete -- never half written.
//
// The bytes go to a temporary file in the same folder (same file system, so rename is atomic),
// which is flushed and fsync'ed, then renamed over the destination; finally the folder itself is
// fsync'ed so the rename survives a power cut. A killed process leaves at most a stray
// "<name>.tmp.<pid>.<n>" file, never a truncated destination. Used by the PNG writers, the
// `prepare` cache, checkpoints and the CSV/JSON writers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace sx::io {

// Writes `size` bytes to `path` atomically. Throws sx::IOError naming the path and the errno text.
void write_file_atomic(const std::string& path, const void* data, size_t size);
inline void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_file_atomic(path, bytes.data(), bytes.size());
}

// Streaming variant for large outputs (checkpoints):
//   AtomicFile f(path);  f.write(p, n); ...; f.commit();
// Without commit() (an exception, an early return) the temporary file is removed and the
// destination is left untouched.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  void write(const std::string& s) { write(s.data(), s.size()); }
  uint64_t bytes_written() const { return written_; }
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_; }
  // Flush, fsync, rename onto the destination, fsync the folder. Throws sx::IOError on failure.
  void commit();

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  uint64_t written_ = 0;
  bool committed_ = false;
};

// Reads a whole file (throws sx::IOError naming the path). `max_bytes` guards against reading
// something absurd into memory.
std::string read_file(const std::string& path, uint64_t max_bytes = (uint64_t(1) << 32));

// Creates a folder and its missing parents (mkdir -p); an existing folder is fine. Throws
// sx::IOError "cannot create folder P: reason" naming the first one that cannot be made.
void make_dirs(const std::string& path);

}  // namespace sx::io
