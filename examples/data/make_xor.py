#!/usr/bin/env python3
"""XOR: the four points of {0,1}^2 with their XOR, repeated 64 times (so a
minibatch holds several copies). Writes xor.npz (x [256, 2], y [256, 1]).

usage: make_xor.py [OUT_DIR]"""
import os
import sys

import numpy as np

out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
y = np.array([[0], [1], [1], [0]], dtype=np.float32)
np.savez(os.path.join(out, "xor.npz"), x=np.tile(x, (64, 1)), y=np.tile(y, (64, 1)))
print(f"{out}/xor.npz: 256 samples (the 4 XOR points x 64)")
