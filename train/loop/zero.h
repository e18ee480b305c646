// ZeRO stage 1 (Rajbhandari et al. 2020; llm.c's multi-GPU trainer): the optimizer state sharded
// across the ranks of a data-parallel run (LoopConfig::zero = 1, `--zero 1`).
//
// Each parameter has one owner rank (greedy by size, so the shards weigh about the same). After the
// gradients were averaged (and clipped: the global norm needs them all, so every rank still gets
// every averaged gradient), a rank drops the gradients of the parameters it does not own, so its
// optimizer steps only its own and allocates state (momentum, Adam moments) only for them; then
// each parameter is broadcast from its owner (the all-gather of the updated shards). The result is
// the same as without ZeRO, bit for bit on the CPU; the memory of the optimizer state is divided
// by the number of ranks. Communication is not reduced (an all-reduce, not a reduce-scatter, then
// the broadcasts): stage 1 saves memory only.
//
// Checkpoints still hold the whole state: before a save every owner broadcasts its parameters'
// state, rank 0 loads the whole of it, saves, and keeps its shard again. A resumed run loads the
// whole state on every rank, then keeps its shard.
#pragma once
#include <vector>

#include "tensor/dist/process_group.h"
#include "train/loop/optim.h"

namespace sx::train {

class ZeroShard {
 public:
  ZeroShard(dist::ProcessGroup& group, optim::Optimizer& opt);
  // Keeps only this rank's part of the optimizer's state.
  void keep_own_state();
  // Drops the gradients of the parameters other ranks own (before the optimizer step).
  void drop_foreign_grads();
  // Each parameter from its owner (after the optimizer step).
  void broadcast_params();
  // The whole state on every rank (collective: every rank calls it); then keep_own_state() again.
  void gather_state();
  int owner(size_t param) const { return owner_[param]; }

 private:
  dist::ProcessGroup& group_;
  optim::Optimizer& opt_;
  std::vector<int> owner_;
};

}  // namespace sx::train
