// The .nn grammar in Boost.Spirit X3. This is the only translation unit that
// includes Spirit: it is slow to compile, and nothing else needs it.
//
// Design:
// - Characters are parsed directly (no separate lexer), skipping blanks,
//   comments and newlines. "A statement ends at the end of its line unless a
//   bracket is open" is applied before the grammar runs: split_statements()
//   cuts the text into logical lines, and the grammar parses one at a time.
//   (Switching skippers inside brackets with x3::skip[] would nest the X3
//   context type once per recursion and never finish instantiating.)
// - Semantic actions build the AST (ast.h) in an arena held by ParseState and
//   reached through the X3 context; rule attributes are plain indices.
// - `>` expectation points commit to a production, so errors name what was
//   expected at the exact place it was missing. An error ends its statement
//   only; parsing goes on with the next one.
// - `guard[...]` counts nesting and stops it at kMaxNesting.
#include "frontend/parser.h"

#include <boost/fusion/include/at_c.hpp>
#include <boost/spirit/home/x3.hpp>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <functional>
#include <string>

namespace nabla {
namespace {

namespace x3 = boost::spirit::x3;
namespace fusion = boost::fusion;
using It = const char*;
using ast::ExprId;
using ast::ExprKind;
using ast::Op;

// Thrown when nesting or the AST grows past its limit; caught by the driver.
struct LimitExceeded {
  It where;
  std::string message;
};

struct ParseState {
  ast::Module* module = nullptr;
  It base = nullptr;
  int depth = 0;
  int transposes = 0;             // the `.T`s of the postfix chain being parsed (each nests the AST once)
  ast::Stmt stmt;                 // the statement being parsed
  std::vector<It> open_brackets;  // positions of '(' and '[' not yet closed
  std::vector<ExprId> open_calls;  // calls whose arguments are being parsed
  SourceRange last_closed;         // the last (...) or [...] closed, brackets included
  std::vector<ExprId> open_shapes;  // shape literals whose sizes are being parsed

  uint32_t offset(It p) const { return static_cast<uint32_t>(p - base); }
  // Forgets what the previous statement left (after an error, brackets stay open).
  void begin_statement() {
    stmt = ast::Stmt{};
    depth = 0;
    open_brackets.clear();
    open_calls.clear();
    open_shapes.clear();
  }
  SourceRange range(It b, It e) const { return {offset(b), offset(e)}; }
  ast::Expr& expr(ExprId id) { return module->exprs[static_cast<size_t>(id)]; }
  ExprId add(ast::Expr e, It where) {
    if (module->exprs.size() + module->stmts.size() >= static_cast<size_t>(kMaxAstNodes))
      throw LimitExceeded{where, "the file is too large: more than " +
                                     std::to_string(kMaxAstNodes) +
                                     " statements and expression nodes (nabla's limit)"};
    return module->add(std::move(e));
  }
};
struct state_tag;

template <typename Ctx>
ParseState& state(const Ctx& ctx) {
  return x3::get<state_tag>(ctx).get();
}

// A token's text and where it is.
struct Tok {
  std::string text;
  uint32_t begin = 0, end = 0;
  SourceRange range() const { return {begin, end}; }
};
struct OpTok {
  Op op = Op::Add;
  uint32_t begin = 0, end = 0;
  SourceRange range() const { return {begin, end}; }
};

// ---------------------------------------------------------------------------
// guard[p]: p, one nesting level deeper.
template <typename Subject>
struct guard_directive : x3::unary_parser<Subject, guard_directive<Subject>> {
  using base_type = x3::unary_parser<Subject, guard_directive<Subject>>;
  static bool const is_pass_through_unary = true;
  constexpr guard_directive(const Subject& s) : base_type(s) {}

  template <typename Iterator, typename Context, typename RContext, typename Attribute>
  bool parse(Iterator& first, const Iterator& last, const Context& ctx, RContext& rctx,
             Attribute& attr) const {
    ParseState& st = state(ctx);
    if (++st.depth > kMaxNesting)
      throw LimitExceeded{first, "the expression is nested too deeply (more than " +
                                     std::to_string(kMaxNesting) +
                                     " levels of brackets, signs or powers)"};
    const bool ok = this->subject.parse(first, last, ctx, rctx, attr);
    --st.depth;
    return ok;
  }
};
struct guard_gen {
  template <typename Subject>
  constexpr guard_directive<typename x3::extension::as_parser<Subject>::value_type> operator[](
      const Subject& subject) const {
    return {x3::as_parser(subject)};
  }
};
constexpr guard_gen guard{};

}  // namespace
}  // namespace nabla

