// Optimizers and schedulers against trajectories recorded from torch.optim
// (scripts/fixtures/train_optim.py), gradient clipping against the closed form, state round trips,
// and the CUDA kernels against the CPU ones.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/devices.h"
#include "tensor/errors.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "train/loop/clip.h"
#include "train/loop/optim.h"
#include "train/loop/scheduler.h"

using namespace sx;
using namespace sx::optim;

namespace {

struct OptCase {
  std::string name, kind, dtype;
  std::map<std::string, double> hp;
  std::vector<double> p0;
  std::vector<std::vector<double>> grads, traj;
};

std::vector<double> read_values(std::istringstream& is) {
  std::vector<double> v;
  double x;
  while (is >> x) v.push_back(x);
  return v;
}

std::vector<OptCase> load_opt_cases() {
  std::ifstream f(std::string(SX_TEST_DATA_DIR) + "/train/optim_cases.txt");
  EXPECT_TRUE(f.good()) << "missing tests/data/train/optim_cases.txt";
  std::vector<OptCase> out;
  OptCase cur;
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream is(line);
    std::string key;
    is >> key;
    if (key == "case") {
      cur = OptCase();
      is >> cur.name;
    } else if (key == "opt") {
      std::string d;
      is >> cur.kind >> d >> cur.dtype;
    } else if (key == "hp") {
      std::string kv;
      while (is >> kv) {
        auto eq = kv.find('=');
        cur.hp[kv.substr(0, eq)] = std::stod(kv.substr(eq + 1));
      }
    } else if (key == "p0") {
      cur.p0 = read_values(is);
    } else if (key == "grad") {
      cur.grads.push_back(read_values(is));
    } else if (key == "p") {
      cur.traj.push_back(read_values(is));
    } else if (key == "end") {
      out.push_back(cur);
    }
  }
  return out;
}

double hp(const OptCase& c, const std::string& k, double def) {
  auto it = c.hp.find(k);
  return it == c.hp.end() ? def : it->second;
}

std::unique_ptr<Optimizer> build(const OptCase& c, const Tensor& p) {
  if (c.kind == "sgd") {
    SgdOptions o;
    o.lr = hp(c, "lr", 0.01);
    o.momentum = hp(c, "momentum", 0);
    o.dampening = hp(c, "dampening", 0);
    o.weight_decay = hp(c, "weight_decay", 0);
    o.nesterov = hp(c, "nesterov", 0) != 0;
    return std::make_unique<SGD>(std::vector<Tensor>{p}, o);
  }
  AdamWOptions o;
  o.lr = hp(c, "lr", 1e-3);
  o.beta1 = hp(c, "beta1", 0.9);
  o.beta2 = hp(c, "beta2", 0.999);
  o.eps = hp(c, "eps", 1e-8);
  o.weight_decay = hp(c, "weight_decay", 1e-2);
  return std::make_unique<AdamW>(std::vector<Tensor>{p}, o);
}

class OptimDevice : public ::testing::TestWithParam<Device> {};

// Every fixture trajectory, step by step. float32: rtol 2e-6 (torch and we may fold a scalar in a
// different order); float64: 1e-13.
TEST_P(OptimDevice, MatchesTorchTrajectories) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  auto cases = load_opt_cases();
  ASSERT_EQ(cases.size(), 24u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    DType dt = c.dtype == "f32" ? DType::Float32 : DType::Float64;
    double rtol = dt == DType::Float32 ? 2e-6 : 1e-13;
    Tensor p = Tensor::from_vector(c.p0, {static_cast<int64_t>(c.p0.size())}, dt).to(dev);
    p.set_requires_grad(true);
    auto opt = build(c, p);
    for (size_t s = 0; s < c.grads.size(); ++s) {
      if (hp(c, "skip3", 0) != 0 && s == 3) p.zero_grad();
      else p.set_grad(Tensor::from_vector(c.grads[s], {static_cast<int64_t>(c.grads[s].size())}, dt).to(dev));
      opt->step();
      auto got = p.to_vector();
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], c.traj[s][i], rtol * std::max(1.0, std::fabs(c.traj[s][i])))
            << "step " << s << " element " << i;
    }
  }
}

// Saving the state after 3 steps into a fresh optimizer continues the trajectory exactly.
TEST_P(OptimDevice, StateRoundTripContinuesExactly) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  for (const auto& c : load_opt_cases()) {
    if (hp(c, "skip3", 0) != 0) continue;
    SCOPED_TRACE(c.name);
    DType dt = c.dtype == "f32" ? DType::Float32 : DType::Float64;
    auto mk = [&](const std::vector<double>& v) { return Tensor::from_vector(v, {int64_t(v.size())}, dt).to(dev); };
    Tensor a = mk(c.p0);
    a.set_requires_grad(true);
    auto oa = build(c, a);
    for (int s = 0; s < 3; ++s) {
      a.set_grad(mk(c.grads[s]));
      oa->step();
    }
    Tensor b = a.detach().clone();
    b.set_requires_grad(true);
    auto ob = build(c, b);
    NamedTensors st;
    for (auto& [n, t] : oa->state_tensors()) st.push_back({n, t.cpu().clone()});  // as a checkpoint would
    ob->load_state(st);
    for (size_t s = 3; s < c.grads.size(); ++s) {
      a.set_grad(mk(c.grads[s]));
      b.set_grad(mk(c.grads[s]));
      oa->step();
      ob->step();
    }
    EXPECT_EQ(a.to_vector(), b.to_vector());
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, OptimDevice, SX_DEVICES, sx::test::device_name);

