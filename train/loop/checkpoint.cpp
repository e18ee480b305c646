// Training checkpoints; see checkpoint.h.
#include "train/loop/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "tensor/errors.h"

namespace sx::train {
namespace fs = std::filesystem;

namespace {

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

int64_t parse_int(const Metadata& md, const std::string& key, const std::string& path) {
  auto it = md.find(key);
  if (it == md.end()) SX_THROW(IOError, path, ": checkpoint metadata lacks '", key, "'");
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(it->second.c_str(), &end, 10);
  if (it->second.empty() || *end != '\0' || errno == ERANGE)
    SX_THROW(IOError, path, ": checkpoint metadata '", key, "' is not an integer: '", it->second, "'");
  return v;
}

uint64_t parse_u64(const std::string& s, const std::string& key, const std::string& path) {
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno == ERANGE || s[0] == '-')
    SX_THROW(IOError, path, ": checkpoint metadata '", key, "' is not an unsigned integer: '", s, "'");
  return v;
}

double parse_double(const Metadata& md, const std::string& key, const std::string& path) {
  auto it = md.find(key);
  if (it == md.end()) SX_THROW(IOError, path, ": checkpoint metadata lacks '", key, "'");
  char* end = nullptr;
  double v = std::strtod(it->second.c_str(), &end);
  if (it->second.empty() || *end != '\0')
    SX_THROW(IOError, path, ": checkpoint metadata '", key, "' is not a number: '", it->second, "'");
  return v;
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

}  // namespace

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void save_checkpoint(const std::string& path, const nn::Module& model, const optim::Optimizer* opt,
                     const optim::LRScheduler* sched, const TrainState& st, const Metadata& config) {
  safetensors::TensorList tensors;
  for (const auto& [name, t] : model.state_dict()) tensors.push_back({"model." + name, t});
  Metadata md;
  md["format"] = kCheckpointFormat;
  md["epoch"] = std::to_string(st.epoch);
  md["step"] = std::to_string(st.step);
  md["batch_in_epoch"] = std::to_string(st.batch_in_epoch);
  md["best_metric"] = num(st.best_metric);
  md["best_step"] = std::to_string(st.best_step);
  md["best_loss"] = num(st.best_loss);
  md["epoch_loss_sum"] = num(st.epoch_loss_sum);
  md["epoch_loss_count"] = std::to_string(st.epoch_loss_count);
  for (const auto& [name, g] : st.rngs) {
    SX_CHECK(!name.empty() && name.find('.') == std::string::npos, "save_checkpoint: bad generator name '", name, "'");
    md["rng." + name + ".seed"] = std::to_string(g.seed());
    md["rng." + name + ".offset"] = std::to_string(g.offset());
  }
  if (opt) {
    for (const auto& [name, t] : opt->state_tensors()) tensors.push_back({"optim." + name, t});
    for (const auto& [k, v] : opt->hyper_params()) md["optimizer." + k] = v;
  }
  if (sched)
    for (const auto& [k, v] : sched->describe()) md["scheduler." + k] = v;
  for (const auto& [k, v] : config) md["config." + k] = v;
  safetensors::save(path, tensors, md);
}

Metadata read_checkpoint_metadata(const std::string& path) { return safetensors::load(path).metadata; }

LoadedCheckpoint load_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer* opt) {
  safetensors::Contents c = safetensors::load(path);
  auto fmt = c.metadata.find("format");
  if (fmt == c.metadata.end() || fmt->second != kCheckpointFormat)
    SX_THROW(IOError, path, ": not a spinexr training checkpoint (metadata format '",
             fmt == c.metadata.end() ? std::string("<none>") : fmt->second, "', expected '", kCheckpointFormat, "')");
  nn::StateDict sd;
  optim::NamedTensors opt_state;
  for (auto& [name, t] : c.tensors) {
    if (starts_with(name, "model.")) sd.set(name.substr(6), t);
    else if (starts_with(name, "optim.")) opt_state.push_back({name.substr(6), t});
    else SX_THROW(IOError, path, ": unexpected tensor '", name, "' in a checkpoint");
  }
  LoadedCheckpoint out;
  out.metadata = c.metadata;
  out.report = model.load_state_dict(sd, /*strict=*/true);
  if (opt) {
    auto it = c.metadata.find("optimizer.type");
    SX_CHECK(it != c.metadata.end(), path, ": the checkpoint holds no optimizer state");
    SX_CHECK(it->second == opt->name(), path, ": the checkpoint's optimizer is '", it->second, "', this run uses '",
             opt->name(), "'");
    auto np = c.metadata.find("optimizer.num_params");
    SX_CHECK(np != c.metadata.end() && np->second == std::to_string(opt->params().size()), path,
             ": the checkpoint's optimizer has ", np == c.metadata.end() ? std::string("?") : np->second,
             " parameters, this run's has ", opt->params().size());
    opt->load_state(opt_state);
    auto lr = c.metadata.find("optimizer.lr");
    if (lr != c.metadata.end()) opt->set_lr(std::strtod(lr->second.c_str(), nullptr));
  }
  TrainState& st = out.state;
  st.epoch = parse_int(c.metadata, "epoch", path);
  st.step = parse_int(c.metadata, "step", path);
  st.batch_in_epoch = parse_int(c.metadata, "batch_in_epoch", path);
  st.best_metric = parse_double(c.metadata, "best_metric", path);
  st.best_step = parse_int(c.metadata, "best_step", path);
  // Checkpoints written before the tie-break existed lack it: no loss recorded yet.
  st.best_loss = c.metadata.count("best_loss") ? parse_double(c.metadata, "best_loss", path) : HUGE_VAL;
  st.epoch_loss_sum = parse_double(c.metadata, "epoch_loss_sum", path);
  st.epoch_loss_count = parse_int(c.metadata, "epoch_loss_count", path);
  if (st.epoch < 0 || st.step < 0 || st.batch_in_epoch < 0)
    SX_THROW(IOError, path, ": negative position in checkpoint (epoch ", st.epoch, ", step ", st.step, ", batch ",
             st.batch_in_epoch, ")");
  for (const auto& [k, v] : c.metadata) {
    if (!starts_with(k, "rng.") || k.size() < 9 || k.compare(k.size() - 5, 5, ".seed") != 0) continue;
    std::string name = k.substr(4, k.size() - 9);
    auto off = c.metadata.find("rng." + name + ".offset");
    if (off == c.metadata.end()) SX_THROW(IOError, path, ": generator '", name, "' has a seed but no offset");
    Generator g;
    g.set_state(parse_u64(v, k, path), parse_u64(off->second, off->first, path));
    st.rngs[name] = g;
  }
  return out;
}

