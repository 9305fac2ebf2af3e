// Internal invariants (not user errors: those are located diagnostics).
// Always on: a broken invariant stops with a message a developer can act on.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace nabla::detail {
inline const char* assert_text(const char* s) { return s; }
inline const char* assert_text(const std::string& s) { return s.c_str(); }
}  // namespace nabla::detail

#define NABLA_ASSERT(cond, msg)                                                          \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "nabla: internal error: %s:%d: %s (%s)\n", __FILE__, __LINE__, \
                   ::nabla::detail::assert_text(msg), #cond);                                                       \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
