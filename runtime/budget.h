// Resource bounds checked before they are spent.
//
// Every allocation whose size a user's input decides (parameters, data
// arrays, inflated .npz members, kernel workspaces, gradient-check copies)
// asks `check_memory` first, and every thread count goes through
// `useful_threads`. A request over the budget is a user error that says what
// needed how much, never a std::bad_alloc abort half way through.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace nabla::runtime {

// A resource request over its bound; the message names what and how much.
class ResourceError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// The bytes one process may allocate for user-sized data: the environment's
// NABLA_MEMORY_LIMIT (bytes, or with a K, M, G or T suffix: "2G") when set,
// else 80 % of the machine's physical memory. Throws ResourceError when the
// variable is set to anything but a positive size.
uint64_t memory_budget();

// "40 GB", "512 MB", "12 KB", "7 bytes" (decimal units, 3 significant digits).
std::string byte_count(uint64_t bytes);

// `count` elements of `element_bytes` each, or UINT64_MAX when the product
// overflows.
uint64_t product_bytes(uint64_t count, uint64_t element_bytes);

// Throws ResourceError("WHAT needs N GB, more than the memory budget of M GB
// ...") when `bytes` exceed memory_budget().
void check_memory(const std::string& what, uint64_t bytes);
inline void check_memory(const std::string& what, uint64_t count, uint64_t element_bytes) {
  check_memory(what, product_bytes(count, element_bytes));
}

// The most threads any command starts.
constexpr int kMaxThreads = 1024;

// The threads worth starting for `work_items` independent pieces of work when
// `requested` were asked for (0: every core): never more than the pieces,
// the machine's cores or kMaxThreads, never fewer than 1.
int useful_threads(int requested, int64_t work_items);

// The machine's cores (at least 1).
int hardware_threads();

}  // namespace nabla::runtime
