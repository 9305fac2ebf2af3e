#include <gtest/gtest.h>

#include <cmath>

#include "frontend/const_eval.h"
#include "ir/scalar_math.h"
#include "test_util.h"

namespace nabla {
namespace {

TEST(ScalarMath, StableForLargeArguments) {
  EXPECT_EQ(scalar::sigmoid(-1000), 0.0);
  EXPECT_EQ(scalar::sigmoid(1000), 1.0);
  EXPECT_DOUBLE_EQ(scalar::softplus(1000), 1000.0);
  EXPECT_EQ(scalar::softplus(-1000), 0.0);
  EXPECT_NEAR(scalar::softplus(0), std::log(2.0), 1e-16);
  EXPECT_NEAR(scalar::sigmoid(0.7), 1 / (1 + std::exp(-0.7)), 1e-16);
}

TEST(ScalarMath, ActivationsMatchTheirDefinitions) {
  for (double x : {-3.0, -0.5, 0.25, 2.0}) {
    EXPECT_DOUBLE_EQ(scalar::hard_sigmoid(x), std::max(std::min(0.25 * x + 0.5, 1.0), 0.0));
    EXPECT_DOUBLE_EQ(scalar::hard_tanh(x), std::max(std::min(x, 1.0), -1.0));
    EXPECT_DOUBLE_EQ(scalar::leaky_relu(x, 0.1), x > 0 ? x : 0.1 * x);
    EXPECT_NEAR(scalar::elu(x, 1.5), x > 0 ? x : 1.5 * (std::exp(x) - 1), 1e-15);
    EXPECT_NEAR(scalar::swish(x, 2), x / (1 + std::exp(-2 * x)), 1e-15);
    EXPECT_NEAR(scalar::gelu(x), 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))), 1e-15);
    EXPECT_NEAR(scalar::gelu_sigmoid(x), x / (1 + std::exp(-1.702 * x)), 1e-15);
  }
  EXPECT_NEAR(scalar::gelu_tanh(1.0), 0.8411919906082768, 1e-15);
  EXPECT_TRUE(std::isnan(scalar::max2(std::nan(""), 1.0)));
}

TEST(ConstEval, ConstsUseEarlierConstsAndBuiltins) {
  auto c = test::check(
      "const a = 2\n"
      "const b = a^3 - 1 / 4\n"
      "const c = sqrt(b * 4 + 1) + sigmoid(0) + max(a, 5) + mse(3, 1)\n"
      "input x : [2]\n"
      "output y = x * c\n");
  ASSERT_EQ(c.errors, "");
  ASSERT_EQ(c.model.consts.size(), 3u);
  EXPECT_DOUBLE_EQ(c.model.consts[1].value, 7.75);
  EXPECT_DOUBLE_EQ(c.model.consts[2].value, std::sqrt(32.0) + 0.5 + 5 + 4);
}

TEST(ConstEval, OverrideReplacesTheValue) {
  SemaOptions options;
  options.overrides["lambda"] = 0.5;
  auto c = test::check("const lambda = 1e-4\ninput x : [2]\noutput y = lambda * x\n", options);
  ASSERT_EQ(c.errors, "");
  EXPECT_EQ(c.model.consts[0].value, 0.5);
  EXPECT_TRUE(c.model.consts[0].overridden);
}

}  // namespace
}  // namespace nabla