// Expectation failures name what was expected through x3::what(); wrappers
// that only add an action, a guard or raw[] name what they wrap.
namespace boost::spirit::x3 {
template <typename Subject, typename Action>
struct get_info<action<Subject, Action>> {
  using result_type = std::string;
  std::string operator()(const action<Subject, Action>& p) const { return what(p.subject); }
};
template <typename Subject>
struct get_info<nabla::guard_directive<Subject>> {
  using result_type = std::string;
  std::string operator()(const nabla::guard_directive<Subject>& p) const { return what(p.subject); }
};
template <typename Subject>
struct get_info<omit_directive<Subject>> {
  using result_type = std::string;
  std::string operator()(const omit_directive<Subject>& p) const { return what(p.subject); }
};
template <typename Subject>
struct get_info<raw_directive<Subject>> {
  using result_type = std::string;
  std::string operator()(const raw_directive<Subject>& p) const { return what(p.subject); }
};
}  // namespace boost::spirit::x3

namespace nabla {
namespace {

// ---------------------------------------------------------------------------
// Skippers
const auto comment = x3::lit('#') >> *(x3::char_ - x3::lit('\n'));
const auto ws = x3::lit(' ') | x3::lit('\t') | x3::lit('\r') | comment;
const auto ws_nl = ws | x3::lit('\n');

// ---------------------------------------------------------------------------
// Tokens
// Explicit ranges, not <cctype> classes: locale-free, and safe on bytes >= 0x80.
const auto letter = x3::char_('a', 'z') | x3::char_('A', 'Z') | x3::char_('_');
const auto digit = x3::char_('0', '9');
const auto ident_char = letter | digit;

template <typename Ctx, typename Range>
Tok make_tok(const Ctx& ctx, const Range& r) {
  const ParseState& st = state(ctx);
  return Tok{std::string(r.begin(), r.end()), st.offset(r.begin()), st.offset(r.end())};
}

const x3::rule<class name_r, Tok> name = "a name";
const auto name_def = x3::raw[x3::lexeme[letter >> *ident_char]]
    [([](auto& ctx) { x3::_val(ctx) = make_tok(ctx, x3::_attr(ctx)); })];

// A keyword is a whole word: `inputs` is a name, not `input` + `s`.
auto kw(const char* word) { return x3::lexeme[x3::lit(word) >> !ident_char]; }

const x3::rule<class exponent_r> exponent_digits = "digits of the exponent";
const auto exponent_digits_def = +digit;
const x3::rule<class number_end_r> number_end = "the end of the number";
const auto number_end_def = !(ident_char | (x3::lit('.') >> digit));

const x3::rule<class number_r, Tok> number = "a number";
const auto number_def =
    x3::raw[x3::lexeme[(((+digit >> -(x3::lit('.') >> *digit)) | (x3::lit('.') >> +digit)) >>
                        -(x3::char_("eE") > -x3::char_("+-") > exponent_digits)) > number_end]]
    [([](auto& ctx) { x3::_val(ctx) = make_tok(ctx, x3::_attr(ctx)); })];

template <Op op>
auto op_tok(const char* spelling) {
  return x3::raw[x3::lit(spelling)][([](auto& ctx) {
    const auto& r = x3::_attr(ctx);
    const ParseState& st = state(ctx);
    x3::_val(ctx) = OpTok{op, st.offset(r.begin()), st.offset(r.end())};
  })];
}

const x3::rule<class add_op_r, OpTok> add_op = "'+' or '-'";
const auto add_op_def = op_tok<Op::Add>("+") | op_tok<Op::Sub>("-");
const x3::rule<class mul_op_r, OpTok> mul_op = "'*', '/' or '@'";
const auto mul_op_def = op_tok<Op::Mul>("*") | op_tok<Op::Div>("/") | op_tok<Op::MatMul>("@");
const x3::rule<class cmp_op_r, OpTok> cmp_op = "a comparison";
const auto cmp_op_def = op_tok<Op::Le>("<=") | op_tok<Op::Ge>(">=") | op_tok<Op::Eq>("==") |
                        op_tok<Op::Ne>("!=") | op_tok<Op::Lt>("<") | op_tok<Op::Gt>(">");
const x3::rule<class sign_r, OpTok> sign = "a sign";
const auto sign_def = op_tok<Op::Neg>("-") | op_tok<Op::Plus>("+");
const x3::rule<class pow_op_r, OpTok> pow_op = "'^'";
const auto pow_op_def = op_tok<Op::Pow>("^");

// Brackets are remembered for "never closed"; each bracketed production
// is wrapped in guard[] for the nesting limit.
template <char C>
auto open_bracket() {
  return x3::omit[x3::raw[x3::lit(C)][([](auto& ctx) {
    state(ctx).open_brackets.push_back(x3::_attr(ctx).begin());
  })]];
}
const x3::rule<class rparen_r> rparen = "')'";
const auto rparen_def = x3::raw[x3::lit(')')][([](auto& ctx) {
  ParseState& st = state(ctx);
  st.last_closed = st.range(st.open_brackets.back(), x3::_attr(ctx).end());
  st.open_brackets.pop_back();
})];
const x3::rule<class rbracket_r> rbracket = "']'";
const auto rbracket_def = x3::raw[x3::lit(']')][([](auto& ctx) {
  ParseState& st = state(ctx);
  st.last_closed = st.range(st.open_brackets.back(), x3::_attr(ctx).end());
  st.open_brackets.pop_back();
})];
BOOST_SPIRIT_DEFINE(name, exponent_digits, number_end, number, add_op, mul_op, cmp_op, sign,
                    pow_op, rparen, rbracket)

// ---------------------------------------------------------------------------
// Expressions (precedence, lowest first: comparison, + -, * / @, unary, ^, postfix)
const x3::rule<class expr_r, ExprId> expr = "an expression";
const x3::rule<class comparison_r, ExprId> comparison = "an expression";
const x3::rule<class additive_r, ExprId> additive = "an expression";
const x3::rule<class multiplicative_r, ExprId> multiplicative = "an expression";
const x3::rule<class unary_r, ExprId> unary = "an expression";
const x3::rule<class power_r, ExprId> power = "an expression";
const x3::rule<class postfix_r, ExprId> postfix = "an expression";
const x3::rule<class primary_r, ExprId> primary = "an expression";
const x3::rule<class call_r, ExprId> call = "a call";
const x3::rule<class arg_r> arg = "an argument";
const x3::rule<class no_chain_r> no_chain = "no second comparison";

const auto copy = [](auto& ctx) { x3::_val(ctx) = x3::_attr(ctx); };

SourceRange span(ParseState& st, ExprId a, ExprId b) {
  return {st.expr(a).range.begin, st.expr(b).range.end};
}

// `lhs op rhs` for a left-associative level: extends lhs when it is already a
// chain of the same level (a + b - c is one node), starts a chain otherwise.
template <bool (*SameLevel)(Op)>
void push_chain(ParseState& st, ExprId& val, const OpTok& op, ExprId rhs, It where) {
  ast::Expr& lhs = st.expr(val);
  if (lhs.kind == ExprKind::Chain && SameLevel(lhs.ops.front())) {
    lhs.operands.push_back(rhs);
    lhs.ops.push_back(op.op);
    lhs.op_ranges.push_back(op.range());
    lhs.range.end = st.expr(rhs).range.end;
    return;
  }
  ast::Expr e;
  e.kind = ExprKind::Chain;
  e.range = span(st, val, rhs);
  e.operands = {val, rhs};
  e.ops = {op.op};
  e.op_ranges = {op.range()};
  val = st.add(std::move(e), where);
}
bool is_additive(Op op) { return op == Op::Add || op == Op::Sub; }
bool is_multiplicative(Op op) { return op == Op::Mul || op == Op::Div || op == Op::MatMul; }

template <bool (*SameLevel)(Op)>
auto chain_action() {
  return [](auto& ctx) {
    const auto& a = x3::_attr(ctx);
    push_chain<SameLevel>(state(ctx), x3::_val(ctx), fusion::at_c<0>(a), fusion::at_c<1>(a),
                          x3::_where(ctx).begin());
  };
}

ExprId binary_node(ParseState& st, ExprKind kind, ExprId lhs, const OpTok& op, ExprId rhs,
                   It where) {
  ast::Expr e;
  e.kind = kind;
  e.range = span(st, lhs, rhs);
  e.operands = {lhs, rhs};
  e.ops = {op.op};
  e.op_ranges = {op.range()};
  return st.add(std::move(e), where);
}

const auto expr_def = comparison[copy];

const auto no_chain_def = !cmp_op;
const auto comparison_def =
    additive[copy] >> -((cmp_op > additive)[([](auto& ctx) {
      const auto& a = x3::_attr(ctx);
      x3::_val(ctx) = binary_node(state(ctx), ExprKind::Compare, x3::_val(ctx), fusion::at_c<0>(a),
                                  fusion::at_c<1>(a), x3::_where(ctx).begin());
    })] > no_chain);

const auto additive_def =
    multiplicative[copy] >> *((add_op > multiplicative)[chain_action<is_additive>()]);
const auto multiplicative_def =
    unary[copy] >> *((mul_op > unary)[chain_action<is_multiplicative>()]);

const auto unary_def = guard[(sign > unary)[([](auto& ctx) {
                         const auto& a = x3::_attr(ctx);
                         ParseState& st = state(ctx);
                         const OpTok& op = fusion::at_c<0>(a);
                         const ExprId operand = fusion::at_c<1>(a);
                         ast::Expr e;
                         e.kind = ExprKind::Unary;
                         e.range = {op.begin, st.expr(operand).range.end};
                         e.operands = {operand};
                         e.ops = {op.op};
                         e.op_ranges = {op.range()};
                         x3::_val(ctx) = st.add(std::move(e), x3::_where(ctx).begin());
                       })]] |
                       power[copy];

// `^` is right-associative and binds tighter than a sign on its left but takes
// a signed operand on its right: -x^2 is -(x^2), 2^-1 is 2^(-1).
const auto power_def =
    postfix[copy] >> -guard[(pow_op > unary)[([](auto& ctx) {
      const auto& a = x3::_attr(ctx);
      x3::_val(ctx) = binary_node(state(ctx), ExprKind::Power, x3::_val(ctx), fusion::at_c<0>(a),
                                  fusion::at_c<1>(a), x3::_where(ctx).begin());
    })]];

const auto transpose_op = x3::raw[x3::lexeme[x3::lit('.') >> x3::lit('T') >> !ident_char]];
const auto postfix_def = primary[copy] >> *transpose_op[([](auto& ctx) {
  ParseState& st = state(ctx);
  const ExprId operand = x3::_val(ctx);
  const auto& r = x3::_attr(ctx);
  // `W.T.T...` nests the AST as brackets do: counted against the same bound.
  st.transposes = st.expr(operand).kind == ExprKind::Transpose ? st.transposes + 1 : 1;
  if (st.depth + st.transposes > kMaxNesting)
    throw LimitExceeded{r.begin(), "the expression is nested too deeply (more than " + std::to_string(kMaxNesting) +
                                       " levels of brackets, signs, powers or .T)"};
  ast::Expr e;
  e.kind = ExprKind::Transpose;
  e.range = {st.expr(operand).range.begin, st.offset(r.end())};
  e.operands = {operand};
  x3::_val(ctx) = st.add(std::move(e), x3::_where(ctx).begin());
})];

const auto make_number = [](auto& ctx) {
  ParseState& st = state(ctx);
  const Tok& t = x3::_attr(ctx);
  ast::Expr e;
  e.kind = ExprKind::Number;
  e.range = t.range();
  if (std::from_chars(t.text.data(), t.text.data() + t.text.size(), e.number).ec == std::errc::result_out_of_range) {
    // from_chars leaves the value alone out of range (1e999 read as 0):
    // strtod rounds as C does, to infinity (which sema reports) or to zero
    // or a subnormal.
    e.number = std::strtod(std::string(t.text).c_str(), nullptr);
  }
  x3::_val(ctx) = st.add(std::move(e), x3::_where(ctx).begin());
};
// A node written as a name: a Name, or a Call whose callee it is.
ExprId add_named(ParseState& st, ExprKind kind, const Tok& t, It where) {
  ast::Expr e;
  e.kind = kind;
  e.range = t.range();
  e.name = t.text;
  e.name_range = t.range();
  return st.add(std::move(e), where);
}
const auto make_name = [](auto& ctx) {
  x3::_val(ctx) = add_named(state(ctx), ExprKind::Name, x3::_attr(ctx), x3::_where(ctx).begin());
};

// `name(` commits to a call. The call node is created when the callee is
// seen; its arguments are appended as they parse, to the innermost open call.
const auto start_call = [](auto& ctx) {
  ParseState& st = state(ctx);
  x3::_val(ctx) = add_named(st, ExprKind::Call, x3::_attr(ctx), x3::_where(ctx).begin());
  st.open_calls.push_back(x3::_val(ctx));
};
const auto end_call = [](auto& ctx) {
  ParseState& st = state(ctx);
  st.expr(st.open_calls.back()).range.end = st.offset(x3::_where(ctx).end());
  st.open_calls.pop_back();
};
const auto positional_arg = [](auto& ctx) {
  ParseState& st = state(ctx);
  st.expr(st.open_calls.back()).args.push_back({"", {}, x3::_attr(ctx)});
};
const auto keyword_arg = [](auto& ctx) {
  ParseState& st = state(ctx);
  const auto& a = x3::_attr(ctx);
  const Tok& kw_tok = fusion::at_c<0>(a);
  st.expr(st.open_calls.back()).args.push_back({kw_tok.text, kw_tok.range(), fusion::at_c<1>(a)});
};
const auto keyword_start = name >> x3::lit('=') >> !x3::lit('=');
const auto arg_def = (keyword_start > expr)[keyword_arg] | expr[positional_arg];

const auto call_def = (name >> &x3::lit('('))[start_call] >>
                      guard[open_bracket<'('>() > -(arg % ',') > rparen[end_call]];

// A parenthesized expression's range includes its parentheses.
const auto paren_expr = guard[(open_bracket<'('>() > expr > rparen)[([](auto& ctx) {
  ParseState& st = state(ctx);
  const ExprId id = x3::_attr(ctx);
  st.expr(id).range = st.last_closed;
  x3::_val(ctx) = id;
})]];

// A shape literal [d1, d2, ...] (an argument of nabla's broadcast and sum_to).
const auto start_shape_literal = [](auto& ctx) {
  ParseState& st = state(ctx);
  ast::Expr e;
  e.kind = ExprKind::ShapeLiteral;
  const uint32_t at = st.offset(x3::_attr(ctx).begin());
  e.range = {at, at + 1};
  x3::_val(ctx) = st.add(std::move(e), x3::_attr(ctx).begin());
  st.open_shapes.push_back(x3::_val(ctx));
};
const auto literal_dim = x3::raw[x3::lexeme[-x3::char_("+-") >> number]][([](auto& ctx) {
  ParseState& st = state(ctx);
  const Tok t = make_tok(ctx, x3::_attr(ctx));
  st.expr(st.open_shapes.back()).dims.push_back({t.text, t.range()});
})];
const auto end_shape_literal = [](auto& ctx) {
  ParseState& st = state(ctx);
  st.expr(st.open_shapes.back()).range = st.last_closed;
  st.open_shapes.pop_back();
};
const x3::rule<class literal_body_r> literal_body = "a size";
const auto literal_body_def = rbracket | (literal_dim % ',' > rbracket);
const x3::rule<class shape_literal_r, ExprId> shape_literal = "a shape";
const auto shape_literal_def = x3::raw[&x3::lit('[')][start_shape_literal] >>
                               guard[(open_bracket<'['>() > literal_body)[end_shape_literal]];

const auto primary_def = number[make_number] | call[copy] | name[make_name] | paren_expr[copy] |
                         shape_literal[copy];

BOOST_SPIRIT_DEFINE(literal_body, shape_literal)
BOOST_SPIRIT_DEFINE(expr, comparison, no_chain, additive, multiplicative, unary, power, postfix,
                    primary, call, arg)

// ---------------------------------------------------------------------------
// Statements. Actions fill ParseState::stmt; the driver stores it on success.
template <ast::StmtKind K>
auto begin_stmt(const char* word) {
  return x3::raw[kw(word)][([](auto& ctx) {
    ParseState& st = state(ctx);
    const auto& r = x3::_attr(ctx);
    st.stmt.kind = K;
    st.stmt.keyword_range = st.range(r.begin(), r.end());
  })];
}
const auto set_name = [](auto& ctx) {
  ParseState& st = state(ctx);
  st.stmt.name = x3::_attr(ctx).text;
  st.stmt.name_range = x3::_attr(ctx).range();
};
const auto set_value = [](auto& ctx) { state(ctx).stmt.value = x3::_attr(ctx); };

const x3::rule<class dim_r> dim = "a size";
const auto dim_def = x3::raw[x3::lexeme[-x3::char_("+-") >> number]][([](auto& ctx) {
  ParseState& st = state(ctx);
  const Tok t = make_tok(ctx, x3::_attr(ctx));
  st.stmt.shape.push_back({t.text, t.range()});
})];
const x3::rule<class shape_r> shape = "a shape such as [3, 4]";
const x3::rule<class shape_body_r> shape_body = "a size";
const auto shape_body_def = rbracket | (dim % ',' > rbracket);
const auto shape_def = x3::raw[open_bracket<'['>() > shape_body]
    [([](auto& ctx) {
      ParseState& st = state(ctx);
      st.stmt.shape_range = st.range(x3::_attr(ctx).begin(), x3::_attr(ctx).end());
    })];

const x3::rule<class init_r> init_spec = "an initializer";
const auto init_arg = expr[([](auto& ctx) { state(ctx).stmt.init->args.push_back(x3::_attr(ctx)); })];
const auto init_spec_def =
    x3::raw[name[([](auto& ctx) {
      ParseState& st = state(ctx);
      st.stmt.init.emplace();
      st.stmt.init->name = x3::_attr(ctx).text;
      st.stmt.init->name_range = x3::_attr(ctx).range();
    })] >> -(open_bracket<'('>()[([](auto& ctx) { state(ctx).stmt.init->has_args = true; })] >
             -(init_arg % ',') > rparen)]
    [([](auto& ctx) {
      ParseState& st = state(ctx);
      st.stmt.init->range = st.range(x3::_attr(ctx).begin(), x3::_attr(ctx).end());
    })];

const auto fn_param = name[([](auto& ctx) {
  ParseState& st = state(ctx);
  st.stmt.params.push_back(x3::_attr(ctx).text);
  st.stmt.param_ranges.push_back(x3::_attr(ctx).range());
})];

using SK = ast::StmtKind;
const x3::rule<class colon_r> colon = "':' between the name and the shape";
const auto colon_def = x3::lit(':');
const x3::rule<class equals_r> equals = "'='";
const auto equals_def = x3::lit('=') >> !x3::lit('=');
const x3::rule<class end_r> end_of_statement = "the end of the line";
const auto end_of_statement_def = x3::eoi;
const x3::rule<class eoi_r> end_of_input = "the end of the expression";
const auto end_of_input_def = x3::eoi;
const x3::rule<class let_r> let_stmt = "a statement";
const auto let_stmt_def = name[([](auto& ctx) {
  ParseState& st = state(ctx);
  st.stmt.kind = SK::Let;
  st.stmt.keyword_range = x3::_attr(ctx).range();
})][set_name] > equals > expr[set_value];

const x3::rule<class statement_r> statement = "a statement";
const auto statement_def =
    ((begin_stmt<SK::Model>("model") > name[set_name]) |
     (begin_stmt<SK::Input>("input") > name[set_name] > colon > shape) |
     (begin_stmt<SK::Label>("label") > name[set_name] > colon > shape >
      -kw("distribution")[([](auto& ctx) { state(ctx).stmt.distribution = true; })]) |
     (begin_stmt<SK::Param>("param") > name[set_name] > colon > shape > -(kw("init") > init_spec)) |
     (begin_stmt<SK::Const>("const") > name[set_name] > equals > expr[set_value]) |
     (begin_stmt<SK::Fn>("fn") > name[set_name] > open_bracket<'('>() >
      -(fn_param % ',') > rparen > equals > expr[set_value]) |
     (begin_stmt<SK::Output>("output") > name[set_name] > -(equals > expr[set_value])) |
     (begin_stmt<SK::Loss>("loss") > expr[set_value]) | let_stmt) > end_of_statement;

BOOST_SPIRIT_DEFINE(dim, shape_body, shape, init_spec, colon, equals, end_of_statement, end_of_input,
                    let_stmt, statement)

// ---------------------------------------------------------------------------
// Error messages

bool valid_utf8_at(It p, It last, int* len) {
  const auto c = static_cast<unsigned char>(*p);
  const int n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || last - p < n) return false;
  for (int k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(p[k]) & 0xC0) != 0x80) return false;
  *len = n;
  return true;
}

