// The builtin functions: names, signatures and shape rules (builtins.def).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nabla {

enum class Builtin : unsigned char {
#define NABLA_BUILTIN(id, name, signature, rule) id,
#define NABLA_ALIAS(name, id)
#include "frontend/builtins.def"
#undef NABLA_BUILTIN
#undef NABLA_ALIAS
};

enum class ShapeRule : unsigned char {
  Elementwise,  // tensor arguments broadcast together; the result has that shape
  AlongAxis,    // same shape as the first argument; `axis` must exist
  Reduce,       // no axis: a scalar; axis=K: that axis removed
  MaxMin,       // max(a, b): Elementwise; max(t[, axis=K]): Reduce
  Maxout,       // [..., m*k] -> [..., m]
  Dot,          // [k] . [k] -> []
  Outer,        // [m], [n] -> [m, n]
  Transpose,    // axes reversed
  Loss,         // two arguments that broadcast -> a scalar
  Norm,         // one argument -> a scalar
  BroadcastTo,  // to the shape literal (NumPy alignment; axis=K: a new axis K)
  SumTo,        // summed down to the shape literal (which broadcasts to x)
  Mask,         // same shape; `axis` must exist
  GroupMask,    // same shape; the last size a multiple of k
  Repeat,       // [..., m] -> [..., m*k]
};

struct BuiltinParam {
  std::string name;
  bool is_int = false;    // an integer constant (axis, group size), not a tensor
  bool is_shape = false;  // a shape literal [d1, d2, ...]
  bool optional = false;  // may be left out (with or without a default)
  std::optional<double> default_value;
};

struct BuiltinInfo {
  Builtin id;
  std::string_view name;  // the canonical spelling
  std::vector<BuiltinParam> params;
  ShapeRule rule;

  // "sigmoid(x)", "leaky_relu(x, gamma=0.01)"
  std::string signature() const;
  int required_count() const;
};

const BuiltinInfo& builtin_info(Builtin id);
// By name or alias; nullptr when `name` is no builtin.
const BuiltinInfo* find_builtin(std::string_view name);
// Every name and alias, for suggestions and reserved-name checks.
const std::vector<std::string_view>& builtin_names();

// Words that can never be a name.
bool is_keyword(std::string_view word);

}  // namespace nabla
