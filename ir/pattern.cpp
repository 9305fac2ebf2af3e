#include "ir/pattern.h"

#include <cctype>
#include <charconv>

#include "ir/assert.h"

namespace nabla::ir {
namespace {

// The op spelled `spelling` with `arity` operands.
Op op_named(std::string_view spelling, size_t arity) {
  constexpr Op all[] = {
#define NABLA_OP(name, spelling, arity, kind) Op::name,
#include "ir/ops.def"
#undef NABLA_OP
  };
  for (Op op : all)
    if (spelling == op_spelling(op) && static_cast<size_t>(op_arity(op)) == arity) return op;
  NABLA_ASSERT(false, "pattern: no op '" + std::string(spelling) + "' with " + std::to_string(arity) + " operands");
  return Op::Constant;
}

class Reader {
public:
  explicit Reader(std::string_view text) : s_(text) {}

  Pattern read() {
    skip();
    NABLA_ASSERT(at_ < s_.size(), "pattern ends early: " + std::string(s_));
    if (s_[at_] == '(') {
      ++at_;
      skip();
      std::string head = token();
      std::string attr;
      if (const size_t colon = head.find(':'); colon != std::string::npos) {
        attr = head.substr(colon + 1);
        head.resize(colon);
      }
      Pattern p;
      p.kind = Pattern::Kind::Apply;
      p.name = attr;
      for (skip(); at_ < s_.size() && s_[at_] != ')'; skip()) p.operands.push_back(read());
      NABLA_ASSERT(at_ < s_.size(), "pattern lacks a ')': " + std::string(s_));
      ++at_;
      p.op = op_named(head, p.operands.size());
      return p;
    }
    const std::string t = token();
    Pattern p;
    if (t[0] == '#') {
      p.kind = Pattern::Kind::AnyConstant;
      p.name = t.substr(1);
    } else if (std::isdigit(static_cast<unsigned char>(t[0]))) {
      p.kind = Pattern::Kind::Number;
      auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), p.value);
      NABLA_ASSERT(ec == std::errc() && end == t.data() + t.size(), "pattern: bad number '" + t + "'");
    } else {
      p.name = t;
    }
    return p;
  }

  bool done() {
    skip();
    return at_ == s_.size();
  }

private:
  void skip() {
    while (at_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[at_]))) ++at_;
  }
  std::string token() {
    const size_t from = at_;
    while (at_ < s_.size() && !std::isspace(static_cast<unsigned char>(s_[at_])) && s_[at_] != '(' &&
           s_[at_] != ')')
      ++at_;
    NABLA_ASSERT(at_ > from, "pattern: a token expected in '" + std::string(s_) + "'");
    return std::string(s_.substr(from, at_ - from));
  }

  std::string_view s_;
  size_t at_ = 0;
};

// Binds `name` to `value`, or checks it is bound to that already.
template <typename T>
bool bind(std::map<std::string, T>& table, const std::string& name, const T& value) {
  auto [it, fresh] = table.emplace(name, value);
  return fresh || it->second == value;
}

}  // namespace

Pattern parse_pattern(std::string_view text) {
  Reader r(text);
  Pattern p = r.read();
  NABLA_ASSERT(r.done(), "pattern: text after the end: " + std::string(text));
  return p;
}

bool match(const Pattern& p, const Node* n, Bindings& b) {
  switch (p.kind) {
    case Pattern::Kind::Variable:
      return bind(b.nodes, p.name, n);
    case Pattern::Kind::Number:
      return n->is_constant(p.value);
    case Pattern::Kind::AnyConstant:
      return n->is_constant() && bind(b.nodes, p.name, n);
    case Pattern::Kind::Apply:
      if (n->op() != p.op || n->arity() != p.operands.size()) return false;
      if (!p.name.empty() && !bind(b.attrs, p.name, n->attr())) return false;
      for (size_t i = 0; i < p.operands.size(); ++i)
        if (!match(p.operands[i], n->operand(i), b)) return false;
      return true;
  }
  return false;
}

const Node* instantiate(Context& ctx, const Pattern& p, const Bindings& b) {
  switch (p.kind) {
    case Pattern::Kind::Variable:
    case Pattern::Kind::AnyConstant:
      NABLA_ASSERT(b.nodes.count(p.name), "replacement names '" + p.name + "', which the pattern does not bind");
      return b.nodes.at(p.name);
    case Pattern::Kind::Number:
      return ctx.constant(p.value);
    case Pattern::Kind::Apply: {
      std::vector<const Node*> ops;
      for (const Pattern& o : p.operands) ops.push_back(instantiate(ctx, o, b));
      return p.name.empty() ? ctx.make(p.op, std::move(ops)) : ctx.make(p.op, std::move(ops), b.attrs.at(p.name));
    }
  }
  return nullptr;
}

int tree_size(const Pattern& p) {
  int n = 1;
  for (const Pattern& o : p.operands) n += tree_size(o);
  return n;
}

std::string pattern_text(const Pattern& p) {
  switch (p.kind) {
    case Pattern::Kind::Variable: return p.name;
    case Pattern::Kind::AnyConstant: return "#" + p.name;
    case Pattern::Kind::Number: {
      char buf[32];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, p.value);
      return std::string(buf, end);
    }
    case Pattern::Kind::Apply: {
      std::string s = "(" + std::string(op_spelling(p.op)) + (p.name.empty() ? "" : ":" + p.name);
      for (const Pattern& o : p.operands) s += " " + pattern_text(o);
      return s + ")";
    }
  }
  return "";
}

}  // namespace nabla::ir