std::string hex_byte(unsigned char c) {
  const char* digits = "0123456789ABCDEF";
  return std::string("0x") + digits[c >> 4] + digits[c & 15];
}

// "U+200B" for the UTF-8 sequence of `len` bytes at `p` (valid): named by its
// code point too, since many such characters are invisible or look like ASCII.
std::string code_point(It p, int len) {
  const auto b0 = static_cast<unsigned char>(*p);
  uint32_t cp = len == 2 ? b0 & 0x1F : len == 3 ? b0 & 0x0F : b0 & 0x07;
  for (int k = 1; k < len; ++k) cp = cp << 6 | (static_cast<unsigned char>(p[k]) & 0x3F);
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(cp));
  return buf;
}

// A character no token can start with: reported as such, whatever was expected.
std::optional<std::string> stray_character(It p, It last) {
  const auto c = static_cast<unsigned char>(*p);
  if (c == 0) return "NUL byte in the source";
  int len = 0;
  if (c >= 0x80) {
    if (!valid_utf8_at(p, last, &len))
      return "invalid byte " + hex_byte(c) + ": the file is not UTF-8 text here";
    return "stray character '" + std::string(p, p + len) + "' (" + code_point(p, len) +
           "): only ASCII is allowed outside comments";
  }
  if (c < 0x20 && c != '\n' && c != '\t' && c != '\r')
    return "stray control character " + hex_byte(c);
  if (std::string_view("$?`~;{}&|\"'\\%!").find(static_cast<char>(c)) != std::string_view::npos &&
      !(c == '!' && p + 1 < last && p[1] == '='))
    return std::string("stray character '") + static_cast<char>(c) + "'";
  return std::nullopt;
}

