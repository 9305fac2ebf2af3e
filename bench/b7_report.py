#!/usr/bin/python3
"""Merges the B7 runs of bench/run_b7.sh (one folder of JSON lines) into the
Markdown table of bench/RESULTS.md, with the ratios the goals speak of."""
import json
import statistics
import sys

out = sys.argv[1]


def load(name, key="index"):
    rows = {}
    for line in open(f"{out}/{name}"):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            if key in r and r.get("bench", "B7") == "B7":
                rows[r[key]] = r
    return rows


nabla = load("nabla.jsonl")
ginac = load("ginac.jsonl")
sdiff = load("sympy_diff.jsonl")
ssimp = load("sympy_simplify.jsonl")

print("| # | label | vars | nabla diff µs | nabla diff+simplify µs | GiNaC diff µs | SymPy diff ms | "
      "SymPy simplify ms | SymPy diff+simplify ÷ nabla diff+simplify | nabla diff ÷ GiNaC diff | "
      "nabla ops | SymPy simplified ops | SymPy cse ops |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
speedups, ginac_ratios = [], []
for i in sorted(nabla):
    n, g, d, s = nabla[i], ginac.get(i, {}), sdiff.get(i, {}), ssimp.get(i, {})
    g_us = g.get("median_us") if g.get("status") == "ok" else None
    d_ms = d["median_us"] / 1000 if "median_us" in d else None
    s_ms = s["median_us"] / 1000 if s.get("status") == "ok" else None
    speed = (d_ms + s_ms) * 1000 / n["diff_simplify_us"] if d_ms is not None and s_ms is not None else None
    ratio = n["diff_us"] / g_us if g_us else None
    if speed:
        speedups.append(speed)
    if ratio:
        ginac_ratios.append(ratio)
    fmt = lambda v, f: (f % v) if v is not None else "–"
    simp = fmt(s_ms, "%.3g") if s.get("status") == "ok" else ("> 10 s (timeout)" if s else "–")
    print(f"| {i} | {n['label']} | {n['vars']} | {n['diff_us']:.3g} | {n['diff_simplify_us']:.3g} | "
          f"{fmt(g_us, '%.3g') if g_us else 'skipped'} | {fmt(d_ms, '%.3g')} | {simp} | {fmt(speed, '%.0fx')} | "
          f"{fmt(ratio, '%.2f')} | {n['ops']} | {s.get('simplified_ops', '–')} | {d.get('cse_ops', '–')} |")
print()
print(f"- SymPy diff+simplify ÷ nabla diff+simplify, over the {len(speedups)} expressions SymPy "
      f"simplifies within its timeout: median {statistics.median(speedups):.0f}x, "
      f"min {min(speedups):.0f}x, max {max(speedups):.0f}x (goal: >= 1000x)")
print(f"- nabla diff ÷ GiNaC diff, over the {len(ginac_ratios)} expressions GiNaC parses: "
      f"median {statistics.median(ginac_ratios):.2f}, max {max(ginac_ratios):.2f} (goal: <= 2)")
print(f"- nabla diff+simplify, all 40: median {statistics.median(r['diff_simplify_us'] for r in nabla.values()):.3g} µs; "
      f"nabla ops (each shared subexpression once): sum {sum(r['ops'] for r in nabla.values())} "
      f"(SymPy cse ops of the raw derivatives: sum {sum(r.get('cse_ops', 0) for r in sdiff.values())})")
