#include "ir/print.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <unordered_set>

#include "ir/assert.h"

namespace nabla::ir {
namespace {

enum Prec { kCompare = 1, kAdd = 2, kMul = 3, kUnary = 4, kPow = 5, kPostfix = 6, kPrimary = 7 };

// The deepest nesting of operators printed inline in one binding or root.
constexpr int kMaxInlineDepth = 48;

struct Text {
  std::string s;
  int prec;
};

class Printer {
public:
  Printer(std::span<const Node* const> roots, const PrintOptions& options) : options_(options) {
    nodes_ = reachable(roots);
    for (const Node* n : nodes_)
      for (const Node* o : n->operands()) ++uses_[o];
    for (const Node* r : roots) ++uses_[r];
    for (const Node* n : nodes_)
      if (n->op() == Op::Var) taken_.insert(n->name());
    for (const auto& [node, name] : options_.names) taken_.insert(name);
  }

  Printed run(std::span<const Node* const> roots) {
    Printed out;
    // The depth of each node's text inline (0 for a bound or trivial node).
    // A node whose text would nest deeper than kMaxInlineDepth is bound as
    // a shared one is: a text built by nesting operands' texts costs its
    // depth times its length, and a chain of 100,000 products printed as
    // one line took 22 s and one line of 1.5 MB.
    std::unordered_map<const Node*, int> depth;
    for (const Node* n : nodes_) {
      int d = 0;
      if (!trivial(n)) {
        for (const Node* o : n->operands()) {
          auto it = depth.find(o);
          d = std::max(d, it == depth.end() ? 0 : it->second);
        }
        ++d;
      }
      const bool deep = d > kMaxInlineDepth;
      if (!should_bind(n) && !deep) {
        depth[n] = d;
        continue;
      }
      depth[n] = 0;
      const Text t = expr(n);
      const std::string name = name_for(n);
      out.bindings.emplace_back(latex() ? latex_name(name) : name, t.s);
      bound_[n] = latex() ? latex_name(name) : name;
    }
    for (const Node* r : roots) {
      auto it = bound_.find(r);
      out.roots.push_back(it != bound_.end() ? it->second : expr(r).s);
    }
    return out;
  }

private:
  bool trivial(const Node* n) const {
    if (n->arity() == 0) return true;
    // -x and x.T of a leaf cost nothing to repeat.
    return (n->op() == Op::Neg || n->op() == Op::Transpose) && n->operand(0)->arity() == 0;
  }
  bool should_bind(const Node* n) const {
    if (trivial(n)) return false;
    if (options_.bind_named && options_.names.count(n)) return true;
    auto it = uses_.find(n);
    return it != uses_.end() && it->second > 1;
  }
  std::string name_for(const Node* n) {
    if (auto it = options_.names.find(n); it != options_.names.end()) return it->second;
    std::string name;
    do name = options_.prefix + std::to_string(++counter_);
    while (taken_.count(name));
    taken_.insert(name);
    return name;
  }

  Text operand(const Node* n, int need) {
    Text t = ref(n);
    if (t.prec < need) return {"(" + t.s + ")", kPrimary};
    return t;
  }
  Text ref(const Node* n) {
    if (auto it = bound_.find(n); it != bound_.end()) return {it->second, kPrimary};
    return expr(n);
  }
  std::string arg(const Node* n) { return ref(n).s; }
  std::string call(const char* f, std::initializer_list<std::string> args) {
    std::string s = std::string(f) + "(";
    bool first = true;
    for (const std::string& a : args) {
      s += (first ? "" : ", ") + a;
      first = false;
    }
    return s + ")";
  }
  std::string axis_suffix(const Node* n, bool last_is_default) {
    const int64_t a = n->attr();
    if (a == kAllAxes) return "";
    if (last_is_default && a == n->operand(0)->shape().rank() - 1) return "";
    return ", axis=" + std::to_string(a);
  }
  std::string shape_literal(const Shape& s) { return s.str(); }

  bool latex() const { return options_.syntax == PrintOptions::Syntax::Latex; }

