#include "runtime/init.h"

#include "runtime/budget.h"

#include <cmath>
#include <random>

namespace nabla::runtime {

ArrayMap initialize(const std::vector<ParamInit>& params, uint64_t seed, DType dtype) {
  // The budget first, for every param and for all of them: a 40 GB param is
  // an error naming it, not an abort half way through.
  const uint64_t elem = dtype == DType::F32 ? 4 : 8;
  uint64_t total = 0;
  for (const ParamInit& p : params) {
    uint64_t count = 1;
    for (int64_t d : p.shape) count = product_bytes(count, static_cast<uint64_t>(d));
    const uint64_t bytes = product_bytes(count, elem);
    check_memory("param '" + p.name + "' " + shape_str(p.shape), bytes);
    total = bytes > UINT64_MAX - total ? UINT64_MAX : total + bytes;
  }
  check_memory("the params (" + std::to_string(params.size()) + " tensors)", total);
  std::mt19937_64 rng(seed);
  ArrayMap out;
  for (const ParamInit& p : params) {
    // Drawn in f64 and stored in the element type, value by value (no f64
    // copy of the whole tensor).
    Array a = Array::zeros(p.shape, dtype);
    const size_t count = static_cast<size_t>(a.size());
    auto fill = [&](auto&& draw) {
      for (size_t i = 0; i < count; ++i) {
        const double v = draw();
        if (dtype == DType::F32) a.f32[i] = static_cast<float>(v);
        else a.f64[i] = v;
      }
    };
    const double fan_in = p.shape.empty() ? 1.0 : static_cast<double>(p.shape.back());
    const double fan_out = p.shape.empty() ? 1.0 : static_cast<double>(p.shape.front());
    auto uniform = [&](double lo, double hi) {
      std::uniform_real_distribution<double> d(lo, hi);
      fill([&] { return d(rng); });
    };
    auto normal = [&](double mean, double std) {
      std::normal_distribution<double> d(mean, std);
      fill([&] { return d(rng); });
    };
    switch (p.kind) {
      case InitKind::Zeros: break;
      case InitKind::Ones: fill([] { return 1.0; }); break;
      case InitKind::Const: fill([&] { return p.a; }); break;
      case InitKind::Uniform: uniform(p.a, p.b); break;
      case InitKind::Normal: normal(p.a, p.b); break;
      case InitKind::XavierUniform: {
        const double r = std::sqrt(6.0 / (fan_in + fan_out));
        uniform(-r, r);
        break;
      }
      case InitKind::XavierNormal: normal(0, std::sqrt(2.0 / (fan_in + fan_out))); break;
      case InitKind::HeUniform: {
        const double r = std::sqrt(6.0 / fan_in);
        uniform(-r, r);
        break;
      }
      case InitKind::HeNormal: normal(0, std::sqrt(2.0 / fan_in)); break;
    }
    out[p.name] = std::move(a);
  }
  return out;
}

}  // namespace nabla::runtime