// What stands at `p`, for "expected X, found Y".
std::string describe_found(It p, It last) {
  if (p == last) return "the end of the file";
  const char c = *p;
  if (c == '\n' || c == '\r') return "the end of the line";
  if (c == '#') return "a comment";
  if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
    It e = p;
    while (e < last && (std::isalnum(static_cast<unsigned char>(*e)) || *e == '_')) ++e;
    return "'" + std::string(p, e) + "'";
  }
  if (std::isdigit(static_cast<unsigned char>(c))) {
    It e = p;
    while (e < last && (std::isalnum(static_cast<unsigned char>(*e)) || *e == '.')) ++e;
    return "'" + std::string(p, e) + "'";
  }
  if (last - p >= 2 && p[1] == '=' && std::string_view("=<>!").find(c) != std::string_view::npos)
    return "'" + std::string(p, p + 2) + "'";
  return std::string("'") + c + "'";
}

// The extent of a malformed number around `p` (for `1e`, `1.2.3`, `2x`).
std::pair<It, It> number_around(It p, It first, It last) {
  auto part_of_number = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_';
  };
  It b = p;
  while (b > first && (part_of_number(b[-1]) ||
                       ((b[-1] == '+' || b[-1] == '-') && b - 1 > first &&
                        (b[-2] == 'e' || b[-2] == 'E'))))
    --b;
  It e = p;
  while (e < last && part_of_number(*e)) ++e;
  return {b, e};
}

