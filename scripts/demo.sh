#!/usr/bin/env bash
# The main demo from a fresh machine: installs what is missing, builds nabla,
# checks every example model, prints the MLP's gradient program (textbook
# backpropagation), computes its gradient with the JIT-compiled kernels,
# checks it against finite differences, and times the kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release
N=./build/nabla
run() { echo; echo "\$ nabla ${*}"; "$N" "$@"; }
echo
$N --version
for model in examples/*.nn; do run check "$model"; done
run diff examples/mnist_mlp.nn
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$tmp" <<'PY'
import sys, numpy as np
r = np.random.default_rng(0)
x = r.uniform(0, 1, (256, 784)).astype(np.float32)
y = np.eye(10, dtype=np.float32)[r.integers(0, 10, 256)]
np.savez(sys.argv[1] + "/data.npz", x=x, y=y)
PY
run init examples/mnist_mlp.nn --seed 1 -o "$tmp/params.npz"
run grad examples/mnist_mlp.nn --params "$tmp/params.npz" --data "$tmp/data.npz" -o "$tmp/grad.npz" --time-passes
/usr/bin/python3 -c "import numpy as np; g = np.load('$tmp/grad.npz'); print('loss', g['loss'], {k: g[k].shape for k in g if k != 'loss'})"
run gradcheck examples/mnist_mlp.nn --params "$tmp/params.npz" --seed 1
run bench examples/mnist_mlp.nn --batch 1,32,256
