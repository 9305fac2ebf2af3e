#!/usr/bin/env python3
"""Keeps the user reference in docs/ true to the code.

- Every builtin and alias of frontend/builtins.def is documented in
  docs/language.md as a call (`name(`).
- Every subcommand and global option that `nabla --help` lists is documented
  in docs/commands.md (`nabla SUB` / the option's name), and every subcommand
  documented there exists.
Usage: docs_check.py SOURCE_DIR NABLA. Prints each problem; exits 1 if any.
"""
import pathlib
import re
import subprocess
import sys


def main(root: pathlib.Path, nabla: str) -> int:
    problems = []
    language = (root / "docs" / "language.md").read_text()
    names = re.findall(r'^NABLA_(?:BUILTIN\(\w+|ALIAS\()\s*,?\s*"(\w+)"',
                       (root / "frontend" / "builtins.def").read_text(), re.M)
    for name in names:
        if f"`{name}(" not in language:
            problems.append(f"docs/language.md: builtin '{name}' is not documented")
    commands = (root / "docs" / "commands.md").read_text()
    help_text = subprocess.run([nabla, "--help"], capture_output=True, text=True, check=True).stdout
    listed = help_text.split("Subcommands:", 1)[1]
    subs = re.findall(r"^  (\w+)\s", listed, re.M)
    for sub in subs:
        if not re.search(rf"`nabla {sub}\b|`{sub}`", commands):
            problems.append(f"docs/commands.md: subcommand '{sub}' is not documented")
    for sub in set(re.findall(r"`nabla ([a-z]+)", commands)) - set(subs):
        problems.append(f"docs/commands.md: documents 'nabla {sub}', which does not exist")
    options = re.findall(r"^  (--[\w-]+)", help_text.split("Subcommands:", 1)[0], re.M)
    for option in options:
        if option not in ("--help", "--version") and f"`{option}" not in commands:
            problems.append(f"docs/commands.md: global option '{option}' is not documented")
    for p in problems:
        print(p)
    print(f"docs: {len(names)} builtins, {len(subs)} subcommands, {len(options)} options checked; "
          f"{len(problems)} problem(s)")
    return 1 if problems or not names or not subs else 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1]), sys.argv[2]))
