#include "runtime/aligned.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace nabla::runtime {
namespace {

// Sanitizer builds keep every array on the heap, where AddressSanitizer
// sees its bounds.
#ifdef NABLA_SANITIZE
constexpr bool kMapLarge = false;
#else
constexpr bool kMapLarge = true;
#endif

std::size_t page_rounded(std::size_t bytes) {
  static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

bool mapped(std::size_t bytes) { return kMapLarge && bytes >= kHugePageBytes; }

}  // namespace

void* allocate_values(std::size_t bytes) {
  if (!mapped(bytes)) return ::operator new(bytes, std::align_val_t{kValueAlignment});
  const std::size_t length = page_rounded(bytes);
  if (length > SIZE_MAX - kHugePageBytes) throw std::bad_alloc();
  // Map 2 MiB more than needed, then unmap what lies before the first 2 MiB
  // boundary and after the array: the array's whole 2 MiB runs can be huge
  // pages, its tail (length is not rounded to 2 MiB) stays in small ones.
  const std::size_t span = length + kHugePageBytes;
  void* m = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  const auto base = reinterpret_cast<std::uintptr_t>(m);
  const std::uintptr_t start = (base + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  if (start > base) ::munmap(m, start - base);
  if (base + span > start + length) ::munmap(reinterpret_cast<void*>(start + length), base + span - start - length);
  // A hint: where transparent huge pages are off, the array keeps small ones.
  ::madvise(reinterpret_cast<void*>(start), length, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(start);
}

void release_values(void* p, std::size_t bytes) noexcept {
  if (!p) return;
  if (!mapped(bytes)) {
    ::operator delete(p, std::align_val_t{kValueAlignment});
    return;
  }
  ::munmap(p, page_rounded(bytes));
}

}  // namespace nabla::runtime
