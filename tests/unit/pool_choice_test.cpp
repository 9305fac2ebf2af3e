// runtime/pool_choice.h: the faster of the pool and the caller alone is
// kept, the other tried again now and then, and a trial's first call (the
// caches changing hands) does not count. runtime/thread_pool.h: a part's
// exception reaches the caller.
#include "runtime/pool_choice.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "runtime/thread_pool.h"

namespace {

using nabla::runtime::PoolChoice;

// Makes `calls` calls, the pool taking `pool` seconds and the caller alone
// `alone` (a trial's first call 100 s either way); returns the calls made
// on the pool.
int64_t drive(PoolChoice& c, int64_t calls, double pool, double alone) {
  int64_t on_pool = 0;
  bool last = c.use_pool();
  for (int64_t i = 0; i < calls; ++i) {
    const bool p = c.use_pool();
    on_pool += p;
    c.record(p != last ? 100.0 : p ? pool : alone);
    last = p;
  }
  return on_pool;
}

TEST(PoolChoice, FirstRoundTimesBothAndKeepsTheFaster) {
  PoolChoice fast_pool;
  EXPECT_TRUE(fast_pool.use_pool());  // the first calls try the pool
  EXPECT_EQ(drive(fast_pool, 2 * PoolChoice::kBlock, 1.0, 2.0), PoolChoice::kBlock);
  EXPECT_TRUE(fast_pool.kept_pool());
  EXPECT_TRUE(fast_pool.use_pool());

  PoolChoice slow_pool;
  drive(slow_pool, 2 * PoolChoice::kBlock, 2.0, 1.0);
  EXPECT_FALSE(slow_pool.kept_pool());
  EXPECT_FALSE(slow_pool.use_pool());
}

TEST(PoolChoice, TrialsTheOtherModeRarelyAndFollowsAChange) {
  PoolChoice c;
  drive(c, 2 * PoolChoice::kBlock, 1.0, 2.0);
  // While the pool stays faster: at most kBlock calls alone in every
  // kKeep + kBlock.
  const int64_t rounds = 10, calls = rounds * (PoolChoice::kKeep + PoolChoice::kBlock);
  const int64_t alone = calls - drive(c, calls, 1.0, 2.0);
  EXPECT_GT(alone, 0);
  EXPECT_LE(alone, rounds * PoolChoice::kBlock);
  EXPECT_TRUE(c.kept_pool());
  // The machine changes: the caller alone is faster now; one round later
  // it is kept.
  drive(c, PoolChoice::kKeep + 2 * PoolChoice::kBlock, 3.0, 2.0);
  EXPECT_FALSE(c.kept_pool());
  const int64_t pool = drive(c, calls, 3.0, 2.0);
  EXPECT_LE(pool, rounds * PoolChoice::kBlock);
  EXPECT_FALSE(c.kept_pool());
  // And back.
  drive(c, PoolChoice::kKeep + 2 * PoolChoice::kBlock, 1.0, 2.0);
  EXPECT_TRUE(c.kept_pool());
}

TEST(PoolChoice, ATieKeepsThePool) {
  PoolChoice c;
  drive(c, 2 * PoolChoice::kBlock, 1.0, 1.0);
  EXPECT_TRUE(c.kept_pool());
}

}  // namespace

namespace {

// An exception thrown by a worker's part, or by the caller's, is thrown by
// run() once every part has returned (a worker's used to end the process);
// the pool works on after it.
TEST(ThreadPool, APartsExceptionReachesTheCallerAfterEveryPart) {
  nabla::runtime::ThreadPool pool(3);
  for (int thrower : {0, 1, 3}) {
    std::atomic<int> done{0};
    try {
      pool.run(4, [&](int part) {
        if (part == thrower) throw std::runtime_error("part " + std::to_string(part));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // still running as the thrower throws
        done.fetch_add(1);
      });
      FAIL() << "no exception from part " << thrower;
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), "part " + std::to_string(thrower));
    }
    EXPECT_EQ(done.load(), 3) << "run() returned before the other parts ended";
  }
  std::atomic<int> parts{0};
  pool.run(4, [&](int) { parts.fetch_add(1); });
  EXPECT_EQ(parts.load(), 4);
}

}  // namespace
