// Test helpers shared by the model tests: the torchvision state-dict listing fixtures
// (scripts/fixtures/models_*.py write "ARCH NAME d0,d1,..." lines and "# ARCH params N" lines) and a
// closeness check scaled by the reference's largest magnitude.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace sx::test {

struct StateDictListing {
  std::map<std::string, std::vector<std::pair<std::string, Shape>>> entries;  // per arch, in order
  std::map<std::string, int64_t> param_counts;                                // per arch
};

// Reads a listing; an unreadable file gives an empty listing (the caller asserts its size).
inline StateDictListing read_state_dict_listing(const std::string& path) {
  StateDictListing out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    std::istringstream is(line);
    if (line[0] == '#') {
      std::string hash, arch, word;
      int64_t n = 0;
      is >> hash >> arch >> word >> n;
      out.param_counts[arch] = n;
      continue;
    }
    std::string arch, name, shape;
    is >> arch >> name;
    std::getline(is, shape);
    Shape s;
    std::istringstream ss(shape);
    std::string tok;
    while (std::getline(ss, tok, ','))
      if (tok.find_first_not_of(' ') != std::string::npos) s.push_back(std::stoll(tok));
    out.entries[arch].emplace_back(name, s);
  }
  return out;
}

// |got - ref| <= rel * max|ref| + 1e-6 element-wise, naming the element.
inline void expect_close_scaled(const Tensor& got, const Tensor& ref, double rel, const std::string& what) {
  ASSERT_EQ(got.shape(), ref.shape()) << what;
  auto g = got.to_vector(), r = ref.to_vector();
  double scale = 0;
  for (double v : r) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < r.size(); ++i)
    ASSERT_NEAR(g[i], r[i], rel * scale + 1e-6) << what << " element " << i << " (max |ref| " << scale << ")";
}

}  // namespace sx::test
