#include "runtime/init.h"

#include <cmath>
#include <random>

namespace nabla::runtime {

ArrayMap initialize(const std::vector<ParamInit>& params, uint64_t seed, DType dtype) {
  std::mt19937_64 rng(seed);
  ArrayMap out;
  for (const ParamInit& p : params) {
    Array a = Array::zeros(p.shape, DType::F64);
    const double fan_in = p.shape.empty() ? 1.0 : static_cast<double>(p.shape.back());
    const double fan_out = p.shape.empty() ? 1.0 : static_cast<double>(p.shape.front());
    auto uniform = [&](double lo, double hi) {
      std::uniform_real_distribution<double> d(lo, hi);
      for (double& v : a.f64) v = d(rng);
    };
    auto normal = [&](double mean, double std) {
      std::normal_distribution<double> d(mean, std);
      for (double& v : a.f64) v = d(rng);
    };
    switch (p.kind) {
      case InitKind::Zeros: break;
      case InitKind::Ones: a.f64.assign(a.f64.size(), 1.0); break;
      case InitKind::Const: a.f64.assign(a.f64.size(), p.a); break;
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
    out[p.name] = a.as(dtype);
  }
  return out;
}

}  // namespace nabla::runtime
