#include <gtest/gtest.h>

#include <sstream>

#include "frontend/diagnostics.h"

namespace nabla {
namespace {

TEST(Diagnostics, LineColumnAndCaret) {
  SourceFile f("m.nn", "input x : [3]\nh = w @ x\n");
  Diagnostics d(f);
  d.error({18, 19}, "unknown name 'w'");
  EXPECT_EQ(d.format(d.errors()[0]), "m.nn:2:5: error: unknown name 'w'\n  h = w @ x\n      ^\n");
}

TEST(Diagnostics, UnderlinesTheRange) {
  SourceFile f("m.nn", "h = sigmiod(x)\n");
  Diagnostics d(f);
  d.error({4, 11}, "unknown function");
  EXPECT_EQ(d.format(d.errors()[0]), "m.nn:1:5: error: unknown function\n  h = sigmiod(x)\n      ^~~~~~~\n");
}

TEST(Diagnostics, ColumnsCountCharactersNotBytes) {
  // 'é' is two bytes in UTF-8 but one column.
  SourceFile f("m.nn", "# é\nx é\n");
  EXPECT_EQ(f.line_col(7).col, 3);
  EXPECT_EQ(f.line_col(9).col, 4);
  Diagnostics d(f);
  d.error({7, 9}, "stray");
  EXPECT_EQ(d.format(d.errors()[0]), "m.nn:2:3: error: stray\n  x é\n    ^\n");
}

TEST(Diagnostics, ControlAndInvalidBytesAreShownAsQuestionMarks) {
  SourceFile f("m.nn", std::string("h = x\0 + \xff", 10));
  Diagnostics d(f);
  d.error({5, 6}, "NUL");
  const std::string s = d.format(d.errors()[0]);
  EXPECT_EQ(s, "m.nn:1:6: error: NUL\n  h = x? + ?\n       ^\n");
}

TEST(Diagnostics, LongLinesAreShownAsAWindowAroundTheCaret) {
  std::string line(200000, 'x');
  line[150000] = '$';
  SourceFile f("m.nn", "h = " + line + "\n");
  Diagnostics d(f);
  d.error({150004, 150005}, "stray character '$'");
  const std::string s = d.format(d.errors()[0]);
  EXPECT_LT(s.size(), 400u);
  const size_t text = s.find("\n  ...") + 1;
  const size_t caret = s.find('^');
  const size_t dollar = s.find('$', text);
  ASSERT_NE(dollar, std::string::npos);
  EXPECT_EQ(caret - s.find('\n', text) - 1, dollar - text);  // caret under the '$'
}

TEST(Diagnostics, RenderSortsBySourcePositionAndCapsTheCount) {
  SourceFile f("m.nn", "a\nb\nc\n");
  Diagnostics d(f);
  d.error({4, 5}, "third");
  d.error({0, 1}, "first");
  d.error({2, 3}, "second");
  std::ostringstream out;
  d.render(out, 2);
  const std::string s = out.str();
  EXPECT_LT(s.find("first"), s.find("second"));
  EXPECT_EQ(s.find("third"), std::string::npos);
  EXPECT_NE(s.find("too many errors (3)"), std::string::npos);
}

}  // namespace
}  // namespace nabla
