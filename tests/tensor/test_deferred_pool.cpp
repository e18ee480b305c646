// DeferredPool (tensor/deferred_pool.h), the pinned host-memory pool's logic, driven by fake fences:
// a fence is a ticket number and "the device" has completed every ticket up to `completed`.
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

#include "tensor/deferred_pool.h"

namespace sx {
namespace {

struct FakeDevice {
  int64_t issued = 0, completed = 0;
  std::set<void*> system;  // blocks currently held from the "system"
  int64_t released = 0;
};

DeferredPool<int64_t> make_pool(FakeDevice& d, size_t limit) {
  DeferredPool<int64_t>::Hooks h{
      [&d](size_t n) {
        void* p = std::malloc(n);
        d.system.insert(p);
        return p;
      },
      [&d](void* p) {
        d.system.erase(p);
        std::free(p);
      },
      [&d] { return ++d.issued; },
      [&d](const int64_t& t) { return t <= d.completed; },
      [&d](int64_t&) { ++d.released; }};
  return DeferredPool<int64_t>(h, 1024, limit);
}

TEST(DeferredPool, ABlockIsReusedOnlyAfterItsFenceCompletes) {
  FakeDevice d;
  auto pool = make_pool(d, 1 << 20);
  void* a = pool.allocate(3000);  // rounded to 3 KiB
  pool.deallocate(a);             // fence 1: the device may still read a
  void* b = pool.allocate(3000);
  EXPECT_NE(b, a) << "reused a block the device may still be reading";
  EXPECT_EQ(pool.stats().pending, 1);
  d.completed = 1;  // the device passed fence 1
  void* c = pool.allocate(2500);
  EXPECT_EQ(c, a);
  EXPECT_EQ(d.released, 1);
  auto s = pool.stats();
  EXPECT_EQ(s.system_allocs, 2);
  EXPECT_EQ(s.reuses, 1);
  EXPECT_EQ(s.pending, 0);
  pool.deallocate(b);
  pool.deallocate(c);
  d.completed = d.issued;
  // Steady state: alternate allocate/deallocate with the device keeping up; no new system blocks.
  for (int i = 0; i < 50; ++i) {
    void* p = pool.allocate(3000);
    pool.deallocate(p);
    d.completed = d.issued;
  }
  EXPECT_EQ(pool.stats().system_allocs, 2);
}

TEST(DeferredPool, BestFitWithinTwiceTheSize) {
  FakeDevice d;
  auto pool = make_pool(d, 1 << 20);
  void* big = pool.allocate(8 * 1024);
  void* mid = pool.allocate(4 * 1024);
  pool.deallocate(big);
  pool.deallocate(mid);
  d.completed = d.issued;
  EXPECT_EQ(pool.allocate(4 * 1024), mid);  // the smallest block that fits
  void* small = pool.allocate(1024);        // 8 KiB is more than twice 1 KiB: a new block
  EXPECT_NE(small, big);
  EXPECT_EQ(pool.allocate(5 * 1024), big);  // 8 KiB <= 2 x 5 KiB
}

TEST(DeferredPool, FreeBlocksBeyondTheLimitGoBackToTheSystemLargestFirst) {
  FakeDevice d;
  auto pool = make_pool(d, 10 * 1024);
  void* a = pool.allocate(8 * 1024);
  void* b = pool.allocate(4 * 1024);
  void* c = pool.allocate(2 * 1024);
  pool.deallocate(a);
  pool.deallocate(b);
  pool.deallocate(c);
  EXPECT_EQ(d.system.size(), 3u);  // pending blocks are never freed
  d.completed = d.issued;
  void* e = pool.allocate(1024);  // promotes all three (14 KiB > 10 KiB): the 8 KiB block goes back
  EXPECT_EQ(d.system.count(a), 0u);
  EXPECT_EQ(pool.stats().system_frees, 1);
  EXPECT_EQ(e, c);  // 2 KiB <= 2 x 1 KiB
  EXPECT_EQ(pool.stats().cached_bytes, 4 * 1024);
}

TEST(DeferredPool, ForeignPointersAreIgnored) {
  FakeDevice d;
  auto pool = make_pool(d, 1 << 20);
  int x = 0;
  pool.deallocate(&x);
  EXPECT_EQ(pool.stats().pending, 0);
  EXPECT_EQ(d.released, d.issued) << "the fence recorded for a foreign pointer was not released";
}

}  // namespace
}  // namespace sx
