// runtime/pool_choice.h: the faster of the pool and the caller alone is
// kept, the other tried again now and then, and a trial's first call (the
// caches changing hands) does not count.
#include "runtime/pool_choice.h"

#include <gtest/gtest.h>

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
