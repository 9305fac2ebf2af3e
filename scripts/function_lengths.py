#!/usr/bin/env python3
"""Function lengths of nabla's sources (universal-ctags' function
definitions with their end lines; lambdas are counted in their enclosing
function). Prints the count, the median, and the longest functions.

    scripts/function_lengths.py [ROOT] [--top N]
"""
import argparse
import pathlib
import statistics
import subprocess

DIRS = ["ir", "frontend", "codegen", "runtime", "driver", "cli"]


def functions(root: pathlib.Path):
    files = [str(p.relative_to(root)) for d in DIRS if (root / d).is_dir()
             for p in sorted((root / d).rglob("*")) if p.suffix in (".h", ".cpp")]
    out = subprocess.run(["ctags", "--fields=+ne", "--c++-kinds=f", "--language-force=C++", "-o", "-", *files],
                         cwd=root, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        name, path, *rest = line.split("\t")
        fields = dict(f.split(":", 1) for f in rest if ":" in f and not f.startswith("/"))
        if name.startswith("__anon") or "line" not in fields or "end" not in fields:
            continue
        scope = next((v for k, v in fields.items() if k in ("class", "struct", "namespace", "function")), "")
        yield int(fields["end"]) - int(fields["line"]) + 1, f"{path}:{fields['line']}", scope.split("::")[-1] + "::" + name if scope else name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root", nargs="?", default=".")
    ap.add_argument("--top", type=int, default=10)
    a = ap.parse_args()
    fs = sorted(functions(pathlib.Path(a.root)), reverse=True)
    lengths = [n for n, _, _ in fs]
    print(f"{len(fs)} functions in {', '.join(DIRS)}: median {statistics.median(lengths):g} lines, "
          f"mean {statistics.mean(lengths):.1f}, over 60 lines: {sum(n > 60 for n in lengths)}")
    for n, where, name in fs[: a.top]:
        print(f"{n:5d}  {name}  ({where})")


if __name__ == "__main__":
    main()
