// Helpers shared by the io tests: a temporary folder removed at scope exit, file helpers.
#pragma once
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace sx::io::test {

inline void remove_tree(const std::string& p) {
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    if (DIR* d = ::opendir(p.c_str())) {
      while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n == "." || n == "..") continue;
        remove_tree(p + "/" + n);
      }
      ::closedir(d);
    }
    ::rmdir(p.c_str());
  } else {
    ::unlink(p.c_str());
  }
}

// A fresh folder under /tmp, removed with everything in it at scope exit. When mkdtemp fails the
// constructor throws (GoogleTest reports the test as failed) rather than handing out a shared
// folder that the destructor would then delete.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/sx_io_test_XXXXXX";
    char* p = ::mkdtemp(tmpl);
    if (!p) throw std::runtime_error(std::string("TempDir: mkdtemp failed: ") + std::strerror(errno));
    path = p;
  }
  ~TempDir() {
    if (!path.empty()) remove_tree(path);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

inline std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void spit(const std::string& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::vector<std::string> list_dir(const std::string& p) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(p.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
  }
  return out;
}

inline std::string data_dir() { return std::string(SX_TEST_DATA_DIR) + "/io"; }

}  // namespace sx::io::test
