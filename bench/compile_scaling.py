#!/usr/bin/python3
"""Compile time against model size (bench/RESULTS.md, issue 14), compiled cold
(`nabla bench --no-cache`: the model's forward and gradient kernels, nothing
cached; the shared GEMM object comes with the build), in two series:

- a chain of L tanh layers of width 64 (`h_i = tanh(W_i @ h_{i-1} + b_i)`,
  mse loss), L = 2, 8, 32, 128, 512: many small loops and GEMMs;
- a sum of K sines written term by term (`sum(sin(1 * W * x) + ... + sin(K
  * W * x))`, W and x of 8 elements), K = 250, 500, 1000, 2000, 4000: wide
  elementwise code, thousands of temps live at once.

Prints a Markdown table per series: milliseconds, per layer or term, peak
memory of the process, and the growth against linear from each size to the
next.

usage: [NABLA=PATH] /usr/bin/python3 bench/compile_scaling.py [L ...] [--sums K ...]   (from the repository root)
"""
import json
import os
import resource
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NABLA = os.environ.get("NABLA") or os.path.join(ROOT, "build", "nabla")  # NABLA=PATH: another build


def chain(layers, width=64):
    lines = ["model chain%d" % layers, "input x : [%d]" % width, "label y : [%d]" % width]
    for i in range(1, layers + 1):
        lines += ["param W%d : [%d, %d] init xavier_normal" % (i, width, width), "param b%d : [%d]" % (i, width)]
    prev = "x"
    for i in range(1, layers + 1):
        lines.append("h%d = tanh(W%d @ %s + b%d)" % (i, i, prev, i))
        prev = "h%d" % i
    lines += ["output %s" % prev, "loss mse(y, %s)" % prev]
    return "\n".join(lines) + "\n"


def sines(terms):
    body = " + ".join("sin(%d * W * x)" % k for k in range(1, terms + 1))
    return "model sines%d\ninput x : [8]\nparam W : [8]\nloss sum(%s)\n" % (terms, body)


def cold(path):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run([NABLA, "bench", path, "--batch", "1", "--no-cache", "--json", "--min-time", "0.01"],
                         capture_output=True, text=True, check=True).stdout
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KB, the largest child so far
    c = json.loads(out.splitlines()[0])
    c["peak_mb"] = "%.0f MB" % (peak / 1024) if peak > before else "<= %.0f MB" % (peak / 1024)
    return c


def series(title, unit, sizes, text, tmp):
    print("| %s | cold compile | per %s | LLVM optimize | LLVM codegen | peak memory | "
          "growth / linear from the previous |" % (title, unit))
    print("|---|---|---|---|---|---|---|")
    previous = None
    for size in sizes:
        path = os.path.join(tmp, "m%d.nn" % size)
        with open(path, "w") as f:
            f.write(text(size))
        c = cold(path)
        growth = ""
        if previous:
            growth = "%.2f" % ((c["cold_ms"] / previous[1]) / (size / previous[0]))
        print("| %d | %.0f ms | %.2f ms | %.0f ms | %.0f ms | %s | %s |" % (
            size, c["cold_ms"], c["cold_ms"] / size, c["llvm_optimize_ms"], c["llvm_codegen_ms"], c["peak_mb"],
            growth), flush=True)
        previous = (size, c["cold_ms"])
    print()


def main():
    args = sys.argv[1:]
    cut = args.index("--sums") if "--sums" in args else len(args)
    chain_args, sum_args = args[:cut], args[cut + 1:]
    if not all(a.isdigit() and 1 <= int(a) <= 4096 for a in chain_args + sum_args):
        sys.exit(__doc__.strip().splitlines()[-1] + "\n  L, K: numbers of layers or terms, 1 to 4096")
    chains = [int(a) for a in chain_args] or ([] if sum_args else [2, 8, 32, 128, 512])
    sums = [int(a) for a in sum_args] or ([] if chain_args else [250, 500, 1000, 2000, 4000])
    with tempfile.TemporaryDirectory() as tmp:
        if chains:
            series("L (tanh layers, width 64)", "layer", chains, chain, tmp)
        if sums:
            series("K (sines summed)", "term", sums, sines, tmp)
    print("(LLVM optimize and codegen: summed over the kernels, which compile in parallel; peak memory: the\n"
          "whole `nabla bench` process, which compiles twice: once timed, once to run)")


if __name__ == "__main__":
    main()
