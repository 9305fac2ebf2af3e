#!/usr/bin/env python3
"""PyTorch eager training of examples/mnist_mlp.nn's model, for the side-by-side
comparison with `nabla train` (same data, batch, optimizer, epochs, threads):
784-256-10, ReLU, softmax cross-entropy (mean) + lambda/2 (||W1||^2 + ||W2||^2),
plain SGD, the samples shuffled each epoch. Prints one JSON line per epoch
(seconds, loss) and the final test accuracy.

usage: torch_train_mnist.py TRAIN.npz TEST.npz --epochs E --batch B --lr LR --threads T"""
import json
import sys
import os
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_args  # noqa: E402

args = train_args.parse(["train", "test"])
os.environ["OMP_NUM_THREADS"] = str(args.threads)
os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(0)
d, t = np.load(args.train), np.load(args.test)
x, y = torch.from_numpy(d["x"]), torch.from_numpy(d["y"].argmax(1))
xt, yt = torch.from_numpy(t["x"]), torch.from_numpy(t["y"].argmax(1))
l1, l2 = torch.nn.Linear(784, 256), torch.nn.Linear(256, 10)
torch.nn.init.kaiming_normal_(l1.weight)
torch.nn.init.zeros_(l1.bias)
torch.nn.init.xavier_uniform_(l2.weight)
torch.nn.init.zeros_(l2.bias)
params = list(l1.parameters()) + list(l2.parameters())
opt = torch.optim.SGD(params, lr=args.lr)
lam = 1e-4
g = torch.Generator().manual_seed(0)
for epoch in range(1, args.epochs + 1):
    t0 = time.perf_counter()
    perm = torch.randperm(len(x), generator=g)
    total = 0.0
    for i in range(0, len(x), args.batch):
        idx = perm[i:i + args.batch]
        logits = l2(torch.relu(l1(x[idx])))
        loss = torch.nn.functional.cross_entropy(logits, y[idx]) + lam / 2 * (
            l1.weight.pow(2).sum() + l2.weight.pow(2).sum())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
    seconds = time.perf_counter() - t0
    print(json.dumps({"impl": "torch-eager", "epoch": epoch, "seconds": seconds, "loss": total / len(x),
                      "threads": args.threads, "batch": args.batch}), flush=True)
with torch.no_grad():
    acc = (l2(torch.relu(l1(xt))).argmax(1) == yt).float().mean().item()
print(json.dumps({"impl": "torch-eager", "test_accuracy": acc}))