TEST(Optim, RefusesBadArguments) {
  Tensor p = Tensor::zeros({3});
  p.set_requires_grad(true);
  SgdOptions o;
  o.nesterov = true;  // without momentum
  EXPECT_THROW(SGD({p}, o), ValueError);
  SgdOptions o2;
  o2.lr = -1;
  EXPECT_THROW(SGD({p}, o2), ValueError);
  EXPECT_THROW(SGD(std::vector<Tensor>{p, p}, SgdOptions{}), ValueError);
  Tensor i = Tensor::zeros({3}, DType::Int64);
  EXPECT_THROW(SGD({i}, SgdOptions{}), ValueError);
  SGD sgd({p}, SgdOptions{});
  EXPECT_THROW(sgd.load_state({{"0.exp_avg", Tensor::zeros({3})}}), ValueError);
  EXPECT_THROW(sgd.load_state({{"0.momentum_buffer", Tensor::zeros({4})}}), ValueError);
  EXPECT_THROW(make_optimizer("lbfgs", {}, 0.1, 0.0), ValueError);
}

TEST(Optim, GroupsAndNoDecaySplit) {
  Tensor w = Tensor::ones({2, 2}), b = Tensor::ones({2});
  w.set_requires_grad(true);
  b.set_requires_grad(true);
  auto groups = split_no_decay({w, b});
  ASSERT_EQ(groups.size(), 2u);
  SgdOptions o;
  o.lr = 0.5;
  o.weight_decay = 0.1;
  SGD sgd(groups, o);
  w.set_grad(Tensor::zeros({2, 2}));
  b.set_grad(Tensor::zeros({2}));
  sgd.step();
  // w decays: 1 - 0.5 * 0.1 * 1 = 0.95; b has no decay and a zero gradient: stays 1
  for (double v : w.to_vector()) EXPECT_FLOAT_EQ(v, 0.95f);
  for (double v : b.to_vector()) EXPECT_EQ(v, 1.0);
}

TEST(Clip, GlobalNormClosedForm) {
  Tensor a = Tensor::zeros({2}, DType::Float32), b = Tensor::zeros({1}, DType::Float32), c = Tensor::zeros({3});
  for (Tensor* t : {&a, &b, &c}) t->set_requires_grad(true);
  a.set_grad(Tensor::from_vector({3, 0}, {2}));
  b.set_grad(Tensor::from_vector({4}, {1}));
  // c has no gradient: ignored
  EXPECT_NEAR(grad_norm({a, b, c}), 5.0, 1e-9);
  ClipResult r = clip_grad_norm({a, b, c}, 1.0);
  EXPECT_TRUE(r.clipped);
  EXPECT_NEAR(r.total_norm, 5.0, 1e-9);
  EXPECT_NEAR(r.coef, 1.0 / (5.0 + 1e-6), 1e-12);
  EXPECT_NEAR(a.grad().to_vector()[0], 3.0 / 5.0, 1e-6);
  EXPECT_NEAR(b.grad().to_vector()[0], 4.0 / 5.0, 1e-6);
  EXPECT_NEAR(grad_norm({a, b}), 1.0, 1e-5);
  // below the limit: untouched
  ClipResult r2 = clip_grad_norm({a, b}, 10.0);
  EXPECT_FALSE(r2.clipped);
  EXPECT_NEAR(a.grad().to_vector()[0], 3.0 / 5.0, 1e-6);
  // non-finite: left alone, or an error when asked
  b.set_grad(Tensor::from_vector({NAN}, {1}));
  ClipResult r3 = clip_grad_norm({a, b}, 1.0);
  EXPECT_TRUE(std::isnan(r3.total_norm));
  EXPECT_FALSE(r3.clipped);
  EXPECT_THROW(clip_grad_norm({a, b}, 1.0, true), ValueError);
  EXPECT_THROW(clip_grad_norm({a}, 0.0), ValueError);
}

