#include "frontend/ast_printer.h"

#include <charconv>

namespace nabla {
namespace {

std::string number_text(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

void print(const ast::Module& m, ast::ExprId id, std::string& out) {
  const ast::Expr& e = m.expr(id);
  using ast::ExprKind;
  switch (e.kind) {
    case ExprKind::Number: out += number_text(e.number); return;
    case ExprKind::Name: out += e.name; return;
    case ExprKind::Call:
      out += "(" + e.name;
      for (const ast::Arg& a : e.args) {
        out += " ";
        if (!a.keyword.empty()) out += a.keyword + "=";
        print(m, a.value, out);
      }
      out += ")";
      return;
    case ExprKind::Unary:
      out += e.ops[0] == ast::Op::Neg ? "(neg " : "(pos ";
      print(m, e.operands[0], out);
      out += ")";
      return;
    case ExprKind::Chain:
      // Left-nested, written without recursing once per operand.
      for (size_t i = 1; i < e.operands.size(); ++i)
        out += std::string("(") + ast::op_spelling(e.ops[e.operands.size() - 1 - i]) + " ";
      print(m, e.operands[0], out);
      for (size_t i = 1; i < e.operands.size(); ++i) {
        out += " ";
        print(m, e.operands[i], out);
        out += ")";
      }
      return;
    case ExprKind::Power:
    case ExprKind::Compare:
      out += std::string("(") + ast::op_spelling(e.ops[0]) + " ";
      print(m, e.operands[0], out);
      out += " ";
      print(m, e.operands[1], out);
      out += ")";
      return;
    case ExprKind::ShapeLiteral:
      out += "[";
      for (size_t i = 0; i < e.dims.size(); ++i) out += (i ? ", " : "") + e.dims[i].text;
      out += "]";
      return;
    case ExprKind::Transpose:
      out += "(.T ";
      print(m, e.operands[0], out);
      out += ")";
      return;
  }
}

}  // namespace

std::string print_ast_expr(const ast::Module& module, ast::ExprId id) {
  std::string out;
  print(module, id, out);
  return out;
}

std::string print_ast(const ast::Module& m) {
  std::string out;
  if (m.root != ast::kNoExpr) return print_ast_expr(m, m.root) + "\n";
  for (const ast::Stmt& s : m.stmts) {
    out += ast::stmt_keyword(s.kind);
    if (s.kind != ast::StmtKind::Loss) out += " " + s.name;
    if (!s.shape.empty() || s.shape_range.end > s.shape_range.begin) {
      out += " [";
      for (size_t i = 0; i < s.shape.size(); ++i) out += (i ? ", " : "") + s.shape[i].text;
      out += "]";
    }
    if (s.distribution) out += " distribution";
    if (s.init) {
      out += " init " + s.init->name;
      if (s.init->has_args) {
        out += "(";
        for (size_t i = 0; i < s.init->args.size(); ++i)
          out += (i ? ", " : "") + print_ast_expr(m, s.init->args[i]);
        out += ")";
      }
    }
    if (s.kind == ast::StmtKind::Fn) {
      out += " (";
      for (size_t i = 0; i < s.params.size(); ++i) out += (i ? " " : "") + s.params[i];
      out += ")";
    }
    if (s.value != ast::kNoExpr) out += (s.kind == ast::StmtKind::Loss ? " " : " = ") + print_ast_expr(m, s.value);
    out += "\n";
  }
  return out;
}

}  // namespace nabla
