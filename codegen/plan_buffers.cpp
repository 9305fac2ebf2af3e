// Buffer planning: the steps each temp is live across, then first fit.
#include "codegen/plan_buffers.h"

#include <algorithm>
#include <functional>
#include <iterator>
#include <map>
#include <queue>
#include <utility>
#include <vector>

namespace nabla::codegen {
namespace {

// The live temps of one arena: their intervals by offset, the free gaps
// between them (coalesced, below the end of the highest), and the order in
// which they die.
class Arena {
public:
  // The lowest offset where `size` elements fit between the live temps, or
  // their end; the temp stays live through step `last`.
  int64_t place(int64_t size, int last) {
    if (size == 0) return 0;  // occupies nothing
    int64_t offset = end();
    for (auto g = gaps_.begin(); g != gaps_.end(); ++g) {
      if (g->second < size) continue;
      offset = g->first;
      const int64_t rest = g->second - size;
      gaps_.erase(g);
      if (rest > 0) gaps_.emplace(offset + size, rest);
      break;
    }
    live_.emplace(offset, size);
    dying_.emplace(last, offset);
    return offset;
  }

  // Frees the temps whose last use is before step `step`.
  void expire_before(int step) {
    while (!dying_.empty() && dying_.top().first < step) {
      const int64_t offset = dying_.top().second;
      dying_.pop();
      auto it = live_.find(offset);
      int64_t lo = offset, hi = offset + it->second;
      live_.erase(it);
      auto next = gaps_.find(hi);  // a gap starting where this temp ends
      if (next != gaps_.end()) {
        hi += next->second;
        gaps_.erase(next);
      }
      auto prev = gaps_.lower_bound(lo);  // a gap ending where it starts
      if (prev != gaps_.begin() && std::prev(prev)->first + std::prev(prev)->second == lo) {
        --prev;
        lo = prev->first;
        gaps_.erase(prev);
      }
      if (hi < end()) gaps_.emplace(lo, hi - lo);  // else above every live temp: not a gap
    }
  }

private:
  int64_t end() const { return live_.empty() ? 0 : live_.rbegin()->first + live_.rbegin()->second; }

  std::map<int64_t, int64_t> live_, gaps_;  // offset -> size
  using Death = std::pair<int, int64_t>;     // last step, offset
  std::priority_queue<Death, std::vector<Death>, std::greater<Death>> dying_;
};

}  // namespace

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
  // First fit in order of first use (a buffer's index breaks ties): each
  // temp at the lowest offset free of the temps live when it starts (those
  // placed before it whose last use is not earlier). The arena keeps the
  // free gaps below the live temps' end, so a placement looks at the gaps
  // rather than every live temp, and the temps expire in order of last use
  // (a sum of 16,000 terms keeps 16,000 temps live at once: a walk over
  // them per temp was most of the lowering).
  int64_t top[2] = {0, 0};
  for (const bool batched : {false, true}) {
    std::vector<size_t> order;
    for (size_t i = 0; i < nb; ++i)
      if (p.buffers[i].kind == BufKind::Temp && p.buffers[i].batched == batched && first[i] >= 0) order.push_back(i);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return first[a] < first[b]; });
    Arena arena;
    for (const size_t i : order) {
      arena.expire_before(first[i]);
      Buffer& b = p.buffers[i];
      const int64_t size = (b.shape.numel() + 15) / 16 * 16;  // 64-byte aligned (f32)
      b.offset = arena.place(size, last[i]);
      top[batched] = std::max(top[batched], b.offset + size);
    }
  }
  p.workspace_fixed = top[0];
  p.workspace_batched = top[1];
}

}  // namespace nabla::codegen
