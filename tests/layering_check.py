#!/usr/bin/env python3
"""Checks the dependency rules of docs/architecture.md on every #include.

- A directory includes only itself and the directories below it in
  ir <- frontend <- codegen <- runtime <- driver <- cli.
- Programs that use nabla as a library (examples/, python/) include driver/
  only; tests/ and bench/ may use every library directory, but cli/ only
  from the command's own tests (none today: the command is tested as users
  run it, by the golden tests).
- LLVM headers appear only in codegen/; Boost.Spirit only in frontend/parser.cpp.
- The libraries a program embeds (runtime/, driver/) never print, read the
  terminal or end the process: no std::cout/cerr/clog, printf, puts,
  isatty, exit or abort there (messages are returned; traces go to a stream
  the caller passes). One exception: runtime/comm.{h,cpp} define
  Comm::abort, MPI_Abort, which only the command calls, to end a
  data-parallel job whose process failed (docs/distributed.md).
Prints each violation as FILE:LINE: message and exits 1 if there is any.
"""
import pathlib
import re
import sys

ORDER = ["ir", "frontend", "codegen", "runtime", "driver", "cli"]
ALLOWED = {d: set(ORDER[: i + 1]) for i, d in enumerate(ORDER)}
# Directories outside the layers, and what they may include.
ALLOWED.update({
    "examples": {"driver"},
    "python": {"driver"},
    "tests": set(ORDER) - {"cli"},
    "bench": set(ORDER) - {"cli"},
})
SUFFIXES = (".h", ".cpp", ".def", ".inc")
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')
QUIET = ("runtime", "driver")
# Comm::abort (MPI_Abort, in the MPI plugin comm_mpi.cpp), called by cli/ only
ENDS_JOB = {"runtime/comm.h", "runtime/comm.cpp", "runtime/comm_mpi.cpp"}
LOUD = re.compile(r'std::(cout|cerr|clog)\b|(?<![\w:])(s?n?)printf\(|\bputs\(|\bisatty\(|(?<![\w:])(std::)?(exit|abort|_Exit)\(|<iostream>')


def main(root: pathlib.Path) -> int:
    problems = []
    for directory, allowed in ALLOWED.items():
        for path in sorted((root / directory).rglob("*")):
            if path.suffix not in SUFFIXES or "Output" in path.parts:
                continue
            rel = path.relative_to(root)
            for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if directory in QUIET and not line.lstrip().startswith("//"):
                    loud = LOUD.search(line)
                    ends_job = bool(loud) and str(rel) in ENDS_JOB and loud.group(0).endswith(("abort(", "_Exit("))
                    if loud and not ends_job and not loud.group(0).startswith(("snprintf", "sprintf")):
                        problems.append(f"{rel}:{lineno}: {directory}/ may not print or exit ({loud.group(0)})")
                m = INCLUDE.match(line)
                if not m:
                    continue
                target = m.group(1)
                top = target.split("/")[0]
                if top in ORDER and top not in allowed:
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
