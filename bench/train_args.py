"""The options the two MNIST training scripts share (same data, batch,
optimizer settings, epochs and threads on both sides)."""
import argparse


def parse(positional):
    ap = argparse.ArgumentParser()
    for name in positional:
        ap.add_argument(name)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--threads", type=int, default=1)
    return ap.parse_args()
