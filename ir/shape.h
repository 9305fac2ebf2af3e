// Static tensor shapes and the shape rules of the .nn language.
//
// A Shape is the list of sizes of a per-sample tensor, outermost first; the
// empty list is a scalar. Sizes are positive. The rules here are NumPy's:
// elementwise operations broadcast (align trailing axes; a size of 1 stretches),
// and `@` follows numpy.matmul for 1-D and 2-D operands.
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

// NumPy broadcasting of two shapes; nullopt when they do not broadcast.
std::optional<Shape> broadcast(const Shape& a, const Shape& b);

// numpy.matmul for operands of rank 1 or 2: [m,k]@[k]->[m], [k]@[k,n]->[n],
// [m,k]@[k,n]->[m,n], [k]@[k]->[]. nullopt when the ranks or inner sizes do
// not fit.
std::optional<Shape> matmul_shape(const Shape& a, const Shape& b);

// Maps a possibly negative axis (-1 is the last) to 0..rank-1; nullopt when
// out of range.
std::optional<int> normalize_axis(int64_t axis, int rank);

// The shape with `axis` removed (a reduction along it).
Shape remove_axis(const Shape& s, int axis);

// The reversed shape (transpose of a 2-D tensor; 0-D and 1-D stay as they are).
Shape transposed(const Shape& s);

}  // namespace nabla
