#include "cli/pipeline.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <ostream>
#include <sstream>
#include <sys/stat.h>

#include "frontend/diagnostics.h"
#include "frontend/parser.h"

namespace nabla::cli {

void print_error(std::ostream& err, const std::string& message) {
  err << "nabla: error: " << message << "\n";
}

std::optional<std::string> read_file(const std::string& path, std::ostream& err) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    print_error(err, "cannot open '" + path + "': " + std::strerror(errno));
    return std::nullopt;
  }
  if (S_ISDIR(st.st_mode)) {
    print_error(err, "'" + path + "' is a directory, not a file");
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    print_error(err, "cannot open '" + path + "': " + std::strerror(errno));
    return std::nullopt;
  }
  // Read in chunks up to the bound: a device such as /dev/zero never ends.
  std::string text;
  char chunk[1 << 16];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    text.append(chunk, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxSourceBytes) {
      print_error(err, "'" + path + "' is larger than " + std::to_string(kMaxSourceBytes >> 20) +
                           " MiB, nabla's limit for a model file");
      return std::nullopt;
    }
  }
  if (in.bad()) {
    print_error(err, "cannot read '" + path + "'");
    return std::nullopt;
  }
  return text;
}

void PassTimes::print(std::ostream& out) const {
  double total = 0;
  for (const auto& [name, seconds] : entries_) total += seconds;
  char line[128];
  for (const auto& [name, seconds] : entries_) {
    std::snprintf(line, sizeof line, "  %-14s %10.3f ms  %5.1f %%\n", name.c_str(), seconds * 1e3,
                  total > 0 ? 100 * seconds / total : 0.0);
    out << line;
  }
  std::snprintf(line, sizeof line, "  %-14s %10.3f ms\n", "total", total * 1e3);
  out << line;
}

std::optional<LoadedModel> load_model(const std::string& path, const SemaOptions& options,
                                      std::ostream& err, Stage last, PassTimes* times) {
  PassTimes ignored;
  PassTimes& t = times ? *times : ignored;
  auto text = t.time("read", [&] { return read_file(path, err); });
  if (!text) return std::nullopt;
  LoadedModel out;
  out.file = std::make_unique<SourceFile>(path, std::move(*text));
  Diagnostics diags(*out.file);
  out.ast = t.time("parse", [&] { return parse_file(*out.file, diags); });
  if (last == Stage::Parse) {
    diags.render(err);
    if (diags.has_errors()) return std::nullopt;
    return out;
  }
  std::vector<std::string> unused;
  out.model = t.time("check", [&] { return check_model(out.ast, diags, options, &unused); });
  diags.render(err);
  for (const std::string& name : unused) {
    std::string consts;
    for (const ConstDecl& c : out.model.consts) consts += (consts.empty() ? "" : ", ") + c.name;
    print_error(err, "--set " + name + ": '" + path + "' has no const named '" + name + "'" +
                         (consts.empty() ? " (it has no consts)" : " (its consts: " + consts + ")"));
  }
  if (diags.has_errors() || !unused.empty()) return std::nullopt;
  return out;
}

std::optional<LoadedExpr> load_expression(const std::string& text, std::ostream& err,
                                          Stage last) {
  LoadedExpr out;
  out.file = std::make_unique<SourceFile>("<expr>", text);
  Diagnostics diags(*out.file);
  out.ast = parse_expression(*out.file, diags);
  if (!diags.has_errors() && last == Stage::Check) out.expr = check_expression(out.ast, diags);
  diags.render(err);
  if (diags.has_errors()) return std::nullopt;
  return out;
}

}  // namespace nabla::cli