struct SyntaxError {
  It where;
  std::string message;
  std::optional<It> note_at;
  std::string note;
};

// `where` lies in the statement [stmt_begin, stmt_end) of a text ending at
// `last`; `which` names what the grammar expected there.
SyntaxError explain(It where, const std::string& which, It stmt_end, It last,
                    const ParseState& st, It stmt_begin) {
  // X3 fails before skipping: point at what follows the blanks and comments.
  while (where < stmt_end && (*where == ' ' || *where == '\t' || *where == '\r' || *where == '\n' ||
                              *where == '#')) {
    if (*where == '#')
      while (where < stmt_end && *where != '\n') ++where;
    else
      ++where;
  }
  if (where != last) {
    if (auto stray = stray_character(where, last)) return {where, *stray, {}, {}};
  }
  // A statement is cut at its end of line: what follows is not its business.
  const std::string found = where == stmt_end && where != last ? "the end of the line"
                                                               : describe_found(where, last);
  if (which == "digits of the exponent" || which == "the end of the number") {
    const auto [b, e] = number_around(where, stmt_begin, stmt_end);
    const std::string text(b, e);
    where = b;
    const std::string why = which == "digits of the exponent"
                                ? ": an exponent needs digits, as in 1e-4"
                                : ": a number ends before any letter, '_' or second '.'";
    return {where, "malformed number '" + text + "'" + why, {}, {}};
  }
  // At the end of the file, point just past the last thing written rather
  // than at a line of trailing blanks.
  if (where == last) {
    while (where > stmt_begin && std::isspace(static_cast<unsigned char>(where[-1]))) --where;
    return {where, "expected " + which + ", found the end of the file",
            st.open_brackets.empty() ? std::optional<It>() : std::optional<It>(st.open_brackets.back()),
            st.open_brackets.empty() ? "" : std::string("to match this '") + *st.open_brackets.back() + "'"};
  }
  if (which == "the end of the line" && where != last && *where == ')')
    return {where, "unmatched ')': no '(' is open here", {}, {}};
  if (which == "the end of the line" && where != last && *where == ']')
    return {where, "unmatched ']': no '[' is open here", {}, {}};
  if (which == "no second comparison")
    return {where, "comparisons do not chain: write (a < b) * (b < c) for both", {}, {}};
  SyntaxError err{where, "expected " + which + ", found " + found, {}, {}};
  if ((which == "')'" || which == "']'") && !st.open_brackets.empty()) {
    err.note_at = st.open_brackets.back();
    err.note = std::string("to match this '") + *st.open_brackets.back() + "'";
  } else if (which == "an expression" && where == stmt_end && where != last) {
    err.message += " (a statement ends at the end of its line unless a bracket is open: "
                   "wrap the expression in parentheses to continue it)";
  }
  return err;
}

