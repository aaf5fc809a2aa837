#!/usr/bin/python3
"""FedAvg and FedSGD in PyTorch on Fashion-MNIST: the reference for tapegrad's train/federated (issue 11).

The setting of the issue (McMahan et al. 2017): 100 clients, each with 2 label-sorted shards of 300
training images (sort the 60,000 by label, cut 200 shards, give every client 2 at random), C = 0.1
(10 clients a round, drawn without replacement), the seed MLP 784-128 relu-10 with nn.Linear's
default initialisation, pixels / 255 (torchvision's ToTensor), cross-entropy (mean over the batch).
  FedAvg: each picked client starts from the global weights and runs E = 5 epochs of plain SGD
          (lr 0.05, batches of B = 10 of its own 600 images, reshuffled every epoch); the server
          sets w to the n_k-weighted average of the clients' weights.
  FedSGD: each picked client computes the gradient of its mean loss over all its images; the server
          steps w <- w - 0.5 * (n_k-weighted average gradient).
Test accuracy on the 10,000 test images after every round; reports the first round reaching
--target (0.80).

Where the split, the clients of each round and the initial weights come from:
  default            PyTorch's own: numpy RandomState(seed) draws the shards and the clients,
                     torch.manual_seed(seed) the weights (one run per --seeds entry).
  --replay FILE      tapegrad's, from `build/examples/federated --dump-split FILE` (JSON: each
                     client's indices, the clients of every round; FILE's stem + .safetensors: the
                     initial weights). --use picks which of split / selection / init to take from
                     it (the others are PyTorch's own, from --seeds), to tell which part matters.
The clients' batch order is always PyTorch's (torch.Generator seeded from the seed).

--impl batched (default) runs the round's clients side by side, each with its own weights, as
batched matrix products: the same arithmetic as one nn.Module + torch.optim.SGD per client (--impl
loop), about 10x faster; --check compares the two on one round.

Examples:
  /usr/bin/python3 scripts/torch_federated.py --seeds 0 1 2 3 4 --rounds 80
  build/examples/federated --runs fedavg --rounds 1 --dump-split out/federated/split_seed0.json
  /usr/bin/python3 scripts/torch_federated.py --replay out/federated/split_seed0.json --rounds 80
  /usr/bin/python3 scripts/torch_federated.py --algorithm fedsgd --seeds 0 --fedsgd-rounds 1500
"""
import argparse
import gzip
import json
import os
import statistics
import struct
import sys
import time

import numpy as np

# one BLAS thread (set before torch loads OpenBLAS): on a shared 2-core machine its spinning threads
# made a round 2.7x slower in CPU time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
NAMES = ["1.weight", "1.bias", "3.weight", "3.bias"]  # nn.Sequential(Flatten, Linear, ReLU, Linear)


def read_idx(path):
    """An IDX file (optionally .gz) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find_idx(directory, prefix, kind):
    for name in (f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte", f"{prefix}-{kind}.idx"):
        for suffix in ("", ".gz"):
            path = os.path.join(directory, name + suffix)
            if os.path.isfile(path):
                return path
    raise FileNotFoundError(f"{directory}: no {prefix} {kind} IDX file (scripts/fetch_mnist.sh --fashion-mnist)")


def load_split(directory, prefix):
    x = read_idx(find_idx(directory, prefix, "images"))
    y = read_idx(find_idx(directory, prefix, "labels"))
    return torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255.0), torch.from_numpy(y.astype(np.int64))


def read_safetensors(path):
    """name -> tensor, for the F32/F64 tensors of a safetensors file (no dependency on the package)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = {"F32": np.float32, "F64": np.float64}[info["dtype"]]
        begin, end = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[8 + n + begin:8 + n + end], dtype=dtype).copy()
                                     .reshape(info["shape"])).float()
    return out


# ---- the three ingredients, PyTorch's own ----

def label_shards(labels, num_clients, shards_per_client, rng):
    """The paper's non-IID split: sort by label (stable), cut into shards, each client gets 2 at random."""
    order = np.argsort(labels, kind="stable")
    shards = num_clients * shards_per_client
    size = len(labels) // shards
    perm = rng.permutation(shards)
    return [np.concatenate([order[s * size:(s + 1) * size] for s in perm[k * shards_per_client:(k + 1) * shards_per_client]])
            for k in range(num_clients)]


def iid_split(n, num_clients, rng):
    return np.array_split(rng.permutation(n), num_clients)


