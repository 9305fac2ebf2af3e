#!/usr/bin/env python3
"""Times two programs in alternation and reports the ratio round by round.

On a shared host the speed of a core changes by a third from one minute to
the next (bench/RESULTS.md: the B3 step takes 79 or 100 us for the same
binary, and Eigen's 90 or 115). A side-by-side run that times nabla at one
minute and its peer at another compares the host's states as much as the
programs. Here each round runs both, one right after the other (in turns
first), and the ratio of a round compares programs run within seconds.

  /usr/bin/python3 bench/pairs.py --rounds 8 \\
    --run nabla 'kind=train_step' 'build/nabla bench bench/models/deep_sigmoid_20x32.nn --batch 64 --threads 1 --json' \\
    --run eigen 'threads=1' 'build/bench-baselines/build/mlp_eigen deep'

Each --run gives a label, the record to take from the program's JSON lines
(key=value pairs, comma-separated, all of which the record must match) and
the command. With --row, one run gives several figures: each row's pairs
join each program's own (--row batch=1 --row batch=1024). The figure is the
record's median_us (--field). The ratio is the second's figure over the
first's: the first's speed-up.
"""
import argparse
import json
import shlex
import statistics
import subprocess
import sys


def parse_select(text):
    pairs = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SystemExit(f"pairs.py: '{item}' is not key=value")
        pairs[key] = value.strip()
    return pairs


def text_of(value):
    """A JSON value as the command line writes it: true, 1, 1.5, text."""
    return json.dumps(value) if isinstance(value, bool) else str(value)


def matches(record, select):
    return all(k in record and text_of(record[k]) == v for k, v in select.items())


def measure(label, command, timeout):
    """The JSON records the command prints."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"pairs.py: {label} took more than {timeout:g} s: {shlex.join(command)}")
    except OSError as e:
        raise SystemExit(f"pairs.py: cannot run {label}: {e}")
    if done.returncode != 0:
        raise SystemExit(f"pairs.py: {label} exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    records = []
    for line in done.stdout.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def figure(label, records, select, field):
    found = [float(r[field]) for r in records
             if matches(r, select) and isinstance(r.get(field), (int, float)) and not isinstance(r[field], bool)]
    if len(found) != 1:
        raise SystemExit(f"pairs.py: {label}: {len(found)} records match {select} with a number in '{field}' "
                         "(one is needed)")
    if not found[0] > 0:
        raise SystemExit(f"pairs.py: {label}: '{field}' is {found[0]:g} in the record matching {select}: "
                         "a time must be above 0")
    return found[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6, help="rounds of both programs (1-100, default 6)")
    ap.add_argument("--field", default="median_us", help="the figure to compare (default median_us)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds one run may take (default 300)")
    ap.add_argument("--run", nargs=3, action="append", metavar=("LABEL", "SELECT", "COMMAND"), required=True)
    ap.add_argument("--row", action="append", metavar="SELECT",
                    help="a record both programs print, beside each one's SELECT (repeatable: several "
                         "figures of one run, such as batch=1 and batch=1024)")
    args = ap.parse_args()
    if len(args.run) != 2:
        ap.error("give --run twice: the program and the peer it is compared with")
    if not 1 <= args.rounds <= 100:
        ap.error("--rounds must be from 1 to 100")
    if not 0 < args.timeout <= 3600:
        ap.error("--timeout must be above 0 and at most 3600 seconds")
    runs = [(label, parse_select(select), shlex.split(command)) for label, select, command in args.run]
    for label, _, command in runs:
        if not command:
            ap.error(f"--run {label}: the command is empty")
    if args.run[0][0] == args.run[1][0]:
        ap.error(f"the two runs need different labels (both are '{args.run[0][0]}')")
    if len(set(args.row or [])) != len(args.row or []):
        ap.error("a --row is given twice")
    rows = [(text, parse_select(text)) for text in (args.row or [""])]
    (a, _, _), (b, _, _) = runs
    figures = {(text, label): [] for text, _ in rows for label, _, _ in runs}
    print(f"| round | row | {a} | {b} | {b} / {a} |")
    print("|---|---|---|---|---|")
    for r in range(args.rounds):
        order = runs if r % 2 == 0 else runs[::-1]
        records = {label: measure(label, command, args.timeout) for label, _, command in order}
        for text, extra in rows:
            got = {label: figure(label, records[label], {**select, **extra}, args.field) for label, select, _ in runs}
            for label in got:
                figures[(text, label)].append(got[label])
            print(f"| {r + 1} | {text or '-'} | {got[a]:.2f} | {got[b]:.2f} | {got[b] / got[a]:.2f}x |", flush=True)
    print(f"\n{b} / {a} ({args.field}) over {args.rounds} rounds, median (lowest to highest):")
    for text, _ in rows:
        q = [y / x for x, y in zip(figures[(text, a)], figures[(text, b)])]
        print(f"- {text or 'the record'}: {statistics.median(q):.2f}x ({min(q):.2f}x to {max(q):.2f}x); "
              f"{a} {statistics.median(figures[(text, a)]):.2f}, {b} {statistics.median(figures[(text, b)]):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
