// The TCP rendezvous of environment-variable launch (tensor/dist/rendezvous.h): a forked child
// plays rank 1 and must receive rank 0's bytes exactly; a rank without rank 0 times out, and the
// error names the address; malformed environment values are refused by name.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "tensor/dist/rendezvous.h"

namespace sx::dist {
namespace {

RendezvousEnv env_for(int rank, int world, int port) {
  RendezvousEnv e;
  e.rank = rank;
  e.world_size = world;
  e.addr = "127.0.0.1";
  e.port = port;
  return e;
}

std::vector<std::uint8_t> the_id() {
  std::vector<std::uint8_t> id(128);
  for (std::size_t i = 0; i < id.size(); ++i) id[i] = static_cast<std::uint8_t>(i * 37 + 11);
  return id;
}

int test_port() { return 20000 + static_cast<int>(::getpid() % 20000); }

TEST(Rendezvous, TwoProcessesShareTheSameId) {
  const int port = test_port();
  const auto id = the_id();
  for (int world : {2, 3}) {
    std::vector<pid_t> kids;
    for (int r = 1; r < world; ++r) {
      pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {  // rank r: exit 0 only when the received bytes are rank 0's
        try {
          auto got = rendezvous_share_bytes(env_for(r, world, port + world), {}, 128, 10.0);
          ::_exit(got == the_id() ? 0 : 1);
        } catch (...) {
          ::_exit(2);
        }
      }
      kids.push_back(pid);
    }
    auto mine = rendezvous_share_bytes(env_for(0, world, port + world), id, 128, 10.0);
    EXPECT_EQ(mine, id);
    for (pid_t k : kids) {
      int status = -1;
      ASSERT_EQ(::waitpid(k, &status, 0), k);
      ASSERT_TRUE(WIFEXITED(status));
      EXPECT_EQ(WEXITSTATUS(status), 0) << "world " << world;
    }
  }
}

TEST(Rendezvous, ARankWithoutRankZeroTimesOutNamingTheAddress) {
  const int port = test_port() + 7;
  try {
    rendezvous_share_bytes(env_for(1, 2, port), {}, 128, 0.3);
    FAIL() << "expected a timeout";
  } catch (const DistError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << what;
    EXPECT_NE(what.find("timed out"), std::string::npos) << what;
  }
}

TEST(Rendezvous, RankZeroTimesOutWhenNobodyJoins) {
  EXPECT_THROW(rendezvous_share_bytes(env_for(0, 2, test_port() + 9), the_id(), 128, 0.3), DistError);
}

TEST(Rendezvous, WrongSizeIsRefused) {
  const int port = test_port() + 11;
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    try {
      rendezvous_share_bytes(env_for(0, 2, port), std::vector<std::uint8_t>(64, 1), 64, 5.0);
      ::_exit(0);
    } catch (...) {
      ::_exit(2);
    }
  }
  EXPECT_THROW(rendezvous_share_bytes(env_for(1, 2, port), {}, 128, 5.0), DistError);
  int status = -1;
  ::waitpid(pid, &status, 0);
}

TEST(Rendezvous, EnvironmentIsReadAndCheckedByName) {
  ::setenv("RANK", "1", 1);
  ::setenv("WORLD_SIZE", "4", 1);
  ::unsetenv("LOCAL_RANK");
  ::setenv("MASTER_ADDR", "10.0.0.2", 1);
  ::setenv("MASTER_PORT", "1234", 1);
  auto e = rendezvous_env_from_environment();
  EXPECT_EQ(e.rank, 1);
  EXPECT_EQ(e.world_size, 4);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.addr, "10.0.0.2");
  EXPECT_EQ(e.port, 1234);
  ::setenv("MASTER_PORT", "12x", 1);
  try {
    rendezvous_env_from_environment();
    FAIL();
  } catch (const ValueError& err) {
    EXPECT_NE(std::string(err.what()).find("MASTER_PORT"), std::string::npos);
  }
  ::setenv("MASTER_PORT", "1234", 1);
  ::setenv("RANK", "4", 1);
  EXPECT_THROW(rendezvous_env_from_environment(), ValueError);
  for (const char* v : {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}) ::unsetenv(v);
}

TEST(Rendezvous, EnvironmentLaunchOfCpuRanksIsAClearError) {
  ::setenv("WORLD_SIZE", "2", 1);
  ::setenv("RANK", "0", 1);
  try {
    init_process_group("auto", 1.0, Device::cpu());
    FAIL() << "expected a refusal";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("mpirun"), std::string::npos) << e.what();
  }
  ::unsetenv("WORLD_SIZE");
  ::unsetenv("RANK");
}

}  // namespace
}  // namespace sx::dist
