#!/usr/bin/env python3
"""A 4-class problem for the deep nets (deep_sigmoid.nn, deep_relu.nn): 8-D
points uniform in [-1, 1]^8, the class the quadrant of the first two
coordinates. Writes quadrants.npz (x [2000, 8], y [2000, 4] one-hot).

usage: make_quadrants.py [OUT_DIR]"""
import os
import sys

import numpy as np

out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(0)
x = rng.uniform(-1, 1, (2000, 8)).astype(np.float32)
c = (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0)
np.savez(os.path.join(out, "quadrants.npz"), x=x, y=np.eye(4, dtype=np.float32)[c])
print(f"{out}/quadrants.npz: 2000 points, 4 classes")