TEST(Clip, ByValueClampsEachElementAndKeepsNaN) {
  Tensor a = Tensor::zeros({4}), b = Tensor::zeros({1});
  for (Tensor* t : {&a, &b}) t->set_requires_grad(true);
  a.set_grad(Tensor::from_vector({3, -0.5, -2, 1}, {4}));
  // b has no gradient: ignored
  clip_grad_value({a, b}, 1.0);
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{1, -0.5, -1, 1}));
  EXPECT_FALSE(b.grad().defined());
  Tensor c = Tensor::zeros({2});
  c.set_requires_grad(true);
  c.set_grad(Tensor::from_vector({NAN, 7}, {2}));
  clip_grad_value({c}, 2.0);
  EXPECT_TRUE(std::isnan(c.grad().to_vector()[0]));
  EXPECT_EQ(c.grad().to_vector()[1], 2.0);
  EXPECT_THROW(clip_grad_value({c}, 0.0), ValueError);
  EXPECT_THROW(clip_grad_value({c}, NAN), ValueError);
}

// ---- schedulers -----------------------------------------------------------------------------

TEST(Scheduler, MatchesTorchSchedules) {
  std::ifstream f(std::string(SX_TEST_DATA_DIR) + "/train/sched_cases.txt");
  ASSERT_TRUE(f.good());
  std::string line;
  int cases = 0;
  while (std::getline(f, line)) {
    std::istringstream is(line);
    std::string key, name;
    is >> key >> name;
    ASSERT_EQ(key, "sched");
    std::map<std::string, std::string> kv;
    std::string item;
    while (is >> item) kv[item.substr(0, item.find('='))] = item.substr(item.find('=') + 1);
    std::getline(f, line);
    std::istringstream ls(line);
    ls >> key;
    auto lrs = read_values(ls);
    SCOPED_TRACE(name);
    auto sched = make_scheduler(kv["kind"], std::stod(kv["base"]), std::stoll(kv["total"]), std::stoll(kv["warmup"]),
                                kv.count("milestones") ? kv["milestones"] : "", kv.count("gamma") ? std::stod(kv["gamma"]) : 0.1,
                                kv.count("min") ? std::stod(kv["min"]) : 0.0);
    for (size_t s = 0; s < lrs.size(); ++s) EXPECT_NEAR(sched->lr_at(s), lrs[s], 1e-12) << "step " << s;
    ++cases;
  }
  EXPECT_EQ(cases, 3);
}

TEST(Scheduler, ClosedFormsAndApply) {
  Warmup w;
  w.steps = 10;
  w.start_factor = 0.1;
  WarmupCosine c(1.0, 110, w, 0.0);
  EXPECT_DOUBLE_EQ(c.lr_at(0), 0.1);
  EXPECT_DOUBLE_EQ(c.lr_at(5), 0.55);
  EXPECT_DOUBLE_EQ(c.lr_at(10), 1.0);
  EXPECT_NEAR(c.lr_at(60), 0.5, 1e-15);
  EXPECT_EQ(c.lr_at(110), 0.0);
  EXPECT_EQ(c.lr_at(1000), 0.0);
  MultiStep m(0.1, {5, 3}, 0.5);
  EXPECT_DOUBLE_EQ(m.lr_at(2), 0.1);
  EXPECT_DOUBLE_EQ(m.lr_at(3), 0.05);
  EXPECT_DOUBLE_EQ(m.lr_at(5), 0.025);
  auto fr = make_scheduler("multistep", 1.0, 100, 0, "0.5,0.75", 0.1);
  EXPECT_DOUBLE_EQ(fr->lr_at(49), 1.0);
  EXPECT_NEAR(fr->lr_at(50), 0.1, 1e-15);
  EXPECT_NEAR(fr->lr_at(75), 0.01, 1e-15);
  EXPECT_THROW(make_scheduler("poly", 1.0, 10, 0), ValueError);
  EXPECT_THROW(WarmupCosine(1.0, 0), ValueError);
  Tensor p = Tensor::zeros({1});
  p.set_requires_grad(true);
  SGD sgd({p}, SgdOptions{});
  EXPECT_DOUBLE_EQ(c.apply(sgd, 5), 0.55);
  EXPECT_DOUBLE_EQ(sgd.lr(), 0.55);
}

// ---- CUDA parity ----------------------------------------------------------------------------

TEST(OptimParity, CudaMatchesCpuOnLargeTensors) {
  SX_REQUIRE_CUDA();
  Generator gen(3);
  for (const char* kind : {"sgd", "adamw"}) {
    SCOPED_TRACE(kind);
    Tensor pc = randn({1000003}, gen), pg = pc.cuda();
    pc.set_requires_grad(true);
    pg.set_requires_grad(true);
    auto oc = make_optimizer(kind, {ParamGroup{{pc}}}, 0.01, 0.01, 0.9, true);
    auto og = make_optimizer(kind, {ParamGroup{{pg}}}, 0.01, 0.01, 0.9, true);
    for (int s = 0; s < 3; ++s) {
      Tensor g = randn({1000003}, gen);
      pc.set_grad(g);
      pg.set_grad(g.cuda());
      oc->step();
      og->step();
    }
    auto a = pc.to_vector(), b = pg.cpu().to_vector();
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
    EXPECT_LT(worst, 1e-6);
  }
}

}  // namespace
