// NMS: torchvision golden kept sets (ties, duplicates, zero-area and inverted boxes, IoU exactly at
// the threshold), naive == fast on random scenes, the options pipeline, edge cases, CUDA parity.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "kernels/labs/nms_lab.h"
#include "kernels/nms/nms.h"
#include "tests/common/devices.h"
#include "tests/kernels/detection_test_util.h"
#include "tensor/sync_stats.h"

namespace sx::kernels {
namespace {

using test::DetectionFixture;
using test::ints;

TEST(NmsGolden, MatchesTorchvisionKeptSetAndOrder) {
  DetectionFixture f("nms");
  Tensor b = f["nms_boxes"], s = f["nms_scores"], idx = f["nms_idxs"];
  for (int t : {5, 7, 0}) {
    const double thr = t / 10.0;
    for (NmsAlgo algo : {NmsAlgo::Naive, NmsAlgo::Fast}) {
      const char* an = algo == NmsAlgo::Naive ? "naive" : "fast";
      EXPECT_EQ(ints(nms(b, s, thr, algo)), ints(f["nms_keep_" + std::to_string(t)])) << an << " thr " << thr;
      EXPECT_EQ(ints(batched_nms(b, s, idx, thr, algo)), ints(f["bnms_keep_" + std::to_string(t)]))
          << an << " batched thr " << thr;
    }
  }
  EXPECT_EQ(ints(nms(b.to(DType::Float64), s.to(DType::Float64), 0.5)), ints(f["nms_keep64_5"]));
}

TEST(NmsGolden, OptionsPipelineMatchesFilterSortBatchedTruncate) {
  DetectionFixture f("nms");
  NmsOptions o;
  o.iou_threshold = 0.5;
  o.score_threshold = 0.3;
  o.pre_nms_top_k = 150;
  o.max_output = 40;
  for (NmsAlgo algo : {NmsAlgo::Naive, NmsAlgo::Fast}) {
    o.algo = algo;
    EXPECT_EQ(ints(nms_with_options(f["nms_boxes"], f["nms_scores"], f["nms_idxs"], o)), ints(f["nms_opt_keep"]));
  }
}

TEST(Nms, ExactThresholdIsNotSuppressed) {
  // IoU([0,0,10,20], [0,0,10,10]) = 0.5 exactly: suppression needs IoU > threshold.
  Tensor b = Tensor::from_vector({0, 0, 10, 20, 0, 0, 10, 10}, {2, 4});
  Tensor s = Tensor::from_vector({0.9, 0.8}, {2});
  EXPECT_EQ(ints(nms(b, s, 0.5)), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(ints(nms(b, s, 0.49)), (std::vector<int64_t>{0}));
}

TEST(Nms, TiesKeepIndexOrderAndDuplicatesCollapse) {
  Tensor b = Tensor::from_vector({0, 0, 10, 10, 0, 0, 10, 10, 20, 20, 30, 30, 0, 0, 10, 10}, {4, 4});
  Tensor s = Tensor::from_vector({0.5, 0.5, 0.5, 0.5}, {4});
  EXPECT_EQ(ints(nms(b, s, 0.5)), (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(ints(nms(b, s, 0.5, NmsAlgo::Naive)), (std::vector<int64_t>{0, 2}));
}

TEST(Nms, NanAndDegenerateBoxesNeverCrash) {
  Tensor b = Tensor::from_vector({NAN, 0, 10, 10,  0, 0, 10, 10,  5, 5, 5, 5,  5, 5, 5, 5,
                                  30, 30, 20, 20,  0, 0, INFINITY, 10,  1, 1, 9, 9},
                                 {7, 4});
  Tensor s = Tensor::from_vector({0.9, 0.8, 0.7, 0.7, 0.95, 0.6, NAN}, {7});
  for (NmsAlgo algo : {NmsAlgo::Naive, NmsAlgo::Fast}) {
    auto k = ints(nms(b, s, 0.5, algo));
    // NaN score first (torch sorts NaN as largest); box 6 [1,1,9,9] (IoU 0.64 with box 1) is kept
    // first and suppresses box 1; the NaN box, both zero-area duplicates, the inverted box and the
    // infinite box survive (their IoUs are NaN or 0).
    EXPECT_EQ(k, (std::vector<int64_t>{6, 4, 0, 2, 3, 5})) << (algo == NmsAlgo::Naive ? "naive" : "fast");
  }
}

TEST(Nms, EmptyInputs) {
  Tensor k = nms(Tensor::empty({0, 4}), Tensor::empty({0}), 0.5);
  EXPECT_EQ(k.shape(), (Shape{0}));
  EXPECT_EQ(k.dtype(), DType::Int64);
  Tensor kb = batched_nms(Tensor::empty({0, 4}), Tensor::empty({0}), Tensor::empty({0}, DType::Int64), 0.5);
  EXPECT_EQ(kb.shape(), (Shape{0}));
  NmsOptions o;
  o.score_threshold = 2.0;  // nothing passes
  Tensor b = Tensor::from_vector({0, 0, 1, 1}, {1, 4});
  EXPECT_EQ(nms_with_options(b, Tensor::from_vector({0.5}, {1}), Tensor(), o).numel(), 0);
}

TEST(Nms, RejectsBadArguments) {
  EXPECT_THROW(nms(Tensor::empty({3, 4}), Tensor::empty({2}), 0.5), ValueError);
  EXPECT_THROW(batched_nms(Tensor::empty({3, 4}), Tensor::empty({3}), Tensor::empty({3}), 0.5), ValueError);
}

// Random scenes: clustered boxes (many suppressions), integer coordinates (exact ties in IoU) and
// quantised scores (ties in order). The grid variant must reproduce the naive loop exactly.
Tensor random_boxes(std::mt19937& rng, int64_t n, double extent, double max_size, bool integer) {
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<double> v;
  std::vector<double> centres;
  for (int c = 0; c < 20; ++c) centres.push_back(u(rng) * extent);
  for (int64_t i = 0; i < n; ++i) {
    double x = centres[i % 10] + (u(rng) - 0.5) * max_size, y = centres[10 + i % 10] + (u(rng) - 0.5) * max_size;
    if (i % 3 == 0) x = u(rng) * extent, y = u(rng) * extent;
    double w = 1 + u(rng) * max_size, h = 1 + u(rng) * max_size;
    if (integer) x = std::round(x), y = std::round(y), w = std::round(w), h = std::round(h);
    v.insert(v.end(), {x, y, x + w, y + h});
  }
  return Tensor::from_vector(v, {n, 4});
}

TEST(Nms, FastEqualsNaiveOnRandomScenes) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 6; ++trial) {
    const int64_t n = trial < 3 ? 500 : 2000;
    Tensor b = random_boxes(rng, n, 400, trial % 2 ? 80 : 20, trial % 3 == 0);
    std::vector<double> sv(n), iv(n);
    std::uniform_int_distribution<int> q(0, 40), cls(0, 6);
    for (int64_t i = 0; i < n; ++i) sv[i] = q(rng) / 40.0, iv[i] = cls(rng);
    Tensor s = Tensor::from_vector(sv, {n}), idx = Tensor::from_vector(iv, {n}, DType::Int64);
    for (double thr : {0.0, 0.3, 0.5, 0.7, 1.0}) {
      EXPECT_EQ(ints(nms(b, s, thr, NmsAlgo::Fast)), ints(nms(b, s, thr, NmsAlgo::Naive))) << trial << " " << thr;
      EXPECT_EQ(ints(batched_nms(b, s, idx, thr, NmsAlgo::Fast)), ints(batched_nms(b, s, idx, thr, NmsAlgo::Naive)))
          << trial << " batched " << thr;
    }
  }
}

// An independent float64 reference of the greedy definition, for a sanity check of both.
TEST(Nms, MatchesPlainGreedyReference) {
  std::mt19937 rng(11);
  const int64_t n = 400;
  Tensor b = random_boxes(rng, n, 200, 40, false).to(DType::Float64);
  std::vector<double> sv(n);
  std::uniform_real_distribution<double> u(0, 1);
  for (auto& x : sv) x = u(rng);
  Tensor s = Tensor::from_vector(sv, {n}, DType::Float64);
  auto bv = b.to_vector();
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t c) { return sv[a] > sv[c]; });
  std::vector<int64_t> keep;
  for (int64_t i : order) {
    bool ok = true;
    for (int64_t k : keep) {
      const double* p = &bv[4 * k];
      const double* q2 = &bv[4 * i];
      const double iw = std::max(0.0, std::min(p[2], q2[2]) - std::max(p[0], q2[0]));
      const double ih = std::max(0.0, std::min(p[3], q2[3]) - std::max(p[1], q2[1]));
      const double inter = iw * ih;
      const double iou = inter / ((p[2] - p[0]) * (p[3] - p[1]) + (q2[2] - q2[0]) * (q2[3] - q2[1]) - inter);
      if (iou > 0.5) ok = false;
    }
    if (ok) keep.push_back(i);
  }
  EXPECT_EQ(ints(nms(b, s, 0.5, NmsAlgo::Fast)), keep);
  EXPECT_EQ(ints(nms(b, s, 0.5, NmsAlgo::Naive)), keep);
}

// The CUDA kernels' per-thread pieces (nms_math.h: mask_word, resolve_group) driven by a host
// emulation of the grouped device reduction (the NMS lab's v3, kernels/labs/nms_lab.h): must give
// the kept set of the greedy loop.
std::vector<int64_t> bitmask_nms_host(const Tensor& boxes, const Tensor& scores, double thr, int64_t max_out,
                                      const Tensor& idxs = Tensor()) {
  return ints(labs::nms_v3_bitmask(boxes, scores, thr, idxs, max_out));
}

// The same emulation with categories (the CUDA batched path): per-category NMS, also where
// torchvision's coordinate-offset trick fails (detection_edge.txt, negative and large coordinates).
TEST(Nms, BitmaskPiecesWithCategoriesMatchPerCategoryNms) {
  DetectionFixture f("nms"), e("edge");
  Tensor b = f["nms_boxes"], s = f["nms_scores"], idx = f["nms_idxs"];
  for (int t : {5, 7, 0})
    EXPECT_EQ(bitmask_nms_host(b, s, t / 10.0, -1, idx), ints(f["bnms_keep_" + std::to_string(t)])) << t;
  for (const char* tag : {"neg", "big32"}) {
    const std::string p = std::string("edge_bnms_") + tag;
    EXPECT_EQ(bitmask_nms_host(e[p + "_boxes"], e[p + "_scores"], 0.5, -1, e[p + "_idxs"]), ints(e[p + "_keep"])) << tag;
  }
}

TEST(Nms, BitmaskPiecesOfTheCudaKernelMatchGreedy) {
  DetectionFixture f("nms");
  Tensor b = f["nms_boxes"], s = f["nms_scores"];
  for (int t : {5, 7, 0}) {
    EXPECT_EQ(bitmask_nms_host(b, s, t / 10.0, -1), ints(f["nms_keep_" + std::to_string(t)]));
    NmsOptions o;
    o.iou_threshold = t / 10.0;
    o.max_output = 37;
    EXPECT_EQ(bitmask_nms_host(b, s, t / 10.0, 37), ints(nms_with_options(b, s, Tensor(), o)));
  }
  std::mt19937 rng(5);
  Tensor rb = random_boxes(rng, 1500, 300, 40, true);
  std::vector<double> sv(1500);
  std::uniform_int_distribution<int> q(0, 30);
  for (auto& x : sv) x = q(rng) / 30.0;
  Tensor rs = Tensor::from_vector(sv, {1500});
  EXPECT_EQ(bitmask_nms_host(rb, rs, 0.5, -1), ints(nms(rb, rs, 0.5)));
}

TEST(Nms, MaxOutputAndTopK) {
  Tensor b = Tensor::from_vector({0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7}, {4, 4});
  Tensor s = Tensor::from_vector({0.1, 0.4, 0.3, 0.2}, {4});
  NmsOptions o;
  o.max_output = 2;
  EXPECT_EQ(ints(nms_with_options(b, s, Tensor(), o)), (std::vector<int64_t>{1, 2}));
  o.max_output = -1;
  o.pre_nms_top_k = 3;
  EXPECT_EQ(ints(nms_with_options(b, s, Tensor(), o)), (std::vector<int64_t>{1, 2, 3}));
  auto [keep, count] = nms_padded(b, s, Tensor(), o);
  EXPECT_EQ(ints(keep), (std::vector<int64_t>{1, 2, 3, -1}));
  EXPECT_EQ(ints(count), (std::vector<int64_t>{3}));
}

class NmsDevice : public ::testing::TestWithParam<Device> {};

TEST_P(NmsDevice, ParityWithCpu) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  DetectionFixture f("nms");
  Tensor b = f["nms_boxes"], s = f["nms_scores"], idx = f["nms_idxs"];
  for (NmsAlgo algo : {NmsAlgo::Naive, NmsAlgo::Fast}) {
    for (int t : {5, 7, 0}) {
      Tensor k = nms(b.to(dev), s.to(dev), t / 10.0, algo);
      EXPECT_EQ(k.device(), dev);
      EXPECT_EQ(ints(k), ints(f["nms_keep_" + std::to_string(t)]));
      EXPECT_EQ(ints(batched_nms(b.to(dev), s.to(dev), idx.to(dev), t / 10.0, algo)),
                ints(f["bnms_keep_" + std::to_string(t)]));
    }
    NmsOptions o;
    o.score_threshold = 0.3;
    o.pre_nms_top_k = 150;
    o.max_output = 40;
    o.algo = algo;
    EXPECT_EQ(ints(nms_with_options(b.to(dev), s.to(dev), idx.to(dev), o)), ints(f["nms_opt_keep"]));
  }
  // Larger random scene (several 64-box groups and > 1 shared-memory word per thread).
  std::mt19937 rng(3);
  Tensor rb = random_boxes(rng, 5000, 600, 40, false);
  std::vector<double> sv(5000);
  std::uniform_int_distribution<int> q(0, 100);
  for (auto& x : sv) x = q(rng) / 100.0;
  Tensor rs = Tensor::from_vector(sv, {5000});
  EXPECT_EQ(ints(nms(rb.to(dev), rs.to(dev), 0.5)), ints(nms(rb, rs, 0.5)));
  Tensor e = nms(Tensor::empty({0, 4}, DType::Float32, dev), Tensor::empty({0}, DType::Float32, dev), 0.5);
  EXPECT_EQ(e.numel(), 0);
  EXPECT_EQ(e.device(), dev);
}