// The statements of a file: [begin, end) of each logical line, which runs to
// the first newline outside brackets. A line that starts with a statement
// keyword also ends an unclosed bracket's statement, so one missing ')' costs
// one statement, not the rest of the file. Blank and comment-only lines are
// left out.
std::vector<std::pair<It, It>> split_statements(It first, It last) {
  static const std::string_view keywords[] = {"model", "input", "label",  "param",
                                              "const", "fn",    "output", "loss"};
  auto starts_statement = [&](It p) {
    while (p < last && (*p == ' ' || *p == '\t')) ++p;
    for (std::string_view k : keywords) {
      if (static_cast<size_t>(last - p) > k.size() && std::string_view(p, k.size()) == k &&
          (p[k.size()] == ' ' || p[k.size()] == '\t'))
        return true;
    }
    return false;
  };
  std::vector<std::pair<It, It>> out;
  It begin = first;
  bool blank = true;
  int depth = 0;
  for (It p = first; p <= last; ++p) {
    if (p < last && *p == '#') {
      while (p < last && *p != '\n') ++p;
    }
    if (p == last || (*p == '\n' && (depth == 0 || starts_statement(p + 1)))) {
      It end = p;
      if (end > begin && end[-1] == '\r') --end;  // CRLF: the line ends before the \r
      if (!blank) out.emplace_back(begin, end);
      begin = p + 1;
      blank = true;
      depth = 0;
      continue;
    }
    const char c = *p;
    if (c == '(' || c == '[') ++depth;
    if ((c == ')' || c == ']') && depth > 0) --depth;
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') blank = false;
  }
  return out;
}

