// Gradient checking: the compiled gradient (the f64 gradient kernel) against
// central finite differences of the mean loss, in f64 (step
// 1e-5 max(1, |x|); error |g - fd| / max(|g|, |fd|, 1e-3)). The loss the
// differences evaluate is the lowered, unsimplified one, through the
// reference interpreter: an oracle independent of the simplifier and the
// differentiator.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "driver/load.h"
#include "runtime/npz.h"

namespace nabla::driver {

struct GradcheckOptions {
  double tolerance = 1e-6;  // the largest relative error that passes
  int samples = 4;          // random samples, when no data is given
  int64_t data_samples = 16;  // of given data, its first ones checked (all when fewer): the f64
                              // interpreter's time grows with them (MNIST's 8,000: ~50 minutes)
  int elements = 16;        // elements checked per param (all when fewer)
  uint64_t seed = 0;        // params' init (when not given), random samples, the elements picked
  int threads = 0;          // the gradient kernel's threads (0: every core)
  bool use_cache = true;    // the kernel cache (driver/kernels.h)
  std::string cache_dir;
};

struct ParamCheck {
  std::string name;
  double worst = 0;  // worst relative error (infinity for a NaN)
  size_t checked = 0, size = 0;
};

struct GradcheckResult {
  std::vector<ParamCheck> params;
  double worst = 0, tolerance = 0;
  size_t samples = 0, data_samples = 0;  // checked; in the data given (0: random samples)
  bool passed = false;
};

// `params`: the params' arrays (read from `params_file`), or nullptr to make
// them by their init; `data`: inputs and labels batch first (from
// `data_file`), or nullptr for random samples (inputs uniform in [-1, 1],
// labels in [0, 1], a distribution normalized). Throws Error (no loss, no
// samples) or runtime::NpzError (arrays that do not fit the model).
GradcheckResult gradcheck(const LoadedModel& model, const runtime::ArrayMap* params, const std::string& params_file,
                          const runtime::ArrayMap* data, const std::string& data_file,
                          const GradcheckOptions& options);

}  // namespace nabla::driver
