// libFuzzer target: any bytes as a .nn file and as an expression. The parser,
// sema and the diagnostics renderer must return (an error or a result) without
// crashing, hanging, leaking or tripping a sanitizer.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "frontend/diagnostics.h"
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
  }
  {
    nabla::SourceFile file("<expr>", text);
    nabla::Diagnostics diags(file);
    nabla::ast::Module m = nabla::parse_expression(file, diags);
    if (!diags.has_errors()) nabla::check_expression(m, diags);
    std::ostringstream out;
    diags.render(out);
  }
  return 0;
}
