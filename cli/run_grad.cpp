// nabla run / nabla grad / nabla gradcheck (spec/cli.md).
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
#include <random>
#include <iostream>

#include "cli/commands.h"
#include "cli/model_diff.h"
#include "cli/options.h"
#include "cli/pipeline.h"
#include "cli/model_kernels.h"
#include "frontend/lower.h"
#include "ir/interpret.h"
#include "runtime/init.h"
#include "runtime/npz.h"
#include "runtime/output.h"

namespace nabla::cli {
namespace {

using runtime::Array;
using runtime::ArrayMap;
using runtime::DType;

struct RunArgs {
  std::string model, params, data, out;
  bool reference = false;
};

// Sample `i` of a batched array as an IR tensor.
ir::Tensor sample(const Array& a, int64_t i, const Shape& shape) {
  ir::Tensor t = ir::Tensor::zeros(shape);
  const size_t n = t.data.size(), at = static_cast<size_t>(i) * n;
  for (size_t k = 0; k < n; ++k) t.data[k] = a.at(at + k);
  return t;
}

ir::Tensor whole(const Array& a, const Shape& shape) { return sample(a, 0, shape); }

Array to_array(const std::vector<double>& values, std::vector<int64_t> shape, DType dtype) {
  Array a = Array::zeros(std::move(shape), DType::F64);
  a.f64 = values;
  return a.as(dtype);
}

// The reference path: each sample through the f64 interpreter.
ArrayMap interpret_batch(ir::Context& ctx, const LoweredModel& m,
                         const std::vector<std::pair<const ir::Node*, const Array*>>& per_sample,
                         const std::unordered_map<const ir::Node*, ir::Tensor>& fixed, int64_t n, bool grad,
                         DType dtype) {
  std::vector<const ir::Node*> roots;
  if (grad) {
    GradientProgram p = gradient_program(ctx, m, m.params, true);
    roots.push_back(m.loss);
    roots.insert(roots.end(), p.gradients.begin(), p.gradients.end());
  } else {
    for (const auto& [name, node] : m.outputs) roots.push_back(node);
  }
  std::vector<std::vector<double>> sums(roots.size());
  for (size_t r = 0; r < roots.size(); ++r)
    sums[r].assign(static_cast<size_t>(roots[r]->shape().numel() * (grad ? 1 : n)), 0.0);
  for (int64_t s = 0; s < n; ++s) {
    std::unordered_map<const ir::Node*, ir::Tensor> values = fixed;
    for (const auto& [v, a] : per_sample) values[v] = sample(*a, s, v->shape());
    const auto out = ir::interpret(roots, [&](const ir::Node* v) {
      if (v->var_kind() == ir::VarKind::Const) return ir::Tensor::scalar(v->value());
      return values.at(v);
    });
    for (size_t r = 0; r < roots.size(); ++r) {
      const size_t k = out[r].data.size();
      for (size_t e = 0; e < k; ++e) {
        if (grad) sums[r][e] += out[r].data[e] / static_cast<double>(n);
        else sums[r][static_cast<size_t>(s) * k + e] = out[r].data[e];
      }
    }
  }
  ArrayMap result;
  if (grad) {
    result["loss"] = to_array(sums[0], {}, dtype);
    for (size_t i = 0; i < m.params.size(); ++i)
      result[m.params[i]->name()] = to_array(sums[i + 1], m.params[i]->shape().dims(), dtype);
  } else {
    for (size_t i = 0; i < m.outputs.size(); ++i) {
      std::vector<int64_t> shape = roots[i]->shape().dims();
      shape.insert(shape.begin(), n);
      result[m.outputs[i].first] = to_array(sums[i], shape, dtype);
    }
  }
  return result;
}

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
  const DType dtype = global.dtype == "f32" ? DType::F32 : DType::F64;
  try {
    runtime::check_output(args.out, {args.model, args.params, args.data});
    const ArrayMap params = args.params.empty() ? ArrayMap{} : runtime::read_npz(args.params);
    const ArrayMap data = runtime::read_npz(args.data);
    ir::Context ctx;
    LoweredModel m = lower_model(cm, ctx);

    std::unordered_map<const ir::Node*, ir::Tensor> fixed;  // params and consts
    int64_t none = -1;
    for (const ir::Node* p : m.params)
      fixed[p] = whole(require(params, args.params, p->name(), p->shape().dims(), false, &none), p->shape());
    int64_t n = -1;
    std::vector<std::pair<const ir::Node*, const Array*>> per_sample;
    for (const ir::Node* v : m.inputs)
      per_sample.emplace_back(v, &require(data, args.data, v->name(), v->shape().dims(), true, &n));
    if (grad)
      for (size_t i = 0; i < m.labels.size(); ++i) {
        const ir::Node* v = m.labels[i];
        const Array& a = require(data, args.data, v->name(), v->shape().dims(), true, &n);
        per_sample.emplace_back(v, &a);
        if (m.label_distribution[i]) check_distribution(a, v->name(), v->shape().numel(), n, dtype);
      }
    if (n <= 0) {
      print_error(std::cerr, "'" + args.data + "' holds no samples (the model needs its inputs with a batch axis first)");
      return kExitUserError;
    }

    ArrayMap result;
    if (args.reference) {
      result = interpret_batch(ctx, m, per_sample, fixed, n, grad, dtype);
    } else {
      PassTimes times;
      ModelKernels k = compile_model_kernels(ctx, m, !grad, grad, dtype, global, std::cerr, &times);
      if (!k.kernels) return kExitUserError;
      result = times.time(grad ? "gradient kernel" : "forward kernel",
                          [&] { return grad ? k.grad(params, data, n) : k.forward(params, data, n); });
      if (global.time_passes) times.print(std::cerr);
    }
    runtime::write_npz(args.out, result, false, {args.model, args.params, args.data});
  } catch (const runtime::NpzError& e) {
    print_error(std::cerr, e.what());
    return kExitUserError;
  }
  return kExitOk;
}

struct GradcheckArgs {
  std::string model, params, data;
  double tolerance = 1e-6;
  int samples = 4;
  int elements = 16;
};

// nabla gradcheck: the compiled gradient (the f64 gradient kernel `grad`
// runs) against central finite differences of the mean loss, in f64 (step 1e-5 max(1, |x|);
// error |g - fd| / max(|g|, |fd|, 1e-3)). Params and data come
// from files, or are made: params by their init, inputs uniform in [-1, 1],
// labels uniform in [0, 1] (normalized to sum to 1 for a distribution).
int run_gradcheck(const GradcheckArgs& args, const GlobalOptions& global) {
  auto options = sema_options(global, std::cerr);
  if (!options) return kExitUserError;
  auto loaded = load_model(args.model, *options, std::cerr);
  if (!loaded) return kExitUserError;
  if (!loaded->model.loss) {
    print_error(std::cerr, "'" + args.model + "' has no loss: there is no gradient to check");
    return kExitUserError;
  }
  ir::Context ctx;
  LoweredModel m = lower_model(loaded->model, ctx);
  const uint64_t seed = global.seed.value_or(0);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unit(0, 1);
  try {
    // Params.
    std::unordered_map<const ir::Node*, ir::Tensor> values;
    ArrayMap params;
    if (!args.params.empty()) {
      params = runtime::read_npz(args.params);
    } else {
      std::vector<runtime::ParamInit> inits;
      for (const ParamDecl& p : loaded->model.params)
        inits.push_back({p.name, p.shape.dims(), kind_of(p.init.kind), p.init.a, p.init.b});
      params = runtime::initialize(inits, seed, DType::F64);
    }
    int64_t none = -1;
    for (const ir::Node* p : m.params)
      values[p] = whole(require(params, args.params.empty() ? "(initialized)" : args.params, p->name(),
                              p->shape().dims(), false, &none), p->shape());
    // Data: one map per sample.
    std::vector<std::unordered_map<const ir::Node*, ir::Tensor>> samples;
    std::vector<const ir::Node*> per_sample(m.inputs);
    per_sample.insert(per_sample.end(), m.labels.begin(), m.labels.end());
    if (!args.data.empty()) {
      const ArrayMap data = runtime::read_npz(args.data);
      int64_t n = -1;
      std::vector<const Array*> arrays;
      for (const ir::Node* v : per_sample) {
        arrays.push_back(&require(data, args.data, v->name(), v->shape().dims(), true, &n));
        // The same label checks as grad and train: a distribution sums to one.
        const size_t index = static_cast<size_t>(v->var_index());
        if (v->var_kind() == ir::VarKind::Label && m.label_distribution[index])
          check_distribution(*arrays.back(), v->name(), v->shape().numel(), n, DType::F64);
      }
      check_batch_memory("'" + args.data + "' in f64", n, elements_per_sample(per_sample), 8);
      for (int64_t i = 0; i < n; ++i) {
        samples.emplace_back();
        for (size_t k = 0; k < per_sample.size(); ++k) samples.back()[per_sample[k]] = sample(*arrays[k], i, per_sample[k]->shape());
      }
    } else {
      for (int i = 0; i < args.samples; ++i) {
        samples.emplace_back();
        for (const ir::Node* v : per_sample) {
          ir::Tensor t = ir::Tensor::zeros(v->shape());
          const bool label = v->var_kind() == ir::VarKind::Label;
          double total = 0;
          for (double& d : t.data) total += (d = label ? unit(rng) : 2 * unit(rng) - 1);
          const size_t index = static_cast<size_t>(v->var_index());
          if (label && index < m.label_distribution.size() && m.label_distribution[index])
            for (double& d : t.data) d /= total;
          samples.back()[v] = t;
        }
      }
    }
    if (samples.empty()) {
      print_error(std::cerr, "no samples to check the gradient on");
      return kExitUserError;
    }
    auto value_of = [&](const std::unordered_map<const ir::Node*, ir::Tensor>& s) {
      return [&](const ir::Node* v) {
        if (v->var_kind() == ir::VarKind::Const) return ir::Tensor::scalar(v->value());
        auto it = s.find(v);
        return it != s.end() ? it->second : values.at(v);
      };
    };
    // The compiled gradient (the f64 gradient kernel, as `grad` runs it) over
    // the samples as one batch.
    std::vector<std::vector<double>> grad(m.params.size());
    {
      const int64_t n = static_cast<int64_t>(samples.size());
      ArrayMap batch, fixed_params;
      for (const ir::Node* v : per_sample) {
        std::vector<int64_t> shape = v->shape().dims();
        shape.insert(shape.begin(), n);
        Array a = Array::zeros(shape, DType::F64);
        const size_t k = static_cast<size_t>(v->shape().numel());
        for (size_t s = 0; s < samples.size(); ++s)
          std::copy(samples[s].at(v).data.begin(), samples[s].at(v).data.end(), a.f64.begin() + static_cast<long>(s * k));
        batch[v->name()] = std::move(a);
      }
      for (const ir::Node* p : m.params) fixed_params[p->name()] = to_array(values.at(p).data, p->shape().dims(), DType::F64);
      GlobalOptions g64 = global;
      g64.dtype = "f64";
      ModelKernels kernels = compile_model_kernels(ctx, m, false, true, DType::F64, g64, std::cerr);
      if (!kernels.kernels) return kExitUserError;
      const ArrayMap g = kernels.grad(fixed_params, batch, n);
      for (size_t k = 0; k < m.params.size(); ++k) grad[k] = g.at(m.params[k]->name()).f64;
    }
    // The mean loss, from the lowered (unsimplified) loss: an oracle
    // independent of the simplifier and the differentiator.
    const ir::Node* loss = m.loss;
    auto mean_loss = [&] {
      double total = 0;
      for (const auto& s : samples) total += ir::interpret(std::span<const ir::Node* const>(&loss, 1), value_of(s))[0].item();
      return total / static_cast<double>(samples.size());
    };
    double worst = 0;
    for (size_t k = 0; k < m.params.size(); ++k) {
      ir::Tensor& theta = values[m.params[k]];
      const size_t size = theta.data.size();
      std::vector<size_t> picks;
      if (size <= static_cast<size_t>(args.elements)) {
        for (size_t e = 0; e < size; ++e) picks.push_back(e);
      } else {
        std::uniform_int_distribution<size_t> any(0, size - 1);
        for (int e = 0; e < args.elements; ++e) picks.push_back(any(rng));
      }
      double param_worst = 0;
      for (size_t e : picks) {
        const double x0 = theta.data[e], h = 1e-5 * std::max(1.0, std::fabs(x0));
        theta.data[e] = x0 + h;
        const double up = mean_loss();
        theta.data[e] = x0 - h;
        const double down = mean_loss();
        theta.data[e] = x0;
        const double fd = (up - down) / (2 * h), g = grad[k][e];
        // Relative to the larger of the two, and to at least 1e-3: below that
        // the differences' own rounding (~1e-11) would dominate.
        const double rel = std::fabs(g - fd) / std::max({std::fabs(g), std::fabs(fd), 1e-3});
        param_worst = std::max(param_worst, std::isnan(rel) ? INFINITY : rel);
      }
      worst = std::max(worst, param_worst);
      char line[160];
      std::snprintf(line, sizeof line, "%-12s worst relative error %.3g (%zu of %zu elements)\n",
                    m.params[k]->name().c_str(), param_worst, picks.size(), size);
      std::cout << line;
    }
    char line[160];
    std::snprintf(line, sizeof line, "gradcheck: %s, worst relative error %.3g (tolerance %.3g, %zu samples)\n",
                  worst <= args.tolerance ? "passed" : "FAILED", worst, args.tolerance, samples.size());
    std::cout << line;
    return worst <= args.tolerance ? kExitOk : kExitUserError;
  } catch (const runtime::NpzError& e) {
    print_error(std::cerr, e.what());
    return kExitUserError;
  }
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
