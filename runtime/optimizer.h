// Parameter updates. (The optimizers of `nabla train` build on these.)
#pragma once

#include <cstdint>

namespace nabla::runtime {

// p -= lr * g, elementwise over n values.
void sgd_update(float* p, const float* g, int64_t n, float lr);
void sgd_update(double* p, const double* g, int64_t n, double lr);

}  // namespace nabla::runtime
