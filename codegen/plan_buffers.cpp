// Buffer planning: the steps each temp is live across, then first fit.
#include "codegen/plan_buffers.h"

#include <algorithm>

namespace nabla::codegen {

void plan_buffers(Program& p) {
  const size_t nb = p.buffers.size();
  std::vector<int> first(nb, -1), last(nb, -1);
  auto touch = [&](int buf, int step) {
    if (buf < 0) return;
    if (first[static_cast<size_t>(buf)] < 0) first[static_cast<size_t>(buf)] = step;
    last[static_cast<size_t>(buf)] = step;
  };
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const Step& s = p.steps[i];
    const int at = static_cast<int>(i);
    touch(s.out, at);
    touch(s.c.buf, at);
    touch(s.scratch, at);
    for_each_read(s, [&](int buf) { touch(buf, at); });
  }
  struct Placed {
    int64_t offset, size;
    int first, last;
  };
  std::vector<Placed> arenas[2];
  int64_t top[2] = {0, 0};
  for (size_t i = 0; i < nb; ++i) {
    Buffer& b = p.buffers[i];
    if (b.kind != BufKind::Temp || first[i] < 0) continue;
    const int arena = b.batched ? 1 : 0;
    const int64_t size = (b.shape.numel() + 15) / 16 * 16;  // 64-byte aligned (f32)
    auto& placed = arenas[arena];
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (const Placed& q : placed)
      if (!(q.last < first[i] || last[i] < q.first)) busy.emplace_back(q.offset, q.offset + q.size);
    std::sort(busy.begin(), busy.end());
    int64_t offset = 0;
    for (const auto& [lo, hi] : busy) {
      if (offset + size <= lo) break;
      offset = std::max(offset, hi);
    }
    placed.push_back({offset, size, first[i], last[i]});
    top[arena] = std::max(top[arena], offset + size);
    b.offset = offset;
  }
  p.workspace_fixed = top[0];
  p.workspace_batched = top[1];
}

}  // namespace nabla::codegen
