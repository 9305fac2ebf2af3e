// Whatever `nabla diff` prints parses back and means the same: for every
// example and acceptance model, the printed gradient program is turned into
// a .nn file (its bindings as lets, each gradient an output), checked,
// lowered and evaluated on random data, and compared with the gradients it
// was printed from.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "driver/gradient.h"
#include "frontend/lower.h"
#include "ir/interpret.h"
#include "ir/print.h"
#include "random_ir.h"
#include "test_util.h"

namespace nabla {
namespace {

std::vector<std::string> model_files() {
  std::vector<std::string> out;
  for (const char* dir : {NABLA_SOURCE_DIR "/examples", NABLA_SOURCE_DIR "/../shared/acceptance/models"}) {
    if (!std::filesystem::exists(dir)) continue;
    for (const auto& entry : std::filesystem::directory_iterator(dir))
      if (entry.path().extension() == ".nn") out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(RoundTrip, PrintedGradientProgramsParseBackToTheSameValues) {
  const auto files = model_files();
  ASSERT_GE(files.size(), 8u);
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    auto c = test::check(read(path));
    ASSERT_EQ(c.errors, "");
    if (!c.model.loss) continue;
    ir::Context ctx;
    LoweredModel m = lower_model(c.model, ctx);
    driver::GradientProgram p = driver::gradient_program(ctx, m, m.params, true);
    ir::PrintOptions po;
    po.names = p.names;
    po.bind_named = true;
    ir::Printed printed = ir::print_text(p.gradients, po);

    // The model's declarations, labels as inputs (outputs may not use labels).
    std::string text;
    auto decl = [&](const char* kw, const ir::Node* v) {
      text += std::string(kw) + " " + v->name() + " : " + v->shape().str() + "\n";
    };
    for (const ir::Node* v : m.inputs) decl("input", v);
    for (const ir::Node* v : m.labels) decl("input", v);
    for (const ir::Node* v : m.params) decl("param", v);
    for (const ir::Node* v : m.consts) text += "const " + v->name() + " = " + ir::format_number(v->value()) + "\n";
    for (const auto& [name, expr] : printed.bindings) text += name + " = " + expr + "\n";
    for (size_t i = 0; i < m.params.size(); ++i)
      text += "output grad_" + m.params[i]->name() + " = " + printed.roots[i] + "\n";
    auto back = test::check(text);
    ASSERT_EQ(back.errors, "") << text;
    ir::Context ctx2;
    LoweredModel m2 = lower_model(back.model, ctx2);

    // Random values, by name, for both graphs.
    std::mt19937 rng(3);
    std::map<std::string, ir::Tensor> values;
    for (const auto* list : {&m.inputs, &m.labels, &m.params})
      for (const ir::Node* v : *list) {
        ir::Tensor t = ir::Tensor::zeros(v->shape());
        for (double& d : t.data) d = std::uniform_real_distribution<double>(-1, 1)(rng);
        values[v->name()] = t;
      }
    // A label declared `distribution` is non-negative and sums to 1.
    for (size_t i = 0; i < m.labels.size(); ++i) {
      if (!m.label_distribution[i]) continue;
      ir::Tensor& t = values[m.labels[i]->name()];
      double total = 0;
      for (double& d : t.data) total += (d = std::fabs(d));
      for (double& d : t.data) d /= total;
    }
    auto by_name = [&](const ir::Node* v) {
      return v->var_kind() == ir::VarKind::Const ? ir::Tensor::scalar(v->value()) : values.at(v->name());
    };
    const auto original = ir::interpret(p.gradients, by_name);
    std::vector<const ir::Node*> reparsed;
    for (const auto& [name, node] : m2.outputs) reparsed.push_back(node);
    const auto again = ir::interpret(reparsed, by_name);
    for (size_t i = 0; i < original.size(); ++i)
      for (size_t e = 0; e < original[i].data.size(); ++e)
        EXPECT_TRUE(test::close(again[i].data[e], original[i].data[e], 1e-12, 1e-14))
            << m.params[i]->name() << "[" << e << "]\n" << text;

    // And the gradients are right: central differences of the loss, up to 12
    // elements of each param (an element at a kink, where two step sizes
    // disagree, is skipped).
    const ir::Node* loss = m.loss;
    auto loss_at = [&] { return ir::interpret(std::span<const ir::Node* const>(&loss, 1), by_name)[0].item(); };
    int compared = 0;
    for (size_t i = 0; i < m.params.size(); ++i) {
      ir::Tensor& t = values[m.params[i]->name()];
      for (size_t e = 0; e < std::min<size_t>(12, t.data.size()); ++e) {
        auto fd = [&](double h) {
          const double x0 = t.data[e];
          t.data[e] = x0 + h;
          const double up = loss_at();
          t.data[e] = x0 - h;
          const double down = loss_at();
          t.data[e] = x0;
          return (up - down) / (2 * h);
        };
        const double d1 = fd(1e-5), d2 = fd(5e-6);
        if (!test::close(d1, d2, 1e-5, 1e-8)) continue;
        ++compared;
        EXPECT_TRUE(test::close(original[i].data[e], d2, 1e-5, 1e-8))
            << "d loss / d " << m.params[i]->name() << "[" << e << "] = " << original[i].data[e]
            << ", finite differences " << d2;
      }
    }
    EXPECT_GT(compared, 0);
  }
}

}  // namespace
}  // namespace nabla
