// Helpers for the detection-kernel tests: the golden-fixture reader (files written by
// scripts/fixtures/kernels_detection.py) and tolerant tensor comparisons.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace sx::test {

class DetectionFixture {
 public:
  // group: roi, ms, nms, fl, box, coder, anchors, match, edge -> tests/data/<dir>/detection_<group>.txt
  // (dir "models" for losses: scripts/fixtures/models_detection_losses.py). A group with a dot is a
  // file name of its own in that dir (same format, e.g. "transformer.txt" of layers_transformer.py).
  explicit DetectionFixture(const std::string& group, const std::string& dir = "kernels") {
    const std::string file = group.find('.') != std::string::npos ? group : "detection_" + group + ".txt";
    const std::string path = std::string(SX_TEST_DATA_DIR) + "/" + dir + "/" + file;
    std::ifstream f(path);
    if (!f) throw std::runtime_error("cannot open fixture " + path);
    std::string header, body;
    while (std::getline(f, header)) {
      if (header.empty() || header[0] == '#') continue;
      std::getline(f, body);
      std::istringstream hs(header);
      std::string name, dt;
      int nd = 0;
      hs >> name >> dt >> nd;
      Shape shape(nd);
      for (int i = 0; i < nd; ++i) hs >> shape[i];
      std::istringstream bs(body);
      std::vector<double> v;
      std::string tok;
      while (bs >> tok) v.push_back(std::stod(tok));
      const DType t = dt == "f32" ? DType::Float32 : dt == "f64" ? DType::Float64 : DType::Int64;
      if (static_cast<int64_t>(v.size()) != shape_numel(shape))
        throw std::runtime_error("fixture " + name + ": value count does not match its shape");
      arrays_[name] = Tensor::from_vector(v, shape, t);
    }
  }
  Tensor operator[](const std::string& name) const {
    auto it = arrays_.find(name);
    if (it == arrays_.end()) throw std::runtime_error("fixture array missing: " + name);
    return it->second;
  }

 private:
  std::map<std::string, Tensor> arrays_;
};

// |a - b| <= atol + rtol * |b| elementwise, NaN == NaN; reports the first few mismatches.
inline void expect_close(const Tensor& a, const Tensor& b, double atol, double rtol,
                         const std::string& what = "") {
  ASSERT_EQ(shape_str(a.shape()), shape_str(b.shape())) << what;
  const std::vector<double> va = a.to_vector(), vb = b.to_vector();
  int bad = 0;
  double worst = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    const bool na = std::isnan(va[i]), nb = std::isnan(vb[i]);
    bool ok;
    if (na || nb) ok = na && nb;
    else if (std::isinf(va[i]) || std::isinf(vb[i])) ok = va[i] == vb[i];
    else ok = std::fabs(va[i] - vb[i]) <= atol + rtol * std::fabs(vb[i]);
    if (!ok) {
      worst = std::max(worst, std::fabs(va[i] - vb[i]));
      if (++bad <= 5) ADD_FAILURE() << what << " element " << i << ": " << va[i] << " vs " << vb[i];
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << va.size() << " elements differ (worst " << worst << ")";
}

inline void expect_equal_values(const Tensor& a, const Tensor& b, const std::string& what = "") {
  expect_close(a, b, 0.0, 0.0, what);
}

inline std::vector<int64_t> ints(const Tensor& t) { return t.to_vector_as<int64_t>(); }

}  // namespace sx::test
