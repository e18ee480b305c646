// Checkpoints (round trip, refusal, keep-last-K, atomicity under a kill), signals, JSON writer.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "layers/module.h"
#include "tensor/errors.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "train/loop/checkpoint.h"
#include "train/loop/optim.h"
#include "train/loop/scheduler.h"
#include "train/loop/signals.h"

using namespace sx;
using namespace sx::train;
namespace fs = std::filesystem;

namespace {

std::string temp_dir(const std::string& name) {
  auto p = fs::temp_directory_path() / ("sx_test_ckpt_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

// A small module with a parameter, a child with a parameter, and a buffer.
class Inner : public nn::Module {
 public:
  explicit Inner(Generator& g) : Module("Inner") { w = register_parameter("weight", randn({3, 2}, g)); }
  Tensor w;
};
class Tiny : public nn::Module {
 public:
  explicit Tiny(uint64_t seed) : Module("Tiny") {
    Generator g(seed);
    a = register_parameter("a", randn({4}, g));
    inner = register_module("inner", std::make_shared<Inner>(g));
    stat = register_buffer("stat", randn({2}, g));
  }
  Tensor a, stat;
  std::shared_ptr<Inner> inner;
};

void take_steps(Tiny& m, optim::Optimizer& opt, int n, uint64_t seed) {
  Generator g(seed);
  for (int s = 0; s < n; ++s) {
    for (auto& p : m.parameters()) p.set_grad(randn(p.shape(), g));
    opt.step();
    opt.zero_grad();
  }
}

TEST(Checkpoint, RoundTripRestoresModelOptimizerAndState) {
  std::string dir = temp_dir("roundtrip");
  Tiny m(1);
  optim::SgdOptions so;
  so.lr = 0.1;
  so.momentum = 0.9;
  optim::SGD opt(m.parameters(), so);
  take_steps(m, opt, 3, 7);
  optim::WarmupCosine sched(0.1, 100);
  TrainState st;
  st.epoch = 2;
  st.step = 3;
  st.batch_in_epoch = 1;
  st.best_metric = 0.75;
  st.best_step = 2;
  st.epoch_loss_sum = 1.0 / 3.0;
  st.epoch_loss_count = 1;
  Generator g(42);
  g.advance(1234);
  st.rngs["data"] = g;
  save_checkpoint(dir + "/c.safetensors", m, &opt, &sched, st, {{"arch", "tiny"}});
  const auto saved_a = m.a.to_vector();

  Tiny m2(2);  // different values
  optim::SGD opt2(m2.parameters(), so);
  LoadedCheckpoint lc = load_checkpoint(dir + "/c.safetensors", m2, &opt2);
  EXPECT_EQ(m2.a.to_vector(), m.a.to_vector());
  EXPECT_EQ(m2.inner->w.to_vector(), m.inner->w.to_vector());
  EXPECT_EQ(m2.stat.to_vector(), m.stat.to_vector());
  EXPECT_EQ(lc.state.epoch, 2);
  EXPECT_EQ(lc.state.step, 3);
  EXPECT_EQ(lc.state.batch_in_epoch, 1);
  EXPECT_EQ(lc.state.best_metric, 0.75);
  EXPECT_EQ(lc.state.best_step, 2);
  EXPECT_EQ(lc.state.epoch_loss_sum, 1.0 / 3.0);
  ASSERT_EQ(lc.state.rngs.count("data"), 1u);
  EXPECT_EQ(lc.state.rngs["data"].seed(), 42u);
  EXPECT_EQ(lc.state.rngs["data"].offset(), 1234u);
  EXPECT_EQ(lc.metadata.at("config.arch"), "tiny");
  EXPECT_EQ(lc.metadata.at("scheduler.name"), "cosine");
  // the optimizers continue identically
  take_steps(m, opt, 2, 9);
  take_steps(m2, opt2, 2, 9);
  EXPECT_EQ(m2.a.to_vector(), m.a.to_vector());
  EXPECT_EQ(m2.inner->w.to_vector(), m.inner->w.to_vector());

  // weights-only loading works on a training checkpoint, and on a plain weights file
  Tiny m3(3);
  EXPECT_TRUE(load_model_weights(dir + "/c.safetensors", m3).ok());
  EXPECT_EQ(m3.a.to_vector(), saved_a);
  safetensors::save(dir + "/w.safetensors", m.state_dict().items());
  Tiny m4(4);
  EXPECT_TRUE(load_model_weights(dir + "/w.safetensors", m4).ok());
  EXPECT_EQ(m4.inner->w.to_vector(), m.inner->w.to_vector());
  fs::remove_all(dir);
}

TEST(Checkpoint, RefusesWhatDoesNotFit) {
  std::string dir = temp_dir("refuse");
  Tiny m(1);
  optim::SGD opt(m.parameters(), optim::SgdOptions{});
  save_checkpoint(dir + "/c.safetensors", m, &opt, nullptr, TrainState{});
  // a plain weights file is not a training checkpoint
  safetensors::save(dir + "/w.safetensors", m.state_dict().items());
  Tiny m2(2);
  EXPECT_THROW(load_checkpoint(dir + "/w.safetensors", m2, nullptr), IOError);
  // another optimizer type
  optim::AdamW adam(m2.parameters(), optim::AdamWOptions{});
  EXPECT_THROW(load_checkpoint(dir + "/c.safetensors", m2, &adam), ValueError);
  // a model with another parameter shape
  class Other : public nn::Module {
   public:
    Other() : Module("Other") { register_parameter("a", Tensor::zeros({5})); }
  } other;
  EXPECT_THROW(load_checkpoint(dir + "/c.safetensors", other, nullptr), ValueError);
  auto rep = load_model_weights(dir + "/c.safetensors", other, /*strict=*/false);
  EXPECT_FALSE(rep.ok());
  EXPECT_FALSE(rep.mismatched.empty());
  EXPECT_FALSE(rep.unexpected.empty());
  // a truncated file
  std::string bytes = io::read_file(dir + "/c.safetensors");
  io::write_file_atomic(dir + "/t.safetensors", bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(load_checkpoint(dir + "/t.safetensors", m2, nullptr), IOError);
  fs::remove_all(dir);
}

TEST(Checkpoint, ManagerKeepsLastKAndLinksBestAndLast) {
  std::string dir = temp_dir("manager");
  Tiny m(1);
  CheckpointManager mgr(dir, 2);
  TrainState st;
  for (int s = 1; s <= 5; ++s) {
    st.step = s * 10;
    m.a.detach().fill_(static_cast<double>(s));
    mgr.save(m, nullptr, nullptr, st, {}, /*is_best=*/s == 2);
  }
  auto files = mgr.list();
  ASSERT_EQ(files.size(), 2u);
  EXPECT_NE(files[0].find("ckpt-0000000040"), std::string::npos);
  EXPECT_NE(files[1].find("ckpt-0000000050"), std::string::npos);
  Tiny a(9), b(9);
  load_model_weights(mgr.last_path(), a);
  load_model_weights(mgr.best_path(), b);  // step 20: its ckpt file was pruned, the link survives
  EXPECT_EQ(a.a.to_vector()[0], 5.0);
  EXPECT_EQ(b.a.to_vector()[0], 2.0);
  EXPECT_EQ(read_checkpoint_metadata(mgr.best_path()).at("step"), "20");
  fs::remove_all(dir);
}

// A process killed after writing the temporary file but before the rename leaves the previous
// checkpoint intact and loadable.
TEST(Checkpoint, KillBetweenTempWriteAndRenameKeepsPrevious) {
  std::string dir = temp_dir("kill");
  std::string path = dir + "/last.safetensors";
  Tiny m(1);
  TrainState st;
  st.step = 1;
  save_checkpoint(path, m, nullptr, nullptr, st);
  auto before = m.a.to_vector();

  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // child: start writing a newer checkpoint through the same atomic writer, then die by SIGKILL
    // with the temporary file complete but not yet renamed
    Tiny newer(2);
    safetensors::TensorList tl;
    for (const auto& [n, t] : newer.state_dict()) tl.push_back({"model." + n, t});
    std::string bytes = safetensors::serialize(tl, {{"format", kCheckpointFormat}, {"step", "2"}});
    io::AtomicFile f(path);
    f.write(bytes);
    ::raise(SIGKILL);
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  // a stray temporary may be left behind; the destination is the old, complete checkpoint
  Tiny back(3);
  LoadedCheckpoint lc = load_checkpoint(path, back, nullptr);
  EXPECT_EQ(lc.state.step, 1);
  EXPECT_EQ(back.a.to_vector(), before);
  int others = 0;
  for (const auto& e : fs::directory_iterator(dir)) others += e.path().filename() != "last.safetensors";
  EXPECT_LE(others, 1);
  fs::remove_all(dir);
}

TEST(Signals, FirstSignalSetsFlagSecondExitsAtOnce) {
  {
    StopSignals guard;
    EXPECT_FALSE(stop_requested());
    ::raise(SIGTERM);  // handled: the process goes on
    EXPECT_TRUE(stop_requested());
    EXPECT_EQ(stop_signal(), SIGTERM);
    EXPECT_EQ(exit_code_for_signal(stop_signal()), 143);
    EXPECT_EQ(exit_code_for_signal(SIGINT), 130);
  }
  clear_stop();
  EXPECT_EXIT(
      {
        StopSignals guard;
        ::raise(SIGINT);
        ::raise(SIGINT);  // the second one _exits with 130
        ::_exit(0);
      },
      ::testing::ExitedWithCode(130), "second signal");
}

}  // namespace
