#!/usr/bin/env python3
"""Runs tapegrad, libtorch and PyTorch alternately (A B C A B C ...) and prints one table.

Called by scripts/bench_compare.sh (`make bench-compare`), which builds everything first. Per round:
the seed MLP (784-128-10, Adam 1e-3, cross-entropy) for --epochs epochs (default 3; the run's epoch
time is the median of them) on Fashion-MNIST at batch 32 and 256 in each system, the GEMM floor of
those epochs (bench/compare/gemm_floor.cpp), the tape's cost per tiny op (tapegrad's bench_tape
against torch_compare tape), per-op forward and backward times (tapegrad's per-area Google Benchmark
suites against torch_compare ops), and one epoch of the small CNN (tapegrad's examples/mnist_cnn
against libtorch). Every process runs with one thread; its peak RSS
comes from wait4(). The table quotes medians over the rounds; raw values go to --json.
Standard library only: runs under any python3.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

IDX = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def run(cmd, env_extra=None, tmp=None):
    """Runs cmd, returns (stdout text, peak RSS in MB). Raises on a non-zero exit."""
    env = dict(os.environ, **ONE_THREAD)
    env.pop("OPENBLAS_CORETYPE", None)
    env.update(env_extra or {})
    with tempfile.TemporaryFile(mode="w+", dir=tmp) as out, tempfile.TemporaryFile(mode="w+", dir=tmp) as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read()
        if p.returncode != 0:
            sys.exit("bench-compare: %s failed (exit %d):\n%s%s" % (" ".join(cmd), p.returncode, text[-2000:],
                                                                    err.read()[-2000:]))
    return text, usage.ru_maxrss / 1024.0  # ru_maxrss is in KiB on Linux


def last_json(text):
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def subset(src, dst, n):
    """MNIST-format directory with the first n training images of src and its whole test split."""
    import gzip
    os.makedirs(dst, exist_ok=True)
    stamp = os.path.join(dst, ".subset")
    if os.path.exists(stamp) and open(stamp).read() == "%s %d" % (src, n):
        return dst
    for name in IDX:
        path = os.path.join(src, name)
        data = open(path, "rb").read() if os.path.exists(path) else gzip.open(path + ".gz", "rb").read()
        if name.startswith("train"):
            ndim = data[3]
            dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
            if n > dims[0]:
                sys.exit("bench-compare: --cnn-train %d exceeds the %d training images" % (n, dims[0]))
            item = 1
            for d in dims[1:]:
                item *= d
            data = data[:4] + n.to_bytes(4, "big") + data[8:4 + 4 * ndim] + \
                data[4 + 4 * ndim: 4 + 4 * ndim + n * item]
        with open(os.path.join(dst, name), "wb") as f:
            f.write(data)
    with open(stamp, "w") as f:
        f.write("%s %d" % (src, n))
    return dst


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# Per-op comparison: libtorch's `torch_compare ops` key -> (tapegrad benchmark binary, forward
# benchmark, backward benchmark, label). Same shapes, same inputs requiring grad, forward recorded on
# the tape, backward timed alone.
OPS = [
    ("linear/32", "bench_nn", "BM_LinearForward/32", "BM_LinearBackward/32/manual_time",
     "linear 784->128, batch 32 (weight + bias grads)"),
    ("linear/256", "bench_nn", "BM_LinearForward/256", "BM_LinearBackward/256/manual_time",
     "linear 784->128, batch 256 (weight + bias grads)"),
    ("conv2d/0", "bench_nn", "BM_Conv2dForward/0", "BM_Conv2dBackward/0/manual_time",
     "conv2d 1->32 3x3, [32,1,28,28] (weight + bias)"),
    ("conv2d/1", "bench_nn", "BM_Conv2dForward/1", "BM_Conv2dBackward/1/manual_time",
     "conv2d 32->64 3x3, [32,32,14,14] (+ input)"),
    ("max_pool2d", "bench_nn", "BM_MaxPool2dForward/32", "BM_MaxPool2dBackward/32/manual_time",
     "max_pool2d 2x2, [32,32,28,28]"),
    ("relu/0", "bench_elementwise", "BM_UnaryForward/relu/0", "BM_UnaryBackward/relu/0/manual_time", "relu [32,128]"),
    ("relu/4", "bench_elementwise", "BM_UnaryForward/relu/4", "BM_UnaryBackward/relu/4/manual_time",
     "relu [32,32,28,28]"),
    ("softmax/2", "bench_softmax", "BM_SoftmaxForward/2", "BM_SoftmaxBackward/2/manual_time", "softmax [256,1000]"),
    ("cross_entropy/0", "bench_softmax", "BM_CrossEntropyForward/0", "BM_CrossEntropyBackward/0/manual_time",
     "cross_entropy [32,10], mean"),
    ("cross_entropy/1", "bench_softmax", "BM_CrossEntropyForward/1", "BM_CrossEntropyBackward/1/manual_time",
     "cross_entropy [256,10], mean"),
]


def tapegrad_ops(build, tmp):
    """{key: {"forward": s, "backward": s}} from tapegrad's Google Benchmark suites."""
    times = {}
    for binary in sorted({o[1] for o in OPS}):
        names = [n for o in OPS if o[1] == binary for n in (o[2], o[3])]
        text, _ = run([os.path.join(build, "bench", binary), "--benchmark_filter=^(%s)$" % "|".join(names),
                       "--benchmark_format=json", "--benchmark_min_time=0.2"], tmp=tmp)
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
        for e in json.loads(text)["benchmarks"]:
            times[e["name"]] = e["real_time"] * scale[e["time_unit"]]
    return {key: {"forward": times[f], "backward": times[b]} for key, _, f, b, _ in OPS}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tapegrad-build", default="build", help="tapegrad's CMake build directory")
    p.add_argument("--compare-build", default="build-compare", help="build of bench/compare (torch_compare, gemm_floor)")
    p.add_argument("--python", default="/usr/bin/python3", help="a python3 that imports torch (Debian's)")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-sizes", default="32,256")
    p.add_argument("--epochs", type=int, default=3,
                   help="epochs of each seed-MLP run; its epoch time is the median of them, as the GEMM floor's "
                        "is the median of its timed epochs (one run's single epoch is at the mercy of a noisy "
                        "neighbour)")
    p.add_argument("--cnn-train", type=int, default=10000,
                   help="training images in the CNN epoch (60000: the whole set; default keeps the run short)")
    p.add_argument("--no-cnn", action="store_true")
    p.add_argument("--gpt-iters", type=int, default=300,
                   help="training iterations of the character GPT run in each system (2000 for the full comparison "
                        "of validation losses; the schedule's cosine ends at the last iteration)")
    p.add_argument("--no-gpt", action="store_true", help="skip the character GPT (examples/char_gpt vs scripts/torch_gpt.py)")
    p.add_argument("--text", default="/usr/share/games/fortunes", help="the GPT's corpus")
    p.add_argument("--no-pytorch", action="store_true")
    p.add_argument("--no-ops", action="store_true", help="skip the per-op forward / backward table")
    p.add_argument("--torch-coretype", default="auto",
                   help="OPENBLAS_CORETYPE for libtorch, PyTorch and the GEMM floor: auto = the kernels tapegrad "
                        "uses (Haswell where OpenBLAS falls back to Prescott), 'installed' = OpenBLAS's own choice")
    p.add_argument("--json", default=None, help="write every raw measurement here")
    p.add_argument("--thread-counts", default="1,2",
                   help="intra-op thread counts of the CNN and GPT runs (tapegrad --threads, torch.set_num_threads)")
    args = p.parse_args()

    here = os.path.dirname(os.path.abspath(__file__))
    tg_mlp = os.path.join(args.tapegrad_build, "examples", "mnist_mlp")
    tg_cnn = os.path.join(args.tapegrad_build, "examples", "mnist_cnn")
    tg_tape = os.path.join(args.tapegrad_build, "bench", "bench_tape")
    tg_train = os.path.join(args.tapegrad_build, "bench", "bench_train")
    lt = os.path.join(args.compare_build, "torch_compare")
    floor = os.path.join(args.compare_build, "gemm_floor")
    py = [args.python, os.path.join(here, "torch_compare.py")]
    tg_ops = [os.path.join(args.tapegrad_build, "bench", b) for b in sorted({o[1] for o in OPS})]
    for exe in [tg_mlp, tg_tape, tg_train, lt, floor] + ([] if args.no_ops else tg_ops):
        if not os.access(exe, os.X_OK):
            sys.exit("bench-compare: %s is missing; build it first (scripts/bench_compare.sh does)" % exe)
    has_cnn = not args.no_cnn and os.access(tg_cnn, os.X_OK)
    tg_gpt = os.path.join(args.tapegrad_build, "examples", "char_gpt")
    has_gpt = not args.no_gpt and os.access(tg_gpt, os.X_OK)
    torch_gpt = [args.python, os.path.join(here, "..", "..", "scripts", "torch_gpt.py")]
    batches = [int(b) for b in args.batch_sizes.split(",") if b]
    thread_counts = [int(n) for n in args.thread_counts.split(",") if n] or [1]

    def tsuf(n):
        """The key suffix of a run at n threads ("" at 1: the keys of the single-threaded rows)."""
        return "" if n == 1 else " t%d" % n  # "" : no MLP runs (e.g. only the GPT)
    # The examples write a run state after each epoch when they know --state; the others don't.
    tg_extra = ["--state", "none"] if "--state" in run([tg_mlp, "--help"])[0] else []
    tmp = tempfile.mkdtemp(prefix="bench-compare-")

    # Which OpenBLAS kernels: tapegrad's blas.cpp may re-select them (Haswell where OpenBLAS 0.3.21
    # falls back to its generic Prescott kernels on a CPU with AVX2 + FMA). bench_train reports the
    # choice in its context; libtorch, PyTorch and the floor get the same.
    flags = cpu_flags()
    installed_core = last_json(run([floor, "--batch-size", "256", "--train", "256", "--reps", "1"])[0])["blas_core"]
    text, _ = run([tg_train, "--benchmark_filter=BM_SeedMlpPhaseBatch/32", "--benchmark_min_time=0.01",
                   "--benchmark_format=json"], tmp=tmp)
    tapegrad_core = json.loads(text)["context"]["blas_core"]
    tapegrad_isa = json.loads(text)["context"].get("kernel_isa", "?")
    torch_env = {}
    if args.torch_coretype == "auto":
        torch_env["OPENBLAS_CORETYPE"] = tapegrad_core
    elif args.torch_coretype != "installed":
        torch_env["OPENBLAS_CORETYPE"] = args.torch_coretype
    avx512_core = None
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags and tapegrad_core == "Haswell":
        avx512_core = "Cooperlake" if "avx512_bf16" in flags else "SkylakeX"
    cnn_data = subset(args.data, os.path.join(args.compare_build, "fashion-mnist-%d" % args.cnn_train),
                      args.cnn_train) if has_cnn and args.cnn_train != 60000 else args.data

    raw = {"rounds": []}
    for r in range(1, args.rounds + 1):
        rd = {}
        # The machine's single-core sgemm peak, measured in every round beside the runs it bounds
        # (the compute limits below divide each workload's FLOPs by it).
        rd["sgemm peak"] = {"gflops": last_json(run([floor, "--peak", "2048"],
                                                    {"OPENBLAS_CORETYPE": tapegrad_core}, tmp)[0])["peak_gflops"]}
        for b in batches:
            # The floor runs before and after this batch size's three systems; the smaller value is
            # kept (a pure-GEMM loop is only ever slowed down by a busy machine, so the smaller is the
            # truer floor, and the stricter one for the ratio).
            text, _ = run([floor, "--batch-size", str(b)], {"OPENBLAS_CORETYPE": tapegrad_core}, tmp)
            floor_before = last_json(text)["seconds"]
            out_dir = os.path.join(tmp, "tg_mlp_%d" % b)
            epochs = str(args.epochs)
            _, rss = run([tg_mlp, "--dataset", "fashion-mnist", "--data", args.data, "--epochs", epochs, "--batch-size",
                          str(b), "--threads", "1", "--seed", "0", "--quiet", "--out", out_dir] + tg_extra, tmp=tmp)
            m = json.load(open(os.path.join(out_dir, "metrics.json")))
            tg_epochs = [e["seconds"] for e in m["history"]["epochs"]]
            rd["tapegrad mlp %d" % b] = {"seconds": median(tg_epochs), "epoch_seconds": tg_epochs,
                                         "accuracy": m["test"]["accuracy"], "rss_mb": rss}
            common = ["--data", args.data, "--batch-size", str(b), "--epochs", epochs, "--seed", "0"]
            text, rss = run([lt, "mlp"] + common, torch_env, tmp)
            j = last_json(text)
            rd["libtorch mlp %d" % b] = {"seconds": median(j["epoch_seconds"]), "epoch_seconds": j["epoch_seconds"],
                                         "accuracy": j["test_accuracy"], "rss_mb": rss, "blas_core": j["blas_core"]}
            if not args.no_pytorch:
                text, rss = run(py + ["mlp"] + common, torch_env, tmp)
                j = last_json(text)
                rd["pytorch mlp %d" % b] = {"seconds": median(j["epoch_seconds"]), "epoch_seconds": j["epoch_seconds"],
                                            "accuracy": j["test_accuracy"], "rss_mb": rss, "blas_core": j["blas_core"]}
            text, _ = run([floor, "--batch-size", str(b)], {"OPENBLAS_CORETYPE": tapegrad_core}, tmp)
            rd["floor %d" % b] = {"seconds": min(floor_before, last_json(text)["seconds"]),
                                  "before_after": [floor_before, last_json(text)["seconds"]],
                                  "blas_core": last_json(text)["blas_core"]}
            if avx512_core:
                text, _ = run([floor, "--batch-size", str(b)], {"OPENBLAS_CORETYPE": avx512_core}, tmp)
                rd["floor avx512 %d" % b] = {"seconds": last_json(text)["seconds"]}
        text, _ = run([tg_tape, "--benchmark_filter=^BM_Tape(Forward|Backward)$", "--benchmark_format=json"], tmp=tmp)
        bench = {e["name"]: e["time_per_op"] for e in json.loads(text)["benchmarks"]}
        rd["tapegrad tape"] = {"forward": bench["BM_TapeForward"], "backward": bench["BM_TapeBackward"]}
        j = last_json(run([lt, "tape"], torch_env, tmp)[0])
        rd["libtorch tape"] = {"forward": j["forward_per_op"], "backward": j["backward_per_op"]}
        if not args.no_pytorch:
            j = last_json(run(py + ["tape", "--reps", "30"], torch_env, tmp)[0])
            rd["pytorch tape"] = {"forward": j["forward_per_op"], "backward": j["backward_per_op"]}
        if not args.no_ops:
            rd["tapegrad ops"] = tapegrad_ops(args.tapegrad_build, tmp)
            rd["libtorch ops"] = last_json(run([lt, "ops"], torch_env, tmp)[0])["ops"]
        for n in thread_counts if has_cnn else []:
            out_dir = os.path.join(tmp, "tg_cnn")
            _, rss = run([tg_cnn, "--dataset", "fashion-mnist", "--data", cnn_data, "--epochs", "1", "--batch-size",
                          "32", "--threads", str(n), "--seed", "0", "--quiet", "--out", out_dir] + tg_extra, tmp=tmp)
            m = json.load(open(os.path.join(out_dir, "metrics.json")))
            rd["tapegrad cnn" + tsuf(n)] = {"seconds": m["history"]["epochs"][0]["seconds"],
                                            "accuracy": m["test"]["accuracy"], "rss_mb": rss}
            text, rss = run([lt, "cnn", "--data", cnn_data, "--batch-size", "32", "--epochs", "1", "--seed", "0",
                             "--threads", str(n)], torch_env, tmp)
            j = last_json(text)
            rd["libtorch cnn" + tsuf(n)] = {"seconds": j["epoch_seconds"][0], "accuracy": j["test_accuracy"],
                                            "rss_mb": rss}
        if has_gpt:
            for n in thread_counts:
                gpt_common = ["--iters", str(args.gpt_iters), "--eval-every", str(args.gpt_iters), "--text",
                              args.text, "--seed", "0", "--threads", str(n)]
                text, rss = run([tg_gpt, "--bench", "--quiet", "--sample", "0", "--state", "none",
                                 "--out", os.path.join(tmp, "tg_gpt")] + gpt_common, tmp=tmp)
                j = last_json(text)
                rd["tapegrad gpt" + tsuf(n)] = {"ms": j["ms_per_iter"], "val_loss": j["val_loss"], "rss_mb": rss}
                if not args.no_pytorch:
                    text, rss = run(torch_gpt + gpt_common, torch_env, tmp)
                    j = last_json(text)
                    rd["pytorch gpt" + tsuf(n)] = {"ms": j["ms_per_iter"], "val_loss": j["val_loss"], "rss_mb": rss}
        raw["rounds"].append(rd)
        print("round %d/%d: " % (r, args.rounds) + ", ".join(
            "%s %.3fs" % (k, v["seconds"]) for k, v in rd.items() if "seconds" in v), file=sys.stderr, flush=True)

    def series(key, field, scale=1.0):
        """The value of `field` of run `key` in each round (None where the round lacks it)."""
        return [rd[key][field] * scale if key in rd else None for rd in raw["rounds"]]

    def med(key, field):
        return median(series(key, field))

    def paired(a, b):
        """Median over rounds of a/b: each round's runs sat next to each other, so the ratio cancels
        most of the load the machine had at that moment."""
        return median([x / y for x, y in zip(a, b) if x is not None and y]) if a and b else None

    systems = ["tapegrad", "libtorch"] + ([] if args.no_pytorch else ["pytorch"])
    rows = []  # (label, [per-system cells], tg/lt, tg/py, target text, met)

    def fmt(v, spec):
        return "-" if v is None else spec % v

    def add(label, per_round, spec, target=None):
        """A row from per-system lists of per-round values: medians, paired ratios, target check."""
        tl = paired(per_round.get("tapegrad"), per_round.get("libtorch"))
        tp = paired(per_round.get("tapegrad"), per_round.get("pytorch"))
        met = "-" if target is None or tl is None else ("yes" if tl <= target else "NO")
        rows.append((label, [fmt(median(per_round.get(s, [])), spec) for s in systems], fmt(tl, "%.2f"),
                     fmt(tp, "%.2f"), "-" if target is None else "<= %.2f" % target, met))

    targets = {32: 0.33, 256: 0.8}
    limit_targets = {32: 1.3, 256: 1.15}  # issue 15: epoch / compute limit on a quiet machine
    peaks = series("sgemm peak", "gflops")

    def limit_row(label, flops, per_system, target):
        """epoch / compute limit, where the limit is `flops` at the sgemm peak of the same round."""
        limit = [flops / (g * 1e9) if g else None for g in peaks]
        vals = {s: paired(per_system[s], limit) for s in per_system}
        rows.append(("%s: %.1f GFLOP, limit %.3f s; time / limit" % (label, flops * 1e-9, median(limit)),
                     [fmt(vals.get(s), "%.2fx") for s in systems], "-", "-",
                     "-" if target is None else "tapegrad <= %.2fx" % target,
                     "-" if target is None or vals.get("tapegrad") is None else
                     ("yes" if vals["tapegrad"] <= target else "NO")))

    rows.append(("single-core sgemm peak, 2048^3 (GFLOP/s)", [fmt(median(peaks), "%.1f")] + ["-"] * (len(systems) - 1),
                 "-", "-", "-", "-"))
    accuracy_ok = True
    for b in batches:
        add("seed MLP epoch, batch %d (s)" % b, {s: series("%s mlp %d" % (s, b), "seconds") for s in systems},
            "%.3f", targets.get(b))
    for b in batches:
        # FLOPs of a seed-MLP epoch (60,000 samples, 784-128-10): forward 2·(784·128 + 128·10) per
        # sample; backward both weight gradients (the same again) and the input gradient of the second
        # layer only (2·128·10; the first layer's input is data): 2·2·784·128 + 3·2·128·10 per sample.
        limit_row("seed MLP epoch, batch %d" % b, 60000 * (4 * 784 * 128 + 6 * 128 * 10),
                  {s: series("%s mlp %d" % (s, b), "seconds") for s in systems}, limit_targets.get(b))
    for b in batches:
        fl = series("floor %d" % b, "seconds")
        vals = {s: paired(series("%s mlp %d" % (s, b), "seconds"), fl) for s in systems}
        rows.append(("GEMM floor, batch %d: %.3f s; epoch / floor" % (b, median(fl)),
                     [fmt(vals[s], "%.2fx") for s in systems], "-", "-", "tapegrad <= 1.50x",
                     "yes" if vals["tapegrad"] <= 1.5 else "NO"))
    fwd = {s: series("%s tape" % s, "forward", 1e6) for s in systems}
    bwd = {s: series("%s tape" % s, "backward", 1e6) for s in systems}
    add("tape per tiny op, forward (us)", fwd, "%.3f")
    add("tape per tiny op, backward (us)", bwd, "%.3f")
    add("tape per tiny op, fwd + bwd (us)", {s: [f + b for f, b in zip(fwd[s], bwd[s])] for s in systems}, "%.3f",
        0.25)
    for b in batches:
        add("peak RSS, MLP run batch %d (MB)" % b, {s: series("%s mlp %d" % (s, b), "rss_mb") for s in systems},
            "%.0f", 1.0)
    for b in batches:
        acc = {s: med("%s mlp %d" % (s, b), "accuracy") for s in systems}
        ok = max(acc.values()) - min(acc.values()) <= 0.02
        accuracy_ok &= ok
        rows.append(("test accuracy after %d epoch%s, batch %d" % (args.epochs, "s" if args.epochs > 1 else "", b), [fmt(acc[s], "%.4f") for s in systems], "-", "-",
                     "spread <= 0.02", "yes" if ok else "NO"))
    if has_cnn:
        label = "small CNN epoch, batch 32, %dk images (s)" % (args.cnn_train // 1000)
        add(label, {s: series("%s cnn" % s, "seconds") for s in ("tapegrad", "libtorch")}, "%.2f", 0.6)
        # FLOPs of the small CNN per image, counted as direct convolutions and dense products (a
        # Winograd or FFT convolution does fewer multiplies, so it can run under this limit): forward
        # conv1 2·32·28²·9, conv2 2·64·14²·288, fc1 2·3136·128, fc2 2·128·10; backward every weight
        # gradient (the forward's count again) and every input gradient except conv1's (data).
        c1, c2, f1, f2 = 2 * 32 * 28 * 28 * 9, 2 * 64 * 14 * 14 * 288, 2 * 3136 * 128, 2 * 128 * 10
        limit_row("small CNN epoch", args.cnn_train * (2 * c1 + 3 * (c2 + f1 + f2)),
                  {s: series("%s cnn" % s, "seconds") for s in ("tapegrad", "libtorch")}, None)
        add("peak RSS, CNN run (MB)", {s: series("%s cnn" % s, "rss_mb") for s in ("tapegrad", "libtorch")}, "%.0f")
        acc = {s: med("%s cnn" % s, "accuracy") for s in ("tapegrad", "libtorch")}
        ok = abs(acc["tapegrad"] - acc["libtorch"]) <= 0.03
        accuracy_ok &= ok
        rows.append(("CNN test accuracy after 1 epoch", [fmt(acc.get(s), "%.4f") for s in systems], "-", "-",
                     "diff <= 0.03", "yes" if ok else "NO"))
        for n in [n for n in thread_counts if n != 1]:
            add("small CNN epoch at %d threads (s)" % n,
                {s: series("%s cnn%s" % (s, tsuf(n)), "seconds") for s in ("tapegrad", "libtorch")}, "%.2f", 1.0)
            # the speed-up of each system from 1 to n threads (per round, then the median)
            up = {s: paired(series("%s cnn" % s, "seconds"), series("%s cnn%s" % (s, tsuf(n)), "seconds"))
                  for s in ("tapegrad", "libtorch")}
            rows.append(("CNN epoch speed-up, 1 -> %d threads" % n, [fmt(up.get(s), "%.2fx") for s in systems], "-",
                         "-", "tapegrad >= 1.70x (quiet machine)",
                         "-" if up["tapegrad"] is None else ("yes" if up["tapegrad"] >= 1.7 else "NO")))

    if has_gpt:
        # FLOPs of one training iteration of the baby GPT, from the shapes (B·T tokens, width E, L layers,
        # vocabulary V): per layer 2·BT·12E² (qkv 3E², out 1E², MLP 8E²) + 4·B·T²·E (scores and the
        # weighted sum, full squares), plus the head 2·BT·E·V; backward twice the forward.
        b_, t_, e_, l_, v_ = 12, 64, 128, 4, 113
        flops = 3 * (l_ * (2 * b_ * t_ * 12 * e_ * e_ + 4 * b_ * t_ * t_ * e_) + 2 * b_ * t_ * e_ * v_)
        limit = [flops / (g * 1e9) * 1e3 for g in peaks if g]
        gpt = {s: series("%s gpt" % s, "ms") for s in ("tapegrad", "pytorch") if not (s == "pytorch" and args.no_pytorch)}
        tp = paired(gpt.get("tapegrad"), gpt.get("pytorch"))
        rows.append(("char GPT training iteration (ms)", [fmt(median(gpt.get(s, [])), "%.1f") for s in systems], "-",
                     fmt(tp, "%.2f"), "tg/PyTorch <= 0.75", "-" if tp is None else ("yes" if tp <= 0.75 else "NO")))
        lim = {s: paired(gpt[s], limit) for s in gpt}
        rows.append(("GPT: %.2f GFLOP, limit %.1f ms at %.1f GFLOP/s; iteration / limit" % (
            flops * 1e-9, median(limit), median(peaks)), [fmt(lim.get(s), "%.2fx") for s in systems], "-", "-",
            "tapegrad <= 1.30x", "-" if lim.get("tapegrad") is None else ("yes" if lim["tapegrad"] <= 1.3 else "NO")))
        rss = {s: series("%s gpt" % s, "rss_mb") for s in gpt}
        rows.append(("peak RSS, GPT run (MB)", [fmt(median(rss.get(s, [])), "%.0f") for s in systems], "-",
                     fmt(paired(rss.get("tapegrad"), rss.get("pytorch")), "%.2f"), "tg/PyTorch <= 1.00", "-"))
        vl = {s: med("%s gpt" % s, "val_loss") for s in gpt}
        ok = len(vl) < 2 or abs(vl["tapegrad"] - vl["pytorch"]) <= 0.05
        # Issue 10's target is for the full 2,000-iteration schedule; after fewer iterations the two
        # runs' different random streams still move the losses by more than 0.05, so the row is
        # informative only ("-") unless --gpt-iters 2000.
        full = args.gpt_iters >= 2000
        rows.append(("GPT validation loss after %d iterations" % args.gpt_iters,
                     [fmt(vl.get(s), "%.4f") for s in systems], "-", "-",
                     "diff <= 0.05" if full else "diff <= 0.05 at 2000 it.", ("yes" if ok else "NO") if full else "-"))
        for n in [n for n in thread_counts if n != 1]:
            g_n = {s: series("%s gpt%s" % (s, tsuf(n)), "ms") for s in gpt}
            tp_n = paired(g_n.get("tapegrad"), g_n.get("pytorch"))
            rows.append(("char GPT training iteration at %d threads (ms)" % n,
                         [fmt(median(g_n.get(s, [])), "%.1f") for s in systems], "-", fmt(tp_n, "%.2f"), "-", "-"))
            up = {s: paired(gpt[s], g_n[s]) for s in gpt}
            rows.append(("GPT iteration speed-up, 1 -> %d threads" % n, [fmt(up.get(s), "%.2fx") for s in systems],
                         "-", "-", "-", "-"))

    headers = ["", "tapegrad", "libtorch"] + ([] if args.no_pytorch else ["PyTorch"]) + \
        ["tg/libtorch", "tg/PyTorch", "target tg/libtorch", "met"]
    table = [headers] + [[label] + cells + [tl, tp, target, met] for label, cells, tl, tp, target, met in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in table]
    lt_core = raw["rounds"][0]["libtorch mlp %d" % batches[0]]["blas_core"] if batches else "(no MLP run)"
    print()
    print("tapegrad vs libtorch vs PyTorch on Fashion-MNIST (60,000 train / 10,000 test), 1 thread unless a row "
          "says more (CNN and GPT at %s threads: tapegrad --threads, torch.set_num_threads), medians of %d "
          "alternating rounds; ratios: median of the per-round ratios" % (args.thread_counts, args.rounds))
    print("Seed MLP epoch time of a run: the median of its %d epochs; GEMM floor: the median of 3 timed epochs "
          "after a warm-up one, measured before and after the three systems' runs, the smaller kept" % args.epochs)
    print("CPU: %s, %d cores; load average at the end: %.2f" % (cpu_model(), os.cpu_count(), os.getloadavg()[0]))
    print("OpenBLAS kernels: tapegrad %s, libtorch/PyTorch/floor %s (OpenBLAS's own choice here: %s); "
          "tapegrad's own vectorised kernels run their %s path%s"
          % (tapegrad_core, lt_core, installed_core, tapegrad_isa,
             "; libtorch's convolutions run oneDNN (MKL-DNN)" if has_cnn else ""))
    print("\n".join(lines[:1] + ["-" * len(lines[0])] + lines[1:]))
    if avx512_core:
        print("GEMM floor with OpenBLAS's AVX-512 %s kernels (unused by all three): %s" % (avx512_core, ", ".join(
            "batch %d %.3f s" % (b, med("floor avx512 %d" % b, "seconds")) for b in batches)))
    if has_cnn and args.cnn_train != 60000:
        print("CNN: first %d training images (a full epoch is %.1fx longer), full test set"
              % (args.cnn_train, 60000 / args.cnn_train))
    if not accuracy_ok:
        print("WARNING: test accuracies differ by more than the tolerance: the systems may not do the same work")
    op_table = []
    if not args.no_ops:
        op_table = [["op (us; forward recorded, backward alone)", "tg fwd", "lt fwd", "tg/lt", "tg bwd", "lt bwd",
                     "tg/lt"]]
        for key, _, _, _, label in OPS:
            row = [label]
            for phase in ("forward", "backward"):
                tg = [rd["tapegrad ops"][key][phase] for rd in raw["rounds"]]
                lt_ = [rd["libtorch ops"][key][phase] for rd in raw["rounds"]]
                row += ["%.1f" % (median(tg) * 1e6), "%.1f" % (median(lt_) * 1e6), "%.2f" % paired(tg, lt_)]
            op_table.append(row)
        w = [max(len(r[i]) for r in op_table) for i in range(len(op_table[0]))]
        text = ["  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)) for r in op_table]
        print()
        print("Per op, tapegrad (bench/bench_nn, bench_elementwise, bench_softmax) vs libtorch (torch_compare ops), "
              "same shapes and inputs; medians over rounds")
        print("\n".join(text[:1] + ["-" * len(text[0])] + text[1:]))
    if args.json:
        raw.update({"tapegrad_core": tapegrad_core, "tapegrad_isa": tapegrad_isa, "cpu": cpu_model(), "torch_core": lt_core, "installed_core": installed_core,
                    "table": table, "op_table": op_table})
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=2)
        print("raw measurements: %s" % args.json)


if __name__ == "__main__":
    main()
