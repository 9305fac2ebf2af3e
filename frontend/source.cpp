#include "frontend/source.h"

#include <algorithm>

namespace nabla {

SourceFile::SourceFile(std::string name, std::string text)
    : name_(std::move(name)), text_(std::move(text)) {
  // A UTF-8 byte order mark, which some editors write at the start of a
  // file, is not part of the text: columns count from what follows it.
  if (text_.compare(0, 3, "\xEF\xBB\xBF") == 0) text_.erase(0, 3);
  line_starts_.push_back(0);
  for (uint32_t i = 0; i < text_.size(); ++i)
    if (text_[i] == '\n') line_starts_.push_back(i + 1);
}

LineCol SourceFile::line_col(uint32_t offset) const {
  offset = std::min<uint32_t>(offset, static_cast<uint32_t>(text_.size()));
  auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
  const int line = static_cast<int>(it - line_starts_.begin());
  int col = 1;
  for (uint32_t i = line_starts_[static_cast<size_t>(line - 1)]; i < offset; ++i)
    if ((static_cast<unsigned char>(text_[i]) & 0xC0) != 0x80) ++col;
  return {line, col};
}

std::string_view SourceFile::line_text(int line) const {
  const size_t begin = line_starts_[static_cast<size_t>(line - 1)];
  size_t end = static_cast<size_t>(line) < line_starts_.size()
                   ? line_starts_[static_cast<size_t>(line)] - 1
                   : text_.size();
  if (end > begin && text_[end - 1] == '\r') --end;
  return std::string_view(text_).substr(begin, end - begin);
}

std::string_view SourceFile::slice(SourceRange r) const {
  return std::string_view(text_).substr(r.begin, r.end - r.begin);
}

}  // namespace nabla
