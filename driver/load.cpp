#include "driver/load.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "frontend/diagnostics.h"
#include "frontend/parser.h"

namespace nabla::driver {

std::string read_source(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw Error("cannot open '" + path + "': " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw Error("'" + path + "' is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open '" + path + "': " + std::strerror(errno));
  // Read in chunks up to the bound: a device such as /dev/zero never ends.
  std::string text;
  char chunk[1 << 16];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    text.append(chunk, static_cast<size_t>(in.gcount()));
    if (text.size() > kMaxSourceBytes)
      throw Error("'" + path + "' is larger than " + std::to_string(kMaxSourceBytes >> 20) +
                  " MiB, nabla's limit for a model file");
  }
  if (in.bad()) throw Error("cannot read '" + path + "'");
  return text;
}

std::string PassTimes::table() const {
  double total = 0;
  for (const auto& [name, seconds] : entries_) total += seconds;
  std::string out;
  char line[128];
  for (const auto& [name, seconds] : entries_) {
    std::snprintf(line, sizeof line, "  %-14s %10.3f ms  %5.1f %%\n", name.c_str(), seconds * 1e3,
                  total > 0 ? 100 * seconds / total : 0.0);
    out += line;
  }
  std::snprintf(line, sizeof line, "  %-14s %10.3f ms\n", "total", total * 1e3);
  return out + line;
}

namespace {

// The most errors rendered (all are in `messages`).
constexpr int kMaxRendered = 50;

// Appends the diagnostics of `diags` to `r`.
template <typename T>
void collect(Loaded<T>& r, const Diagnostics& diags) {
  int shown = 0;
  for (Message& m : messages_of(diags)) {
    if (m.severity == "error" && shown < kMaxRendered) {
      r.rendered += m.rendered;
      ++shown;
    }
    r.messages.push_back(std::move(m));
  }
  if (diags.error_count() > shown)
    r.rendered += "too many errors (" + std::to_string(diags.error_count()) + "); showing the first " +
                  std::to_string(shown) + "\n";
}

template <typename T>
void add_plain(Loaded<T>& r, const std::string& text, const std::string& file) {
  r.messages.push_back(plain_message(text, file));
  r.rendered += r.messages.back().rendered;
}

}  // namespace

Loaded<LoadedModel> load_model_text(const std::string& name, std::string text, const SemaOptions& options,
                                    Stage last, PassTimes* times) {
  PassTimes ignored;
  PassTimes& t = times ? *times : ignored;
  Loaded<LoadedModel> r;
  // Lines ended by CR alone (classic Mac OS) make the file one line, whose
  // errors would say nothing of the cause.
  if (const size_t cr = text.find('\r');
      text.find('\n') == std::string::npos && cr != std::string::npos && cr + 1 < text.size()) {
    add_plain(r, "'" + name + "' ends its lines with CR alone (classic Mac OS line endings); nabla reads LF or CRLF",
              name);
    return r;
  }
  LoadedModel out;
  out.file = std::make_unique<SourceFile>(name, std::move(text));
  Diagnostics diags(*out.file);
  out.ast = t.time("parse", [&] { return parse_file(*out.file, diags); });
  if (last == Stage::Parse) {
    collect(r, diags);
    if (!diags.has_errors()) r.value = std::move(out);
    return r;
  }
  std::vector<std::string> unused;
  out.model = t.time("check", [&] { return check_model(out.ast, diags, options, &unused); });
  collect(r, diags);
  for (const std::string& c : unused) {
    std::string consts;
    for (const ConstDecl& d : out.model.consts) consts += (consts.empty() ? "" : ", ") + d.name;
    // Worded for every caller: the command's --set and the library's and
    // Python's const overrides give the same message.
    add_plain(r, "a value is set for '" + c + "', but '" + name + "' has no const named '" + c + "'" +
                     (consts.empty() ? " (it has no consts)" : " (its consts: " + consts + ")"),
              name);
  }
  if (!diags.has_errors() && unused.empty()) r.value = std::move(out);
  return r;
}

Loaded<LoadedModel> load_model(const std::string& path, const SemaOptions& options, Stage last, PassTimes* times) {
  PassTimes ignored;
  PassTimes& t = times ? *times : ignored;
  std::string text;
  try {
    text = t.time("read", [&] { return read_source(path); });
  } catch (const Error& e) {
    Loaded<LoadedModel> r;
    add_plain(r, e.what(), path);
    return r;
  }
  return load_model_text(path, std::move(text), options, last, times);
}

Loaded<LoadedExpr> load_expression(const std::string& text, Stage last) {
  Loaded<LoadedExpr> r;
  LoadedExpr out;
  out.file = std::make_unique<SourceFile>("<expr>", text);
  Diagnostics diags(*out.file);
  out.ast = parse_expression(*out.file, diags);
  if (!diags.has_errors() && last == Stage::Check) out.expr = check_expression(out.ast, diags);
  collect(r, diags);
  if (!diags.has_errors()) r.value = std::move(out);
  return r;
}

}  // namespace nabla::driver
