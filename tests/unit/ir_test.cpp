#include <gtest/gtest.h>

#include <cmath>

#include "ir/interpret.h"
#include "ir/node.h"
#include "ir/print.h"

namespace nabla::ir {
namespace {

TEST(Ir, StructurallyEqualNodesAreOneNode) {
  Context c;
  const Node* x = c.var(VarKind::Input, 0, "x", {});
  const Node* a = c.mul(c.constant(2), c.unary(Op::Sigmoid, x));
  const Node* b = c.mul(c.unary(Op::Sigmoid, x), c.constant(2));  // constant moves first
  EXPECT_EQ(a, b);
  EXPECT_EQ(c.constant(0.0), c.constant(-0.0));
  EXPECT_NE(c.add(x, c.constant(1)), c.add(x, c.constant(2)));
  EXPECT_LT(x->id(), a->id());  // operands are older than their users
  const size_t before = c.size();
  c.mul(c.constant(2), c.unary(Op::Sigmoid, x));
  EXPECT_EQ(c.size(), before);  // nothing new
}

TEST(Ir, ConstantFolding) {
  Context c;
  EXPECT_TRUE(c.add(c.constant(2), c.constant(3))->is_constant(5));
  EXPECT_TRUE(c.unary(Op::Sigmoid, c.constant(0))->is_constant(0.5));
  EXPECT_TRUE(c.binary(Op::Gt, c.constant(1), c.constant(0))->is_constant(1));
}

TEST(Ir, Shapes) {
  Context c;
  const Node* W = c.var(VarKind::Param, 0, "W", {4, 3});
  const Node* x = c.var(VarKind::Input, 0, "x", {3});
  const Node* b = c.var(VarKind::Param, 1, "b", {4});
  const Node* z = c.add(c.make(Op::MatMul, {W, x}), b);
  EXPECT_EQ(z->shape(), Shape({4}));
  EXPECT_EQ(c.make(Op::Outer, {b, x})->shape(), Shape({4, 3}));
  EXPECT_EQ(c.make(Op::Sum, {W}, 0)->shape(), Shape({3}));
  EXPECT_EQ(c.make(Op::Sum, {W})->shape(), Shape({}));
  EXPECT_EQ(c.make(Op::Maxout, {b}, 2)->shape(), Shape({2}));
  EXPECT_EQ(c.broadcast_to(c.constant(1), {2, 2})->shape(), Shape({2, 2}));
}

Tensor t(Shape s, std::vector<double> d) { return {std::move(s), std::move(d)}; }

TEST(Interpreter, TensorOps) {
  Context c;
  const Node* W = c.var(VarKind::Param, 0, "W", {2, 3});
  const Node* x = c.var(VarKind::Input, 0, "x", {3});
  auto values = [&](const Node* v) {
    return v == W ? t({2, 3}, {1, 2, 3, 4, 5, 6}) : t({3}, {1, 0, -1});
  };
  const Node* roots[] = {
      c.make(Op::MatMul, {W, x}),                  // [1-3, 4-6]
      c.make(Op::Sum, {W}, 0),                     // [5, 7, 9]
      c.make(Op::Transpose, {W}),                  // [[1,4],[2,5],[3,6]]
      c.make(Op::Softmax, {x}, 0),
      c.make(Op::LogSumExp, {x}),
      c.make(Op::Maxout, {c.make(Op::Repeat, {x}, 2)}, 2),  // x again
      c.sum_to(c.add(W, x), {3}),                  // [5+2, 7, 9-2]
      c.make(Op::MaxoutMask, {W}, 3),              // groups of 3 along the last axis: the rows
      c.make(Op::Broadcast, {x}, 0, {2, 3}),
  };
  auto out = interpret(roots, values);
  EXPECT_EQ(out[0].data, (std::vector<double>{-2, -2}));
  EXPECT_EQ(out[1].data, (std::vector<double>{5, 7, 9}));
  EXPECT_EQ(out[2].data, (std::vector<double>{1, 4, 2, 5, 3, 6}));
  const double s = std::exp(1) + 1 + std::exp(-1);
  EXPECT_NEAR(out[3].data[0], std::exp(1) / s, 1e-15);
  EXPECT_NEAR(out[4].item(), std::log(s), 1e-15);
  EXPECT_EQ(out[5].data, (std::vector<double>{1, 0, -1}));
  EXPECT_EQ(out[6].data, (std::vector<double>{7, 7, 7}));
  EXPECT_EQ(out[7].data, (std::vector<double>{0, 0, 1, 0, 0, 1}));
  EXPECT_EQ(out[8].data, (std::vector<double>{1, 0, -1, 1, 0, -1}));
}

TEST(Printer, SharedNodesAreBoundOnce) {
  Context c;
  const Node* x = c.var(VarKind::Input, 0, "x", {});
  const Node* w = c.var(VarKind::Input, 1, "w", {});
  const Node* s = c.unary(Op::Sigmoid, c.mul(w, x));
  const Node* d = c.mul(c.mul(x, s), c.sub(c.constant(1), s));
  EXPECT_EQ(print_text(d), "t1 = sigmoid(w * x)\nx * t1 * (1 - t1)");
}

TEST(Printer, MinimalParentheses) {
  Context c;
  const Node* a = c.var(VarKind::Input, 0, "a", {});
  const Node* b = c.var(VarKind::Input, 1, "b", {});
  EXPECT_EQ(print_text(c.sub(a, c.sub(a, b))), "a - (a - b)");
  EXPECT_EQ(print_text(c.neg(c.pow(a, c.constant(2)))), "-a^2");
  EXPECT_EQ(print_text(c.pow(c.neg(a), c.constant(2))), "(-a)^2");
  EXPECT_EQ(print_text(c.pow(a, c.constant(-1))), "a^-1");
  EXPECT_EQ(print_text(c.mul(c.add(a, b), b)), "(a + b) * b");
  EXPECT_EQ(print_text(c.add(a, c.constant(-1))), "a - 1");
  EXPECT_EQ(print_text(c.div(a, c.mul(a, b))), "a / (a * b)");
  EXPECT_EQ(print_text(c.binary(Op::Gt, a, c.constant(0))), "a > 0");
  EXPECT_EQ(format_number(1e-4), "1e-04");
}

}  // namespace
}  // namespace nabla::ir
