#include "driver/render.h"

namespace nabla::driver {

namespace {
// "d/dW1" -> "\frac{\partial L}{\partial W_{1}}"; others as names.
std::string latex_label(const std::string& label) {
  if (label.starts_with("d2/d")) return "\\frac{\\partial^2 f}{\\partial " + ir::latex_name(label.substr(4)) + "}";
  if (label.starts_with("d/d")) return "\\frac{\\partial f}{\\partial " + ir::latex_name(label.substr(3)) + "}";
  return ir::latex_name(label);
}
}  // namespace

std::string render(const std::vector<const ir::Node*>& roots, const std::vector<std::string>& labels,
                   ir::PrintOptions options, const std::string& format) {
  if (format == "dot") return ir::print_dot(roots, labels);
  if (format == "json") return ir::print_json(roots, labels);
  std::string out;
  const bool latex = format == "latex";
  if (latex) options.syntax = ir::PrintOptions::Syntax::Latex;
  const ir::Printed p = ir::print_text(roots, options);
  if (latex) out += "\\begin{aligned}\n";
  for (const auto& [name, text] : p.bindings) out += (latex ? name + " &= " + text + " \\\\" : name + " = " + text) + "\n";
  for (size_t i = 0; i < roots.size(); ++i)
    out += (latex ? latex_label(labels[i]) + " &= " + p.roots[i] + (i + 1 < roots.size() ? " \\\\" : "")
                  : labels[i] + " = " + p.roots[i]) +
           "\n";
  if (latex) out += "\\end{aligned}\n";
  return out;
}

}  // namespace nabla::driver
