// The checked model: what semantic analysis (sema.h) makes of a .nn file.
//
// Names are resolved, `fn` calls inlined, consts evaluated (with --set
// overrides), builtin calls bound to their parameters (defaults filled in),
// and every expression has its static per-sample shape. Expressions form a
// DAG of TExpr nodes owned by the model: a let binding used twice is one node.
// This is the input of lowering to the IR.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "frontend/ast.h"
#include "frontend/builtins.h"
#include "frontend/source.h"
#include "ir/shape.h"

namespace nabla {

enum class RefKind : unsigned char { Input, Label, Param, Const, Let };

struct TExpr {
  enum class Kind : unsigned char {
    Number,     // `number`
    Ref,        // a declared name: `ref` and `index` say which
    Unary,      // -args[0] (op is Neg)
    Binary,     // args[0] op args[1]: + - * / @ ^
    Compare,    // args[0] op args[1]: 1 where it holds, 0 elsewhere
    Call,       // builtin `fn` on `args` (tensor parameters, in signature order)
    Transpose,  // args[0].T
    Error,      // stands for an expression that had an error (reported once)
  };
  Kind kind = Kind::Error;
  Shape shape;
  SourceRange range;
  double number = 0;        // Number; Ref to a Const: its value
  RefKind ref = RefKind::Input;
  int index = -1;           // Ref: index in the model's table for `ref`
  ast::Op op = ast::Op::Add;
  Builtin fn = Builtin::Sigmoid;
  std::vector<const TExpr*> args;  // Ref to a Let: args[0] is its value
  std::optional<int64_t> axis;     // Call: reductions, softmax, log_softmax
  int64_t group = 0;               // Call maxout, maxout_mask, repeat, group_sum: k
  Shape target;                    // Call broadcast, sum_to: the shape literal
  int label = -1;                  // index of a label this depends on, or -1
};

struct InitSpecDecl {
  enum class Kind : unsigned char {
    Zeros, Ones, Const, Uniform, Normal, XavierUniform, XavierNormal, HeUniform, HeNormal
  };
  Kind kind = Kind::Zeros;
  double a = 0, b = 0;  // Const: value a; Uniform: [a, b); Normal: mean a, std b
};

struct TensorDecl {
  std::string name;
  Shape shape;
  SourceRange range;
};
struct LabelDecl : TensorDecl {
  bool distribution = false;
};
struct ParamDecl : TensorDecl {
  InitSpecDecl init;
};
struct ConstDecl {
  std::string name;
  double value = 0;
  bool overridden = false;  // set with --set
  SourceRange range;
};
struct LetDecl {
  std::string name;
  const TExpr* value = nullptr;
  SourceRange range;
};
struct OutputDecl {
  std::string name;
  const TExpr* value = nullptr;
  SourceRange range;
};

struct CheckedModel {
  std::string name;  // from `model NAME`; empty when the file has none
  std::vector<TensorDecl> inputs;
  std::vector<LabelDecl> labels;
  std::vector<ParamDecl> params;
  std::vector<ConstDecl> consts;
  std::vector<LetDecl> lets;
  std::vector<OutputDecl> outputs;
  const TExpr* loss = nullptr;  // the per-sample loss; nullptr when there is none
  std::deque<TExpr> nodes;      // owns every TExpr (a deque: pointers stay valid)

  int64_t param_count() const;
};

// Expression mode: one expression over free scalar variables.
struct CheckedExpr {
  std::vector<std::string> vars;  // free names, in order of first use (Input refs)
  const TExpr* root = nullptr;
  std::deque<TExpr> nodes;
};

}  // namespace nabla
