#include "runtime/aligned.h"

#include <sys/mman.h>

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

// A mapped array's length: whole huge pages, so that its tail is one too.
std::size_t huge_rounded(std::size_t bytes) { return (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes; }

bool mapped(std::size_t bytes) { return kMapLarge && bytes >= kMappedBytes; }

}  // namespace

void* allocate_values(std::size_t bytes) {
  if (!mapped(bytes)) return ::operator new(bytes, std::align_val_t{kValueAlignment});
  if (bytes > SIZE_MAX - 2 * kHugePageBytes) throw std::bad_alloc();
  const std::size_t length = huge_rounded(bytes);
  // Map 2 MiB more than needed, then unmap what lies before the first 2 MiB
  // boundary and after the array's last huge page.
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
  ::munmap(p, huge_rounded(bytes));
}

}  // namespace nabla::runtime
