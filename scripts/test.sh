#!/usr/bin/env bash
# The whole test suite from a fresh machine: installs what is missing, builds
# (release, then ASan+UBSan), and runs every test in both builds: unit and
# property tests, golden tests, the layering check and the shared acceptance
# sections that pass. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

for preset in release asan; do
  echo "== $preset: configure and build"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
  echo "== $preset: tests"
  ctest --preset "$preset" -j2
done
