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
