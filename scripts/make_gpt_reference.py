#!/usr/bin/env python3
"""PyTorch 1.13 references for tapegrad's transformer layers and GPT (nn/transformer.hpp).

Writes two small safetensors files:

  tests/training/gpt_reference.safetensors, for tests/training/test_gpt_reference.cpp:
    a GPT with tapegrad's module structure (scripts/torch_gpt.py, so the state_dict keys are the same), config
    vocab_size 17, block_size 8, n_layer 2, n_head 2, n_embd 8, dropout 0, bias True, untied lm_head:

        wte, wpe (nn.Embedding) -> h.i = pre-LayerNorm blocks -> ln_f -> lm_head (no bias)
        block: x = x + attn(ln_1(x))  (nn.MultiheadAttention(batch_first=True), bool causal mask)
               x = x + mlp(ln_2(x))   (mlp.c_fc -> gelu(tanh) -> mlp.c_proj)

    takes STEPS AdamW steps (lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on parameters with dim >= 2
    and 0 on the others, as nanoGPT), clip_grad_norm_(1.0) before each step, on fixed batches:
      "x", "y"               int64 [STEPS, BATCH, block_size]  (y is x shifted by one token)
      "init.<name>"          float32 initial weights (exact in float32; the float64 run starts from
                             the same values)
      "<f32|f64>.loss"       float64 [STEPS], the loss of each step before its update
      "<f32|f64>.final.<name>"  the weights after the last step, in the run's dtype

  tests/nn/transformer_reference.safetensors, for tests/nn/test_transformer.cpp (all float64):
    "mha.*"   nn.MultiheadAttention(4, 2, batch_first=False): in_proj_weight, in_proj_bias,
              out_proj.weight, out_proj.bias; query [L=2, N=2, E=4], key and value [S=3, 2, 4], a float
              attn_mask [2, 3], a key_padding_mask [2, 3] (saved as float, one -inf); outputs "mha.out" [2, 2, 4]
              and "mha.weights" [2, 2, 3] (averaged over heads).
    "enc.<post|pre>.*"  nn.TransformerEncoderLayer(4, 2, dim_feedforward 8, dropout 0,
              activation gelu, batch_first True, norm_first False|True): its state_dict, "src" [2, 3, 4]
              and "out" with a float causal src_mask (-inf above the diagonal).

Every random value comes from torch.manual_seed(SEED). Run with Debian's PyTorch:

    /usr/bin/python3 scripts/make_gpt_reference.py tests/training/gpt_reference.safetensors \\
        tests/nn/transformer_reference.safetensors
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_training_reference import save_safetensors  # noqa: E402  (one safetensors writer)
from torch_gpt import GPT, Config, make_optimizer  # noqa: E402  (the one PyTorch GPT)

SEED = 1234
VOCAB, BLOCK, LAYERS, HEADS, EMBD = 17, 8, 2, 2, 8
STEPS, BATCH = 5, 4
LR, BETAS, WEIGHT_DECAY, CLIP = 1e-3, (0.9, 0.99), 0.1, 1.0


def randomize_(module, std=0.3):
    """Every parameter drawn anew (LayerNorm weights around 1), rounded to float32: no bias starts at
    zero, so the forward pass checks every bias from the first step."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            ln_weight = name.endswith("weight") and p.dim() == 1
            p.copy_((1.0 if ln_weight else 0.0) + std * torch.randn(p.shape, dtype=torch.float32))


def small_gpt():
    return GPT(Config(vocab_size=VOCAB, block_size=BLOCK, n_layer=LAYERS, n_head=HEADS, n_embd=EMBD))


def gpt_run(dtype, initial, xs, ys):
    model = small_gpt().to(dtype)
    model.load_state_dict({k: v.to(dtype) for k, v in initial.items()})
    optimizer = make_optimizer(model, LR, BETAS, WEIGHT_DECAY)
    losses = []
    for step in range(STEPS):
        optimizer.zero_grad()
        logits = model(xs[step])
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), ys[step].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        optimizer.step()
        losses.append(loss.item())
    tag = "f32" if dtype == torch.float32 else "f64"
    out = {f"{tag}.loss": torch.tensor(losses, dtype=torch.float64)}
    out.update({f"{tag}.final.{k}": v.detach().clone() for k, v in model.state_dict().items()})
    print(tag, "losses", [f"{v:.9g}" for v in losses])
    return out


def gpt_reference():
    model = small_gpt()
    randomize_(model)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    data = torch.randint(0, VOCAB, (STEPS, BATCH, BLOCK + 1))
    xs, ys = data[:, :, :-1].contiguous(), data[:, :, 1:].contiguous()
    tensors = {"x": xs, "y": ys}
    tensors.update({f"init.{k}": v for k, v in initial.items()})
    for dtype in (torch.float32, torch.float64):
        tensors.update(gpt_run(dtype, initial, xs, ys))
    return tensors


def causal_float_mask(t):
    return torch.triu(torch.full((t, t), -math.inf, dtype=torch.float64), 1)


def layer_reference():
    out = {}
    mha = torch.nn.MultiheadAttention(4, 2, batch_first=False).double()
    randomize_(mha, 0.5)
    query, key, value = torch.randn(2, 2, 4).double(), torch.randn(3, 2, 4).double(), torch.randn(3, 2, 4).double()
    attn_mask = torch.randn(2, 3).double()
    padded = torch.zeros(2, 3, dtype=torch.bool)
    padded[1, 2] = True
    key_padding_mask = torch.zeros(2, 3).double().masked_fill(padded, -math.inf)
    # PyTorch 1.13 drops a float key_padding_mask when attn_mask is float too (it merges them with
    # masked_fill, which ignores a float mask); 2.x adds them. tapegrad adds them, so the reference
    # passes the same padding as a bool mask (True = masked out).
    y, w = mha(query, key, value, key_padding_mask=padded, attn_mask=attn_mask, need_weights=True)
    out.update({f"mha.{k}": v.detach().clone() for k, v in mha.state_dict().items()})
    out.update({"mha.query": query, "mha.key": key, "mha.value": value, "mha.attn_mask": attn_mask,
                "mha.key_padding_mask": key_padding_mask, "mha.out": y.detach(), "mha.weights": w.detach()})
    src = torch.randn(2, 3, 4).double()
    for tag, norm_first in (("post", False), ("pre", True)):
        layer = torch.nn.TransformerEncoderLayer(4, 2, dim_feedforward=8, dropout=0.0, activation="gelu",
                                                 batch_first=True, norm_first=norm_first).double()
        randomize_(layer, 0.5)
        y = layer(src, src_mask=causal_float_mask(3))
        out.update({f"enc.{tag}.{k}": v.detach().clone() for k, v in layer.state_dict().items()})
        out[f"enc.{tag}.out"] = y.detach()
    out["enc.src"] = src
    return out


def main():
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    meta = {"generator": "scripts/make_gpt_reference.py", "torch": torch.__version__}
    save_safetensors(gpt_reference(), sys.argv[1], meta)
    save_safetensors(layer_reference(), sys.argv[2], meta)


if __name__ == "__main__":
    main()
