// Running deep recursions safely.
//
// The parser, sema and the DAG passes recurse over nesting (brackets, unary
// signs, powers), which the parser bounds at a fixed depth. A thread's default
// 8 MB stack is too small for the deepest allowed input under sanitizers, so
// the command line runs its work on a thread with a larger stack. Memory is
// only committed as the stack is touched.
#pragma once

#include <cstddef>
#include <functional>

namespace nabla {

constexpr std::size_t kLargeStackBytes = std::size_t{1} << 30;  // 1 GiB, reserved lazily

// Runs `work` on a new thread with a `stack_bytes` stack and returns its result.
// Exceptions thrown by `work` are rethrown in the caller.
int run_on_large_stack(const std::function<int()>& work, std::size_t stack_bytes = kLargeStackBytes);

}  // namespace nabla
