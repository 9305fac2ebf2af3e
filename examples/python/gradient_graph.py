#!/usr/bin/env python3
"""The gradient graph of the MNIST MLP (examples/mnist_mlp.nn) as a picture:
m.graph(grad=True) gives the simplified gradient program as Graphviz DOT
(what `nabla graph --grad` prints), and Graphviz's `dot -Tsvg` draws it. The
ellipses are inputs, labels, params and consts; the boxes are operations with
their per-sample shapes; d/dW1 ... d/db2 mark the gradients.

usage: PYTHONPATH=build/python /usr/bin/python3 examples/python/gradient_graph.py [OUT_DIR] [--model MODEL.nn]
OUT_DIR defaults to build/pictures; writes OUT_DIR/<model>_gradient.svg (and the .dot).
Needs Graphviz (Debian's `graphviz`)."""
import argparse
import os
import shutil
import subprocess
import sys

import nabla

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("out", nargs="?", default=os.path.join(ROOT, "build", "pictures"),
                    help="the folder to write to (default: build/pictures)")
parser.add_argument("--model", default=os.path.join(ROOT, "examples", "mnist_mlp.nn"))
args = parser.parse_args()

if shutil.which("dot") is None:
    sys.exit("gradient_graph.py: Graphviz's `dot` is not installed (apt-get install graphviz)")

m = nabla.compile(args.model)
dot_text = m.graph(grad=True)  # the same text as m.gradient_program(format="dot")
print(m.gradient_program())    # the program the graph draws, as `nabla diff` prints it

os.makedirs(args.out, exist_ok=True)
base = os.path.join(args.out, f"{m.name}_gradient")
with open(base + ".dot", "w") as f:
    f.write(dot_text)
subprocess.run(["dot", "-Tsvg", "-o", base + ".svg"], input=dot_text, text=True, check=True)
print(f"wrote {base}.dot and {base}.svg")
