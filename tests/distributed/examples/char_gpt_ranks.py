#!/usr/bin/env python3
"""examples/char_gpt under mpirun -np 2 with --batch-size B takes the steps of one process with 2·B.

Usage: char_gpt_ranks.py CHAR_GPT MPIEXEC [MPIEXEC ARGS...]
Both runs train a small GPT for a few iterations on the same generated text; the test compares the
losses they print (--bench JSON) and the weights they write (model.safetensors, float32), which
differ only by the rounding of a mean of two per-rank means against one mean (1e-5 relative
on the losses; 1e-5 absolute on weights of magnitude up to about 1, since Adam's first steps,
nearly sign(g)·lr, turn a rounding difference in a tiny gradient into one of up to lr). Standard
library only.
"""
import array
import json
import os
import struct
import subprocess
import sys
import tempfile


def weights(path):
    """{name: array of float32} from a safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit("unexpected dtype %s of %s" % (info["dtype"], name))
        begin, end = info["data_offsets"]
        out[name] = array.array("f", blob[8 + n + begin:8 + n + end])
    return out


def main():
    char_gpt, mpiexec = sys.argv[1], sys.argv[2:]
    work = tempfile.mkdtemp(prefix="char_gpt_ranks-")
    text = os.path.join(work, "text.txt")
    with open(text, "w") as f:
        f.write("".join("%% fortune %d: the quick brown fox jumps over the lazy dog.\n" % i for i in range(200)))
    common = ["--text", text, "--iters", "4", "--eval-every", "2", "--eval-batches", "2", "--warmup", "1",
              "--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16", "--sample", "0",
              "--state", "none", "--bench", "--quiet"]
    runs = {}
    for label, cmd in (("one process, batch 8", [char_gpt, "--batch-size", "8"]),
                       ("2 ranks, batch 4 each", mpiexec + [char_gpt, "--batch-size", "4"])):
        out = os.path.join(work, label.split(",")[0].replace(" ", "_"))
        r = subprocess.run(cmd + common + ["--out", out], capture_output=True, text=True, timeout=240)
        if r.returncode != 0:
            sys.exit("%s failed (%d):\n%s\n%s" % (label, r.returncode, r.stdout, r.stderr))
        lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
        if len(lines) != 1:  # rank 0 prints; the other rank is quiet
            sys.exit("%s: expected one JSON line (rank 0's), got %d:\n%s" % (label, len(lines), r.stdout))
        runs[label] = (json.loads(lines[0]), weights(os.path.join(out, "model.safetensors")))
    (a, wa), (b, wb) = runs.values()
    failures = []
    for key in ("train_loss", "val_loss"):
        if abs(a[key] - b[key]) > 1e-5 * abs(a[key]):
            failures.append("%s: %.8f vs %.8f" % (key, a[key], b[key]))
    if sorted(wa) != sorted(wb):
        failures.append("different tensors: %s vs %s" % (sorted(wa), sorted(wb)))
    worst = max(max(abs(x - y) for x, y in zip(wa[k], wb[k])) for k in wa if k in wb)
    if worst > 1e-5:
        failures.append("weights differ by up to %g" % worst)
    print("losses %s; largest weight difference %g" % (
        ", ".join("%s %.6f / %.6f" % (k, a[k], b[k]) for k in ("train_loss", "val_loss")), worst))
    if failures:
        sys.exit("char_gpt over 2 ranks is not one process with the global batch:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
