#!/usr/bin/env python3
"""Checks how a program links LLVM: `llvm_link_check.py PROGRAM static|shared`.

The nabla command links LLVM's static libraries (codegen/CMakeLists.txt:
the shared libLLVM-19 costs every process some 30 ms before main), so a
change to the build that quietly brings the shared library back shows here.
Linked in, LLVM's symbols must stay inside (the Python module is loaded
beside whatever else a program loads, another LLVM among them). Reads the
program's dynamic section and symbols with readelf (binutils, beside g++).
Whatever the mode, the program must not need Open MPI's libraries: MPI is a
plugin loaded under mpirun only (runtime/comm.h), which every other start
would otherwise pay for (about 3 ms).
"""
import os
import re
import subprocess
import sys

# readelf's words in English whatever the user's locale.
ENV = {**os.environ, "LC_ALL": "C"}
# An LLVM symbol: a name in namespace llvm (functions, methods, vtables, type
# info, templates over its types) or the C API and ORC runtime's names.
LLVM_SYMBOL = re.compile(r"N4llvm|^LLVM|^llvm_")


def needed(program):
    out = subprocess.run(["readelf", "-d", program], check=True, capture_output=True, text=True, env=ENV).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def exported_llvm(program):
    out = subprocess.run(["readelf", "--dyn-syms", "-W", program], check=True, capture_output=True, text=True,
                         env=ENV).stdout
    names = []
    for line in out.splitlines():
        f = line.split()
        # Num: Value Size Type Bind Vis Ndx Name: a symbol the program defines has a section index.
        if len(f) >= 8 and f[0].endswith(":") and f[6] != "UND" and LLVM_SYMBOL.search(f[7]):
            names.append(f[7])
    return names


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in ("static", "shared"):
        sys.exit("usage: llvm_link_check.py PROGRAM static|shared")
    program, want = sys.argv[1], sys.argv[2]
    libs = needed(program)
    if not libs:
        sys.exit(f"{program}: no shared libraries needed at all: not a dynamically linked program?")
    mpi = [lib for lib in libs if re.match(r"lib(mpi|open-rte|open-pal)", lib)]
    if mpi:
        sys.exit(f"{program} loads {', '.join(mpi)} at every start: MPI belongs in the plugin libnabla_mpi.so")
    llvm = [lib for lib in libs if lib.startswith("libLLVM")]
    if want == "static" and llvm:
        sys.exit(f"{program} loads {', '.join(llvm)}: expected LLVM's static libraries linked in")
    if want == "static" and (exported := exported_llvm(program)):
        sys.exit(f"{program} exports {len(exported)} of LLVM's symbols ({exported[0]}, ...): "
                 "another LLVM in the same process could bind to them")
    if want == "shared" and not llvm:
        sys.exit(f"{program} needs no libLLVM (needs {', '.join(libs)}): expected the shared library")
    print(f"{program}: LLVM {want} (needs {', '.join(libs)})")


if __name__ == "__main__":
    main()