nn::LoadReport load_model_weights(const std::string& path, nn::Module& model, bool strict,
                                  const StateDictAdapter& adapt) {
  safetensors::Contents c = safetensors::load(path, /*upcast_half=*/true);
  auto fmt = c.metadata.find("format");
  bool is_ckpt = fmt != c.metadata.end() && fmt->second == kCheckpointFormat;
  nn::StateDict sd;
  for (auto& [name, t] : c.tensors) {
    if (is_ckpt) {
      if (starts_with(name, "model.")) sd.set(name.substr(6), t);
    } else {
      sd.set(name, t);
    }
  }
  if (adapt) sd = adapt(sd);
  return model.load_state_dict(sd, strict);
}

// ---- manager ------------------------------------------------------------------------------------

CheckpointManager::CheckpointManager(std::string dir, int keep_last) : dir_(std::move(dir)), keep_last_(keep_last) {
  SX_CHECK(keep_last >= 1, "CheckpointManager: keep_last must be >= 1, got ", keep_last);
}

std::vector<std::string> CheckpointManager::list() const {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    std::string n = e.path().filename().string();
    if (!starts_with(n, "ckpt-") || n.size() <= 5 + 12 || n.compare(n.size() - 12, 12, ".safetensors") != 0) continue;
    std::string digits = n.substr(5, n.size() - 5 - 12);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    found.push_back({std::stoll(digits), e.path().string()});
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(f.second);
  return out;
}

void CheckpointManager::point(const std::string& target, const std::string& link_name) {
  std::string tmp = link_name + ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());
  if (::link(target.c_str(), tmp.c_str()) != 0) {
    // No hard links here (some network or FUSE file systems): copy instead.
    std::error_code ec;
    fs::copy_file(target, tmp, fs::copy_options::overwrite_existing, ec);
    if (ec) SX_THROW(IOError, "cannot copy ", target, " to ", tmp, ": ", ec.message());
  }
  if (::rename(tmp.c_str(), link_name.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    SX_THROW(IOError, "cannot rename ", tmp, " to ", link_name, ": ", std::strerror(err));
  }
  int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::string CheckpointManager::save(const nn::Module& model, const optim::Optimizer* opt,
                                    const optim::LRScheduler* sched, const TrainState& state, const Metadata& config,
                                    bool is_best) {
  std::error_code ec;
  fs::create_directories(dir_, ec);  // here, not at construction: a dry run constructs but never saves
  if (ec) SX_THROW(IOError, "cannot create checkpoint folder ", dir_, ": ", ec.message());
  char name[64];
  std::snprintf(name, sizeof name, "ckpt-%010lld.safetensors", static_cast<long long>(state.step));
  std::string path = dir_ + "/" + name;
  save_checkpoint(path, model, opt, sched, state, config);
  point(path, last_path());
  if (is_best) point(path, best_path());
  auto all = list();
  for (size_t i = 0; i + static_cast<size_t>(keep_last_) < all.size(); ++i)
    if (all[i] != path) ::unlink(all[i].c_str());
  return path;
}

}  // namespace sx::train
