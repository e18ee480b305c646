// TCP rendezvous (see rendezvous.h). Rank 0: bind, listen, accept world_size - 1 connections and
// write [u32 size][bytes] to each. Others: connect (retrying until the deadline, since rank 0 may
// start later), read the size and the bytes. poll() bounds every wait by the deadline.
#include "tensor/dist/rendezvous.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace sx::dist {
namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(const RendezvousEnv& env, const std::string& what) {
  throw DistError("rendezvous at " + env.addr + ":" + std::to_string(env.port) + ": " + what);
}

struct Fd {  // closes the socket on every path
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() { if (fd >= 0) ::close(fd); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

int ms_left(Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return ms > 0 ? static_cast<int>(ms) : 0;
}

void wait_ready(const RendezvousEnv& env, int fd, short events, Clock::time_point deadline,
                const char* what) {
  pollfd p{fd, events, 0};
  int r = ::poll(&p, 1, ms_left(deadline));
  if (r == 0) fail(env, std::string("timed out waiting to ") + what);
  if (r < 0) fail(env, std::string("poll failed while waiting to ") + what + ": " + std::strerror(errno));
}

void read_all(const RendezvousEnv& env, int fd, void* dst, std::size_t n, Clock::time_point deadline) {
  auto* p = static_cast<char*>(dst);
  while (n > 0) {
    wait_ready(env, fd, POLLIN, deadline, "receive the id from rank 0");
    ssize_t got = ::recv(fd, p, n, 0);
    if (got <= 0) fail(env, "rank 0 closed the connection before sending the whole id");
    p += got;
    n -= static_cast<std::size_t>(got);
  }
}

void write_all(const RendezvousEnv& env, int fd, const void* src, std::size_t n, Clock::time_point deadline) {
  auto* p = static_cast<const char*>(src);
  while (n > 0) {
    wait_ready(env, fd, POLLOUT, deadline, "send the id");
    ssize_t put = ::send(fd, p, n, MSG_NOSIGNAL);
    if (put <= 0) fail(env, std::string("send failed: ") + std::strerror(errno));
    p += put;
    n -= static_cast<std::size_t>(put);
  }
}

sockaddr_in resolve(const RendezvousEnv& env) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(env.addr.c_str(), nullptr, &hints, &res);
  if (rc != 0 || !res) fail(env, std::string("cannot resolve the address: ") + ::gai_strerror(rc));
  sockaddr_in sa = *reinterpret_cast<sockaddr_in*>(res->ai_addr);
  ::freeaddrinfo(res);
  sa.sin_port = htons(static_cast<std::uint16_t>(env.port));
  return sa;
}

std::vector<std::uint8_t> serve(const RendezvousEnv& env, const std::vector<std::uint8_t>& bytes,
                                Clock::time_point deadline) {
  sockaddr_in sa = resolve(env);
  Fd ls(::socket(AF_INET, SOCK_STREAM, 0));
  if (ls.fd < 0) fail(env, std::string("socket: ") + std::strerror(errno));
  int one = 1;
  ::setsockopt(ls.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(ls.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    fail(env, std::string("rank 0 cannot listen (bind): ") + std::strerror(errno));
  if (::listen(ls.fd, env.world_size) != 0) fail(env, std::string("listen: ") + std::strerror(errno));
  std::uint32_t n = htonl(static_cast<std::uint32_t>(bytes.size()));
  for (int joined = 1; joined < env.world_size; ++joined) {
    wait_ready(env, ls.fd, POLLIN, deadline,
               ("accept rank connections (" + std::to_string(joined - 1) + " of " +
                std::to_string(env.world_size - 1) + " joined)").c_str());
    Fd c(::accept(ls.fd, nullptr, nullptr));
    if (c.fd < 0) fail(env, std::string("accept: ") + std::strerror(errno));
    write_all(env, c.fd, &n, sizeof n, deadline);
    write_all(env, c.fd, bytes.data(), bytes.size(), deadline);
  }
  return bytes;
}

std::vector<std::uint8_t> join(const RendezvousEnv& env, std::size_t size, Clock::time_point deadline) {
  sockaddr_in sa = resolve(env);
  for (;;) {  // rank 0 may not be listening yet: retry until the deadline
    Fd s(::socket(AF_INET, SOCK_STREAM, 0));
    if (s.fd < 0) fail(env, std::string("socket: ") + std::strerror(errno));
    if (::connect(s.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
      std::uint32_t n = 0;
      read_all(env, s.fd, &n, sizeof n, deadline);
      if (ntohl(n) != size)
        fail(env, "rank 0 sent " + std::to_string(ntohl(n)) + " bytes, expected " + std::to_string(size));
      std::vector<std::uint8_t> out(size);
      read_all(env, s.fd, out.data(), size, deadline);
      return out;
    }
    if (ms_left(deadline) == 0)
      fail(env, std::string("timed out connecting to rank 0 (last error: ") + std::strerror(errno) + ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < 0 || x > 1 << 30)
    throw ValueError(std::string(name) + "='" + v + "' is not a non-negative integer");
  return static_cast<int>(x);
}

}  // namespace

RendezvousEnv rendezvous_env_from_environment() {
  RendezvousEnv e;
  e.rank = env_int("RANK", 0);
  e.world_size = env_int("WORLD_SIZE", 1);
  e.local_rank = env_int("LOCAL_RANK", e.rank);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) e.addr = a;
  e.port = env_int("MASTER_PORT", 29500);
  if (e.world_size < 1 || e.rank >= e.world_size)
    throw ValueError("RANK=" + std::to_string(e.rank) + " is not below WORLD_SIZE=" + std::to_string(e.world_size));
  if (e.port < 1 || e.port > 65535) throw ValueError("MASTER_PORT=" + std::to_string(e.port) + " is not a TCP port");
  return e;
}

std::vector<std::uint8_t> rendezvous_share_bytes(const RendezvousEnv& env,
                                                 const std::vector<std::uint8_t>& bytes,
                                                 std::size_t size, double timeout_s) {
  auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long long>(timeout_s * 1000.0));
  if (env.world_size <= 1) return bytes;
  if (env.rank == 0) {
    if (bytes.size() != size) fail(env, "rank 0 holds " + std::to_string(bytes.size()) + " bytes, expected " + std::to_string(size));
    return serve(env, bytes, deadline);
  }
  return join(env, size, deadline);
}

}  // namespace sx::dist
