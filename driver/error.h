// Errors of the library as values: a diagnostic (where, what, and the text
// the command prints for it) and the one exception type driver/ throws for a
// user's mistake (a model that does not check, arrays that do not fit it, a
// file that cannot be read). Resource bounds and file writes throw
// runtime::ResourceError and runtime::OutputError; both, like Error, derive
// from std::runtime_error.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace nabla {
class Diagnostics;
}

namespace nabla::driver {

struct Message {
  std::string file;          // the model's path, "<string>" or "<expr>"; "" when not about a file
  int line = 0, column = 0;  // 1-based; 0 when the message has no place in the text
  std::string severity = "error";  // "error" or "note"
  std::string text;          // the message alone
  std::string rendered;      // as `nabla` prints it: location, message, source line and caret
                             // (an error's rendering shows its notes; a note's own is "")
};

// what(): the message; for a model or expression that does not check, the
// diagnostics as the command prints them (what rendered() returns).
class Error : public std::runtime_error {
public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
  // Diagnostics: `rendered` is their text (with any "too many errors" line).
  Error(std::vector<Message> diagnostics, const std::string& rendered)
      : std::runtime_error(rendered), diagnostics_(std::move(diagnostics)) {}
  const std::vector<Message>& diagnostics() const { return diagnostics_; }
  // What the command prints for this error (ending in a newline).
  std::string rendered() const {
    return diagnostics_.empty() ? "nabla: error: " + std::string(what()) + "\n" : std::string(what());
  }

private:
  std::vector<Message> diagnostics_;
};

// A message without a place: "nabla: error: TEXT".
Message plain_message(const std::string& text, const std::string& file = "");

// The errors of `diags` in source order, each followed by its notes.
std::vector<Message> messages_of(const Diagnostics& diags);

}  // namespace nabla::driver