  Text latex_expr(const Node* n) {
    const Op op = n->op();
    auto fn = [&](const std::string& f) {
      std::string s = f + "\\left(";
      for (size_t i = 0; i < n->arity(); ++i) s += (i ? ", " : "") + arg(n->operand(i));
      return Text{s + "\\right)", kPrimary};
    };
    switch (op) {
      case Op::Constant: return expr_text(n);
      case Op::Var: return {latex_name(n->name()), kPrimary};
      case Op::Neg: return {"-" + operand(n->operand(0), kUnary).s, kUnary};
      case Op::Add: return {operand(n->operand(0), kAdd).s + " + " + operand(n->operand(1), kMul).s, kAdd};
      case Op::Sub: return {operand(n->operand(0), kAdd).s + " - " + operand(n->operand(1), kMul).s, kAdd};
      case Op::Mul: {
        const bool hadamard = !n->operand(0)->shape().is_scalar() && !n->operand(1)->shape().is_scalar();
        const Text b = operand(n->operand(1), kUnary);
        const char* sep = hadamard ? " \\odot " : (std::isdigit(static_cast<unsigned char>(b.s[0])) ? " \\cdot " : " \\, ");
        return {operand(n->operand(0), kMul).s + sep + b.s, kMul};
      }
      case Op::MatMul: return {operand(n->operand(0), kMul).s + " \\, " + operand(n->operand(1), kUnary).s, kMul};
      case Op::Div: return {"\\frac{" + arg(n->operand(0)) + "}{" + arg(n->operand(1)) + "}", kPrimary};
      case Op::Pow: return {"{" + operand(n->operand(0), kPostfix).s + "}^{" + arg(n->operand(1)) + "}", kPow};
      case Op::Transpose: return {"{" + operand(n->operand(0), kPostfix).s + "}^\\top", kPostfix};
      case Op::Outer: return {operand(n->operand(0), kPostfix).s + " \\, {" + operand(n->operand(1), kPostfix).s + "}^\\top", kMul};
      case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: case Op::Eq: case Op::Ne: {
        static const std::unordered_map<Op, const char*> rel = {
            {Op::Lt, "<"}, {Op::Le, "\\le"}, {Op::Gt, ">"}, {Op::Ge, "\\ge"}, {Op::Eq, "="}, {Op::Ne, "\\ne"}};
        return {"\\mathbb{1}\\left[" + arg(n->operand(0)) + " " + rel.at(op) + " " + arg(n->operand(1)) + "\\right]", kPrimary};
      }
      case Op::Sigmoid: return fn("\\sigma");
      case Op::Tanh: return fn("\\tanh");
      case Op::Exp: return fn("\\exp");
      case Op::Log: return fn("\\log");
      case Op::Sin: return fn("\\sin");
      case Op::Cos: return fn("\\cos");
      case Op::Sqrt: return {"\\sqrt{" + arg(n->operand(0)) + "}", kPrimary};
      case Op::Abs: return {"\\left|" + arg(n->operand(0)) + "\\right|", kPrimary};
      case Op::Sum: return fn("\\textstyle\\sum");
      // The others: \operatorname{builtin}(...), below.
      case Op::Sign: case Op::Erf: case Op::Softplus: case Op::Relu: case Op::HardSigmoid:
      case Op::HardTanh: case Op::Gelu: case Op::GeluTanh: case Op::GeluSigmoid:
      case Op::Max: case Op::Min: case Op::LeakyRelu: case Op::Elu: case Op::Swish:
      case Op::Where: case Op::Mean: case Op::MaxReduce: case Op::MinReduce: case Op::LogSumExp:
      case Op::Softmax: case Op::LogSoftmax: case Op::Maxout: case Op::Broadcast: case Op::SumTo:
      case Op::ArgmaxMask: case Op::ArgminMask: case Op::MaxoutMask: case Op::Repeat: case Op::GroupSum:
        break;
    }
    return fn(std::string("\\operatorname{") + op_name_snake(op) + "}");
  }

  static std::string op_name_snake(Op op) {
    std::string s = op_spelling(op);
    if (!s.empty() && std::isalpha(static_cast<unsigned char>(s[0]))) {
      std::string out;
      for (char ch : s) out += ch == '_' ? std::string("\\_") : std::string(1, ch);
      return out;
    }
    return op_name(op);
  }

  Text expr(const Node* n) {
    if (latex()) return latex_expr(n);
    return expr_text(n);
  }

