// Buffer planning (codegen/plan_buffers.h), property-tested on random
// programs: temps live at the same time never share memory, every temp lies
// within its arena's workspace at a 64-byte boundary, and memory is reused
// once a temp is dead.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "codegen/plan_buffers.h"
#include "codegen/program.h"

namespace nabla {
namespace {

using codegen::BufKind;
using codegen::Expr;
using codegen::Program;
using codegen::Step;

Expr load(int buf) {
  Expr e;
  e.kind = Expr::Kind::Load;
  e.access.buf = buf;
  e.access.strides = {1};
  return e;
}

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

}  // namespace
}  // namespace nabla
