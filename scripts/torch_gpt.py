#!/usr/bin/env python3
"""PyTorch 1.13's side of tapegrad's character GPT (examples/char_gpt.cpp): the same model, data,
schedule and evaluation, so the two can be trained side by side.

The model has tapegrad's module structure (nn/transformer.hpp), hence the same state_dict keys:

    wte, wpe (nn.Embedding) -> h.i = pre-LayerNorm blocks -> ln_f -> lm_head (no bias, untied)
    block: x = x + attn(ln_1(x))   (nn.MultiheadAttention(batch_first=True), bool causal mask)
           x = x + mlp(ln_2(x))    (mlp.c_fc -> gelu(tanh) -> mlp.c_proj)

Used by scripts/make_gpt_reference.py (the 5-step reference of tests/training) and by
bench/compare/driver.py (`make bench-compare`: the GPT row). As a program it trains nanoGPT's CPU
"baby GPT" on a text corpus and prints one JSON line:

    /usr/bin/python3 scripts/torch_gpt.py [--iters 2000] [--eval-every 250] [--text PATH] [--seed 0]

    {"ms_per_iter": median ms of a training iteration (forward, backward, clip, AdamW),
     "val_loss": the last evaluation's validation loss, "train_loss": ..., "peak_rss_mb": ...,
     "iters": ..., "evals": [[iter, train, val], ...]}

Data as tapegrad's datasets/text.hpp: the regular files of a folder in name order (no links, no
.dat indexes), concatenated; the vocabulary is the sorted distinct characters; the first 90% of the
tokens train, the rest validate; batches of random windows (its own random stream: tapegrad's
differs, as the issue allows).
"""
import argparse
import json
import math
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

FORTUNES = "/usr/share/games/fortunes"


class Config:
    """nanoGPT's CPU baby GPT by default (examples/char_gpt.cpp's defaults)."""

    def __init__(self, vocab_size=113, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=True):
        self.vocab_size, self.block_size, self.n_layer = vocab_size, block_size, n_layer
        self.n_head, self.n_embd, self.dropout, self.bias = n_head, n_embd, dropout, bias


class MLP(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = torch.nn.Linear(c.n_embd, 4 * c.n_embd, bias=c.bias)
        self.c_proj = torch.nn.Linear(4 * c.n_embd, c.n_embd, bias=c.bias)
        self.dropout = torch.nn.Dropout(c.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(c.n_embd)
        self.attn = torch.nn.MultiheadAttention(c.n_embd, c.n_head, dropout=c.dropout, bias=c.bias,
                                                batch_first=True)
        self.ln_2 = torch.nn.LayerNorm(c.n_embd)
        self.mlp = MLP(c)
        self.dropout = torch.nn.Dropout(c.dropout)

    def forward(self, x):
        t = x.shape[1]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=x.device), 1)  # True = masked out
        h = self.ln_1(x)
        x = x + self.dropout(self.attn(h, h, h, attn_mask=causal, need_weights=False)[0])
        return x + self.mlp(self.ln_2(x))


class GPT(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.config = c
        self.wte = torch.nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = torch.nn.Embedding(c.block_size, c.n_embd)
        self.drop = torch.nn.Dropout(c.dropout)
        self.h = torch.nn.ModuleList([Block(c) for _ in range(c.n_layer)])
        self.ln_f = torch.nn.LayerNorm(c.n_embd)
        self.lm_head = torch.nn.Linear(c.n_embd, c.vocab_size, bias=False)

    def init_weights_(self):
        """nanoGPT's initialisation (as tapegrad's GPT): N(0, 0.02²) for every matrix and embedding,
        N(0, (0.02/√(2·n_layer))²) for the residual projections, zero biases, LayerNorms 1 and 0."""
        std_proj = 0.02 / math.sqrt(2 * self.config.n_layer)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("out_proj.weight") or name.endswith("c_proj.weight"):
                    torch.nn.init.normal_(p, 0.0, std_proj)
                elif p.dim() >= 2:
                    torch.nn.init.normal_(p, 0.0, 0.02)
                elif name.startswith("ln") or ".ln_" in name:
                    p.fill_(1.0 if name.endswith("weight") else 0.0)
                else:
                    p.zero_()
        return self

    def forward(self, idx):
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device)))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def make_optimizer(model, lr, betas, weight_decay):
    """AdamW with weight decay on the parameters of dim ≥ 2 only (nanoGPT's two groups)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=betas)


def lr_at(it, lr=1e-3, min_lr=1e-4, warmup=100, decay_iters=2000):
    """Linear warm-up over `warmup` iterations, then cosine decay to min_lr at decay_iters (nanoGPT's
    get_lr); examples/char_gpt.cpp uses the same formula."""
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it >= decay_iters:
        return min_lr
    ratio = (it - warmup) / (decay_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def load_corpus(path):
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if not n.endswith(".dat"))
        files = [os.path.join(path, n) for n in names]
        files = [f for f in files if os.path.isfile(f) and not os.path.islink(f)]
        data = b"".join(open(f, "rb").read() for f in files)
    else:
        data = open(path, "rb").read()
    return data.decode("utf-8")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-batches", type=int, default=20)
    p.add_argument("--text", default=FORTUNES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    text = load_corpus(args.text)
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([index[c] for c in text], dtype=torch.int64)
    n_train = int(0.9 * len(data))
    splits = {"train": data[:n_train], "val": data[n_train:]}
    config = Config(vocab_size=len(chars))

    def get_batch(split):
        d = splits[split]
        ix = torch.randint(len(d) - config.block_size, (args.batch_size,))
        x = torch.stack([d[i:i + config.block_size] for i in ix])
        y = torch.stack([d[i + 1:i + 1 + config.block_size] for i in ix])
        return x, y

    model = GPT(config).init_weights_()
    optimizer = make_optimizer(model, 1e-3, (0.9, 0.99), 0.1)

    @torch.no_grad()
    def estimate():
        model.eval()
        out = {}
        for split in ("train", "val"):
            losses = []
            for _ in range(args.eval_batches):
                x, y = get_batch(split)
                losses.append(F.cross_entropy(model(x).reshape(-1, config.vocab_size), y.reshape(-1)).item())
            out[split] = sum(losses) / len(losses)
        model.train()
        return out

    times, evals = [], []
    for it in range(args.iters + 1):
        if it % args.eval_every == 0 or it == args.iters:
            e = estimate()
            evals.append([it, e["train"], e["val"]])
            print("iter %d: train %.4f, val %.4f" % (it, e["train"], e["val"]), file=sys.stderr)
        if it == args.iters:
            break
        for g in optimizer.param_groups:
            g["lr"] = lr_at(it, decay_iters=args.iters)
        x, y = get_batch("train")
        start = time.perf_counter()
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, config.vocab_size), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        times.append((time.perf_counter() - start) * 1e3)
    print(json.dumps({"ms_per_iter": statistics.median(times), "train_loss": evals[-1][1], "val_loss": evals[-1][2],
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                      "iters": args.iters, "evals": evals}))


if __name__ == "__main__":
    main()
