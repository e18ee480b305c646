// A small TCP rendezvous for environment-variable launch (RANK, WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT, as torchrun sets them): rank 0 listens on MASTER_ADDR:MASTER_PORT, every other rank
// connects and receives the same bytes (NCCL's 128-byte unique id). Plain POSIX sockets, so it
// works (and is tested) without MPI or a GPU. Every wait has a deadline; a failure throws
// DistError naming the address, so a wrong port or a missing rank 0 is one clear line.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/dist/process_group.h"

namespace sx::dist {

struct RendezvousEnv {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string addr = "127.0.0.1";
  int port = 29500;
};

// Reads RANK, WORLD_SIZE, LOCAL_RANK (default RANK), MASTER_ADDR (default 127.0.0.1) and
// MASTER_PORT (default 29500); a malformed value throws ValueError naming the variable.
RendezvousEnv rendezvous_env_from_environment();

// Rank 0 sends `bytes` to the world_size - 1 other ranks; the others receive and return them
// (rank 0 returns its own). Throws DistError "rendezvous at ADDR:PORT: ..." on timeout, refused
// connection, short read or a size mismatch.
std::vector<std::uint8_t> rendezvous_share_bytes(const RendezvousEnv& env,
                                                 const std::vector<std::uint8_t>& bytes,
                                                 std::size_t size, double timeout_s);

}  // namespace sx::dist
