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
  // Steps the emitter runs as one unit: an init in its GEMM's loop (row by
  // row before the row's updates), a sum in that init's loop. What such a
  // step reads stays live to the unit's last step, or a temp first written
  // there (the init's C) could take its memory while rows split across
  // threads still read it.
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const size_t unit_end = sum_fuses_into_init(p, i) ? i + 2 : initializes_gemm(p, i) ? i + 1 : i;
    if (unit_end == i) continue;
    for_each_read(p.steps[i], [&](int buf) {
      last[static_cast<size_t>(buf)] = std::max(last[static_cast<size_t>(buf)], static_cast<int>(unit_end));
    });
  }
  // First fit in order of first use (a buffer's index breaks ties): the
  // temps still live when one starts are those placed before it whose last
  // use is not earlier, kept sorted by offset, so each placement walks the
  // live ones once (no sort of all placed temps per temp: 20,000 temps took
  // time quadratic in their number).
  struct Live {
    int64_t offset, size;
    int last;
  };
  int64_t top[2] = {0, 0};
  for (const bool batched : {false, true}) {
    std::vector<size_t> order;
    for (size_t i = 0; i < nb; ++i)
      if (p.buffers[i].kind == BufKind::Temp && p.buffers[i].batched == batched && first[i] >= 0) order.push_back(i);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return first[a] < first[b]; });
    std::vector<Live> live;  // by offset
    int at = -1;             // the step the live set is for
    for (const size_t i : order) {
      if (first[i] != at) {
        at = first[i];
        live.erase(std::remove_if(live.begin(), live.end(), [&](const Live& q) { return q.last < at; }), live.end());
      }
      Buffer& b = p.buffers[i];
      const int64_t size = (b.shape.numel() + 15) / 16 * 16;  // 64-byte aligned (f32)
      int64_t offset = 0;
      for (const Live& q : live) {
        if (offset + size <= q.offset) break;
        offset = std::max(offset, q.offset + q.size);
      }
      const Live placed{offset, size, last[i]};
      live.insert(std::upper_bound(live.begin(), live.end(), placed,
                                   [](const Live& x, const Live& y) { return x.offset < y.offset; }),
                  placed);
      top[batched] = std::max(top[batched], offset + size);
      b.offset = offset;
    }
  }
  p.workspace_fixed = top[0];
  p.workspace_batched = top[1];
}

}  // namespace nabla::codegen
