#!/usr/bin/python3
"""Compile time against model size (bench/RESULTS.md, issue 14): a chain of L
tanh layers of width 64 (`h_i = tanh(W_i @ h_{i-1} + b_i)`, mse loss), for
L = 2, 8, 32, 128, 512, compiled cold (`nabla bench --no-cache`: the model's
forward and gradient kernels, nothing cached; the shared GEMM object comes
with the build). Prints a Markdown table: milliseconds, per layer, and the
growth against linear from each L to the next.

usage: /usr/bin/python3 bench/compile_scaling.py [L ...]   (from the repository root)
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NABLA = os.path.join(ROOT, "build", "nabla")


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


def cold(path):
    out = subprocess.run([NABLA, "bench", path, "--batch", "1", "--no-cache", "--json"], capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.splitlines()[0])


def main():
    if not all(a.isdigit() and 1 <= int(a) <= 4096 for a in sys.argv[1:]):
        sys.exit(__doc__.strip().splitlines()[-1] + "\n  L: a number of layers, 1 to 4096")
    sizes = [int(a) for a in sys.argv[1:]] or [2, 8, 32, 128, 512]
    print("| L (tanh layers, width 64) | cold compile | per layer | LLVM optimize | LLVM codegen | "
          "growth / linear from the previous L |")
    print("|---|---|---|---|---|---|")
    previous = None
    with tempfile.TemporaryDirectory() as tmp:
        for layers in sizes:
            path = os.path.join(tmp, "chain%d.nn" % layers)
            with open(path, "w") as f:
                f.write(chain(layers))
            c = cold(path)
            growth = ""
            if previous:
                growth = "%.2f" % ((c["cold_ms"] / previous[1]) / (layers / previous[0]))
            print("| %d | %.0f ms | %.1f ms | %.0f ms | %.0f ms | %s |" % (
                layers, c["cold_ms"], c["cold_ms"] / layers, c["llvm_optimize_ms"], c["llvm_codegen_ms"], growth),
                flush=True)
            previous = (layers, c["cold_ms"])
    print("\n(LLVM optimize and codegen: summed over the kernels, which compile in parallel)")


if __name__ == "__main__":
    main()
