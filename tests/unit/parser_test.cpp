#include <gtest/gtest.h>

#include "ir/stack.h"
#include "test_util.h"

namespace nabla {
namespace {

using test::parse_expr;

TEST(Parser, Precedence) {
  EXPECT_EQ(parse_expr("a + b * c").ast, "(+ a (* b c))");
  EXPECT_EQ(parse_expr("a * b + c").ast, "(+ (* a b) c)");
  EXPECT_EQ(parse_expr("a < b + c").ast, "(< a (+ b c))");
  EXPECT_EQ(parse_expr("-x^2").ast, "(neg (^ x 2))");
  EXPECT_EQ(parse_expr("-x * y").ast, "(* (neg x) y)");
  EXPECT_EQ(parse_expr("W @ x + b").ast, "(+ (@ W x) b)");
  EXPECT_EQ(parse_expr("A.T @ x").ast, "(@ (.T A) x)");
  EXPECT_EQ(parse_expr("f(x)^2").ast, "(^ (f x) 2)");
  EXPECT_EQ(parse_expr("(a + b) * c").ast, "(* (+ a b) c)");
}

TEST(Parser, Associativity) {
  EXPECT_EQ(parse_expr("a - b - c").ast, "(- (- a b) c)");
  EXPECT_EQ(parse_expr("a / b * c @ d").ast, "(@ (* (/ a b) c) d)");
  EXPECT_EQ(parse_expr("a ^ b ^ c").ast, "(^ a (^ b c))");
  EXPECT_EQ(parse_expr("2^-1").ast, "(^ 2 (neg 1))");
  EXPECT_EQ(parse_expr("(a - b) - c").ast, "(- (- a b) c)");
  EXPECT_EQ(parse_expr("a - (b - c)").ast, "(- a (- b c))");
}

TEST(Parser, NumbersAndCalls) {
  EXPECT_EQ(parse_expr("3 + 0.5 + .5 + 1e-4 + 2.5E+3").ast, "(+ (+ (+ (+ 3 0.5) 0.5) 1e-04) 2500)");
  EXPECT_EQ(parse_expr("leaky_relu(z, gamma=0.2)").ast, "(leaky_relu z gamma=0.2)");
  EXPECT_EQ(parse_expr("sum(t, axis=0) == 1").ast, "(== (sum t axis=0) 1)");
  EXPECT_EQ(parse_expr("f()").ast, "(f)");
}

TEST(Parser, ComparisonsDoNotChain) {
  const auto r = parse_expr("a < b < c");
  EXPECT_EQ(r.ast, "");
  EXPECT_NE(r.errors.find("<expr>:1:7: error: comparisons do not chain"), std::string::npos)
      << r.errors;
}

TEST(Parser, StatementsContinueWhileABracketIsOpen) {
  auto c = test::check(
      "input x : [\n  3\n]   # shape over lines\n"
      "h = sigmoid(\n  x +   # comment inside\n\n  1)\n"
      "output h\n");
  EXPECT_EQ(c.errors, "");
  ASSERT_EQ(c.ast.stmts.size(), 3u);
  EXPECT_EQ(print_ast(c.ast), "input x [3]\nlet h = (sigmoid (+ x 1))\noutput h\n");
}

TEST(Parser, CrlfLineEndings) {
  auto c = test::check("input x : [3]\r\nh = x + 1\r\noutput h\r\n");
  EXPECT_EQ(c.errors, "");
  EXPECT_EQ(c.ast.stmts.size(), 3u);
}

TEST(Parser, RecoversAtStatementBoundaries) {
  auto c = test::check(
      "input x [3]\n"          // missing ':'
      "param W : [2, 3]\n"
      "h = W @ $\n"            // stray character
      "z = W @ x +\n"          // dangling operator
      "output z2 = W @ x\n");
  EXPECT_EQ(c.error_count, 3) << c.errors;
  EXPECT_EQ(test::first_error_location(c.errors), "t.nn:1:9");
  EXPECT_NE(c.errors.find("t.nn:3:9: error: stray character '$'"), std::string::npos) << c.errors;
  EXPECT_NE(c.errors.find("t.nn:4:12: error: expected an expression"), std::string::npos) << c.errors;
  ASSERT_EQ(c.ast.stmts.size(), 2u);  // the param and the output survive
}

TEST(Parser, UnclosedBracketCostsOneStatement) {
  auto c = test::check("input x : [3]\nh = sigmoid(x\nparam W : [2, 3]\noutput h2 = W @ x\n");
  EXPECT_EQ(c.error_count, 1) << c.errors;
  EXPECT_NE(c.errors.find("t.nn:2:14: error: expected ')', found the end of the line"),
            std::string::npos)
      << c.errors;
  EXPECT_NE(c.errors.find("t.nn:2:12: note: to match this '('"), std::string::npos) << c.errors;
  EXPECT_EQ(c.ast.stmts.size(), 3u);
}

TEST(Parser, MalformedNumbers) {
  for (const char* bad : {"1e", "2.5E+", "1.2.3", "2x"}) {
    const auto r = parse_expr(std::string("y + ") + bad);
    EXPECT_NE(r.errors.find("<expr>:1:5: error: malformed number"), std::string::npos)
        << bad << ": " << r.errors;
  }
}

TEST(Parser, HostileBytes) {
  EXPECT_NE(parse_expr(std::string("x \0 y", 5)).errors.find("1:3: error: NUL byte"), std::string::npos);
  EXPECT_NE(parse_expr("x \xff y").errors.find("1:3: error: invalid byte 0xFF"), std::string::npos);
  EXPECT_NE(parse_expr("x \xc3\xa9 y").errors.find("1:3: error: stray character '\xc3\xa9'"),
            std::string::npos);
}

// Deep nesting runs on a large stack, as the command line does.
TEST(Parser, DeepNestingIsAcceptedUpToTheLimit) {
  run_on_large_stack([] {
    const int depth = std::min(10000, kMaxNesting - 10);
    const auto r = parse_expr(std::string(depth, '(') + "x" + std::string(depth, ')'));
    EXPECT_EQ(r.ast, "x");
    const auto minus = parse_expr(std::string(depth, '-') + "x");
    EXPECT_EQ(minus.errors, "");
    return 0;
  });
}

TEST(Parser, NestingPastTheLimitIsAnError) {
  run_on_large_stack([] {
    const int depth = kMaxNesting + 10;
    const auto r = parse_expr(std::string(depth, '(') + "x" + std::string(depth, ')'));
    EXPECT_EQ(r.ast, "");
    EXPECT_NE(r.errors.find("nested too deeply"), std::string::npos) << r.errors.substr(0, 200);
    return 0;
  });
}

TEST(Parser, LongChainsAreFlat) {
  std::string text = "x";
  for (int i = 0; i < 200000; ++i) text += "+x";
  SourceFile f("<expr>", text);
  Diagnostics d(f);
  ast::Module m = parse_expression(f, d);
  ASSERT_NE(m.root, ast::kNoExpr);
  EXPECT_EQ(m.expr(m.root).kind, ast::ExprKind::Chain);
  EXPECT_EQ(m.expr(m.root).operands.size(), 200001u);
}

}  // namespace
}  // namespace nabla
