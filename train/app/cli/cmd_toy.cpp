// spinexr toy: the smallest end-to-end use of the engine. A two-layer MLP (layers/Linear + ReLU)
// learns to separate two interleaved spirals of 2-D points generated on the fly, with AdamW and
// binary cross-entropy, on the CPU (or a GPU). The loss printed every few steps falls from about
// 0.69 (chance) towards 0, and the final accuracy is printed. Needs no data and runs in seconds.
#include <cmath>
#include <cstdio>
#include <memory>

#include "layers/layers.h"
#include "layers/loss.h"
#include "tensor/autograd.h"
#include "tensor/device.h"
#include "tensor/errors.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "train/app/cli/cli.h"
#include "train/loop/optim.h"
#include "train/loop/scheduler.h"

namespace {

using namespace sx;

class Mlp : public nn::Module {
 public:
  Mlp(int64_t hidden, Generator& g) : Module("Mlp") {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(2, hidden, true, &g));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(hidden, hidden, true, &g));
    fc3 = register_module("fc3", std::make_shared<nn::Linear>(hidden, 1, true, &g));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = relu(fc1->forward(x));
    h = relu(fc2->forward(h));
    return fc3->forward(h).reshape({x.size(0)});
  }
  std::shared_ptr<nn::Linear> fc1, fc2, fc3;
};

// n points on two spirals (label 0 and 1), radius growing with the angle, plus a little noise.
void make_spirals(int64_t n, Generator& g, Tensor& x, Tensor& y) {
  x = Tensor::empty({n, 2});
  y = Tensor::empty({n});
  float* px = x.data<float>();
  float* py = y.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    int label = static_cast<int>(i % 2);
    double t = 0.25 + 2.75 * g.uniform();  // turns
    double angle = t * 3.14159265358979 + label * 3.14159265358979;
    double r = t / 3.0;
    px[2 * i] = static_cast<float>(r * std::cos(angle) + 0.02 * g.normal());
    px[2 * i + 1] = static_cast<float>(r * std::sin(angle) + 0.02 * g.normal());
    py[i] = static_cast<float>(label);
  }
}

int run_toy(int argc, char** argv) {
  cli::Args args("toy",
                 "Train a small MLP (2 -> hidden -> hidden -> 1) to separate two spirals of generated 2-D points,\n"
                 "and print the falling loss. A first check that the engine trains; no data needed.");
  args.option("steps", "400", "optimizer steps (full batch)")
      .option("points", "512", "number of generated points")
      .option("hidden", "64", "hidden units per layer")
      .option("lr", "0.01", "AdamW learning rate (cosine decay)")
      .option("every", "25", "print the loss every N steps")
      .option("seed", "0", "seed for the points and the initial weights")
      .option("device", "cpu", "cpu | cuda | cuda:N");
  if (!args.parse(argc, argv)) return 0;
  const int64_t steps = args.get_int("steps"), n = args.get_int("points"), hidden = args.get_int("hidden");
  const int64_t every = std::max<int64_t>(1, args.get_int("every"));
  SX_CHECK(steps >= 1 && n >= 2 && hidden >= 1, "toy: steps, points and hidden must be positive");
  Device dev = Device::parse(args.get("device"));
  Generator g(static_cast<uint64_t>(args.get_int("seed")));

  Tensor x, y;
  make_spirals(n, g, x, y);
  x = x.to(dev);
  y = y.to(dev);
  Mlp model(hidden, g);
  model.to(dev);
  optim::AdamWOptions o;
  o.lr = args.get_double("lr");
  o.weight_decay = 1e-4;
  optim::AdamW opt(model.trainable_parameters(), o);
  optim::WarmupCosine sched(o.lr, steps);

  std::printf("toy: %lld spiral points, MLP 2-%lld-%lld-1 (%lld parameters), AdamW lr %g, %lld steps on %s\n",
              static_cast<long long>(n), static_cast<long long>(hidden), static_cast<long long>(hidden),
              static_cast<long long>(model.num_parameters()), o.lr, static_cast<long long>(steps), dev.str().c_str());
  double first = 0, last = 0;
  for (int64_t s = 0; s < steps; ++s) {
    sched.apply(opt, s);
    Tensor loss = nn::binary_cross_entropy_with_logits(model.forward(x), y);
    loss.backward();
    opt.step();
    opt.zero_grad();
    double v = loss.item();
    SX_CHECK(std::isfinite(v), "toy: non-finite loss ", v, " at step ", s);
    if (s == 0) first = v;
    last = v;
    if (s % every == 0 || s + 1 == steps) std::printf("step %5lld  loss %.4f\n", static_cast<long long>(s), v);
  }
  NoGradGuard ng;
  auto logits = model.forward(x).to_vector();
  auto labels = y.to_vector();
  int64_t correct = 0;
  for (size_t i = 0; i < logits.size(); ++i) correct += (logits[i] > 0) == (labels[i] > 0.5);
  std::printf("loss %.4f -> %.4f; training accuracy %.1f%%\n", first, last,
              100.0 * static_cast<double>(correct) / static_cast<double>(n));
  return 0;
}

const cli::Registrar kRegister("toy", "train a small MLP on generated points (a first check that training works)",
                               run_toy);

}  // namespace
