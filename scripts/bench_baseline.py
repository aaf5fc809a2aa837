#!/usr/bin/env python3
"""Compares two Google Benchmark JSON files (bench_registry's, or any suite's) run with repetitions.

    scripts/bench_baseline.py --baseline out/bench/baseline.json out/bench/bench_registry.json

For every benchmark in both files it reports the median of the repetitions and their spread
(min-max), and flags a change only when the two runs' ranges do not overlap (the new run's fastest
repetition slower than the baseline's slowest, or its slowest faster than the baseline's fastest)
and the medians differ by at least --min-change (default 2%). Then it lists the ops whose forward or
backward got slower, and those that got faster (a registry benchmark is named
<op>/forward/process_time or <op>/backward/manual_time; other names are listed whole). Exit status: 0, or 1 with --fail-on-slower when
something got slower; 2 for unusable input (a file that is not Google Benchmark JSON, no
benchmark in common, fewer than --min-repetitions repetitions).

The time compared (--metric) is wall time by default: real_time (for bench_registry's backward
benchmarks the manual time of the backward alone). --metric cpu compares cpu_time, and for those
backward benchmarks their backward_cpu_time counter (a manually timed benchmark's cpu_time covers its
untimed setup, so it is never compared). Measured on the shared 2-core machine, two runs of the
same bench_registry (3 repetitions of 0.05 s): in order, 107-122 of 240 benchmarks flagged by either
metric; with --benchmark_enable_random_interleaving=true (each benchmark's repetitions spread over
the run, so their range sees the load change), 146 by wall time and 38 by CPU time. make
bench-baseline uses interleaving and --metric cpu; a quiet machine and more repetitions do better.
Times are converted to nanoseconds. Python 3 standard library only.
"""
import argparse
import json
import statistics
import sys

UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


class InputError(Exception):
    """A file that cannot be compared; the message names it."""


def repetition_ns(b, metric):
    """The time of one repetition in ns, or None when the metric does not exist for it. cpu: the
    backward_cpu_time counter (seconds, bench_registry's backward benchmarks) or else cpu_time, but
    never the cpu_time of a manually timed benchmark, which covers its untimed setup too."""
    unit = b.get("time_unit", "ns")
    if unit not in UNIT_NS:
        raise InputError(f"benchmark '{b.get('name')}' has an unknown time unit '{unit}'")
    if metric == "real":
        return float(b["real_time"]) * UNIT_NS[unit] if "real_time" in b else None
    if "backward_cpu_time" in b:
        return float(b["backward_cpu_time"]) * 1e9
    if "/manual_time" in b.get("name", "") or "cpu_time" not in b:
        return None
    return float(b["cpu_time"]) * UNIT_NS[unit]


