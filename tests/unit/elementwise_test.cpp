// Elementwise functions (driver/elementwise.h, the module's lambdify): the
// compiled value and partial derivatives against the f64 interpreter at every
// point, for every combination of broadcast arguments, on one thread and on
// several (chunks that do not divide the points), in f32 and f64; and the
// errors.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "driver/elementwise.h"
#include "driver/error.h"
#include "driver/expression.h"
#include "ir/differentiate.h"
#include "ir/simplify.h"
#include "runtime/budget.h"

namespace nabla::driver {
namespace {

ElementwiseOptions options(ir::DType dtype, int threads) {
  ElementwiseOptions o;
  o.dtype = dtype;
  o.threads = threads;
  o.use_cache = false;
  return o;
}

// f and its partials at one point, by the interpreter (f64).
std::vector<double> reference(const std::string& text, const std::vector<std::string>& args,
                              const std::map<std::string, double>& point) {
  std::vector<double> r;
  with_large_stack([&] {
    ir::Context ctx;
    const Expression e = expression(text, ctx, args);
    std::vector<const ir::Node*> roots{e.lowered.root};
    for (const Derivative& d : derivatives(ctx, e, args, 1, false, false)) roots.push_back(d.value);
    r = evaluate(roots, point);
  });
  return r;
}

template <typename T>
void check_masks(ir::DType dtype, int threads, int64_t n, double tolerance, const std::vector<uint64_t>& masks) {
  const std::string text = "log(1 + exp(a * x)) * tanh(b - x) + x * x / (1 + b * b)";
  const std::vector<std::string> args{"x", "a", "b"};
  Elementwise f(text, args, options(dtype, threads));
  std::mt19937 gen(7);
  std::uniform_real_distribution<double> u(-2, 2);
  std::vector<std::vector<T>> values(3, std::vector<T>(static_cast<size_t>(n)));
  for (auto& v : values)
    for (T& e : v) e = static_cast<T>(u(gen));
  for (uint64_t mask : masks) {
    std::vector<PointArg> in;
    for (size_t i = 0; i < 3; ++i) in.push_back({values[i].data(), ((mask >> i) & 1) != 0});
    std::vector<T> out(static_cast<size_t>(n), T(-7)), both(static_cast<size_t>(n));
    std::vector<std::vector<T>> grads(3, std::vector<T>(static_cast<size_t>(n), T(-7))), grads2 = grads;
    std::vector<void*> gp{grads[0].data(), grads[1].data(), grads[2].data()};
    std::vector<void*> gp2{grads2[0].data(), grads2[1].data(), grads2[2].data()};
    f.value(in, n, out.data());
    f.grad(in, n, gp);
    f.evaluate(in, n, both.data(), gp2);
    for (int64_t p = 0; p < n; p += std::max<int64_t>(1, n / 97)) {
      std::map<std::string, double> point;
      for (size_t i = 0; i < 3; ++i)
        point[args[i]] = values[i][((mask >> i) & 1) ? 0 : static_cast<size_t>(p)];
      const std::vector<double> want = reference(text, args, point);
      const auto at = static_cast<size_t>(p);
      ASSERT_NEAR(out[at], want[0], tolerance * (1 + std::fabs(want[0]))) << "mask " << mask << " point " << p;
      ASSERT_EQ(out[at], both[at]);
      for (size_t i = 0; i < 3; ++i) {
        ASSERT_NEAR(grads[i][at], want[i + 1], tolerance * (1 + std::fabs(want[i + 1])))
            << "d/d" << args[i] << " mask " << mask << " point " << p;
        ASSERT_EQ(grads[i][at], grads2[i][at]);
      }
    }
    // The last point too (the last chunk's tail).
    ASSERT_NE(out[static_cast<size_t>(n - 1)], T(-7));
  }
}

// Bit i of a mask: argument i is broadcast.
TEST(Elementwise, F64EveryBroadcastCombination) {
  check_masks<double>(ir::DType::F64, 1, 1001, 1e-12, {0, 1, 2, 3, 4, 5, 6, 7});
}

TEST(Elementwise, F64ChunksAcrossThreads) { check_masks<double>(ir::DType::F64, 2, 100003, 1e-12, {0, 6}); }

TEST(Elementwise, F32) { check_masks<float>(ir::DType::F32, 2, 40001, 2e-5, {0, 6}); }

TEST(Elementwise, SimplifiedTexts) {
  Elementwise f("1/(exp(-(w*x+b))+1)", {"x", "w", "b"}, options(ir::DType::F64, 1));
  EXPECT_EQ(f.source(), "sigmoid(w * x + b)");
  ASSERT_EQ(f.derivatives().size(), 3u);
  EXPECT_NE(f.derivatives()[2].find("t1 * (1 - t1)"), std::string::npos) << f.derivatives()[2];
}

TEST(Elementwise, AnArgumentTheExpressionDoesNotUse) {
  Elementwise f("2 * x", {"x", "unused"}, options(ir::DType::F64, 1));
  std::vector<double> x{1, 2, 3}, u{5, 6, 7}, d0(3), d1(3, -1);
  const PointArg in[] = {{x.data(), false}, {u.data(), false}};
  void* g[] = {d0.data(), d1.data()};
  f.grad(in, 3, g);
  EXPECT_EQ(d0, (std::vector<double>{2, 2, 2}));
  EXPECT_EQ(d1, (std::vector<double>{0, 0, 0}));
}

// Only the partials asked for are written, from a kernel of its own.
TEST(Elementwise, SomePartials) {
  Elementwise f("x * y * z", {"x", "y", "z"}, options(ir::DType::F64, 1));
  std::vector<double> x{1, 2}, y{3, 4}, z{5, 6}, dy(2, -1), untouched(2, -1);
  const PointArg in[] = {{x.data(), false}, {y.data(), false}, {z.data(), false}};
  void* g[] = {nullptr, dy.data(), nullptr};
  f.evaluate(in, 2, nullptr, g);
  EXPECT_EQ(dy, (std::vector<double>{5, 12}));
  void* all[] = {untouched.data(), nullptr, nullptr};
  EXPECT_THROW(f.grad(in, 2, all), Error);
  EXPECT_THROW(f.grad(in, 2, {}), Error);
  EXPECT_EQ(untouched, (std::vector<double>{-1, -1}));
}

TEST(Elementwise, EveryArgumentBroadcast) {
  Elementwise f("x * y", {"x", "y"}, options(ir::DType::F64, 2));
  const double x = 3, y = 4;
  std::vector<double> out(5, 0);
  const PointArg in[] = {{&x, true}, {&y, true}};
  f.value(in, 5, out.data());
  EXPECT_EQ(out, std::vector<double>(5, 12.0));
}

TEST(Elementwise, Errors) {
  const auto o = options(ir::DType::F64, 1);
  EXPECT_THROW(Elementwise("x * y", {"x"}, o), Error);
  EXPECT_THROW(Elementwise("x", {"x", "x"}, o), Error);
  EXPECT_THROW(Elementwise("x", {}, o), Error);
  EXPECT_THROW(Elementwise("x +", {"x"}, o), Error);
  EXPECT_THROW(Elementwise("x", std::vector<std::string>(kMaxElementwiseArgs + 1, "x"), o), Error);
  Elementwise f("x", {"x"}, o);
  double v = 0;
  const PointArg in[] = {{&v, false}, {&v, false}};
  EXPECT_THROW(f.value(in, 1, &v), Error);
  EXPECT_THROW(check_points(int64_t{1} << 62, 4, ir::DType::F64), runtime::ResourceError);
}

}  // namespace
}  // namespace nabla::driver
