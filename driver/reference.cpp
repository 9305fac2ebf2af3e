#include "driver/reference.h"

#include <unordered_map>

#include "driver/arrays.h"
#include "driver/gradient.h"
#include "driver/kernels.h"
#include "ir/interpret.h"
#include "runtime/budget.h"

namespace nabla::driver {
namespace {

using runtime::Array;
using runtime::ArrayMap;
using runtime::DType;

Array to_array(const std::vector<double>& values, std::vector<int64_t> shape, DType dtype) {
  Array a = Array::zeros(std::move(shape), DType::F64);
  a.f64.assign(values.begin(), values.end());
  return a.as(dtype);
}

}  // namespace

ArrayMap reference_eval(ir::Context& ctx, const LoweredModel& m, const ArrayMap& params, const ArrayMap& data,
                        int64_t n, bool grad, DType dtype) {
  std::unordered_map<const ir::Node*, ir::Tensor> fixed;  // params
  for (const ir::Node* p : m.params) fixed[p] = sample_tensor(params.at(p->name()), 0, p->shape());
  std::vector<const ir::Node*> per_sample(m.inputs);
  if (grad) per_sample.insert(per_sample.end(), m.labels.begin(), m.labels.end());
  std::vector<const ir::Node*> roots;
  if (grad) {
    GradientProgram p = gradient_program(ctx, m, m.params, true);
    roots.push_back(m.loss);
    roots.insert(roots.end(), p.gradients.begin(), p.gradients.end());
  } else {
    for (const auto& [name, node] : m.outputs) roots.push_back(node);
  }
  uint64_t results = 0;  // the sums below, in elements
  for (const ir::Node* r : roots) results += static_cast<uint64_t>(r->shape().numel());
  check_interpreter_memory("the f64 reference evaluation", roots,
                           runtime::product_bytes(runtime::product_bytes(results, grad ? 1 : static_cast<uint64_t>(n)),
                                                  sizeof(double)));
  std::vector<std::vector<double>> sums(roots.size());
  for (size_t r = 0; r < roots.size(); ++r)
    sums[r].assign(static_cast<size_t>(roots[r]->shape().numel() * (grad ? 1 : n)), 0.0);
  for (int64_t s = 0; s < n; ++s) {
    std::unordered_map<const ir::Node*, ir::Tensor> values = fixed;
    for (const ir::Node* v : per_sample) values[v] = sample_tensor(data.at(v->name()), s, v->shape());
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

}  // namespace nabla::driver