  Text expr_text(const Node* n) {
    const Op op = n->op();
    switch (op) {
      case Op::Constant: {
        const std::string s = format_number(n->value());
        return {s, n->value() < 0 || s.starts_with('(') ? (s.starts_with('(') ? kPrimary : kUnary) : kPrimary};
      }
      case Op::Var: return {n->name(), kPrimary};
      case Op::Neg: {
        Text t = operand(n->operand(0), kUnary);
        if (t.s.starts_with('-')) t.s = "(" + t.s + ")";
        return {"-" + t.s, kUnary};
      }
      case Op::Add:
      case Op::Sub: {
        const Node* b = n->operand(1);
        bool minus = op == Op::Sub;
        // a + (-b) and a + (-2) read as subtractions.
        if (op == Op::Add && b->op() == Op::Neg && !bound_.count(b)) {
          b = b->operand(0);
          minus = true;
        }
        std::string rhs;
        if (op == Op::Add && b->is_constant() && b->value() < 0) {
          rhs = format_number(-b->value());
          minus = true;
        } else {
          rhs = operand(b, kMul).s;
        }
        return {operand(n->operand(0), kAdd).s + (minus ? " - " : " + ") + rhs, kAdd};
      }
      case Op::Mul:
        if (n->operand(0)->is_constant(-1)) {
          Text t = operand(n->operand(1), kUnary);
          if (t.s.starts_with('-')) t.s = "(" + t.s + ")";
          return {"-" + t.s, kUnary};
        }
        [[fallthrough]];
      case Op::Div:
      case Op::MatMul:
        return {operand(n->operand(0), kMul).s + " " + op_spelling(op) + " " +
                    operand(n->operand(1), kUnary).s,
                kMul};
      case Op::Pow:
        return {operand(n->operand(0), kPostfix).s + "^" + operand(n->operand(1), kUnary).s, kPow};
      case Op::Lt: case Op::Le: case Op::Gt: case Op::Ge: case Op::Eq: case Op::Ne:
        return {operand(n->operand(0), kAdd).s + " " + op_spelling(op) + " " +
                    operand(n->operand(1), kAdd).s,
                kCompare};
      case Op::Transpose: return {operand(n->operand(0), kPostfix).s + ".T", kPostfix};
      case Op::Sum: case Op::Mean: case Op::MaxReduce: case Op::MinReduce: case Op::LogSumExp:
        return {std::string(op_spelling(op)) + "(" + arg(n->operand(0)) + axis_suffix(n, false) + ")",
                kPrimary};
      case Op::Softmax: case Op::LogSoftmax:
        return {std::string(op_spelling(op)) + "(" + arg(n->operand(0)) + axis_suffix(n, true) + ")",
                kPrimary};
      case Op::ArgmaxMask: case Op::ArgminMask:
        return {std::string(op_spelling(op)) + "(" + arg(n->operand(0)) + axis_suffix(n, false) + ")",
                kPrimary};
      case Op::Maxout: case Op::MaxoutMask: case Op::Repeat: case Op::GroupSum:
        return {call(op_spelling(op), {arg(n->operand(0)), std::to_string(n->attr())}), kPrimary};
      case Op::Broadcast:
        return {std::string("broadcast(") + arg(n->operand(0)) + ", " + shape_literal(n->shape()) +
                    (n->attr() == kAllAxes ? "" : ", axis=" + std::to_string(n->attr())) + ")",
                kPrimary};
      case Op::SumTo:
        return {call("sum_to", {arg(n->operand(0)), shape_literal(n->shape())}), kPrimary};
      case Op::Exp: case Op::Log: case Op::Sqrt: case Op::Abs: case Op::Sign: case Op::Sin:
      case Op::Cos: case Op::Erf: case Op::Tanh: case Op::Sigmoid: case Op::Softplus: case Op::Relu:
      case Op::HardSigmoid: case Op::HardTanh: case Op::Gelu: case Op::GeluTanh: case Op::GeluSigmoid:
      case Op::Max: case Op::Min: case Op::LeakyRelu: case Op::Elu: case Op::Swish:
      case Op::Where: case Op::Outer:
        break;
    }
    // Function-call syntax: every other op is spelled as a builtin.
    std::string s = std::string(op_spelling(op)) + "(";
    for (size_t i = 0; i < n->arity(); ++i) s += (i ? ", " : "") + arg(n->operand(i));
    return {s + ")", kPrimary};
  }

