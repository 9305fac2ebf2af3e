#include "driver/error.h"

#include <algorithm>

#include "frontend/diagnostics.h"

namespace nabla::driver {

Message plain_message(const std::string& text, const std::string& file) {
  Message m;
  m.file = file;
  m.text = text;
  m.rendered = "nabla: error: " + text + "\n";
  return m;
}

namespace {

Message message_of(const Diagnostics& diags, const Diagnostic& d, bool render) {
  Message m;
  const SourceFile& file = diags.file();
  const LineCol lc = file.line_col(d.range.begin);
  m.file = file.name();
  m.line = lc.line;
  m.column = lc.col;
  m.severity = d.kind == Diagnostic::Kind::Error ? "error" : "note";
  m.text = d.message;
  if (render) m.rendered = diags.format(d);
  return m;
}

}  // namespace

std::vector<Message> messages_of(const Diagnostics& diags) {
  std::vector<const Diagnostic*> sorted;
  for (const Diagnostic& d : diags.errors()) sorted.push_back(&d);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Diagnostic* a, const Diagnostic* b) { return a->range.begin < b->range.begin; });
  std::vector<Message> out;
  for (const Diagnostic* d : sorted) {
    out.push_back(message_of(diags, *d, true));
    for (const Diagnostic& note : d->notes) out.push_back(message_of(diags, note, false));
  }
  return out;
}

}  // namespace nabla::driver
