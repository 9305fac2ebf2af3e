// Storage for the values kernels read and write: on 64-byte boundaries (a
// cache line; an AVX-512 vector).
//
// A std::vector's default allocation of a large array (glibc's malloc, which
// maps it) starts 16 bytes past a page, so every 64-byte vector load of a
// weight row straddles two cache lines, and every store writes two. On the
// Zen 5 machine of bench/RESULTS.md the MLP's forward kernel at batch 1 took
// 11.8-14.6 us on such arrays and 9.7-9.9 us on 64-byte aligned copies of the
// same values; the training step 27.5-35.7 against 23.5-24.5 us. Eigen, the
// peer it is compared with, aligns its own arrays the same way.
//
// An array of 512 KiB or more gets pages of its own: a mapping 2 MiB
// aligned and a multiple of 2 MiB long, which the kernel may back with
// 2 MiB pages (madvise MADV_HUGEPAGE, where transparent huge pages are
// "madvise" or "always"). Its first touch then faults once per 2 MiB
// instead of once per 4 KiB, for less than 2 MiB of memory more than asked.
// On the Zen 5 guest of bench/RESULTS.md a fresh 4 KiB page costs 10-14 us
// and a huge page 0.15-0.2 ms (on pages the guest had backed before): an
// 800 KB weight matrix 2.1 ms against 0.2. `nabla train` on the 8,000-digit
// MNIST set took 18,000 page faults, a quarter of a second, before this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <vector>

namespace nabla::runtime {

inline constexpr std::size_t kValueAlignment = 64;

// Arrays of at least kMappedBytes are mapped on their own, in whole runs of
// kHugePageBytes.
inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;
inline constexpr std::size_t kMappedBytes = std::size_t{512} << 10;

// `bytes` of storage aligned to kValueAlignment (throws std::bad_alloc),
// and its release (`bytes` as allocated).
void* allocate_values(std::size_t bytes);
void release_values(void* p, std::size_t bytes) noexcept;

template <typename T>
struct AlignedAllocator {
  using value_type = T;
  AlignedAllocator() noexcept = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n > std::numeric_limits<std::size_t>::max() / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(allocate_values(n * sizeof(T)));
  }
  void deallocate(T* p, std::size_t n) noexcept { release_values(p, n * sizeof(T)); }

  template <typename U>
  bool operator==(const AlignedAllocator<U>&) const noexcept {
    return true;
  }
};

// `elems` values of `elem_bytes` bytes each, rounded up to whole 64-byte
// lines: in a buffer of several arrays, where the next one starts so that
// it is aligned too.
inline int64_t line_aligned(int64_t elems, int elem_bytes) {
  const int64_t line = static_cast<int64_t>(kValueAlignment) / elem_bytes;
  return (elems + line - 1) / line * line;
}

// A vector whose data() is 64-byte aligned.
template <typename T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace nabla::runtime
