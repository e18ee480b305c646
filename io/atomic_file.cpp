#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "tensor/errors.h"

namespace sx::io {
namespace {

std::string errno_text() { return std::strerror(errno); }

std::string parent_dir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string make_temp_name(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return path + ".tmp." + std::to_string(static_cast<long long>(::getpid())) + "." +
         std::to_string(counter.fetch_add(1));
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // best effort: some file systems refuse to open folders
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)), tmp_(make_temp_name(path_)) {
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) SX_THROW(IOError, "cannot create ", tmp_, " (for ", path_, "): ", errno_text());
}

AtomicFile::~AtomicFile() {
  if (f_) std::fclose(f_);
  if (!committed_) std::remove(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  if (!f_) SX_THROW(IOError, "write to ", path_, " after commit");
  if (size == 0) return;
  if (std::fwrite(data, 1, size, f_) != size)
    SX_THROW(IOError, "cannot write ", size, " bytes to ", tmp_, ": ", errno_text());
  written_ += size;
}

void AtomicFile::commit() {
  if (!f_) SX_THROW(IOError, "commit of ", path_, " twice");
  bool ok = std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
  std::string why = ok ? "" : errno_text();
  int rc = std::fclose(f_);
  f_ = nullptr;
  if (!ok || rc != 0) SX_THROW(IOError, "cannot flush ", tmp_, ": ", why.empty() ? errno_text() : why);
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    SX_THROW(IOError, "cannot rename ", tmp_, " to ", path_, ": ", errno_text());
  committed_ = true;
  fsync_dir(parent_dir(path_));
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  AtomicFile f(path);
  f.write(data, size);
  f.commit();
}

std::string read_file(const std::string& path, uint64_t max_bytes) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) SX_THROW(IOError, "cannot open ", path, ": ", errno_text());
  struct stat st;
  if (::fstat(::fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    std::fclose(f);
    SX_THROW(IOError, path, ": not a regular file");
  }
  uint64_t n = static_cast<uint64_t>(st.st_size);
  if (n > max_bytes) {
    std::fclose(f);
    SX_THROW(IOError, path, ": file is ", n, " bytes, more than the limit of ", max_bytes);
  }
  std::string out(static_cast<size_t>(n), '\0');
  size_t got = n ? std::fread(&out[0], 1, static_cast<size_t>(n), f) : 0;
  std::fclose(f);
  if (got != n) SX_THROW(IOError, path, ": read ", got, " of ", n, " bytes");
  return out;
}

void make_dirs(const std::string& path) {
  if (path.empty()) return;
  // Parents first: every prefix ending before a '/', then the path itself.
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i < path.size() && path[i] != '/') continue;
    const std::string p = path.substr(0, i);
    if (::mkdir(p.c_str(), 0755) == 0 || errno == EEXIST) continue;
    SX_THROW(IOError, "cannot create folder ", p, ": ", std::strerror(errno));
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) SX_THROW(IOError, "cannot create folder ", path, ": a file is in the way");
}

}  // namespace sx::io
