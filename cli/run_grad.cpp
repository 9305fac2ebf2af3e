// nabla run / nabla grad (spec/cli.md), on the reference interpreter.
//
// Until the JIT kernels land (codegen/), both commands evaluate the model's
// per-sample IR with the f64 reference interpreter, one sample at a time:
// outputs are stacked along the batch, and `grad` reports the mean loss and
// the mean gradient R = (1/n) sum_i loss_i (a regularizer inside the loss is
// thus added once). With --dtype f32 the inputs are read as float32, the
// arithmetic is f64, and the results are written as float32.
#include <cmath>
#include <iostream>

#include "cli/commands.h"
#include "cli/model_diff.h"
#include "cli/options.h"
#include "cli/pipeline.h"
#include "frontend/lower.h"
#include "ir/interpret.h"
#include "runtime/npz.h"

namespace nabla::cli {
namespace {

using runtime::Array;
using runtime::ArrayMap;
using runtime::DType;

struct RunArgs {
  std::string model, params, data, out;
};

// The array `name` of `file`, with the shape `expected` (after a batch axis
// when `batched`); throws NpzError naming what is wrong.
const Array& require(const ArrayMap& arrays, const std::string& file, const std::string& name,
                     const std::vector<int64_t>& expected, bool batched, int64_t* batch) {
  auto it = arrays.find(name);
  if (it == arrays.end()) {
    std::string have;
    for (const auto& [n, a] : arrays) have += (have.empty() ? "" : ", ") + n;
    throw runtime::NpzError("'" + file + "' has no array '" + name + "' (it has: " +
                            (have.empty() ? "none" : have) + ")");
  }
  const Array& a = it->second;
  std::vector<int64_t> want = expected;
  if (batched) {
    if (a.shape.empty())
      throw runtime::NpzError("array '" + name + "' in '" + file + "' has shape [] but needs a batch axis first: expected [n" +
                              (expected.empty() ? "" : ", ") + runtime::shape_str(expected).substr(1));
    if (*batch < 0) *batch = a.shape[0];
    want.insert(want.begin(), *batch);
  }
  if (a.shape != want)
    throw runtime::NpzError("array '" + name + "' in '" + file + "' has shape " + runtime::shape_str(a.shape) +
                            ", expected " + runtime::shape_str(want) +
                            (batched ? " (the batch first; every input has the same batch size)" : ""));
  return a;
}

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
  const DType dtype = global.dtype == "f32" ? DType::F32 : DType::F64;
  try {
    const ArrayMap params = runtime::read_npz(args.params);
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
        if (!m.label_distribution[i]) continue;
        const int64_t k = v->shape().numel();
        const double tol = dtype == DType::F32 ? 1e-3 : 1e-6;
        for (int64_t s = 0; s < n; ++s) {
          double total = 0;
          for (int64_t e = 0; e < k; ++e) {
            const double y = a.at(static_cast<size_t>(s * k + e));
            if (y < 0) throw runtime::NpzError("label '" + v->name() + "' is declared a distribution, but sample " + std::to_string(s) + " has a negative entry");
            total += y;
          }
          if (std::fabs(total - 1) > tol)
            throw runtime::NpzError("label '" + v->name() + "' is declared a distribution, but sample " +
                                    std::to_string(s) + " sums to " + std::to_string(total));
        }
      }
    if (n <= 0) {
      print_error(std::cerr, "'" + args.data + "' holds no samples (the model needs its inputs with a batch axis first)");
      return kExitUserError;
    }

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
    runtime::write_npz(args.out, result);
  } catch (const runtime::NpzError& e) {
    print_error(std::cerr, e.what());
    return kExitUserError;
  }
  return kExitOk;
}

}  // namespace

void add_run_grad_commands(CLI::App& app, const GlobalOptions& global, Action& action) {
  for (bool grad : {false, true}) {
    auto args = std::make_shared<RunArgs>();
    auto* cmd = app.add_subcommand(
        grad ? "grad" : "run",
        grad ? "Mean loss and its gradient over a batch: arrays `loss` and one per param"
             : "Forward pass over a batch: one array per output");
    cmd->add_option("MODEL", args->model, "the .nn file")->required();
    cmd->add_option("--params", args->params, "the parameters (.npz, one array per param)")->required();
    cmd->add_option("--data", args->data,
                    grad ? "inputs and labels (.npz, batch first)" : "inputs (.npz, batch first)")
        ->required();
    cmd->add_option("-o,--output", args->out, "the .npz file to write")->required();
    cmd->callback([args, grad, &action, &global] {
      action = [args, grad, &global] { return run_or_grad(*args, grad, global); };
    });
  }
}

}  // namespace nabla::cli
