// Property: for random expression trees, printing them as source text (with
// the fewest parentheses precedence allows, plus random redundant ones, random
// blanks, newlines and comments) and parsing the text gives the same tree.
#include <gtest/gtest.h>

#include <charconv>
#include <random>

#include "test_util.h"

namespace nabla {
namespace {

enum Prec { kCompare = 1, kAdd = 2, kMul = 3, kUnary = 4, kPow = 5, kPostfix = 6, kPrimary = 7 };

struct Gen {
  std::mt19937 rng;
  explicit Gen(unsigned seed) : rng(seed) {}

  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); }
  bool chance(int percent) { return pick(100) < percent; }

  std::string blank() {
    switch (pick(8)) {
      case 0: return "  ";
      case 1: return "\n";
      case 2: return " # note\n ";
      case 3: return "\t";
      default: return pick(2) ? " " : "";
    }
  }

  static std::string num(double v) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, end);
  }

  // Returns {source text, expected prefix form, precedence of the text}.
  struct Out {
    std::string text, prefix;
    int prec;
  };

  // `text` wrapped so that it binds at least as tightly as `need`.
  std::string wrap(const Out& o, int need) {
    if (o.prec < need || chance(5)) return "(" + blank() + o.text + blank() + ")";
    return o.text;
  }

  Out leaf() {
    if (pick(3) == 0) {
      const int k = pick(100);
      const double v = pick(2) ? k : k + 0.5;
      std::string text;
      if (v == k) {
        const char* forms[] = {"", ".0", "e0", "E+0"};
        text = std::to_string(k) + forms[pick(4)];
      } else {
        text = std::to_string(k) + ".5";
        if (k == 0 && pick(2)) text = ".5";
      }
      return {text, num(v), kPrimary};
    }
    const char* names[] = {"x", "W", "b_1", "_t", "alpha2"};
    const std::string n = names[pick(5)];
    return {n, n, kPrimary};
  }

  Out expr(int depth) {
    if (depth == 0) return leaf();
    switch (pick(7)) {
      case 0: {  // left-associative binary
        const char* ops[] = {"+", "-", "*", "/", "@"};
        const std::string op = ops[pick(5)];
        const int p = (op == "+" || op == "-") ? kAdd : kMul;
        Out a = expr(depth - 1), b = expr(depth - 1);
        return {wrap(a, p) + blank() + op + blank() + wrap(b, p + 1),
                "(" + op + " " + a.prefix + " " + b.prefix + ")", p};
      }
      case 1: {  // power: right-associative, signed exponent allowed
        Out a = expr(depth - 1), b = expr(depth - 1);
        return {wrap(a, kPostfix) + blank() + "^" + blank() + wrap(b, kUnary),
                "(^ " + a.prefix + " " + b.prefix + ")", kPow};
      }
      case 2: {  // unary minus
        Out a = expr(depth - 1);
        return {"-" + blank() + wrap(a, kUnary), "(neg " + a.prefix + ")", kUnary};
      }
      case 3: {  // comparison (never chained)
        const char* ops[] = {"<", "<=", ">", ">=", "==", "!="};
        const std::string op = ops[pick(6)];
        Out a = expr(depth - 1), b = expr(depth - 1);
        return {wrap(a, kAdd) + blank() + op + blank() + wrap(b, kAdd),
                "(" + op + " " + a.prefix + " " + b.prefix + ")", kCompare};
      }
      case 4: {  // transpose; a number is parenthesized so '3.T' never appears
        Out a = expr(depth - 1);
        const bool number = !a.text.empty() && (std::isdigit(static_cast<unsigned char>(a.text[0])) ||
                                                a.text[0] == '.');
        const std::string operand = number && a.prec == kPrimary ? "(" + a.text + ")" : wrap(a, kPostfix);
        return {operand + ".T", "(.T " + a.prefix + ")", kPostfix};
      }
      case 5: {  // call with positional and keyword arguments
        const int n = pick(3);
        std::string text = "f(" + blank(), prefix = "(f";
        for (int i = 0; i < n; ++i) {
          Out a = expr(depth - 1);
          const bool kw = pick(3) == 0;
          text += (i ? "," + blank() : "") + (kw ? "k" + std::to_string(i) + blank() + "=" + blank() : "") +
                  a.text;
          prefix += " " + (kw ? "k" + std::to_string(i) + "=" : "") + a.prefix;
        }
        return {text + blank() + ")", prefix + ")", kPrimary};
      }
      default: return leaf();
    }
  }
};

TEST(ParserProperty, PrintThenParseGivesTheSameTree) {
  Gen gen(20261126);
  for (int i = 0; i < 3000; ++i) {
    const Gen::Out e = gen.expr(1 + gen.pick(5));
    const test::ParsedExpr r = test::parse_expr(e.text);
    ASSERT_EQ(r.errors, "") << "source: " << e.text;
    ASSERT_EQ(r.ast, e.prefix) << "source: " << e.text;
  }
}

}  // namespace
}  // namespace nabla
