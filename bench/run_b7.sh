#!/usr/bin/env bash
# B7 side by side in one run: nabla (bench/b7_symdiff) against the baselines'
# SymPy diff, SymPy simplify and GiNaC diff on the same 40-expression corpus,
# then the table (bench/b7_report.py). Takes about 4 minutes.
#
#   bench/run_b7.sh [BUILD_DIR]        (default: build; run from the repo root)
#
# Installs what the baselines need (python3-sympy, libginac-dev) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SHARED=../shared/baselines
OUT=$(mktemp -d)
for p in python3-sympy libginac-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Installing prints to stderr: standard output is the table (RESULTS.md B7).
if [ -n "${missing[*]:-}" ]; then apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; fi

cmake --build "$BUILD" --target b7_symdiff >/dev/null
cp -r "$SHARED" "$OUT/baselines"
(cd "$OUT/baselines" && make -s build/symdiff_ginac >/dev/null)

bench/b7_translate.py "$SHARED/corpus.txt" > "$OUT/corpus.nn-expr"
echo "b7: nabla" >&2
"$BUILD/b7_symdiff" "$OUT/corpus.nn-expr" "$SHARED/corpus_labels.txt" > "$OUT/nabla.jsonl"
cd "$OUT/baselines"
echo "b7: GiNaC" >&2
build/symdiff_ginac corpus.txt corpus_labels.txt > "$OUT/ginac.jsonl"
echo "b7: SymPy diff" >&2
/usr/bin/python3 bench_b7_sympy.py --what diff > "$OUT/sympy_diff.jsonl"
echo "b7: SymPy simplify" >&2
for range in "0 25" "25 28" "28 40"; do
  set -- $range
  /usr/bin/python3 bench_b7_sympy.py --what simplify --start "$1" --end "$2" >> "$OUT/sympy_simplify.jsonl"
done
cd - >/dev/null
/usr/bin/python3 bench/b7_report.py "$OUT"
echo "raw data: $OUT" >&2
