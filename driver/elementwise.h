// Elementwise functions (the Python module's `lambdify`, docs/python.md): one
// scalar expression of named arguments compiled into a kernel that evaluates
// it at many points, and the kernel of its simplified partial derivatives.
//
// An argument is either one value per point or one value for every point (a
// broadcast scalar). Which arguments are broadcast decides the kernel: the
// per-point arguments become the kernel's batched inputs and the broadcast
// ones its scalar params, so a scalar is read once, never copied n times (the
// loop of B5 in bench/). Each such combination is compiled on first use,
// through the kernel cache, and kept. Points are split across threads in
// chunks, as the model kernels' batches are.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ir/node.h"

namespace nabla::driver {

// One argument of a call: `data` holds n values, or one when `broadcast`.
struct PointArg {
  const void* data = nullptr;
  bool broadcast = false;
};

struct ElementwiseOptions {
  ir::DType dtype = ir::DType::F64;
  int threads = 0;             // 0 = every core (at most runtime::kMaxThreads)
  bool use_cache = true;       // the on-disk kernel cache
  std::string cache_dir = "";  // "" = the default (codegen/cache.h)
};

// The most arguments a function may have.
constexpr size_t kMaxElementwiseArgs = 64;

class Elementwise {
public:
  // Parses, checks, simplifies and differentiates `text`; compiles nothing
  // yet. Throws Error when the text does not check, uses a name not among
  // `args`, or `args` repeat a name, are empty or too many.
  Elementwise(const std::string& text, std::vector<std::string> args, const ElementwiseOptions& options = {});
  ~Elementwise();
  Elementwise(Elementwise&&) noexcept;
  Elementwise& operator=(Elementwise&&) noexcept;

  const std::vector<std::string>& args() const;
  const std::string& source() const;                    // the simplified expression
  const std::vector<std::string>& derivatives() const;  // d/d args[i], simplified
  ir::DType dtype() const;
  int threads() const;

  // The expression at n points into out[0, n). `args` in the order of args().
  void value(std::span<const PointArg> args, int64_t n, void* out) const;
  // Its partial derivative along args()[i] at n points into grads[i][0, n).
  void grad(std::span<const PointArg> args, int64_t n, std::span<void* const> grads) const;
  // Any of them from one kernel (one pass over the points): the value when
  // `out` is not null, the partial along args()[i] when grads[i] is not null
  // (`grads` empty or one pointer an argument).
  void evaluate(std::span<const PointArg> args, int64_t n, void* out, std::span<void* const> grads) const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Throws ResourceError when `arrays` arrays of n points in `dtype` would
// exceed the memory budget (runtime/budget.h): callers check before they
// allocate results or broadcast copies.
void check_points(int64_t n, uint64_t arrays, ir::DType dtype);

}  // namespace nabla::driver
