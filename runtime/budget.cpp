#include "runtime/budget.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace nabla::runtime {
namespace {

// NABLA_MEMORY_LIMIT as bytes; 0 when unset. A value that is not a
// positive size is an error (ignored, it left the default in force with a
// message that said nothing of it).
uint64_t limit_from_env() {
  const char* text = std::getenv("NABLA_MEMORY_LIMIT");
  if (!text || !*text) return 0;
  auto bad = [&]() -> uint64_t {
    std::string shown;
    for (const char* c = text; *c && shown.size() < 40; ++c) shown += (*c >= 0x20 && *c < 0x7f) ? *c : '?';
    throw ResourceError("NABLA_MEMORY_LIMIT is '" + shown +
                        "': not a memory budget (a positive number of bytes, or with a K, M, G or T suffix: 2G)");
  };
  errno = 0;
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  if (errno != 0 || end == text || !std::isfinite(value) || value <= 0) return bad();
  double scale = 1;
  switch (*end) {
    case 'K': case 'k': scale = 1e3; ++end; break;
    case 'M': case 'm': scale = 1e6; ++end; break;
    case 'G': case 'g': scale = 1e9; ++end; break;
    case 'T': case 't': scale = 1e12; ++end; break;
    default: break;
  }
  if (*end == 'B' || *end == 'b') ++end;
  while (*end == ' ' || *end == '\t') ++end;
  if (*end != '\0') return bad();
  if (value * scale < 1) return bad();
  const double bytes = value * scale;
  return bytes >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(bytes);
}

// Read once: sysconf(_SC_PHYS_PAGES) is a system call, and the checks run on
// every kernel call of the library (a microsecond of the Python module's
// per-call overhead, measured).
uint64_t physical_memory() {
  static const uint64_t bytes = [] {
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return uint64_t{4} << 30;  // unknown: assume 4 GiB
    return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
  }();
  return bytes;
}

}  // namespace

uint64_t memory_budget() {
  if (const uint64_t env = limit_from_env()) return env;
  return physical_memory() / 10 * 8;
}

std::string byte_count(uint64_t bytes) {
  if (bytes == UINT64_MAX) return "more than 18 EB";
  if (bytes < 1000) return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
  const char* units[] = {"KB", "MB", "GB", "TB", "PB", "EB"};
  double v = static_cast<double>(bytes) / 1000;
  int u = 0;
  while (v >= 999.5 && u < 5) v /= 1000, ++u;
  char text[32];
  std::snprintf(text, sizeof text, "%.3g %s", v, units[u]);
  return text;
}

uint64_t product_bytes(uint64_t count, uint64_t element_bytes) {
  if (element_bytes != 0 && count > UINT64_MAX / element_bytes) return UINT64_MAX;
  return count * element_bytes;
}

void check_memory(const std::string& what, uint64_t bytes) {
  const uint64_t budget = memory_budget();
  if (bytes <= budget) return;
  throw ResourceError(what + " needs " + byte_count(bytes) + ", more than the memory budget of " +
                      byte_count(budget) +
                      (limit_from_env() ? " (NABLA_MEMORY_LIMIT)"
                                        : " (80% of this machine's memory; NABLA_MEMORY_LIMIT=BYTES sets another)"));
}

int hardware_threads() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

int useful_threads(int requested, int64_t work_items) {
  int64_t n = requested > 0 ? requested : hardware_threads();
  n = std::min<int64_t>({n, hardware_threads(), kMaxThreads, std::max<int64_t>(1, work_items)});
  return static_cast<int>(std::max<int64_t>(1, n));
}

}  // namespace nabla::runtime
