#!/usr/bin/env python3
"""A 1-D curve for the universal approximation example: t = sin(2x) + 0.3 x
on [-3, 3]. Writes curve_train.npz (2,000 points drawn with seed 0) and
curve_test.npz (500 evenly spaced points); arrays x [n, 1], t [n, 1].

usage: make_curve.py [OUT_DIR]"""
import os
import sys

import numpy as np


def f(x):
    return np.sin(2 * x) + 0.3 * x


out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(0)
x = rng.uniform(-3, 3, (2000, 1))
np.savez(os.path.join(out, "curve_train.npz"), x=x.astype(np.float32), t=f(x).astype(np.float32))
xs = np.linspace(-3, 3, 500).reshape(-1, 1)
np.savez(os.path.join(out, "curve_test.npz"), x=xs.astype(np.float32), t=f(xs).astype(np.float32))
print(f"{out}/curve_train.npz: 2000 points; {out}/curve_test.npz: 500 points")
