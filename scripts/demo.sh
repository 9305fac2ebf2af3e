#!/usr/bin/env bash
# The main demo from a fresh machine: installs what is missing, builds nabla,
# and checks every example model, printing the summary of each.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release
echo
./build/nabla --version
for model in examples/*.nn; do
  echo
  echo "\$ nabla check $model"
  ./build/nabla check "$model"
done
