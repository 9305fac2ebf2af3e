// Parameter initialization by each param's `init` (docs/language.md).
//
// Fan-in is the last dimension and fan-out the first (a weight [out, in] as
// in W @ x); a scalar has fan-in = fan-out = 1.
//   xavier_uniform  U(-a, a), a = sqrt(6 / (fan_in + fan_out))
//   xavier_normal   N(0, sqrt(2 / (fan_in + fan_out)))
//   he_uniform      U(-a, a), a = sqrt(6 / fan_in)
//   he_normal       N(0, sqrt(2 / fan_in))
// Values come from one 64-bit Mersenne Twister seeded with `seed`, drawn
// param by param in declaration order, so a seed reproduces a file exactly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/npz.h"

namespace nabla::runtime {

enum class InitKind : uint8_t {
  Zeros, Ones, Const, Uniform, Normal, XavierUniform, XavierNormal, HeUniform, HeNormal
};

struct ParamInit {
  std::string name;
  std::vector<int64_t> shape;
  InitKind kind = InitKind::Zeros;
  double a = 0, b = 0;  // Const: value a; Uniform: [a, b); Normal: mean a, std b
};

ArrayMap initialize(const std::vector<ParamInit>& params, uint64_t seed, DType dtype);

}  // namespace nabla::runtime
