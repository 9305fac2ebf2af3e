// Internal invariants (not user errors: those are located diagnostics).
// Always on: a broken invariant stops with a message a developer can act on.
#pragma once

#include <cstdio>
#include <cstdlib>

#define NABLA_ASSERT(cond, msg)                                                          \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "nabla: internal error: %s:%d: %s (%s)\n", __FILE__, __LINE__, \
                   msg, #cond);                                                          \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)