def initial_weights(seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ---- model and training ----

def forward(w, x):
    return F.linear(F.relu(F.linear(x, w["1.weight"], w["1.bias"])), w["3.weight"], w["3.bias"])


@torch.no_grad()
def accuracy(w, x, y):
    return (forward(w, x).argmax(1) == y).double().mean().item()


def fedavg_clients_loop(w, x, y, clients, lr, epochs, batch, gen):
    """Each client: an nn.Module and torch.optim.SGD, E epochs over its reshuffled data. Returns the weights."""
    out = []
    for idx in clients:
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
        model.load_state_dict(w)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        idx = torch.as_tensor(idx)
        for _ in range(epochs):
            perm = idx[torch.randperm(len(idx), generator=gen)]
            for s in range(0, len(perm), batch):
                b = perm[s:s + batch]
                opt.zero_grad()
                F.cross_entropy(model(x[b]), y[b]).backward()
                opt.step()
        out.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    return out


def fedavg_clients_batched(w, x, y, clients, lr, epochs, batch, gen):
    """The same as fedavg_clients_loop for clients of equal size: the m clients' weights stacked, one
    batched product per layer; the loss is the sum of the clients' mean losses, so each client's
    weights get exactly its own gradient. Same draws from `gen` in the same order."""
    m, n = len(clients), len(clients[0])
    idx = torch.stack([torch.as_tensor(c) for c in clients])  # [m, n]
    p = {k: v.unsqueeze(0).repeat(m, *([1] * v.dim())).requires_grad_() for k, v in w.items()}
    # the orders drawn as the loop draws them: client after client, epoch after epoch
    orders = [[idx[k][torch.randperm(n, generator=gen)] for _ in range(epochs)] for k in range(m)]
    for e in range(epochs):
        perm = torch.stack([orders[k][e] for k in range(m)])  # [m, n]
        for s in range(0, n, batch):
            b = perm[:, s:s + batch]  # [m, B]
            h = torch.relu(torch.baddbmm(p["1.bias"].unsqueeze(1), x[b], p["1.weight"].transpose(1, 2)))
            out = torch.baddbmm(p["3.bias"].unsqueeze(1), h, p["3.weight"].transpose(1, 2))  # [m, B, 10]
            loss = F.cross_entropy(out.reshape(-1, 10), y[b].reshape(-1), reduction="none").view(m, -1).mean(1).sum()
            grads = torch.autograd.grad(loss, list(p.values()))
            with torch.no_grad():
                for t, g in zip(p.values(), grads):
                    t -= lr * g
    return [{k: v[i].detach() for k, v in p.items()} for i in range(m)]


def weighted_average(states, sizes):
    total = float(sum(sizes))
    return {k: sum(s[k] * (n / total) for s, n in zip(states, sizes)) for k in states[0]}


def fedsgd_step(w, x, y, clients, server_lr):
    sizes = [len(c) for c in clients]
    total = float(sum(sizes))
    p = {k: v.clone().requires_grad_() for k, v in w.items()}
    avg = {k: torch.zeros_like(v) for k, v in w.items()}
    for c, n in zip(clients, sizes):
        c = torch.as_tensor(c)
        grads = torch.autograd.grad(F.cross_entropy(forward(p, x[c]), y[c]), list(p.values()))
        for k, g in zip(p, grads):
            avg[k] += (n / total) * g
    return {k: w[k] - server_lr * avg[k] for k in w}


def run(args, algorithm, w, clients, selection, seed, data):
    """Trains from `w`; returns the test accuracy after each round (stops at the target unless --full)."""
    x, y, tx, ty = data
    gen = torch.Generator().manual_seed(seed)
    rounds = args.rounds if algorithm == "fedavg" else args.fedsgd_rounds
    acc = []
    for r in range(rounds):
        chosen = [clients[k] for k in selection(r)]
        if algorithm == "fedavg":
            equal = len({len(c) for c in chosen}) == 1
            local = fedavg_clients_batched if args.impl == "batched" and equal else fedavg_clients_loop
            w = weighted_average(local(w, x, y, chosen, args.client_lr, args.epochs, args.batch, gen), [len(c) for c in chosen])
        else:
            w = fedsgd_step(w, x, y, chosen, args.server_lr)
        acc.append(accuracy(w, tx, ty))
        if not args.quiet and ((r + 1) % 10 == 0 or r == 0):
            print(f"    round {r + 1}: test accuracy {acc[-1]:.4f}", flush=True)
        if not args.full and acc[-1] >= args.target:
            break
    return acc


def first_reaching(acc, target):
    return next((i + 1 for i, a in enumerate(acc) if a >= target), None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--data", default=DEFAULT_DATA, help="Fashion-MNIST IDX directory")
    ap.add_argument("--algorithm", choices=["fedavg", "fedsgd", "both"], default="fedavg")
    ap.add_argument("--split", choices=["non-iid", "iid"], default="non-iid")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--replay", help="tapegrad's --dump-split JSON")
    ap.add_argument("--use", nargs="+", choices=["split", "selection", "init"], default=["split", "selection", "init"],
                    help="what --replay takes from tapegrad (the rest is PyTorch's own)")
    ap.add_argument("--rounds", type=int, default=80, help="FedAvg rounds")
    ap.add_argument("--fedsgd-rounds", type=int, default=1500, help="FedSGD's cap (it stops at --target)")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--client-lr", type=float, default=0.05)
    ap.add_argument("--server-lr", type=float, default=0.5, help="FedSGD's step size")
    ap.add_argument("--target", type=float, default=0.80)
    ap.add_argument("--full", action="store_true", help="run every round, not only up to the target")
    ap.add_argument("--impl", choices=["batched", "loop"], default="batched")
    ap.add_argument("--check", action="store_true", help="compare --impl batched and loop on one round, then exit")
    ap.add_argument("--float64", action="store_true",
                    help="train in float64 (float32 by default): how far float32 rounding alone moves a curve")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="write every run's accuracy curve as JSON here")
    ap.add_argument("--quiet", "-q", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    x, y = load_split(args.data, "train")
    tx, ty = load_split(args.data, "t10k")
    if args.float64:
        x, tx = x.double(), tx.double()
    data = (x, y, tx, ty)
    dump = None
    if args.replay:
        with open(args.replay) as f:
            dump = json.load(f)
        dump_weights = read_safetensors(os.path.join(os.path.dirname(args.replay), dump["initial_weights"]))

    if args.check:
        rng = np.random.RandomState(args.seeds[0])
        clients = label_shards(y.numpy(), 100, 2, rng)[:3]
        w = initial_weights(args.seeds[0])
        a = fedavg_clients_batched(w, x, y, clients, args.client_lr, args.epochs, args.batch, torch.Generator().manual_seed(1))
        b = fedavg_clients_loop(w, x, y, clients, args.client_lr, args.epochs, args.batch, torch.Generator().manual_seed(1))
        diff = max((s[k] - t[k]).abs().max().item() for s, t in zip(a, b) for k in s)
        moved = max((s[k] - w[k]).abs().max().item() for s in a for k in s)
        print(f"batched vs loop after one round of 3 clients: max |difference| {diff:.2e} (weights moved up to {moved:.2e})")
        sys.exit(0 if diff < 1e-4 * max(moved, 1e-12) + 1e-6 else 1)

    algorithms = ["fedavg", "fedsgd"] if args.algorithm == "both" else [args.algorithm]
    results = []
    for seed in args.seeds:
        rng = np.random.RandomState(seed)
        own_clients = label_shards(y.numpy(), 100, 2, rng) if args.split == "non-iid" else iid_split(len(y), 100, rng)
        own_rounds = [np.sort(rng.choice(100, 10, replace=False)) for _ in range(max(args.rounds, args.fedsgd_rounds))]
        replayed = dump is not None
        clients = own_clients
        if replayed and "split" in args.use:
            clients = [np.asarray(c) for c in dump["non_iid" if args.split == "non-iid" else "iid"]]
        if replayed and "selection" in args.use:
            selection = lambda r: dump["selection"][r]  # noqa: E731
        else:
            selection = lambda r: own_rounds[r]  # noqa: E731
        w0 = {k: dump_weights[k].clone() for k in NAMES} if replayed and "init" in args.use else initial_weights(seed)
        if args.float64:
            w0 = {k: v.double() for k, v in w0.items()}
        labels = y.numpy()
        same_label = sum(len(np.unique(labels[c])) == 1 for c in clients)
        source = f"tapegrad's {'+'.join(args.use)} (seed {dump['seed']}) " if replayed else ""
        for algorithm in algorithms:
            if not args.quiet:
                print(f"{algorithm} {args.split}, {source}torch seed {seed} ({same_label} one-label clients):", flush=True)
            t0 = time.time()
            acc = run(args, algorithm, w0, clients, selection, seed, data)
            reached = first_reaching(acc, args.target)
            results.append({"algorithm": algorithm, "split": args.split, "seed": seed, "replay": source.strip(),
                            "rounds_to_target": reached, "test_accuracy": acc, "seconds": time.time() - t0,
                            "one_label_clients": int(same_label)})
            print(f"  {algorithm} seed {seed}: {reached if reached else '> %d' % len(acc)} rounds to {args.target}"
                  f" (best {max(acc):.4f}, {time.time() - t0:.0f} s)", flush=True)
    for algorithm in algorithms:
        rs = [r["rounds_to_target"] for r in results if r["algorithm"] == algorithm]
        cap = args.rounds if algorithm == "fedavg" else args.fedsgd_rounds
        finite = [r if r else cap + 1 for r in rs]  # a run that never reached counts as past the cap
        print(f"{algorithm}: rounds to {args.target} per seed {['>%d' % cap if r is None else r for r in rs]}, "
              f"median {statistics.median(finite)}")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"settings": vars(args), "runs": results}, f)


if __name__ == "__main__":
    main()
