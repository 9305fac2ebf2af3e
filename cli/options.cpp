#include "cli/options.h"

#include <charconv>
#include <cmath>

#include "cli/pipeline.h"

namespace nabla::cli {

std::optional<SemaOptions> sema_options(const GlobalOptions& global, std::ostream& err) {
  SemaOptions options;
  for (const std::string& item : global.set) {
    const size_t eq = item.find('=');
    const std::string name = item.substr(0, eq);
    double value = 0;
    const char* begin = eq == std::string::npos ? nullptr : item.data() + eq + 1;
    const char* end = item.data() + item.size();
    auto res = begin ? std::from_chars(begin, end, value) : std::from_chars_result{end, std::errc::invalid_argument};
    if (eq == std::string::npos || name.empty() || res.ec != std::errc() || res.ptr != end ||
        !std::isfinite(value)) {
      print_error(err, "--set takes NAME=VALUE with a finite number, as in --set lambda=1e-3; got '" +
                           item + "'");
      return std::nullopt;
    }
    options.overrides[name] = value;
  }
  return options;
}

runtime::InitKind kind_of(InitSpecDecl::Kind k) {
  using K = InitSpecDecl::Kind;
  using R = runtime::InitKind;
  switch (k) {
    case K::Zeros: return R::Zeros;
    case K::Ones: return R::Ones;
    case K::Const: return R::Const;
    case K::Uniform: return R::Uniform;
    case K::Normal: return R::Normal;
    case K::XavierUniform: return R::XavierUniform;
    case K::XavierNormal: return R::XavierNormal;
    case K::HeUniform: return R::HeUniform;
    case K::HeNormal: return R::HeNormal;
  }
  return R::Zeros;
}

}  // namespace nabla::cli
