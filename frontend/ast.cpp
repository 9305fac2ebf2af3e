#include "frontend/ast.h"

namespace nabla::ast {

const char* op_spelling(Op op) {
  switch (op) {
    case Op::Add: return "+";
    case Op::Sub: return "-";
    case Op::Mul: return "*";
    case Op::Div: return "/";
    case Op::MatMul: return "@";
    case Op::Pow: return "^";
    case Op::Neg: return "-";
    case Op::Plus: return "+";
    case Op::Lt: return "<";
    case Op::Le: return "<=";
    case Op::Gt: return ">";
    case Op::Ge: return ">=";
    case Op::Eq: return "==";
    case Op::Ne: return "!=";
  }
  return "?";
}

const char* stmt_keyword(StmtKind kind) {
  switch (kind) {
    case StmtKind::Model: return "model";
    case StmtKind::Input: return "input";
    case StmtKind::Label: return "label";
    case StmtKind::Param: return "param";
    case StmtKind::Const: return "const";
    case StmtKind::Fn: return "fn";
    case StmtKind::Let: return "let";
    case StmtKind::Output: return "output";
    case StmtKind::Loss: return "loss";
  }
  return "?";
}

}  // namespace nabla::ast
