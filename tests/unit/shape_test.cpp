#include <gtest/gtest.h>

#include "ir/shape.h"

namespace nabla {
namespace {

TEST(Shape, BroadcastAlignsTrailingAxes) {
  EXPECT_EQ(broadcast({3}, {3}), Shape({3}));
  EXPECT_EQ(broadcast({4, 3}, {3}), Shape({4, 3}));
  EXPECT_EQ(broadcast({4, 1}, {1, 5}), Shape({4, 5}));
  EXPECT_EQ(broadcast({}, {2, 2}), Shape({2, 2}));
  EXPECT_EQ(broadcast({1}, {7}), Shape({7}));
  EXPECT_EQ(broadcast({3}, {4}), std::nullopt);
  EXPECT_EQ(broadcast({2, 3}, {3, 3}), std::nullopt);
}

TEST(Shape, MatmulFollowsNumpyFor1DAnd2D) {
  EXPECT_EQ(matmul_shape({4, 3}, {3}), Shape({4}));
  EXPECT_EQ(matmul_shape({3}, {3, 5}), Shape({5}));
  EXPECT_EQ(matmul_shape({4, 3}, {3, 5}), Shape({4, 5}));
  EXPECT_EQ(matmul_shape({3}, {3}), Shape({}));
  EXPECT_EQ(matmul_shape({4, 3}, {5}), std::nullopt);
  EXPECT_EQ(matmul_shape({}, {3}), std::nullopt);
  EXPECT_EQ(matmul_shape({2, 2, 2}, {2}), std::nullopt);
}

TEST(Shape, FailedRulesSayWhy) {
  EXPECT_EQ(check_broadcast({4, 3}, {4}).error, "sizes 3 and 4 in the last axis differ and neither is 1");
  EXPECT_EQ(check_broadcast({2, 3}, {3, 3}).error, "sizes 2 and 3 in 2 axes from the end differ and neither is 1");
  EXPECT_EQ(check_broadcast({4, 1}, {5}).shape, Shape({4, 5}));
  EXPECT_EQ(check_broadcast({4, 1}, {5}).error, "");
  EXPECT_EQ(check_matmul({4, 3}, {4}).error,
            "the inner sizes differ (3 and 4): the last size on the left must equal the first size on the right");
  EXPECT_EQ(check_matmul({}, {3}).error, "'@' takes operands of rank 1 or 2 (use '*' to multiply by a scalar)");
  EXPECT_EQ(check_matmul({4, 3}, {3, 5}).shape, Shape({4, 5}));
}

TEST(Shape, BroadcastTargetsOuterAndReductions) {
  EXPECT_TRUE(broadcasts_to({3}, {4, 3}));
  EXPECT_TRUE(broadcasts_to({}, {2}));
  EXPECT_FALSE(broadcasts_to({4, 3}, {3}));  // broadcasting never drops an axis
  EXPECT_FALSE(broadcasts_to({2}, {3}));
  EXPECT_EQ(outer_shape({4}, {5}), Shape({4, 5}));
  EXPECT_EQ(outer_shape({}, {5}), Shape({5}));
  EXPECT_EQ(outer_shape({4, 1}, {5}), std::nullopt);
  EXPECT_EQ(reduce_shape({4, 5, 6}, 1), Shape({4, 6}));
  EXPECT_EQ(reduce_shape({4, 5, 6}, std::nullopt), Shape());
}

TEST(Shape, GroupsAlongTheLastAxis) {
  EXPECT_EQ(check_groups({2, 12}, 3).shape, Shape({2, 4}));
  EXPECT_EQ(check_groups({}, 1).shape, Shape());
  EXPECT_EQ(check_groups({7}, 3).error, "the last size 7 of [7] is not a multiple of the group size 3");
  EXPECT_EQ(check_groups({}, 2).error, "the last size 1 of [] is not a multiple of the group size 2");
  EXPECT_EQ(check_repeat({2, 4}, 3).shape, Shape({2, 12}));
  EXPECT_EQ(check_repeat({}, 1).shape, Shape());
  EXPECT_EQ(check_repeat({}, 2).error, "a scalar repeats only once (k = 1)");
}

TEST(Shape, AxesAndTranspose) {
  EXPECT_EQ(normalize_axis(-1, 2), 1);
  EXPECT_EQ(normalize_axis(0, 2), 0);
  EXPECT_EQ(normalize_axis(2, 2), std::nullopt);
  EXPECT_EQ(normalize_axis(-3, 2), std::nullopt);
  EXPECT_EQ(remove_axis({4, 5, 6}, 1), Shape({4, 6}));
  EXPECT_EQ(transposed({4, 5}), Shape({5, 4}));
  EXPECT_EQ(transposed({4}), Shape({4}));
  EXPECT_EQ(Shape({4, 5}).numel(), 20);
  EXPECT_EQ(Shape().numel(), 1);
  EXPECT_EQ(Shape({256, 784}).str(), "[256, 784]");
  EXPECT_EQ(Shape().str(), "[]");
}

}  // namespace
}  // namespace nabla
