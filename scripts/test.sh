#!/usr/bin/env bash
# The whole test suite from a fresh machine: installs what is missing, builds
# (release, then ASan+UBSan), and runs every test in both builds: unit and
# property tests, golden tests, the layering check and the shared acceptance
# sections that pass; then builds the libFuzzer targets (clang) and runs each
# for 30 s over its seed corpus (tests/fuzz/README.md). `.ci/run` calls
# exactly this.
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

echo "== fuzz: configure and build the fuzz targets"
cmake --preset fuzz >/dev/null
cmake --build build-fuzz --target fuzzers
echo "== fuzz: each target over its seed corpus"
ctest --test-dir build-fuzz/tests/fuzz -j2 --output-on-failure