void report(Diagnostics& diags, const ParseState& st, const SyntaxError& e) {
  Diagnostic& d = diags.error({st.offset(e.where), st.offset(e.where) + 1}, e.message);
  if (e.note_at) d.note({st.offset(*e.note_at), st.offset(*e.note_at) + 1}, e.note);
}

}  // namespace

ast::Module parse_file(const SourceFile& file, Diagnostics& diags) {
  ast::Module module;
  ParseState st;
  st.module = &module;
  const std::string& text = file.text();
  const It file_end = text.data() + text.size();
  st.base = text.data();
  int errors = 0;
  for (auto [begin, end] : split_statements(text.data(), file_end)) {
    if (errors == kMaxSyntaxErrors) break;
    It first = begin;
    st.begin_statement();
    std::optional<SyntaxError> err;
    try {
      if (x3::phrase_parse(first, end, x3::with<state_tag>(std::ref(st))[statement], ws_nl)) {
        st.stmt.range = st.range(begin, end);
        module.stmts.push_back(std::move(st.stmt));
        continue;
      }
      x3::parse(first, end, *ws_nl);
      err = explain(first, "a statement (model, input, label, param, const, fn, output, loss, "
                           "or NAME = EXPR)", end, file_end, st, begin);
    } catch (const x3::expectation_failure<It>& e) {
      err = explain(e.where(), e.which(), end, file_end, st, begin);
    } catch (const LimitExceeded& e) {
      report(diags, st, {e.where, e.message, {}, {}});
      return module;
    }
    report(diags, st, *err);
    if (!st.stmt.name.empty()) module.failed_names.push_back(st.stmt.name);
    ++errors;
  }
  return module;
}

