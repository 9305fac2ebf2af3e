#!/usr/bin/python3
"""Translates the B7 corpus (SymPy syntax, ../shared/baselines/corpus.txt) into
the .nn expression syntax, one expression per line:
  a**b -> a^b, Abs -> abs, Max(a, b, c) -> max(a, max(b, c)), Min likewise,
  Piecewise((a, c), (b, True)) -> where(c, a, b), pi -> 3.141592653589793.
usage: b7_translate.py CORPUS.txt > corpus.nn-expr
"""
import math
import sys


def split_args(s):
    """Top-level comma-separated arguments of s (without the outer parens)."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


def call_span(s, start):
    """Index just past the ')' matching the '(' at s[start]."""
    depth = 0
    for i in range(start, len(s)):
        depth += {"(": 1, ")": -1}.get(s[i], 0)
        if depth == 0:
            return i + 1
    raise ValueError("unbalanced: " + s)


def translate(s):
    for name in ("Max", "Min", "Piecewise"):
        i = s.find(name + "(")
        while i >= 0:
            j = call_span(s, i + len(name))
            args = [translate(a) for a in split_args(s[i + len(name) + 1 : j - 1])]
            if name == "Piecewise":
                (a, c), (b, _) = [split_args(p[1:-1]) for p in args]
                rep = "where(%s, %s, %s)" % (c, a, b)
            else:
                rep = args[-1]
                for a in reversed(args[:-1]):
                    rep = "%s(%s, %s)" % (name.lower(), a, rep)
            s = s[:i] + rep + s[j:]
            i = s.find(name + "(")
    s = s.replace("**", "^").replace("Abs(", "abs(")
    return s.replace("pi", repr(math.pi))


for line in open(sys.argv[1]):
    if line.strip():
        print(translate(line.strip()))
