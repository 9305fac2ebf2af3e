#include "ir/scalar_math.h"

#include <cmath>
#include <numbers>

namespace nabla::scalar {

double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

double softplus(double x) { return std::fmax(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

double hard_sigmoid(double x) { return max2(min2(0.25 * x + 0.5, 1.0), 0.0); }
double hard_tanh(double x) { return max2(min2(x, 1.0), -1.0); }
double relu(double x) { return max2(0.0, x); }
double leaky_relu(double x, double gamma) { return x > 0 ? x : gamma * x; }
double elu(double x, double gamma) { return x > 0 ? x : gamma * std::expm1(x); }
double swish(double x, double beta) { return x * sigmoid(beta * x); }
double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::numbers::sqrt2)); }

double gelu_tanh(double x) {
  const double c = std::sqrt(2.0 / std::numbers::pi);
  return 0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x)));
}

double gelu_sigmoid(double x) { return x * sigmoid(1.702 * x); }

double sign(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : x == 0 ? 0.0 : x; }

double max2(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::nan("");
  return a > b ? a : b;
}

double min2(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::nan("");
  return a < b ? a : b;
}

}  // namespace nabla::scalar