namespace {

// Parses [first, last) as one expression (newlines are blanks) into st.
ExprId parse_one_expression(ParseState& st, It first, It last, It file_end, Diagnostics& diags) {
  const It begin = first;
  try {
    ExprId root = ast::kNoExpr;
    if (x3::phrase_parse(first, last, x3::with<state_tag>(std::ref(st))[expr > end_of_input],
                         ws_nl, root))
      return root;
    report(diags, st, explain(first, "an expression", last, file_end, st, begin));
  } catch (const x3::expectation_failure<It>& e) {
    report(diags, st, explain(e.where(), e.which(), last, file_end, st, begin));
  } catch (const LimitExceeded& e) {
    report(diags, st, {e.where, e.message, {}, {}});
  }
  return ast::kNoExpr;
}

// A logical line of the form `NAME = EXPR` (not `NAME == ...`).
bool is_binding_line(It p, It last) {
  while (p < last && (*p == ' ' || *p == '\t')) ++p;
  if (p == last || !(std::isalpha(static_cast<unsigned char>(*p)) || *p == '_')) return false;
  while (p < last && (std::isalnum(static_cast<unsigned char>(*p)) || *p == '_')) ++p;
  while (p < last && (*p == ' ' || *p == '\t')) ++p;
  return p + 1 < last && *p == '=' && p[1] != '=';
}

}  // namespace

ast::Module parse_expression(const SourceFile& file, Diagnostics& diags) {
  ast::Module module;
  ParseState st;
  st.module = &module;
  const std::string& text = file.text();
  const It first = text.data();
  const It last = text.data() + text.size();
  st.base = first;
  // What nabla prints: `NAME = EXPR` binding lines, then the expression.
  // Without binding lines the whole text is one expression, newlines and all.
  const auto lines = split_statements(first, last);
  const bool bindings = lines.size() > 1 && is_binding_line(lines.front().first, lines.front().second);
  if (!bindings) {
    module.root = parse_one_expression(st, first, last, last, diags);
    return module;
  }
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    auto [begin, end] = lines[i];
    It p = begin;
    st.begin_statement();
    try {
      if (x3::phrase_parse(p, end, x3::with<state_tag>(std::ref(st))[let_stmt > end_of_statement], ws_nl)) {
        st.stmt.range = st.range(begin, end);
        module.stmts.push_back(std::move(st.stmt));
        continue;
      }
      report(diags, st, explain(begin, "a binding NAME = EXPR", end, last, st, begin));
    } catch (const x3::expectation_failure<It>& e) {
      report(diags, st, explain(e.where(), e.which(), end, last, st, begin));
    } catch (const LimitExceeded& e) {
      report(diags, st, {e.where, e.message, {}, {}});
      return module;
    }
  }
  st.begin_statement();
  module.root = parse_one_expression(st, lines.back().first, lines.back().second, last, diags);
  return module;
}

}  // namespace nabla
