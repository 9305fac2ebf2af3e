#!/usr/bin/env python3
"""Numeric vs symbolic differentiation (the chapter's §4.4 aside): the
central difference (f(x+h) - f(x-h)) / 2h of f(x) = sigmoid(3x) * tanh(x) at
x = 0.7, for h = 1e-1 ... 1e-12, against nabla's symbolic derivative
(`nabla diff -e ... --at`), both evaluated by nabla in f64 (`nabla eval`).
The error first falls as h^2 (truncation), then rises as 1/h (rounding):
the best h is near 1e-5, and no h reaches the symbolic derivative's accuracy.

usage: derivative_error.py [NABLA]   (default build/nabla)"""
import subprocess
import sys

nabla = sys.argv[1] if len(sys.argv) > 1 else "build/nabla"
f, x = "sigmoid(3*x) * tanh(x)", 0.7


def run(*args):
    return subprocess.run([nabla, *args], capture_output=True, text=True, check=True).stdout


symbolic = float(run("diff", "-e", f, "--wrt", "x", "--at", f"x={x!r}").split()[1])
print(f"f(x) = {f}, x = {x}")
print(f"symbolic derivative (nabla diff): {symbolic:.17g}")
print(run("diff", "-e", f, "--wrt", "x").strip())
print(f"{'h':>8}  {'central difference':>22}  {'error':>9}")
for k in range(1, 13):
    h = 10.0 ** -k
    up = float(run("eval", "-e", f, "--at", f"x={x + h!r}"))
    down = float(run("eval", "-e", f, "--at", f"x={x - h!r}"))
    fd = (up - down) / (2 * h)
    print(f"{h:8.0e}  {fd:22.17g}  {abs(fd - symbolic):9.2e}")
