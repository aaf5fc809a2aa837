#!/usr/bin/env python3
"""PyTorch side of `make bench-compare`: the same training as torch_compare.cpp, from Python.

    torch_compare.py mlp --data DIR --batch-size 32 [--epochs 1] [--seed 0]
    torch_compare.py cnn ...
    torch_compare.py tape [--reps 100]

Same data (MNIST-format IDX files, raw or .gz, images x/255), PyTorch's default initialisation,
Adam(lr 1e-3), cross-entropy on logits, shuffled batches gathered per step, loss.item() and the
running accuracy per step (as tapegrad's train::fit does), one thread. Prints one JSON object.
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F


def read_idx(directory, name):
    path = os.path.join(directory, name)
    opener = open
    if not os.path.exists(path):
        path, opener = path + ".gz", gzip.open
    with opener(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(directory, prefix):
    x = torch.from_numpy(read_idx(directory, prefix + "-images-idx3-ubyte").copy())
    y = torch.from_numpy(read_idx(directory, prefix + "-labels-idx1-ubyte").copy())
    return x.unsqueeze(1).float().div_(255.0), y.long()


def mlp():
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 128), torch.nn.ReLU(),
                               torch.nn.Linear(128, 10))


def cnn():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(64 * 7 * 7, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))


def blas_core():
    """The OpenBLAS kernel family torch's BLAS runs (libopenblas is loaded by libtorch_cpu)."""
    import ctypes
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return "unknown"


def train(args):
    torch.manual_seed(args.seed)
    x_train, y_train = load(args.data, "train")
    x_test, y_test = load(args.data, "t10k")
    model = mlp() if args.mode == "mlp" else cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = x_train.shape[0]
    epoch_seconds = []
    for _ in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        loss_sum, correct = 0.0, 0
        for i in range(0, n, args.batch_size):
            idx = perm[i:i + args.batch_size]
            x, y = x_train.index_select(0, idx), y_train.index_select(0, idx)
            opt.zero_grad()
            out = model(x)
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * x.shape[0]
            correct += out.argmax(1).eq(y).sum().item()
        epoch_seconds.append(time.perf_counter() - t0)
    model.eval()
    test_correct = 0
    with torch.no_grad():
        for i in range(0, x_test.shape[0], 256):
            test_correct += model(x_test[i:i + 256]).argmax(1).eq(y_test[i:i + 256]).sum().item()
    print(json.dumps({"system": "pytorch", "model": args.mode, "batch_size": args.batch_size,
                      "epoch_seconds": epoch_seconds, "train_loss": loss_sum / n, "train_accuracy": correct / n,
                      "test_accuracy": test_correct / x_test.shape[0], "threads": torch.get_num_threads(),
                      "blas_core": blas_core()}))


def tape(args):
    links, ops_per_link = 1000, 3
    x = torch.tensor([0.5]).requires_grad_()
    fwd, bwd = [], []
    for r in range(args.reps + 5):
        t0 = time.perf_counter()
        y = x
        for _ in range(links):
            y = torch.tanh(y * 1.0001 + 0.0001)
        t1 = time.perf_counter()
        y.backward()
        t2 = time.perf_counter()
        y = None
        x.grad = None
        if r >= 5:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
    ops = links * ops_per_link
    print(json.dumps({"system": "pytorch", "forward_per_op": sorted(fwd)[len(fwd) // 2] / ops,
                      "backward_per_op": sorted(bwd)[len(bwd) // 2] / ops}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["mlp", "cnn", "tape"])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reps", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(1)
    train(args) if args.mode != "tape" else tape(args)


if __name__ == "__main__":
    main()
