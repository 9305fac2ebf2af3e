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
the command. The figure is the record's median_us (--field). The ratio is
the second's figure over the first's: the first's speed-up.
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
        if not sep or not key:
            raise SystemExit(f"pairs.py: '{item}' is not key=value")
        pairs[key.strip()] = value.strip()
    return pairs


def matches(record, select):
    return all(str(record.get(k)) == v for k, v in select.items())


def measure(label, select, command, field, timeout):
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"pairs.py: {label} took more than {timeout:g} s: {shlex.join(command)}")
    except OSError as e:
        raise SystemExit(f"pairs.py: cannot run {label}: {e}")
    if done.returncode != 0:
        raise SystemExit(f"pairs.py: {label} exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    found = []
    for line in done.stdout.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and matches(record, select) and isinstance(record.get(field), (int, float)):
            found.append(float(record[field]))
    if len(found) != 1:
        raise SystemExit(f"pairs.py: {label}: {len(found)} records match {select} with a number in '{field}' "
                         "(one is needed)")
    return found[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6, help="rounds of both programs (1-100, default 6)")
    ap.add_argument("--field", default="median_us", help="the figure to compare (default median_us)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds one run may take (default 300)")
    ap.add_argument("--run", nargs=3, action="append", metavar=("LABEL", "SELECT", "COMMAND"), required=True)
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
    (a, _, _), (b, _, _) = runs
    ratios = []
    print(f"| round | {a} | {b} | {b} / {a} |")
    print("|---|---|---|---|")
    for r in range(args.rounds):
        order = runs if r % 2 == 0 else runs[::-1]
        got = {label: measure(label, select, command, args.field, args.timeout) for label, select, command in order}
        ratios.append(got[b] / got[a])
        print(f"| {r + 1} | {got[a]:.2f} | {got[b]:.2f} | {ratios[-1]:.2f}x |", flush=True)
    print(f"\n{b} / {a} ({args.field}) over {args.rounds} rounds: median {statistics.median(ratios):.2f}x, "
          f"{min(ratios):.2f}x to {max(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