def load_runs(path, metric="real"):
    """{benchmark name: [time of each repetition in ns]}, the benchmarks that failed, those without
    the metric, and the file's context."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot read Google Benchmark JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise InputError(f"{path}: not Google Benchmark JSON (no 'benchmarks' list)")
    runs = {}
    errors = []
    missing = []
    for b in data["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue  # aggregates (mean, median, stddev, cv) are recomputed from the repetitions
        name = b.get("run_name", b.get("name"))
        if b.get("error_occurred"):
            errors.append(name)
            continue
        try:
            t = repetition_ns(b, metric)
        except InputError as e:
            raise InputError(f"{path}: {e}") from e
        if t is None:
            missing.append(name)
        else:
            runs.setdefault(name, []).append(t)
    return runs, sorted(set(errors)), sorted(set(missing)), data.get("context", {})


class Stat:
    def __init__(self, times):
        self.n = len(times)
        self.median = statistics.median(times)
        self.lo = min(times)
        self.hi = max(times)


def compare(base_runs, new_runs, min_change=0.02, min_repetitions=3):
    """Rows (name, base Stat, new Stat, ratio new/base median, verdict) for the benchmarks in both,
    with verdict 'slower', 'faster' or '' (within noise). InputError on too few repetitions."""
    rows = []
    for name in base_runs:
        if name not in new_runs:
            continue
        base, new = Stat(base_runs[name]), Stat(new_runs[name])
        for label, s in (("baseline", base), ("new run", new)):
            if s.n < min_repetitions:
                raise InputError(f"'{name}' has {s.n} repetition(s) in the {label}; at least {min_repetitions} are needed "
                                 "to tell a change from noise (run with --benchmark_repetitions=5)")
        ratio = new.median / base.median if base.median > 0 else float("inf")
        verdict = ""
        if new.lo > base.hi and ratio >= 1 + min_change:
            verdict = "slower"
        elif new.hi < base.lo and ratio <= 1 / (1 + min_change):
            verdict = "faster"
        rows.append((name, base, new, ratio, verdict))
    return rows


def split_op(name):
    """('op', 'backward') for 'op/backward' or 'op/backward/manual_time', ('op', 'forward') for
    'op/forward' or 'op/forward/process_time' (the suffixes Google Benchmark gives manually timed
    benchmarks and those measuring the process's CPU time); (name, '') otherwise."""
    for suffix in ("/manual_time", "/process_time", "/real_time"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    op, _, part = name.rpartition("/")
    if part in ("forward", "backward") and op:
        return op, part
    return name, ""


def summarize(rows, verdict):
    """'op (forward +12%, backward +9%)' for each op with a benchmark of that verdict."""
    ops = {}
    for name, _, _, ratio, v in rows:
        if v == verdict:
            op, part = split_op(name)
            ops.setdefault(op, []).append(f"{part + ' ' if part else ''}{(ratio - 1) * 100:+.1f}%")
    return [f"{op} ({', '.join(parts)})" for op, parts in ops.items()]


def fmt_stat(s):
    """'101 us [99-103]': the median and the min-max range in the median's unit."""
    unit, scale = "ns", 1.0
    for u, sc in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if s.median >= sc:
            unit, scale = u, sc
            break
    return f"{s.median / scale:.4g} {unit} [{s.lo / scale:.4g}-{s.hi / scale:.4g}]"


def report(rows, base_errors, new_errors, only_base, only_new, out):
    w = max([len(r[0]) for r in rows] + [9])
    print(f"{'benchmark':<{w}}  {'baseline median [min-max]':<32}  {'new median [min-max]':<32}  {'change':>8}", file=out)
    for name, base, new, ratio, verdict in rows:
        print(f"{name:<{w}}  {fmt_stat(base):<32}  {fmt_stat(new):<32}  {(ratio - 1) * 100:+7.1f}%  {verdict}".rstrip(),
              file=out)
    slower, faster = summarize(rows, "slower"), summarize(rows, "faster")
    print(f"\n{len(rows)} benchmarks compared; a change counts only outside both runs' min-max range.", file=out)
    print(f"slower ({len(slower)}): {'; '.join(slower) if slower else 'none'}", file=out)
    print(f"faster ({len(faster)}): {'; '.join(faster) if faster else 'none'}", file=out)
    if only_base:
        print(f"only in the baseline ({len(only_base)}): {', '.join(only_base)}", file=out)
    if only_new:
        print(f"only in the new run ({len(only_new)}): {', '.join(only_new)}", file=out)
    for label, errors in (("baseline", base_errors), ("new run", new_errors)):
        if errors:
            print(f"failed in the {label} ({len(errors)}): {', '.join(errors)}", file=out)
    return slower


def main(argv=None, out=sys.stdout):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline", required=True, help="an earlier run's Google Benchmark JSON")
    p.add_argument("new", help="the run to compare with it (Google Benchmark JSON)")
    p.add_argument("--min-change", type=float, default=0.02,
                   help="smallest relative change of the medians that is reported (default 0.02 = 2%%)")
    p.add_argument("--min-repetitions", type=int, default=3, help="repetitions each run must have (default 3)")
    p.add_argument("--metric", choices=("real", "cpu"), default="real",
                   help="real (default): wall time (real_time; the manual time of bench_registry's backward "
                        "benchmarks); cpu: CPU time (cpu_time; their backward_cpu_time counter)")
    p.add_argument("--fail-on-slower", action="store_true", help="exit 1 when some benchmark got slower")
    args = p.parse_args(argv)
    try:
        base_runs, base_errors, base_missing, base_ctx = load_runs(args.baseline, args.metric)
        new_runs, new_errors, new_missing, new_ctx = load_runs(args.new, args.metric)
        rows = compare(base_runs, new_runs, args.min_change, args.min_repetitions)
        if not rows:
            raise InputError(f"{args.baseline} and {args.new} have no benchmark in common")
    except InputError as e:
        print(f"bench_baseline: {e}", file=sys.stderr)
        return 2
    for label, ctx in (("baseline", base_ctx), ("new run", new_ctx)):
        print(f"{label}: {ctx.get('date', '?')} on {ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} CPUs "
              f"at {ctx.get('mhz_per_cpu', '?')} MHz", file=out)
    only_base = sorted(set(base_runs) - set(new_runs))
    only_new = sorted(set(new_runs) - set(base_runs))
    print(f"metric: {args.metric} time", file=out)
    slower = report(rows, base_errors, new_errors, only_base, only_new, out)
    missing = sorted(set(base_missing) | set(new_missing))
    if missing:
        print(f"without {args.metric} time, not compared ({len(missing)}): {', '.join(missing)}", file=out)
    return 1 if slower and args.fail_on_slower else 0


if __name__ == "__main__":
    sys.exit(main())
