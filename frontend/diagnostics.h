// User-facing diagnostics: located errors with the source line and a caret.
//
//   model.nn:3:7: error: unknown name 'w2'; did you mean 'W2'?
//     h = w2 @ x
//         ^~
//
// Errors are collected during a run (the parser recovers at statement
// boundaries, so one run reports several) and printed in source order.
// Internal invariants are not diagnostics: they are NABLA_ASSERTs.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "frontend/source.h"

namespace nabla {

struct Diagnostic {
  enum class Kind { Error, Note };
  Kind kind = Kind::Error;
  SourceRange range;
  std::string message;
  std::vector<Diagnostic> notes;  // shown right after the error

  Diagnostic& note(SourceRange r, std::string msg) {
    notes.push_back({Kind::Note, r, std::move(msg), {}});
    return *this;
  }
};

class Diagnostics {
public:
  explicit Diagnostics(const SourceFile& file) : file_(&file) {}

  // Records an error; the returned reference may take notes until the next call.
  // Past kMaxStored errors only the count goes on (hostile input can raise
  // millions).
  Diagnostic& error(SourceRange range, std::string message);
  int error_count() const { return count_; }
  bool has_errors() const { return count_ > 0; }
  const std::vector<Diagnostic>& errors() const { return errors_; }
  const SourceFile& file() const { return *file_; }

  // Prints every error (in source order, at most `max_errors`) to `out`.
  void render(std::ostream& out, int max_errors = 50) const;
  // One diagnostic, as `render` prints it (no trailing summary).
  std::string format(const Diagnostic& d) const;

private:
  static constexpr int kMaxStored = 1000;
  const SourceFile* file_;
  std::vector<Diagnostic> errors_;
  Diagnostic overflow_;  // receives errors past kMaxStored
  int count_ = 0;
};

}  // namespace nabla