INSTANTIATE_TEST_SUITE_P(Devices, NmsDevice, SX_DEVICES, test::device_name);

// The sync-free form issues no host synchronisation and no device->host copy on CUDA (counted by
// the engine's sync counters, tensor/sync_stats.h); nms() waits exactly once, to read the count.
TEST(NmsCuda, PaddedFormNeverWaitsForTheDevice) {
  SX_REQUIRE_CUDA();
  std::mt19937 rng(5);
  Tensor b = random_boxes(rng, 20000, 1000, 60, false).to(Device::cuda(0));
  std::vector<double> sv(20000);
  std::uniform_real_distribution<double> u(0, 1);
  for (auto& x : sv) x = u(rng);
  Tensor s = Tensor::from_vector(sv, {20000}).to(Device::cuda(0));
  Tensor idx = Tensor::zeros({20000}, DType::Int64, Device::cuda(0));
  (void)nms_padded(b, s, idx, NmsOptions{}).second.cpu();  // warm-up (module load, first allocations); waits
  reset_sync_stats();
  NmsOptions o;
  o.score_threshold = 0.1;
  o.pre_nms_top_k = 15000;
  auto [keep, count] = nms_padded(b, s, idx, o);
  EXPECT_EQ(sync_stats().stream_syncs, 0);
  EXPECT_EQ(sync_stats().device_to_host_copies, 0);
  Tensor k = nms(b, s, 0.5);
  EXPECT_EQ(sync_stats().device_to_host_copies, 1);
  // And the padded result is the CPU's.
  auto [kc, cc] = nms_padded(b.cpu(), s.cpu(), idx.cpu(), o);
  EXPECT_EQ(ints(count), ints(cc));
  EXPECT_EQ(ints(keep), ints(kc));
}

// More than 327,680 boxes: the keep kernel's `removed` words no longer fit in 40 KB of shared
// memory and live in global memory instead (the other branch of nms_cuda.cu's keep_kernel). The
// CPU twin pins the expected result. (The bitmask is ~14 GB here: a GPU-sized test.)
TEST(NmsCudaLarge, GlobalMemoryPathMatchesCpu) {
  SX_REQUIRE_CUDA();
  const int64_t n = 340000;
  std::mt19937 rng(11);
  Tensor b = random_boxes(rng, n, 6000, 50, false);
  std::vector<double> sv(n);
  std::uniform_real_distribution<double> u(0, 1);
  for (auto& x : sv) x = u(rng);
  Tensor s = Tensor::from_vector(sv, {n});
  Tensor kg = nms(b.to(Device::cuda(0)), s.to(Device::cuda(0)), 0.5);
  Tensor kc = nms(b, s, 0.5);
  ASSERT_GT(kc.numel(), 1000);
  EXPECT_EQ(ints(kg), ints(kc));
}

}  // namespace
}  // namespace sx::kernels
