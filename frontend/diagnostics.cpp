#include "frontend/diagnostics.h"

#include <algorithm>
#include <ostream>

namespace nabla {
namespace {

constexpr int kWindow = 100;  // characters of a long line shown around the caret

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Splits a line into displayable characters: valid UTF-8 sequences stay as
// they are; control characters and invalid bytes become '?', so the caret
// lines up and no raw NUL or stray byte reaches the terminal.
std::vector<std::string> display_chars(std::string_view line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    const auto c = static_cast<unsigned char>(line[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool valid = len > 0 && i + len <= line.size();
    for (size_t k = 1; valid && k < len; ++k)
      valid = is_continuation(static_cast<unsigned char>(line[i + k]));
    if (!valid) {
      out.emplace_back("?");
      // An invalid lead byte stands for one column, as SourceFile counts it;
      // stray continuation bytes belong to it.
      ++i;
      while (i < line.size() && is_continuation(static_cast<unsigned char>(line[i]))) ++i;
      continue;
    }
    if (c < 0x20 || c == 0x7F)
      out.emplace_back(c == '\t' ? " " : "?");
    else
      out.emplace_back(line.substr(i, len));
    i += len;
  }
  return out;
}

// A message of at most about 500 bytes: a name 10 MB long (which the
// parser allows) would make a 10 MB error line. The middle is cut, at
// character boundaries.
std::string shortened(const std::string& message) {
  constexpr size_t kKeep = 240;
  if (message.size() <= 2 * kKeep + 60) return message;
  size_t head = kKeep, tail = message.size() - kKeep;
  while (head > 0 && is_continuation(static_cast<unsigned char>(message[head]))) --head;
  while (tail < message.size() && is_continuation(static_cast<unsigned char>(message[tail]))) ++tail;
  return message.substr(0, head) + "[... " + std::to_string(tail - head) + " bytes ...]" + message.substr(tail);
}

}  // namespace

Diagnostic& Diagnostics::error(SourceRange range, std::string message) {
  ++count_;
  if (errors_.size() == static_cast<size_t>(kMaxStored)) {
    overflow_ = {};
    return overflow_;
  }
  errors_.push_back({Diagnostic::Kind::Error, range, std::move(message), {}});
  return errors_.back();
}

std::string Diagnostics::format(const Diagnostic& d) const {
  const LineCol lc = file_->line_col(d.range.begin);
  std::string s = file_->name() + ":" + std::to_string(lc.line) + ":" + std::to_string(lc.col) +
                  (d.kind == Diagnostic::Kind::Error ? ": error: " : ": note: ") + shortened(d.message) + "\n";

  // Decode only a window of bytes around the error: a line may be 100 MB.
  const std::string_view line = file_->line_text(lc.line);
  const size_t off = std::min<size_t>(d.range.begin - file_->line_start(lc.line), line.size());
  constexpr size_t kWindowBytes = 8 * kWindow;
  size_t from = off > kWindowBytes ? off - kWindowBytes : 0;
  while (from > 0 && from < off && is_continuation(static_cast<unsigned char>(line[from]))) ++from;
  size_t to = std::min(line.size(), off + kWindowBytes);
  while (to < line.size() && is_continuation(static_cast<unsigned char>(line[to]))) ++to;
  const std::vector<std::string> chars = display_chars(line.substr(from, to - from));
  const int n = static_cast<int>(chars.size());
  // The caret's index among `chars`: the columns between `from` and the error.
  int caret = 0;
  for (size_t i = from; i < off; ++i)
    if (!is_continuation(static_cast<unsigned char>(line[i]))) ++caret;
  caret = std::min(caret, n);  // may sit one past the end (end of line)
  // Underline the range's extent on this line (at least one character).
  int width = 1;
  if (d.range.end > d.range.begin) {
    const LineCol end = file_->line_col(d.range.end);
    width = end.line == lc.line ? std::max(1, end.col - lc.col) : std::max(1, n - caret);
  }
  int first = 0, last = n;
  if (n > kWindow) {
    first = std::clamp(caret - kWindow / 2, 0, n - kWindow);
    last = first + kWindow;
  }
  std::string text = "  ", marks = "  ";
  if (from > 0 || first > 0) {
    text += "...";
    marks += "   ";
  }
  for (int i = first; i < last; ++i) text += chars[static_cast<size_t>(i)];
  if (to < line.size() || last < n) text += "...";
  marks.append(static_cast<size_t>(caret - first), ' ');
  marks += '^';
  width = std::min(width, std::max(1, last - caret));
  marks.append(static_cast<size_t>(width - 1), '~');
  s += text + "\n" + marks + "\n";
  for (const Diagnostic& note : d.notes) s += format(note);
  return s;
}

void Diagnostics::render(std::ostream& out, int max_errors) const {
  std::vector<const Diagnostic*> sorted;
  for (const Diagnostic& d : errors_) sorted.push_back(&d);
  std::stable_sort(sorted.begin(), sorted.end(), [](const Diagnostic* a, const Diagnostic* b) {
    return a->range.begin < b->range.begin;
  });
  int shown = 0;
  for (const Diagnostic* d : sorted) {
    if (shown == max_errors) break;
    out << format(*d);
    ++shown;
  }
  if (count_ > shown)
    out << "too many errors (" << count_ << "); showing the first " << shown << "\n";
}

}  // namespace nabla
