#include <gtest/gtest.h>

#include "test_util.h"

namespace nabla {
namespace {

using test::check;

const char* kMlp = R"(model mlp
input  x : [784]
label  y : [10] distribution
param  W1 : [256, 784] init he_normal
param  b1 : [256]
param  W2 : [10, 256]  init xavier_uniform
param  b2 : [10]       init zeros
const  lambda = 1e-4
fn dense(v, W, b) = W @ v + b
h    = relu(dense(x, W1, b1))
yhat = softmax(dense(h, W2, b2))
output yhat
loss cross_entropy(y, yhat) + lambda / 2 * (frobenius2(W1) + frobenius2(W2))
)";

TEST(Sema, SpecExampleChecks) {
  auto c = check(kMlp);
  ASSERT_EQ(c.errors, "");
  const CheckedModel& m = c.model;
  EXPECT_EQ(m.name, "mlp");
  EXPECT_EQ(m.param_count(), 256 * 784 + 256 + 10 * 256 + 10);
  ASSERT_EQ(m.outputs.size(), 1u);
  EXPECT_EQ(m.outputs[0].value->shape, Shape({10}));
  ASSERT_NE(m.loss, nullptr);
  EXPECT_TRUE(m.loss->shape.is_scalar());
  EXPECT_TRUE(m.labels[0].distribution);
  EXPECT_EQ(m.params[0].init.kind, InitSpecDecl::Kind::HeNormal);
  EXPECT_EQ(m.params[1].init.kind, InitSpecDecl::Kind::Zeros);  // the default
  EXPECT_GE(m.loss->label, 0);
  EXPECT_LT(m.outputs[0].value->label, 0);
}

TEST(Sema, LetsAreSharedNodes) {
  auto c = check("input x : [3]\nh = x * 2\noutput o = h + h\n");
  ASSERT_EQ(c.errors, "");
  const TExpr* o = c.model.outputs[0].value;
  ASSERT_EQ(o->kind, TExpr::Kind::Binary);
  EXPECT_EQ(o->args[0]->kind, TExpr::Kind::Ref);
  EXPECT_EQ(o->args[0]->args[0], o->args[1]->args[0]);  // one node for h
}

TEST(Sema, BuiltinShapes) {
  auto c = check(
      "input z : [12]\ninput s : [4, 3]\ninput u : [5]\n"
      "output a = maxout(z, 3)\n"
      "output b = sum(s, axis=0)\n"
      "output c = mean(s, axis=-1)\n"
      "output d = softmax(s, axis=0)\n"
      "output e = outer(u, z)\n"
      "output f = dot(u, u)\n"
      "output g = s.T\n"
      "output h = max(s)\n"
      "output i = max(s, 0.5)\n"
      "output j = leaky_relu(z, gamma=0.2)\n"
      "output k = where(z > 0, z, 0)\n"
      "output l = s @ s.T\n");
  ASSERT_EQ(c.errors, "");
  const auto& o = c.model.outputs;
  EXPECT_EQ(o[0].value->shape, Shape({4}));
  EXPECT_EQ(o[1].value->shape, Shape({3}));
  EXPECT_EQ(o[2].value->shape, Shape({4}));
  EXPECT_EQ(o[3].value->shape, Shape({4, 3}));
  EXPECT_EQ(*o[3].value->axis, 0);
  EXPECT_EQ(o[4].value->shape, Shape({5, 12}));
  EXPECT_EQ(o[5].value->shape, Shape({}));
  EXPECT_EQ(o[6].value->shape, Shape({3, 4}));
  EXPECT_EQ(o[7].value->shape, Shape({}));
  EXPECT_EQ(o[8].value->shape, Shape({4, 3}));
  EXPECT_EQ(o[9].value->args.size(), 2u);  // gamma bound
  EXPECT_EQ(o[9].value->args[1]->number, 0.2);
  EXPECT_EQ(o[11].value->shape, Shape({4, 4}));
}

TEST(Sema, DefaultsAreFilledIn) {
  auto c = check("input z : [3]\noutput a = leaky_relu(z)\noutput b = elu(z)\noutput s = softmax(z)\n");
  ASSERT_EQ(c.errors, "");
  EXPECT_EQ(c.model.outputs[0].value->args[1]->number, 0.01);
  EXPECT_EQ(c.model.outputs[1].value->args[1]->number, 1.0);
  EXPECT_EQ(*c.model.outputs[2].value->axis, 0);  // -1 normalized
}

struct ErrorCase {
  const char* text;
  const char* location;  // t.nn:LINE:COL of the first error
  const char* message;   // a part of its message
};

class SemaErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(SemaErrors, ReportsAtTheRightPlace) {
  const ErrorCase& e = GetParam();
  auto c = check(e.text);
  EXPECT_EQ(test::first_error_location(c.errors), e.location) << c.errors;
  EXPECT_NE(c.errors.find(e.message), std::string::npos) << c.errors;
}

INSTANTIATE_TEST_SUITE_P(
    All, SemaErrors,
    ::testing::Values(
        ErrorCase{"input x : [3]\nparam W : [2, 3]\nh = w @ x\noutput h\n", "t.nn:3:5",
                  "unknown name 'w'; did you mean 'W'?"},
        ErrorCase{"input x : [3]\nh = sigmiod(x)\noutput h\n", "t.nn:2:5",
                  "unknown function 'sigmiod'; did you mean 'sigmoid'?"},
        ErrorCase{"input x : [3]\nh = tanh(z)\nz = x\noutput h\n", "t.nn:2:10",
                  "'z' is used before its binding on line 3"},
        ErrorCase{"input x : [3]\nh = x\nh = x\noutput h\n", "t.nn:3:1", "already bound on line 2"},
        ErrorCase{"input x : [3]\nrelu = x\noutput x\n", "t.nn:2:1", "'relu' is a builtin"},
        ErrorCase{"input x : [3]\nh = sigmoid(x, x)\noutput h\n", "t.nn:2:5", "sigmoid takes 1 argument"},
        ErrorCase{"input x : [3]\nh = leaky_relu(x, gama=0.1)\noutput h\n", "t.nn:2:19",
                  "leaky_relu has no parameter 'gama'; did you mean 'gamma'?"},
        ErrorCase{"input x : [3]\nfn f(a, b) = a * b\nh = f(x)\noutput h\n", "t.nn:3:5",
                  "f takes 2 arguments (a, b), called with 1"},
        ErrorCase{"input x : [3]\nfn f(a) = f(a)\noutput x\n", "t.nn:2:11", "'f' calls itself"},
        ErrorCase{"input x : [3]\nparam W : [3, 3]\nfn f(a) = W @ a\noutput o = f(x)\n", "t.nn:3:11",
                  "'W' is not visible inside fn 'f'"},
        ErrorCase{"input x : [3]\nparam W : [2, 4]\nfn f(v, M) = M @ v\noutput o = f(x, W)\n",
                  "t.nn:4:12", "in this call of 'f': [2, 4] @ [3]"},
        ErrorCase{"input a : [3]\ninput b : [4]\noutput c = a + b\n", "t.nn:3:14",
                  "[3] + [4]: the shapes do not broadcast"},
        ErrorCase{"input z : [10]\noutput m = maxout(z, 3)\n", "t.nn:2:12",
                  "is not a multiple of the group size 3"},
        ErrorCase{"input z : [10]\noutput m = sum(z, axis=1)\n", "t.nn:2:12", "axis 1 is out of range"},
        ErrorCase{"input z : [10]\noutput m = sum(z, axis=0.5)\n", "t.nn:2:24", "axis must be an integer"},
        ErrorCase{"input x : [2]\nlabel y : [2]\nloss (x - y)^2\n", "t.nn:3:6",
                  "the loss must be a scalar, but this expression has shape [2]"},
        ErrorCase{"input x : [2]\nlabel y : [2]\nloss mse(x, y)\nloss mse(y, x)\n", "t.nn:4:1",
                  "a second 'loss' statement"},
        ErrorCase{"input x : [2]\nlabel y : [2]\nd = y - x\noutput d\nloss sum(d)\n", "t.nn:4:8",
                  "output 'd' depends on the label 'y'"},
        ErrorCase{"input x : [2]\nconst c = x\noutput x\n", "t.nn:2:11", "'x' is not a const"},
        ErrorCase{"param W : [2, 2] init uniform(1, 0)\noutput W\n", "t.nn:1:23", "needs A < B"},
        ErrorCase{"param W : [2, 2] init normal(0)\noutput W\n", "t.nn:1:23", "init normal takes 2 arguments"},
        ErrorCase{"input x : [3]\nmodel m\noutput x\n", "t.nn:2:1", "must be the first statement"},
        ErrorCase{"input x : [3]\n", "t.nn:1:1", "the model computes nothing"},
        ErrorCase{"input x : [3]\nh = relu\noutput h\n", "t.nn:2:5", "'relu' is a builtin function"},
        ErrorCase{"input x : [3]\nh = input + 1\noutput h\n", "t.nn:2:5", "'input' is a keyword, not a value"},
        ErrorCase{"input x : [99999999999]\noutput x\n", "t.nn:1:12", "too large"}));

TEST(Sema, FailedStatementsRaiseNoSecondError) {
  auto c = check("input x : [3]\nh = x $ 2\nrelu = x\noutput h\noutput o = relu + h\n");
  EXPECT_EQ(c.error_count, 2) << c.errors;
}

TEST(Sema, ExpressionModeMakesFreeNamesScalars) {
  SourceFile f("<expr>", "1 / (exp(-(w*x + b)) + 1) + mse(w, x) + sum(x)");
  Diagnostics d(f);
  ast::Module m = parse_expression(f, d);
  CheckedExpr e = check_expression(m, d);
  EXPECT_FALSE(d.has_errors());
  EXPECT_EQ(e.vars, (std::vector<std::string>{"w", "x", "b"}));
  EXPECT_TRUE(e.root->shape.is_scalar());
}

}  // namespace
}  // namespace nabla
