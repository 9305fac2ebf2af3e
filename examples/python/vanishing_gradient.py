#!/usr/bin/env python3
"""The vanishing gradient (§4.6.2): the Frobenius norm of the loss gradient
with respect to each layer's weights W1 ... W8, for the 8-layer sigmoid net
(examples/deep_sigmoid.nn) and its ReLU twin (examples/deep_relu.nn), at their
initial params on one batch of the 4-class quadrants problem
(examples/data/make_quadrants.py). sigmoid' <= 1/4, so the sigmoid net's
gradient shrinks layer by layer on its way down to W1; the ReLU net's does not.

usage: PYTHONPATH=build/python /usr/bin/python3 examples/python/vanishing_gradient.py [OUT_DIR]
OUT_DIR defaults to build/pictures; writes OUT_DIR/vanishing_gradient.png."""
import argparse
import os

import matplotlib
matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np

import nabla

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("out", nargs="?", default=os.path.join(ROOT, "build", "pictures"),
                    help="the folder to write to (default: build/pictures)")
parser.add_argument("--batch", type=int, default=256)
args = parser.parse_args()

# One batch of the quadrants problem: 8-D points in [-1, 1]^8, the class the
# quadrant of the first two coordinates (as examples/data/make_quadrants.py).
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, (args.batch, 8)).astype(np.float32)
y = np.eye(4, dtype=np.float32)[(x[:, 0] > 0) + 2 * (x[:, 1] > 0)]

norms = {}
for net in ("sigmoid", "relu"):
    m = nabla.compile(os.path.join(ROOT, "examples", f"deep_{net}.nn"))
    params = m.init(seed=1)
    loss, grads = m.grad(params, {"x": x, "y": y})
    layers = [name for name in m.params if name.startswith("W")]  # W1 ... W8, input side first
    norms[net] = [float(np.linalg.norm(grads[name])) for name in layers]  # Frobenius norm
    print(f"deep_{net}: loss {loss:.4f}; |dL/dW|_F " + " ".join(f"{n} {v:.3g}" for n, v in zip(layers, norms[net])))

position = np.arange(len(layers))
fig, ax = plt.subplots(figsize=(9, 4.5))
ax.bar(position - 0.2, norms["sigmoid"], 0.4, label="deep_sigmoid.nn (sigmoid units)")
ax.bar(position + 0.2, norms["relu"], 0.4, label="deep_relu.nn (ReLU units)")
ax.set_yscale("log")
ax.set_ylim(top=20 * max(norms["relu"] + norms["sigmoid"]))  # room for the legend
ax.set_xticks(position, layers)
ax.set(xlabel="layer (input side left)", ylabel="gradient norm ||dL/dW||_F (log scale)",
       title=f"Vanishing gradients: 8 layers of 16 units at their initial params, one batch of {args.batch}")
ax.grid(axis="y", alpha=0.3)
ax.legend(loc="upper left", ncol=2)
fig.tight_layout()

os.makedirs(args.out, exist_ok=True)
path = os.path.join(args.out, "vanishing_gradient.png")
fig.savefig(path, dpi=100)
print(f"wrote {path}")
