// Static tensor shapes and the shape rules of the .nn language.
//
// A Shape is the list of sizes of a per-sample tensor, outermost first; the
// empty list is a scalar. Sizes are positive. The rules here are NumPy's:
// elementwise operations broadcast (align trailing axes; a size of 1 stretches),
// and `@` follows numpy.matmul for 1-D and 2-D operands.
//
// The rules are written once, here: sema applies them to what the user wrote
// (and reports a failing rule's reason in its message), the IR to the nodes it
// builds (where a failing rule is a broken invariant).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

namespace nabla {

class Shape {
public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

  int rank() const { return static_cast<int>(dims_.size()); }
  bool is_scalar() const { return dims_.empty(); }
  int64_t operator[](int axis) const { return dims_[static_cast<size_t>(axis)]; }
  const std::vector<int64_t>& dims() const { return dims_; }
  // Number of elements (1 for a scalar).
  int64_t numel() const;

  bool operator==(const Shape& other) const = default;

  // "[4, 3]"; "[]" for a scalar.
  std::string str() const;

private:
  std::vector<int64_t> dims_;
};

// The verdict of a shape rule whose failure is worth explaining: the result's
// shape, or why there is none, in words a message can quote ("sizes 3 and 4
// in the last axis differ and neither is 1").
struct ShapeResult {
  std::optional<Shape> shape;
  std::string error;  // set when `shape` is not
};

// NumPy broadcasting of two shapes.
ShapeResult check_broadcast(const Shape& a, const Shape& b);
// The same, for callers that need no reason; nullopt when they do not broadcast.
std::optional<Shape> broadcast(const Shape& a, const Shape& b);
// Whether broadcasting `a` gives `to` itself (`a` stretches, `to` does not):
// broadcast(x, shape) needs it of x's shape, sum_to(y, shape) of the shape
// against y's.
bool broadcasts_to(const Shape& a, const Shape& to);

// numpy.matmul for operands of rank 1 or 2: [m,k]@[k]->[m], [k]@[k,n]->[n],
// [m,k]@[k,n]->[m,n], [k]@[k]->[]. Fails when the ranks or inner sizes do not
// fit.
ShapeResult check_matmul(const Shape& a, const Shape& b);
// The same, for callers that need no reason.
std::optional<Shape> matmul_shape(const Shape& a, const Shape& b);

// outer(u, v) of vectors: [m], [n] -> [m, n]; a scalar operand adds no axis.
// nullopt when an operand has rank 2 or more.
std::optional<Shape> outer_shape(const Shape& u, const Shape& v);

// Groups of k >= 1 along the last axis, one value each (maxout, group_sum):
// [..., m*k] -> [..., m]; a scalar is one group of size 1. Fails when k does
// not divide the last size.
ShapeResult check_groups(const Shape& s, int64_t k);

// Each value along the last axis k >= 1 times (repeat): [..., m] -> [..., m*k].
// Fails for a scalar and k > 1 (a scalar repeats only once).
ShapeResult check_repeat(const Shape& s, int64_t k);

// Maps a possibly negative axis (-1 is the last) to 0..rank-1; nullopt when
// out of range.
std::optional<int> normalize_axis(int64_t axis, int rank);

// The shape with `axis` removed (a reduction along it).
Shape remove_axis(const Shape& s, int axis);

// A reduction of `s` along `axis` (normalized), or over every axis (a scalar)
// when there is none.
Shape reduce_shape(const Shape& s, std::optional<int64_t> axis);

// The reversed shape (transpose of a 2-D tensor; 0-D and 1-D stay as they are).
Shape transposed(const Shape& s);

}  // namespace nabla
