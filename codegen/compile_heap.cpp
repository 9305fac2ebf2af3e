#include "codegen/compile_heap.h"

#include <malloc.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <string>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25  // Linux 6.1; older kernels answer EINVAL
#endif

namespace nabla::codegen {
namespace {

constexpr std::uintptr_t kArenaBytes = std::uintptr_t{64} << 20;  // glibc's HEAP_MAX_SIZE on 64-bit
constexpr std::uintptr_t kHugeBytes = std::uintptr_t{2} << 20;
constexpr int kTopPad = 32 << 20;
// M_TOP_PAD turns glibc's dynamic mmap threshold off, which would otherwise
// rise to the size of a freed mapped block (up to 32 MiB), so that a block
// asked for again comes from the heap: a fixed threshold stands for it.
constexpr int kMmapThreshold = 4 << 20;

std::atomic<bool> wanted{false};

struct Span {
  std::uintptr_t begin = 0, writable_end = 0, end = 0;
};

// The arena holding `at`, from /proc/self/maps: the readable and writable
// mapping that starts on a 64 MiB boundary and holds `at`, and the reserved
// (---p) mapping right after it, up to the next 64 MiB boundary. Anything
// else (the main heap, a stack, another allocator's memory): nothing.
bool arena_of(std::uintptr_t at, Span& span) {
  std::FILE* f = std::fopen("/proc/self/maps", "re");
  if (!f) return false;
  char line[4096];
  bool found = false, ok = false;
  while (std::fgets(line, sizeof line, f)) {
    unsigned long a = 0, b = 0;
    char perms[5] = {};
    if (std::sscanf(line, "%lx-%lx %4s", &a, &b, perms) != 3) continue;
    if (!found) {
      if (at < a || at >= b) continue;
      if (std::strcmp(perms, "rw-p") != 0 || a % kArenaBytes != 0 || b - a > kArenaBytes) break;
      span = {a, b, b};
      found = true;
      ok = b - a == kArenaBytes;  // an arena grown to its whole reservation
      if (ok) break;
      continue;
    }
    ok = a == span.end && std::strcmp(perms, "---p") == 0 && b == span.begin + kArenaBytes;
    if (ok) span.end = b;
    break;
  }
  std::fclose(f);
  return ok;
}

// Whether the kernel may back memory with transparent huge pages at all
// ("always" or "madvise"; MADV_COLLAPSE would build one even under "never").
bool huge_pages_allowed() {
  std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes;
  return std::getline(in, modes) && modes.find("[never]") == std::string::npos;
}

}  // namespace

bool use_huge_pages_for_compiling() {
  if (!huge_pages_allowed() || mallopt(M_TOP_PAD, kTopPad) != 1) return false;
  mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  wanted.store(true, std::memory_order_relaxed);
  return true;
}

void advise_compile_heap() {
  thread_local bool looked = false;  // a thread keeps its arena
  if (looked || !wanted.load(std::memory_order_relaxed)) return;
  looked = true;
  // Never destroyed: a thread may still compile while the process exits.
  static std::mutex* mutex = new std::mutex;
  static std::set<std::uintptr_t>* advised = new std::set<std::uintptr_t>;  // the arenas advised so far
  // Larger than glibc's per-thread cache holds (1,032 bytes), which may keep
  // blocks of other threads' arenas: this one comes from the thread's own.
  void* probe = std::malloc(4096);
  const auto at = reinterpret_cast<std::uintptr_t>(probe);
  std::free(probe);
  if (!at) return;
  Span span;
  {
    const std::lock_guard<std::mutex> lock(*mutex);
    if (advised->count(at & ~(kArenaBytes - 1)) || !arena_of(at, span)) return;
    advised->insert(span.begin);
  }
  void* begin = reinterpret_cast<void*>(span.begin);
  ::madvise(begin, span.end - span.begin, MADV_HUGEPAGE);
  if (span.writable_end - span.begin >= kHugeBytes) ::madvise(begin, kHugeBytes, MADV_COLLAPSE);
}

}  // namespace nabla::codegen
