// libFuzzer target: any bytes as a .nn file and as an expression. The parser,
// sema and the diagnostics renderer must return (an error or a result) without
// crashing, hanging, leaking or tripping a sanitizer; what checks goes on
// through lowering, simplification, differentiation (first and second order)
// and printing, whose internal invariants (NABLA_ASSERT) must hold.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "frontend/diagnostics.h"
#include "frontend/lower.h"
#include "ir/differentiate.h"
#include "ir/print.h"
#include "ir/simplify.h"
#include "frontend/parser.h"
#include "frontend/sema.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  {
    nabla::SourceFile file("fuzz.nn", text);
    nabla::Diagnostics diags(file);
    nabla::ast::Module m = nabla::parse_file(file, diags);
    nabla::SemaOptions options;
    options.overrides["lambda"] = 0.5;
    nabla::CheckedModel model = nabla::check_model(m, diags, options);
    std::ostringstream out;
    diags.render(out);
    if (!diags.has_errors() && model.loss) {
      nabla::ir::Context ctx;
      const nabla::LoweredModel l = nabla::lower_model(model, ctx);
      const nabla::ir::Node* loss = nabla::ir::simplify(ctx, l.loss);
      auto g = nabla::ir::simplify(ctx, nabla::ir::gradient(ctx, loss, l.params));
      nabla::ir::Printed p = nabla::ir::print_text(g);
      out << p.roots.size();
    }
  }
  {
    nabla::SourceFile file("<expr>", text);
    nabla::Diagnostics diags(file);
    nabla::ast::Module m = nabla::parse_expression(file, diags);
    nabla::CheckedExpr e;
    if (!diags.has_errors()) e = nabla::check_expression(m, diags);
    std::ostringstream out;
    diags.render(out);
    if (!diags.has_errors() && e.root) {
      nabla::ir::Context ctx;
      const nabla::LoweredExpr l = nabla::lower_expression(e, ctx);
      const nabla::ir::Node* f = nabla::ir::simplify(ctx, l.root);
      auto g = nabla::ir::simplify(ctx, nabla::ir::gradient(ctx, f, l.vars));
      if (!g.empty()) nabla::ir::gradient(ctx, g[0], l.vars);
      out << nabla::ir::print_text(f);
    }
  }
  return 0;
}