  const PrintOptions& options_;
  std::vector<const Node*> nodes_;
  std::unordered_map<const Node*, int> uses_;
  std::unordered_map<const Node*, std::string> bound_;
  std::unordered_set<std::string> taken_;
  int counter_ = 0;
};

}  // namespace

std::string latex_name(const std::string& name) {
  static const char* const greek[] = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta",
                                      "theta", "iota", "kappa", "lambda", "mu", "nu", "xi", "pi",
                                      "rho", "sigma", "tau", "phi", "chi", "psi", "omega"};
  size_t digits = name.size();
  while (digits > 0 && std::isdigit(static_cast<unsigned char>(name[digits - 1]))) --digits;
  std::string base = name.substr(0, digits), sub = name.substr(digits);
  bool hat = false;
  if (base.size() > 3 && base.ends_with("hat")) {
    base.resize(base.size() - 3);
    hat = true;
  }
  for (const char* g : greek)
    if (base == g) base = std::string("\\") + g;
  std::string escaped;
  for (char ch : base) escaped += ch == '_' ? std::string("\\_") : std::string(1, ch);
  if (hat) escaped = "\\hat{" + escaped + "}";
  return sub.empty() ? escaped : escaped + "_{" + sub + "}";
}

namespace {
std::string json_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out;
}
std::string node_label(const Node* n) {
  if (n->op() == Op::Constant) return format_number(n->value());
  if (n->op() == Op::Var) return n->name();
  std::string s = op_spelling(n->op());
  if (n->attr() != kAllAxes) s += " (" + std::to_string(n->attr()) + ")";
  return s;
}
}  // namespace

std::string print_dot(std::span<const Node* const> roots, std::span<const std::string> names) {
  std::string s = "digraph nabla {\n  rankdir=BT;\n  node [shape=box, fontname=\"monospace\"];\n";
  for (const Node* n : reachable(roots)) {
    s += "  n" + std::to_string(n->id()) + " [label=\"" + json_escape(node_label(n)) + "\\n" +
         n->shape().str() + "\"" + (n->arity() == 0 ? ", shape=ellipse" : "") + "];\n";
    for (const Node* o : n->operands())
      s += "  n" + std::to_string(o->id()) + " -> n" + std::to_string(n->id()) + ";\n";
  }
  for (size_t i = 0; i < roots.size(); ++i)
    s += "  r" + std::to_string(i) + " [label=\"" + json_escape(names[i]) +
         "\", shape=plaintext];\n  n" + std::to_string(roots[i]->id()) + " -> r" + std::to_string(i) + ";\n";
  return s + "}\n";
}

std::string print_json(std::span<const Node* const> roots, std::span<const std::string> names) {
  std::string s = "{\"nodes\": [";
  bool first = true;
  for (const Node* n : reachable(roots)) {
    s += std::string(first ? "\n" : ",\n") + "  {\"id\": " + std::to_string(n->id()) + ", \"op\": \"" +
         op_name(n->op()) + "\", \"shape\": " + n->shape().str() + ", \"operands\": [";
    for (size_t i = 0; i < n->arity(); ++i) s += (i ? ", " : "") + std::to_string(n->operand(i)->id());
    s += "]";
    if (n->op() == Op::Constant) s += ", \"value\": " + format_number(n->value());
    if (n->op() == Op::Var) s += ", \"name\": \"" + json_escape(n->name()) + "\"";
    if (n->attr() != kAllAxes) s += ", \"attr\": " + std::to_string(n->attr());
    s += "}";
    first = false;
  }
  s += "\n], \"results\": [";
  const Printed text = print_text(roots);
  for (size_t i = 0; i < roots.size(); ++i)
    s += std::string(i ? ",\n" : "\n") + "  {\"name\": \"" + json_escape(names[i]) + "\", \"node\": " +
         std::to_string(roots[i]->id()) + ", \"text\": \"" + json_escape(text.roots[i]) + "\"}";
  s += "\n], \"bindings\": [";
  for (size_t i = 0; i < text.bindings.size(); ++i)
    s += std::string(i ? ",\n" : "\n") + "  {\"name\": \"" + json_escape(text.bindings[i].first) +
         "\", \"text\": \"" + json_escape(text.bindings[i].second) + "\"}";
  return s + "\n]}\n";
}

std::string format_number(double v) {
  if (std::isnan(v)) return "(0/0)";
  if (std::isinf(v)) return v > 0 ? "(1/0)" : "(-1/0)";
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

Printed print_text(std::span<const Node* const> roots, const PrintOptions& options) {
  return Printer(roots, options).run(roots);
}

std::string print_text(const Node* root) {
  Printed p = print_text(std::span<const Node* const>(&root, 1));
  std::string s;
  for (const auto& [name, text] : p.bindings) s += name + " = " + text + "\n";
  return s + p.roots[0];
}

}  // namespace nabla::ir
