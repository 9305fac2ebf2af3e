// Buffer planning (codegen/plan_buffers.h), property-tested on random
// programs: temps live at the same time never share memory, every temp lies
// within its arena's workspace at a 64-byte boundary, and memory is reused
// once a temp is dead.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "codegen/plan_buffers.h"
#include "codegen/program.h"
#include "program_steps.h"

namespace nabla {
namespace {

using codegen::BufKind;
using codegen::Expr;
using codegen::Program;
using codegen::Step;

Expr load(int buf) { return test::load(buf, {1}); }

// A program of `steps` elementwise steps over `temps` temps (batched or not,
// 0 to 200 elements) and one input; each step writes a temp and reads up to
// four buffers written before it.
Program random_program(std::mt19937& rng, int temps, int steps) {
  Program p;
  p.dtype = ir::DType::F32;
  p.buffers.push_back({BufKind::Input, 0, true, Shape{4}, "x"});
  for (int t = 0; t < temps; ++t) {
    codegen::Buffer b;
    b.kind = BufKind::Temp;
    b.batched = rng() % 2 == 0;
    b.shape = Shape{static_cast<int64_t>(rng() % 201)};
    b.name = "t" + std::to_string(t);
    p.buffers.push_back(b);
  }
  std::vector<int> written{0};
  for (int s = 0; s < steps; ++s) {
    Step st;
    st.out = 1 + static_cast<int>(rng() % static_cast<unsigned>(temps));
    const int reads = 1 + static_cast<int>(rng() % 4);
    for (int r = 0; r < reads; ++r) st.exprs.push_back(load(written[rng() % written.size()]));
    st.root = 0;
    p.steps.push_back(st);
    written.push_back(st.out);
  }
  return p;
}

TEST(PlanBuffers, LiveTempsNeverShareMemory) {
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    const int temps = 1 + static_cast<int>(rng() % 60), steps = 1 + static_cast<int>(rng() % 120);
    Program p = random_program(rng, temps, steps);
    codegen::plan_buffers(p);
    const size_t nb = p.buffers.size();
    std::vector<int> first(nb, -1), last(nb, -1);
    for (size_t i = 0; i < p.steps.size(); ++i) {
      auto touch = [&](int b) {
        if (first[static_cast<size_t>(b)] < 0) first[static_cast<size_t>(b)] = static_cast<int>(i);
        last[static_cast<size_t>(b)] = static_cast<int>(i);
      };
      touch(p.steps[i].out);
      codegen::for_each_read(p.steps[i], touch);
    }
    int64_t total[2] = {0, 0};
    for (size_t a = 0; a < nb; ++a) {
      const codegen::Buffer& x = p.buffers[a];
      if (x.kind != BufKind::Temp || first[a] < 0) continue;
      const int64_t xs = x.shape.numel();
      total[x.batched] += (xs + 15) / 16 * 16;
      EXPECT_EQ(x.offset % 16, 0) << x.name;
      EXPECT_GE(x.offset, 0);
      EXPECT_LE(x.offset + xs, x.batched ? p.workspace_batched : p.workspace_fixed) << x.name;
      for (size_t b = a + 1; b < nb; ++b) {
        const codegen::Buffer& y = p.buffers[b];
        if (y.kind != BufKind::Temp || first[b] < 0 || y.batched != x.batched) continue;
        const bool live_together = !(last[a] < first[b] || last[b] < first[a]);
        const int64_t ys = y.shape.numel();
        const bool share = x.offset < y.offset + ys && y.offset < x.offset + xs;
        EXPECT_FALSE(live_together && share && xs > 0 && ys > 0)
            << "round " << round << ": " << x.name << " [" << first[a] << ", " << last[a] << "] at " << x.offset
            << " and " << y.name << " [" << first[b] << ", " << last[b] << "] at " << y.offset;
      }
    }
    EXPECT_LE(p.workspace_fixed, total[0]);
    EXPECT_LE(p.workspace_batched, total[1]);
  }
}

// A chain of temps each read only by the next step: two live at a time, so
// the workspace holds two of them however long the chain (memory reused).
TEST(PlanBuffers, DeadTempsMemoryIsReused) {
  Program p;
  p.dtype = ir::DType::F32;
  p.buffers.push_back({BufKind::Input, 0, true, Shape{32}, "x"});
  int prev = 0;
  for (int t = 0; t < 1000; ++t) {
    p.buffers.push_back({BufKind::Temp, 0, true, Shape{32}, "t" + std::to_string(t)});
    Step st;
    st.out = static_cast<int>(p.buffers.size()) - 1;
    st.exprs.push_back(load(prev));
    st.root = 0;
    p.steps.push_back(st);
    prev = st.out;
  }
  codegen::plan_buffers(p);
  EXPECT_EQ(p.workspace_batched, 64);
  EXPECT_EQ(p.workspace_fixed, 0);
}

// A sum computed in the loop that initializes a GEMM's C (sum_fuses_into_init)
// reads its matrix row by row as C's rows are written, on several threads:
// a temp the sum alone reads must not share memory with C, although its last
// reader (the sum) comes before C's first writer (the init).
TEST(PlanBuffers, WhatAFusedSumReadsOutlivesItsUnit) {
  using codegen::StepKind;
  Program p;
  p.dtype = ir::DType::F32;
  // %0 W [4, 3], %1 T [4, 3] (W squared), %2 the sum, %3 C [4, 3], %4 A [n][4], %5 B [n][3], %6 the loss
  p.buffers = {{BufKind::Param, 0, false, Shape{4, 3}, "W"}, {BufKind::Temp, 0, false, Shape{4, 3}, "T"},
               {BufKind::Temp, 0, false, Shape{}, "s"},      {BufKind::Temp, 0, false, Shape{4, 3}, "C"},
               {BufKind::Input, 0, true, Shape{4}, "a"},      {BufKind::Input, 1, true, Shape{3}, "b"},
               {BufKind::Loss, 0, false, Shape{}, "loss"}};
  auto matrix_load = [](int buf) { return test::load(buf, {3, 1}); };
  Step square;  // T = W * W
  square.out = 1;
  square.shape = Shape{4, 3};
  square.exprs = {matrix_load(0), matrix_load(0), test::apply(ir::Op::Mul, {0, 1})};
  square.root = 2;
  Step sum;  // s = sum(T)
  sum.kind = StepKind::Reduce;
  sum.op = ir::Op::Sum;
  sum.out = 2;
  sum.shape = Shape{4, 3};
  sum.reduced = {true, true};
  sum.exprs = {matrix_load(1)};
  sum.root = 0;
  Step init;  // C = W
  init.out = 3;
  init.shape = Shape{4, 3};
  init.exprs = {matrix_load(0)};
  init.root = 0;
  Step loss;  // loss = s
  loss.out = 6;
  loss.exprs = {test::load(2, {})};
  loss.root = 0;
  p.steps = {square, sum, init, test::gradient_gemm_4x3(4, 5, 3), loss};
  ASSERT_TRUE(codegen::sum_fuses_into_init(p, 1)) << p.str();
  codegen::plan_buffers(p);
  const codegen::Buffer &t = p.buffers[1], &c = p.buffers[3];
  EXPECT_TRUE(t.offset + 12 <= c.offset || c.offset + 12 <= t.offset) << p.str();
}

}  // namespace
}  // namespace nabla
