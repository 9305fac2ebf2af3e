// NABLA_MEMORY_LIMIT set for the scope of a test, then restored.
#pragma once

#include <cstdlib>
#include <string>

namespace nabla::test {

class MemoryLimit {
public:
  explicit MemoryLimit(const char* limit) {
    if (const char* old = std::getenv("NABLA_MEMORY_LIMIT")) had_ = true, old_ = old;
    ::setenv("NABLA_MEMORY_LIMIT", limit, 1);
  }
  ~MemoryLimit() {
    if (had_) ::setenv("NABLA_MEMORY_LIMIT", old_.c_str(), 1);
    else ::unsetenv("NABLA_MEMORY_LIMIT");
  }
  MemoryLimit(const MemoryLimit&) = delete;
  MemoryLimit& operator=(const MemoryLimit&) = delete;

private:
  bool had_ = false;
  std::string old_;
};

}  // namespace nabla::test
