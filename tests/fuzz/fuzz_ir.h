// What the symbolic and kernel fuzzers share: decoding fuzzer bytes into
// well-formed IR, and judging whether two computations of it agree.
//
// Decoding: ExprGen reads the bytes front to back and builds an expression
// DAG of a requested shape over given vars, with every op of ir/ops.def at
// the shapes it accepts (shapes from a small table: [], [2], [3], [6], [2, 2],
// [2, 3], [3, 2]), the patterns the simplifier's rules look for, and reuse of
// earlier nodes (shared subexpressions). Past the end of the bytes every read
// is 0, which ends the expression, and a node budget bounds its size, so any
// input decodes to a small, valid DAG.
//
// Judging: two evaluations of one function agree when they differ by no more
// than rounding could explain. What rounding can explain is measured, not
// guessed: the DAG is evaluated again with every computed node scaled by
// 1 +- delta (random signs), and the largest change is the point's spread.
// Points where an intermediate is not finite, or where a comparison, max,
// min, argmax or sign is near a tie (rounding decides the branch), are
// outside the domain and not compared.
#pragma once

#include <limits>

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "ir/interpret.h"
#include "ir/node.h"

namespace nabla::fuzz {

// The fuzzer's bytes, read front to back; past the end every read gives 0.
class ByteReader {
public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  // A choice in [0, n) (0 once the bytes are used up).
  int pick(int n) { return n <= 1 ? 0 : byte() % n; }
  // Four bytes, little-endian.
  uint32_t word() {
    uint32_t w = 0;
    for (int i = 0; i < 4; ++i) w |= static_cast<uint32_t>(byte()) << (8 * i);
    return w;
  }
  bool exhausted() const { return pos_ >= size_; }

private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// The shapes expressions take: a scalar, vectors and small matrices whose
// sizes let every op (matmul, outer, maxout, repeat, ...) connect them.
const std::vector<Shape>& shape_table();

struct GenLimits {
  int max_depth = 5;   // operator nesting
  int max_nodes = 40;  // generator steps per ExprGen
  bool tensors = true; // false: every subexpression is a scalar
};

// Random well-formed expressions decoded from bytes.
class ExprGen {
public:
  ExprGen(ir::Context& ctx, ByteReader& in, std::vector<const ir::Node*> vars, GenLimits limits);

  // An expression of shape `s` (a shape of shape_table()).
  const ir::Node* expr(const Shape& s) { return gen(s, limits_.max_depth); }
  // A shape of the table (the scalar when tensors are off).
  Shape shape();
  // A constant: a small table of exact and inexact values, or k / 16.
  const ir::Node* constant();

private:
  const ir::Node* gen(const Shape& s, int depth);
  const ir::Node* leaf(const Shape& s);
  const ir::Node* elementwise(const Shape& s, int depth);
  const ir::Node* pow_or_branch(const Shape& s, int depth);
  const ir::Node* reshaping(const Shape& s, int depth);
  const ir::Node* reduction(const Shape& s, int depth);
  const ir::Node* product(const Shape& s, int depth);
  const ir::Node* along_axis(const Shape& s, int depth);
  const ir::Node* broadcasting(const Shape& s, int depth);
  const ir::Node* pattern(const Shape& s, int depth);
  const ir::Node* tensor_pattern(const Shape& s, int depth);
  const ir::Node* reuse(const Shape& s, int depth);
  // A shape `s` broadcasts with: itself, the scalar, or a trailing axis.
  Shape operand_shape(const Shape& s);

  ir::Context& c_;
  ByteReader& in_;
  std::vector<const ir::Node*> vars_;
  GenLimits limits_;
  int made_ = 0;
  std::vector<const ir::Node*> pool_;
};

// Values of vars, by var node.
using Point = std::unordered_map<const ir::Node*, ir::Tensor>;

ir::VarValues values_of(const Point& p);

// Random values for `vars`: mostly uniform in [lo, hi], sometimes one of the
// exact values 0, 1, -1, 0.5, 2 (kinks and ties are points too).
Point random_point(std::span<const ir::Node* const> vars, std::mt19937& rng, double lo = -2, double hi = 2);

struct DomainOptions {
  // Intermediates beyond `huge` (overflow) or nonzero below `tiny` leave the
  // domain. f64: the normal range (a subnormal keeps a few significant bits:
  // log(softmax(v)) of entries near -733 has a slope off by half); f32 kernels
  // set a narrower one.
  double huge = 1e300, tiny = std::numeric_limits<double>::min();
  double tie = 1e-7, tie_floor = 1e-9;  // gap under which two compared values tie: relative, absolute
  bool check_finite = true;  // false: ties only (for a second form of a function)
};

// Every intermediate of `roots` at `p` finite (and within the options'
// range) and no comparison, max, min, argmax/argmin, maxout or sign near a
// tie, no negative base under a computed exponent.
bool in_domain(std::span<const ir::Node* const> roots, const Point& p, const DomainOptions& options = {});

// Copies of the DAG under `roots` in which every computed node is scaled by
// 1 + delta or 1 - delta (random signs). Their spread at a point bounds what
// rounding can change in the result.
class Sensitivity {
public:
  // `inexact_f32_constants`: also scale constants a float cannot hold (f32
  // kernels round them).
  Sensitivity(ir::Context& ctx, std::span<const ir::Node* const> roots, double delta, uint32_t seed,
              bool inexact_f32_constants = false, int copies = 3);
  // Per root, per element: the largest |copy - value| (inf when a copy is
  // not finite); `values` are the roots' values at `p`.
  std::vector<std::vector<double>> spread(const Point& p, const std::vector<ir::Tensor>& values) const;

private:
  size_t roots_;
  std::vector<const ir::Node*> copies_;  // copies * roots, copy-major
};

struct Tolerance {
  double rtol, atol;
  double spread_factor = 10;
};

// |a - b| within rtol * max(|a|, |b|) + atol + spread_factor * spread; NaN
// and infinities agree only with themselves.
bool agrees(double a, double b, double spread, const Tolerance& t);

// `v` as "%.17g" prints it (reads back as the same double).
std::string number(double v);

// The values of `roots` at `p`.
std::vector<ir::Tensor> evaluate(std::span<const ir::Node* const> roots, const Point& p);

}  // namespace nabla::fuzz
