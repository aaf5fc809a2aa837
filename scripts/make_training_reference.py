#!/usr/bin/env python3
"""Reference training runs for tests/training/test_reference_training.cpp, from PyTorch 1.13.

Two models take a few optimizer steps from fixed weights on fixed batches, in float32 and float64:

  mlp: the seed model, Flatten -> Linear(784, 128) -> ReLU -> Linear(128, 10), Adam(lr 1e-3);
  cnn: examples/mnist_cnn.cpp's model, [Conv2d(c, k, 3, padding 1) -> ReLU -> MaxPool2d(2)] for
       (c, k) = (1, 32), (32, 64), then Flatten -> Linear(3136, 128) -> ReLU -> Linear(128, 10),
       SGD(lr 0.05, momentum 0.9) (SGD, unlike Adam, is not blind to a gradient's scale).

Both use cross_entropy from logits with int64 targets, STEPS steps of a batch of BATCH 1x28x28 images.
No random generator is shared with the test: every input and initial weight comes from splitmix64
of (stream << 32 | index), whose top 24 bits m give u = m / 2^24 (exact in float32):

  images          x = u                       stream IMAGES + step, index over [BATCH, 1, 28, 28]
  labels          y = (hash >> 40) % 10       stream LABELS + step
  parameter k     w = (2u - 1) * 2^-ceil(log2(fan_in) / 2)    stream base + k (parameters in
                  named_parameters() order; the bound is a power of two near PyTorch's 1/sqrt(fan_in),
                  so every weight is exact in float32)

The test recomputes the same values, runs the steps with tapegrad and compares, under the prefix
"<model>.<f32|f64>.": "loss" (the loss of each step, before its update), and for each parameter
its final value: in full when it has at most FULL entries, else "<name>.sample" (the entries at
indices (k * SAMPLE_STRIDE) % numel, k < SAMPLES) and "<name>.update_sq" (the sum over every entry
of (final - initial)^2, in float64). "labels" holds every step's labels, to check the generator.
All of it goes to one small safetensors file written with struct (no safetensors package needed):

    /usr/bin/python3 scripts/make_training_reference.py tests/training/reference_training.safetensors
"""
import json
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

STEPS, BATCH = 3, 8
IMAGES, LABELS = 0x1000, 0x2000
FULL, SAMPLES, SAMPLE_STRIDE = 4096, 2048, 1009
MASK = (1 << 64) - 1


def splitmix64(x):
    """splitmix64 over a uint64 array (numpy wraps modulo 2^64, like C++'s uint64_t)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hashes(stream, n):
    return splitmix64(np.uint64(stream << 32) + np.arange(n, dtype=np.uint64))


def uniform(stream, n):
    """u = m / 2^24 in [0, 1), m the hash's top 24 bits: exact in float32."""
    return (hashes(stream, n) >> np.uint64(40)).astype(np.float64) / 2.0**24


def images(step):
    return uniform(IMAGES + step, BATCH * 28 * 28).reshape(BATCH, 1, 28, 28)


def labels(step):
    return ((hashes(LABELS + step, BATCH) >> np.uint64(40)) % np.uint64(10)).astype(np.int64)


def init_(model, base):
    """Parameter k (named_parameters order) from stream base + k, within the power-of-two bound."""
    with torch.no_grad():
        for k, (name, p) in enumerate(model.named_parameters()):
            w = model.get_parameter(name.replace(".bias", ".weight"))
            fan_in = w[0].numel()
            bound = 2.0 ** -int(np.ceil(np.log2(fan_in) / 2))
            p.copy_(torch.from_numpy((2 * uniform(base + k, p.numel()) - 1) * bound).reshape(p.shape))


MODELS = {
    "mlp": (0x100,
            lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                        torch.nn.Linear(128, 10)),
            lambda params: torch.optim.Adam(params, lr=1e-3)),
    "cnn": (0x200,
            lambda: torch.nn.Sequential(
                torch.nn.Conv2d(1, 32, 3, 1, 1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                torch.nn.Conv2d(32, 64, 3, 1, 1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                torch.nn.Flatten(), torch.nn.Linear(64 * 7 * 7, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)),
            lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9)),
}


def run(name, dtype):
    base, make_model, make_optimizer = MODELS[name]
    model = make_model().to(dtype)
    init_(model, base)
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = make_optimizer(model.parameters())
    losses = []
    for step in range(STEPS):
        optimizer.zero_grad()
        x = torch.from_numpy(images(step)).to(dtype)
        loss = F.cross_entropy(model(x), torch.from_numpy(labels(step)))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    prefix = f"{name}.{'f32' if dtype == torch.float32 else 'f64'}."
    out = {prefix + "loss": torch.tensor(losses, dtype=dtype)}
    for n, p in model.named_parameters():
        p = p.detach()
        if p.numel() <= FULL:
            out[prefix + n] = p
        else:
            idx = (torch.arange(SAMPLES, dtype=torch.int64) * SAMPLE_STRIDE) % p.numel()
            out[prefix + n + ".sample"] = p.reshape(-1)[idx]
            out[prefix + n + ".update_sq"] = ((p.double() - initial[n].double()) ** 2).sum().reshape(1)
    return out


def save_safetensors(tensors, path, metadata):
    names = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64"}
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        data = t.contiguous().numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    tensors = {"labels": torch.from_numpy(np.stack([labels(s) for s in range(STEPS)]))}
    for name in MODELS:
        for dtype in (torch.float32, torch.float64):
            tensors.update(run(name, dtype))
    save_safetensors(tensors, sys.argv[1],
                     {"generator": "scripts/make_training_reference.py", "torch": torch.__version__})
    for k, t in tensors.items():
        if k.endswith("loss"):
            print(k, [f"{v:.9g}" for v in t.tolist()])


if __name__ == "__main__":
    main()
