// nabla run / nabla grad / nabla gradcheck (docs/commands.md).
//
// run and grad compile the model's kernels (codegen/, through the on-disk
// cache) and call them on the whole batch in the requested element type; the
// gradient kernel returns the mean loss and the mean gradient
// R = (1/n) sum_i loss_i (a regularizer inside the loss is thus added once).
// `--reference` evaluates the per-sample IR with the f64 reference interpreter
// instead, one sample at a time (the oracle the kernels are tested against).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/pipeline.h"
#include "driver/arrays.h"
#include "driver/gradcheck.h"
#include "driver/reference.h"
#include "frontend/lower.h"
#include "runtime/npz.h"
#include "runtime/output.h"

namespace nabla::cli {
namespace {

using runtime::ArrayMap;
using runtime::DType;

struct RunArgs {
  std::string model, params, data, out;
  bool reference = false;
};

int run_or_grad(const RunArgs& args, bool grad, const GlobalOptions& global) {
  auto options = sema_options(global, std::cerr);
  if (!options) return kExitUserError;
  auto loaded = load_model(args.model, *options, std::cerr);
  if (!loaded) return kExitUserError;
  const CheckedModel& cm = loaded->model;
  if (grad && !cm.loss) {
    print_error(std::cerr, "'" + args.model + "' has no loss: there is no gradient to compute");
    return kExitUserError;
  }
  if (!grad && cm.outputs.empty()) {
    print_error(std::cerr, "'" + args.model + "' has no output: there is nothing to run (declare one with `output NAME`)");
    return kExitUserError;
  }
  if (args.params.empty() && !cm.params.empty()) {
    print_error(std::cerr, "'" + args.model + "' has params: give their values with --params P.npz (`nabla init` makes one)");
    return kExitUsage;
  }
  const DType dtype = dtype_of(global);
  runtime::check_output(args.out, {args.model, args.params, args.data});
  const ArrayMap params = args.params.empty() ? ArrayMap{} : runtime::read_npz(args.params);
  const ArrayMap data = runtime::read_npz(args.data);
  ir::Context ctx;
  LoweredModel m = lower_model(cm, ctx);
  const int64_t n = driver::check_arrays(m, params, args.params, data, args.data, grad, dtype);
  ArrayMap result;
  if (args.reference) {
    result = driver::reference_eval(ctx, m, params, data, n, grad, dtype);
  } else {
    PassTimes times;
    driver::CompileOptions co = compile_options(global, dtype);
    co.forward = !grad;
    co.grad = grad;
    driver::ModelKernels k = driver::compile_model_kernels(ctx, m, co, &times);
    result = times.time(grad ? "gradient kernel" : "forward kernel",
                        [&] { return grad ? k.grad(params, data, n) : k.forward(params, data, n); });
    if (global.time_passes) print_times(times, std::cerr);
  }
  runtime::write_npz(args.out, result, false, {args.model, args.params, args.data});
  return kExitOk;
}

struct GradcheckArgs {
  std::string model, params, data;
  double tolerance = 1e-6;
  std::optional<int64_t> samples;  // random ones (default 4), or the first of --data (default 16)
  int elements = 16;
};

// nabla gradcheck (driver/gradcheck.h): one line per param, then the verdict.
int run_gradcheck(const GradcheckArgs& args, const GlobalOptions& global) {
  auto options = sema_options(global, std::cerr);
  if (!options) return kExitUserError;
  auto loaded = load_model(args.model, *options, std::cerr);
  if (!loaded) return kExitUserError;
  driver::GradcheckOptions o;
  o.tolerance = args.tolerance;
  if (args.samples) {
    o.samples = static_cast<int>(*args.samples);
    o.data_samples = *args.samples;
  }
  o.elements = args.elements;
  o.seed = global.seed.value_or(0);
  o.threads = global.threads.value_or(0);
  o.use_cache = !global.no_cache;
  std::optional<ArrayMap> params, data;
  if (!loaded->model.loss) {
    print_error(std::cerr, "'" + args.model + "' has no loss: there is no gradient to check");
    return kExitUserError;
  }
  if (!args.params.empty()) params = runtime::read_npz(args.params);
  if (!args.data.empty()) data = runtime::read_npz(args.data);
  const driver::GradcheckResult r =
      driver::gradcheck(*loaded, params ? &*params : nullptr, args.params, data ? &*data : nullptr, args.data, o);
  char line[160];
  for (const driver::ParamCheck& p : r.params) {
    std::snprintf(line, sizeof line, "%-12s worst relative error %.3g (%zu of %zu elements)\n", p.name.c_str(),
                  p.worst, p.checked, p.size);
    std::cout << line;
  }
  std::snprintf(line, sizeof line, "gradcheck: %s, worst relative error %.3g (tolerance %.3g, %zu samples",
                r.passed ? "passed" : "FAILED", r.worst, r.tolerance, r.samples);
  std::cout << line;
  if (r.data_samples > r.samples)
    std::cout << " of " << r.data_samples << ": the first ones; --samples N for more";
  std::cout << ")\n";
  return r.passed ? kExitOk : kExitUserError;
}

}  // namespace

void add_gradcheck_command(CLI::App& app, const GlobalOptions& global, Action& action) {
  auto args = std::make_shared<GradcheckArgs>();
  auto* cmd = app.add_subcommand("gradcheck",
                                 "Compare the symbolic gradient with central finite differences (f64)");
  cmd->add_option("MODEL", args->model, "the .nn file")->required();
  cmd->add_option("--params", args->params, "parameters (.npz); default: made by each param's init (--seed)");
  cmd->add_option("--data", args->data, "inputs and labels (.npz, batch first); default: random samples");
  cmd->add_option("--tolerance", args->tolerance, "the largest relative error that passes (default 1e-6)")
      ->check(non_negative_number("tolerance", kMaxFactor));
  cmd->add_option("--samples", args->samples,
                  "samples checked: random ones (default 4), or the first of --data (default 16; all if fewer)")
      ->check(positive_integer("number of samples", 1 << 20));
  cmd->add_option("--elements", args->elements, "elements checked per param (default 16; all if fewer)")
      ->check(positive_integer("number of elements", 1 << 20));
  cmd->callback([args, &action, &global] { action = [args, &global] { return run_gradcheck(*args, global); }; });
}

void add_run_grad_commands(CLI::App& app, const GlobalOptions& global, Action& action) {
  for (bool grad : {false, true}) {
    auto args = std::make_shared<RunArgs>();
    auto* cmd = app.add_subcommand(
        grad ? "grad" : "run",
        grad ? "Mean loss and its gradient over a batch: arrays `loss` and one per param"
             : "Forward pass over a batch: one array per output");
    cmd->add_option("MODEL", args->model, "the .nn file")->required();
    cmd->add_option("--params", args->params, "the parameters (.npz, one array per param; not for a model without params)");
    cmd->add_option("--data", args->data,
                    grad ? "inputs and labels (.npz, batch first)" : "inputs (.npz, batch first)")
        ->required();
    cmd->add_option("-o,--output", args->out, "the .npz file to write")->required();
    cmd->add_flag("--reference", args->reference,
                  "evaluate with the f64 reference interpreter instead of compiled kernels");
    cmd->callback([args, grad, &action, &global] {
      action = [args, grad, &global] { return run_or_grad(*args, grad, global); };
    });
  }
}

}  // namespace nabla::cli
