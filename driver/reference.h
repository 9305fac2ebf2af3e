// The reference path (`nabla run/grad --reference`): each sample through the
// f64 interpreter (ir/interpret.h), the oracle the kernels are tested against.
#pragma once

#include <cstdint>
#include <string>

#include "frontend/lower.h"
#include "runtime/npz.h"

namespace nabla::driver {

// The outputs (batch first), or with `grad` the mean loss ("loss") and the
// mean gradient of every param, for the `n` samples of `data` at `params`
// (both checked first: driver/arrays.h, check_arrays); results in `dtype`.
runtime::ArrayMap reference_eval(ir::Context& ctx, const LoweredModel& m, const runtime::ArrayMap& params,
                                 const runtime::ArrayMap& data, int64_t n, bool grad, runtime::DType dtype);

}  // namespace nabla::driver
