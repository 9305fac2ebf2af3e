#include "frontend/builtins.h"

#include <charconv>
#include <unordered_map>

namespace nabla {
namespace {

// "x, gamma=0.01", "#axis?" -> parameters.
std::vector<BuiltinParam> parse_signature(std::string_view sig) {
  std::vector<BuiltinParam> params;
  while (!sig.empty()) {
    const size_t comma = sig.find(',');
    std::string_view item = sig.substr(0, comma);
    sig = comma == std::string_view::npos ? std::string_view() : sig.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    BuiltinParam p;
    if (item.starts_with('#')) {
      p.is_int = true;
      item.remove_prefix(1);
    }
    if (item.starts_with('@')) {
      p.is_shape = true;
      item.remove_prefix(1);
    }
    if (item.ends_with('?')) {
      p.optional = true;
      item.remove_suffix(1);
    }
    if (const size_t eq = item.find('='); eq != std::string_view::npos) {
      double v = 0;
      std::from_chars(item.data() + eq + 1, item.data() + item.size(), v);
      p.default_value = v;
      p.optional = true;
      item = item.substr(0, eq);
    }
    p.name = std::string(item);
    params.push_back(std::move(p));
  }
  return params;
}

struct Table {
  std::vector<BuiltinInfo> infos;
  std::unordered_map<std::string_view, Builtin> by_name;
  std::vector<std::string_view> names;

  Table() {
#define NABLA_BUILTIN(id, name, signature, rule) \
  infos.push_back({Builtin::id, name, parse_signature(signature), ShapeRule::rule});
#define NABLA_ALIAS(name, id)
#include "frontend/builtins.def"
#undef NABLA_BUILTIN
#undef NABLA_ALIAS
    for (const BuiltinInfo& info : infos) by_name.emplace(info.name, info.id);
#define NABLA_BUILTIN(id, name, signature, rule)
#define NABLA_ALIAS(name, id) by_name.emplace(name, Builtin::id);
#include "frontend/builtins.def"
#undef NABLA_BUILTIN
#undef NABLA_ALIAS
    for (const auto& [name, id] : by_name) names.push_back(name);
  }
};

const Table& table() {
  static const Table t;
  return t;
}

}  // namespace

std::string BuiltinInfo::signature() const {
  std::string s(name);
  s += "(";
  for (size_t i = 0; i < params.size(); ++i) {
    if (i) s += ", ";
    s += params[i].name;
    if (params[i].default_value) {
      char buf[32];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, *params[i].default_value);
      s += "=" + std::string(buf, end);
    } else if (params[i].optional) {
      s += "=...";
    }
  }
  return s + ")";
}

int BuiltinInfo::required_count() const {
  int n = 0;
  for (const BuiltinParam& p : params) n += p.optional ? 0 : 1;
  return n;
}

const BuiltinInfo& builtin_info(Builtin id) { return table().infos[static_cast<size_t>(id)]; }

const BuiltinInfo* find_builtin(std::string_view name) {
  const auto& t = table();
  auto it = t.by_name.find(name);
  return it == t.by_name.end() ? nullptr : &t.infos[static_cast<size_t>(it->second)];
}

const std::vector<std::string_view>& builtin_names() { return table().names; }

bool is_keyword(std::string_view word) {
  static const std::string_view keywords[] = {"model",  "input", "label", "param",       "const",
                                              "fn",     "output", "loss", "init", "distribution"};
  for (std::string_view k : keywords)
    if (k == word) return true;
  return false;
}

}  // namespace nabla
