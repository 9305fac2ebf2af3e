// nabla check MODEL.nn: parse, type- and shape-check, print a one-line summary.
#include <charconv>
#include <iostream>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/pipeline.h"

namespace nabla::cli {
namespace {

std::string list(const std::vector<std::string>& items) {
  std::string s;
  for (const std::string& i : items) s += (s.empty() ? "" : ", ") + i;
  return s.empty() ? "none" : s;
}

template <typename Decl>
std::vector<std::string> tensors(const std::vector<Decl>& decls) {
  std::vector<std::string> out;
  for (const Decl& d : decls) out.push_back(d.name + " " + d.shape.str());
  return out;
}

}  // namespace

std::string model_summary(const CheckedModel& m) {
  std::vector<std::string> labels;
  for (const LabelDecl& l : m.labels)
    labels.push_back(l.name + " " + l.shape.str() + (l.distribution ? " distribution" : ""));
  std::vector<std::string> outputs;
  for (const OutputDecl& o : m.outputs) outputs.push_back(o.name + " " + o.value->shape.str());
  std::vector<std::string> consts;
  for (const ConstDecl& c : m.consts) {
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, c.value);
    consts.push_back(c.name + "=" + std::string(buf, end));
  }
  const int64_t count = m.param_count();
  std::string s = (m.name.empty() ? std::string("model") : m.name) + ": " +
                  std::to_string(count) + (count == 1 ? " parameter in " : " parameters in ") +
                  std::to_string(m.params.size()) + (m.params.size() == 1 ? " tensor (" : " tensors (") +
                  list(tensors(m.params)) +
                  "); inputs " + list(tensors(m.inputs)) + "; labels " + list(labels) +
                  "; outputs " + list(outputs) + "; loss " + (m.loss ? "scalar" : "none");
  if (!consts.empty()) s += "; consts " + list(consts);
  return s;
}

void add_check_command(CLI::App& app, const GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand("check", "Parse and type/shape-check a model; print a summary");
  auto path = std::make_shared<std::string>();
  cmd->add_option("MODEL", *path, "the .nn file")->required();
  cmd->callback([&global, &action, path] {
    action = [&global, path] {
      auto options = sema_options(global, std::cerr);
      if (!options) return kExitUsage;
      auto loaded = load_model(*path, *options, std::cerr);
      if (!loaded) return kExitUserError;
      std::cout << model_summary(loaded->model) << "\n";
      return kExitOk;
    };
  });
}

}  // namespace nabla::cli
