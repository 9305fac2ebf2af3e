#include "ir/shape.h"

#include <algorithm>

namespace nabla {

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int64_t d : dims_) n *= d;
  return n;
}

std::string Shape::str() const {
  std::string s = "[";
  for (size_t i = 0; i < dims_.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims_[i]);
  }
  return s + "]";
}

std::optional<Shape> broadcast(const Shape& a, const Shape& b) {
  const int rank = std::max(a.rank(), b.rank());
  std::vector<int64_t> out(static_cast<size_t>(rank));
  for (int i = 0; i < rank; ++i) {
    // i counts from the last axis.
    const int ia = a.rank() - 1 - i, ib = b.rank() - 1 - i;
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1) return std::nullopt;
    out[static_cast<size_t>(rank - 1 - i)] = std::max(da, db);
  }
  return Shape(std::move(out));
}

std::optional<Shape> matmul_shape(const Shape& a, const Shape& b) {
  if (a.rank() < 1 || a.rank() > 2 || b.rank() < 1 || b.rank() > 2) return std::nullopt;
  const int64_t k_a = a[a.rank() - 1];
  const int64_t k_b = b[0];  // [k] or [k, n]
  if (k_a != k_b) return std::nullopt;
  std::vector<int64_t> out;
  if (a.rank() == 2) out.push_back(a[0]);
  if (b.rank() == 2) out.push_back(b[1]);
  return Shape(std::move(out));
}

std::optional<int> normalize_axis(int64_t axis, int rank) {
  if (axis < -rank || axis >= rank) return std::nullopt;
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

Shape remove_axis(const Shape& s, int axis) {
  std::vector<int64_t> d = s.dims();
  d.erase(d.begin() + axis);
  return Shape(std::move(d));
}

Shape transposed(const Shape& s) {
  std::vector<int64_t> d = s.dims();
  std::reverse(d.begin(), d.end());
  return Shape(std::move(d));
}

}  // namespace nabla
