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

ShapeResult check_broadcast(const Shape& a, const Shape& b) {
  const int rank = std::max(a.rank(), b.rank());
  std::vector<int64_t> out(static_cast<size_t>(rank));
  for (int i = 0; i < rank; ++i) {
    // i counts from the last axis.
    const int ia = a.rank() - 1 - i, ib = b.rank() - 1 - i;
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1) {
      const std::string axis = i == 0 ? "the last axis" : std::to_string(i + 1) + " axes from the end";
      return {std::nullopt, "sizes " + std::to_string(da) + " and " + std::to_string(db) + " in " + axis +
                                " differ and neither is 1"};
    }
    out[static_cast<size_t>(rank - 1 - i)] = std::max(da, db);
  }
  return {Shape(std::move(out)), ""};
}

std::optional<Shape> broadcast(const Shape& a, const Shape& b) { return check_broadcast(a, b).shape; }

bool broadcasts_to(const Shape& a, const Shape& to) { return broadcast(a, to) == to; }

ShapeResult check_matmul(const Shape& a, const Shape& b) {
  if (a.rank() < 1 || a.rank() > 2 || b.rank() < 1 || b.rank() > 2)
    return {std::nullopt, "'@' takes operands of rank 1 or 2 (use '*' to multiply by a scalar)"};
  const int64_t k_a = a[a.rank() - 1];
  const int64_t k_b = b[0];  // [k] or [k, n]
  if (k_a != k_b)
    return {std::nullopt, "the inner sizes differ (" + std::to_string(k_a) + " and " + std::to_string(k_b) +
                              "): the last size on the left must equal the first size on the right"};
  std::vector<int64_t> out;
  if (a.rank() == 2) out.push_back(a[0]);
  if (b.rank() == 2) out.push_back(b[1]);
  return {Shape(std::move(out)), ""};
}

std::optional<Shape> matmul_shape(const Shape& a, const Shape& b) { return check_matmul(a, b).shape; }

std::optional<Shape> outer_shape(const Shape& u, const Shape& v) {
  if (u.rank() > 1 || v.rank() > 1) return std::nullopt;
  std::vector<int64_t> d = u.dims();
  d.insert(d.end(), v.dims().begin(), v.dims().end());
  return Shape(std::move(d));
}

ShapeResult check_groups(const Shape& s, int64_t k) {
  const int64_t last = s.is_scalar() ? 1 : s[s.rank() - 1];
  if (last % k != 0)
    return {std::nullopt, "the last size " + std::to_string(last) + " of " + s.str() +
                              " is not a multiple of the group size " + std::to_string(k)};
  std::vector<int64_t> d = s.dims();
  if (!d.empty()) d.back() = last / k;
  return {Shape(std::move(d)), ""};
}

ShapeResult check_repeat(const Shape& s, int64_t k) {
  if (s.is_scalar() && k != 1) return {std::nullopt, "a scalar repeats only once (k = 1)"};
  std::vector<int64_t> d = s.dims();
  if (!d.empty()) d.back() *= k;
  return {Shape(std::move(d)), ""};
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

Shape reduce_shape(const Shape& s, std::optional<int64_t> axis) {
  return axis ? remove_axis(s, static_cast<int>(*axis)) : Shape{};
}

Shape transposed(const Shape& s) {
  std::vector<int64_t> d = s.dims();
  std::reverse(d.begin(), d.end());
  return Shape(std::move(d));
}

}  // namespace nabla
