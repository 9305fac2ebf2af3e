#!/usr/bin/env python3
"""Checks the dependency rules of docs/architecture.md on every #include.

- A directory includes only itself and the directories below it in
  ir <- frontend <- codegen <- runtime <- cli (tests/ and bench/ may use all).
- LLVM headers appear only in codegen/; Boost.Spirit only in frontend/parser.cpp.
Prints each violation as FILE:LINE: message and exits 1 if there is any.
"""
import pathlib
import re
import sys

ORDER = ["ir", "frontend", "codegen", "runtime", "cli"]
ALLOWED = {d: set(ORDER[: i + 1]) for i, d in enumerate(ORDER)}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')


def main(root: pathlib.Path) -> int:
    problems = []
    for directory in ORDER:
        for path in sorted((root / directory).rglob("*")):
            if path.suffix not in (".h", ".cpp", ".def", ".inc"):
                continue
            rel = path.relative_to(root)
            for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                target = m.group(1)
                top = target.split("/")[0]
                if top in ORDER and top not in ALLOWED[directory]:
                    problems.append(f"{rel}:{lineno}: {directory}/ may not include {target}")
                if (target.startswith("llvm/") or target.startswith("llvm-c/")) and directory != "codegen":
                    problems.append(f"{rel}:{lineno}: LLVM headers belong in codegen/ only")
                if target.startswith("boost/spirit") and str(rel) != "frontend/parser.cpp":
                    problems.append(f"{rel}:{lineno}: Boost.Spirit belongs in frontend/parser.cpp only")
    for p in problems:
        print(p)
    print(f"layering: {len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
