// Source text, locations and ranges.
//
// A location is a byte offset into the file's text; line and column (both
// 1-based) are computed on demand. Columns count characters: bytes that are
// not UTF-8 continuation bytes, so a column points where a reader sees it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace nabla {

struct SourceRange {
  uint32_t begin = 0;
  uint32_t end = 0;  // one past the last byte
};

struct LineCol {
  int line = 1;
  int col = 1;
};

class SourceFile {
public:
  SourceFile(std::string name, std::string text);

  const std::string& name() const { return name_; }
  const std::string& text() const { return text_; }
  LineCol line_col(uint32_t offset) const;
  int line_count() const { return static_cast<int>(line_starts_.size()); }
  // The offset of the first byte of a 1-based line.
  uint32_t line_start(int line) const { return line_starts_[static_cast<size_t>(line - 1)]; }
  // The text of a 1-based line, without its newline.
  std::string_view line_text(int line) const;
  std::string_view slice(SourceRange r) const;

private:
  std::string name_;
  std::string text_;
  std::vector<uint32_t> line_starts_;
};

}  // namespace nabla
