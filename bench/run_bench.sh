#!/usr/bin/env bash
# Side-by-side benchmarks: nabla and the peers' programs from
# ../shared/baselines, in one run, with the baselines' gating (run_step.py:
# waits for an idle machine and the "near" vCPU placement, reruns disturbed
# steps). Raw JSON lines go to build/bench-results/; bench/report.py turns them
# into the tables of bench/RESULTS.md.
#
#   bash bench/run_bench.sh            # everything (~15 min)
#   ONLY="b12 b6" bash bench/run_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SHARED=${NABLA_SHARED:-$ROOT/../shared}
PY=/usr/bin/python3
OUT=$ROOT/build/bench-results
BASE=$ROOT/build/bench-baselines

scripts/setup.sh --bench --examples
cmake --preset release >/dev/null
cmake --build --preset release
# The baselines are built from a copy, so the shared folder stays untouched.
mkdir -p "$BASE"
cp "$SHARED"/baselines/*.cpp "$SHARED"/baselines/*.hpp "$SHARED"/baselines/*.py "$SHARED"/baselines/Makefile "$BASE"/
make -C "$BASE" -j2 build/mlp_eigen build/mlp_cblas build/tiny_net build/tiny_net_fastmath \
  build/sigmoid_loop build/sigmoid_loop_fastmath build/gemm_openblas build/gemm_eigen build/c2c_latency >/dev/null

ONLY="${ONLY:-}"
want() { [[ -z "$ONLY" ]] || [[ " $ONLY " == *" $1 "* ]]; }
mkdir -p "$OUT"
if [[ -z "$ONLY" ]]; then rm -f "$OUT"/*.jsonl "$OUT"/*.meta.json; else
  for g in $ONLY; do rm -f "$OUT/${g}"_*.jsonl "$OUT/${g}"_*.meta.json; done; fi
# As the baselines' run_all.sh: freed memory stays in the heap (PyTorch eager
# is page-fault bound without it).
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=16777216:glibc.malloc.trim_threshold=1073741824
export NABLA_CACHE_DIR=$OUT/kernel-cache
step() { want "${1%%_*}" || return 0; (cd "$BASE" && "$PY" run_step.py "$OUT" "$@"); }
NABLA=$ROOT/build/nabla
M=$ROOT/bench/models

# B1 (training step) and B2 (inference): MLP 784-256-256-10.
for t in 1 2; do
  step b12_nabla_t$t -- "$NABLA" bench "$M/mlp_784_256_256_10.nn" --batch 1,32,128,1024 --threads $t --json
done
step b12_eigen -- build/mlp_eigen mlp
step b12_cblas -- build/mlp_cblas mlp
step b12_cblas_unset --unset-openblas-env -- build/mlp_cblas mlp
step b12_torch_t1 -- "$PY" bench_torch_mlp.py --threads 1 --only B1,B2
step b12_torch_t2_omp1blas2 -- "$PY" bench_torch_mlp.py --threads 1 --blas-threads 2 --only B1,B2
step b12_torch_t1_unset --unset-openblas-env -- "$PY" bench_torch_mlp.py --threads 1 --only B1,B2
step b12_torch_t2_omp1blas2_unset --unset-openblas-env -- "$PY" bench_torch_mlp.py --threads 1 --blas-threads 2 --only B1,B2
# B3: 20 x 32 sigmoid layers, batch 64.
for t in 1 2; do
  step b3_nabla_t$t -- "$NABLA" bench "$M/deep_sigmoid_20x32.nn" --batch 64 --threads $t --json
done
step b3_eigen -- build/mlp_eigen deep
# B4: 2-8-1, one gradient call at batch 1.
step b4_nabla -- "$NABLA" bench "$M/tiny_2_8_1.nn" --batch 1 --threads 1 --json
step b4_cpp -- build/tiny_net
step b4_cpp_fastmath -- build/tiny_net_fastmath
# B5: f(x; w, b) and its gradient over 1e6 points.
step b5_nabla -- "$ROOT/build/b5_scalar"
step b5_cpp -- build/sigmoid_loop
step b5_cpp_fastmath -- build/sigmoid_loop_fastmath
# B6: the GEMMs of the training step, and 1024^3 (nabla: x W^T over a batch).
step b6_nabla -- bash -c "'$NABLA' bench '$M/gemm_784_256.nn' --batch 128 --threads 1 --json --min-time 1 &&
  '$NABLA' bench '$M/gemm_256_256.nn' --batch 128 --threads 1 --json --min-time 1 &&
  '$NABLA' bench '$M/gemm_256_10.nn' --batch 128 --threads 1 --json --min-time 1 &&
  '$NABLA' bench '$M/gemm_1024_1024.nn' --batch 1024 --threads 1 --json --min-time 2"
step b6_openblas_unset --unset-openblas-env -- build/gemm_openblas
step b6_eigen -- build/gemm_eigen

# Training: the MNIST MLP, 20 epochs of plain SGD at batch 32 (issue 5).
if want train; then
  mkdir -p "$ROOT/build/data"
  [ -f "$ROOT/build/data/mnist_train.npz" ] || "$PY" "$ROOT/examples/data/make_mnist.py" "$ROOT/build/data"
fi
for t in 1 2; do
  step train_nabla_t$t -- "$PY" "$ROOT/bench/nabla_train_mnist.py" "$NABLA" "$ROOT/examples/mnist_mlp.nn" \
    "$ROOT/build/data/mnist_train.npz" "$ROOT/build/data/mnist_test.npz" --epochs 20 --batch 32 --lr 0.1 --threads $t
  step train_torch_t$t -- "$PY" "$ROOT/bench/torch_train_mnist.py" \
    "$ROOT/build/data/mnist_train.npz" "$ROOT/build/data/mnist_test.npz" --epochs 20 --batch 32 --lr 0.1 --threads $t
done

"$PY" "$ROOT/bench/report.py" "$OUT"

# A command line as pairs.py reads it (Python's shlex, whatever the path holds).
quote() { "$PY" -c 'import shlex, sys; print(shlex.join(sys.argv[1:]))' "$@"; }
# B3 again in alternating pairs: on a shared host a core's speed changes by a
# third from minute to minute, and the step above timed nabla and Eigen at
# different minutes (bench/pairs.py).
if want b3; then
  for t in 1 2; do
    echo; echo "**B3 in alternating pairs, $t thread(s)** (median_us of each program's own run)"; echo
    "$PY" "$ROOT/bench/pairs.py" --rounds 6 \
      --run nabla "kind=train_step" "$(quote "$NABLA" bench "$M/deep_sigmoid_20x32.nn" --batch 64 --threads $t --json)" \
      --run eigen "threads=$t" "$(quote "$BASE/build/mlp_eigen" deep)"
  done
fi
