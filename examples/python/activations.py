#!/usr/bin/env python3
"""The twelve activation functions of the chapter (§4.1) and their
derivatives, one panel each. Every function is an expression in nabla's
language, compiled with nabla.lambdify; every derivative is the compiled
f.grad, and its simplified text (f.derivatives, as nabla prints it) is the
panel's title.

usage: PYTHONPATH=build/python /usr/bin/python3 examples/python/activations.py [OUT_DIR]
OUT_DIR defaults to build/pictures; writes OUT_DIR/activations.png."""
import argparse
import os
import textwrap

import matplotlib
matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np

import nabla

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (name, expression, its arguments, the values of the arguments after x)
ACTIVATIONS = [
    ("logistic", "sigmoid(x)", ["x"], []),
    ("tanh", "tanh(x)", ["x"], []),
    ("hard logistic", "hard_sigmoid(x)", ["x"], []),
    ("hard tanh", "hard_tanh(x)", ["x"], []),
    ("ReLU", "relu(x)", ["x"], []),
    ("leaky ReLU", "leaky_relu(x, gamma=0.1)", ["x"], []),
    ("PReLU (a = 0.25)", "prelu(x, a)", ["x", "a"], [0.25]),  # a is a learned parameter
    ("ELU", "elu(x)", ["x"], []),
    ("softplus", "softplus(x)", ["x"], []),
    ("swish", "swish(x)", ["x"], []),
    ("GELU", "gelu(x)", ["x"], []),
    ("maxout of two pieces", "max(1.5 * x + 0.5, -0.5 * x)", ["x"], []),
]

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("out", nargs="?", default=os.path.join(ROOT, "build", "pictures"),
                    help="the folder to write to (default: build/pictures)")
args = parser.parse_args()

x = np.linspace(-4, 4, 801)
fig, axes = plt.subplots(3, 4, figsize=(18, 14))
for ax, (name, expr, arg_names, extra) in zip(axes.flat, ACTIVATIONS):
    f = nabla.lambdify(expr, arg_names, dtype="float64")
    y = f(x, *extra)
    partials = f.grad(x, *extra)  # one array per argument: df/dx, then df/da for PReLU
    print(f"{name}: f = {f.source}")
    ax.plot(x, y, label=f"f = {f.source}")
    title = [name]
    for arg, partial, style in zip(arg_names, partials, ("--", ":")):
        text = f.derivatives[arg]  # the simplified derivative, as nabla prints it
        print(f"    df/d{arg} = " + text.replace("\n", "; "))
        ax.plot(x, partial, style, label=f"df/d{arg}")
        # Shared subexpressions are `t1 = ...` lines; long lines are wrapped.
        lines = [w for line in text.split("\n") for w in textwrap.wrap(line, 52, subsequent_indent="    ")]
        title.append(f"df/d{arg}: " + "\n".join(lines))
    ax.axhline(0, color="gray", lw=0.5)
    ax.axvline(0, color="gray", lw=0.5)
    ax.set_ylim(-1.5, 3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("\n".join(title), fontsize=8, family="monospace", loc="left")
fig.suptitle("The chapter's activations (solid) and their derivatives (dashed; PReLU's df/da dotted), "
             "computed and printed by nabla.lambdify")
fig.tight_layout()

os.makedirs(args.out, exist_ok=True)
path = os.path.join(args.out, "activations.png")
fig.savefig(path, dpi=90)
print(f"wrote {path}")
