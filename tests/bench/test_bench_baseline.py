#!/usr/bin/env python3
"""scripts/bench_baseline.py on two small Google Benchmark JSON fixtures (run by ctest):
fixtures/baseline.json and fixtures/new.json hold five repetitions per benchmark, in which
- nn.conv2d/forward got 20% slower, the two runs' ranges apart (and in ns vs us): flagged slower;
- add/backward/manual_time's median moved +7.7% but the ranges overlap: noise, not flagged;
- matmul/forward got 25% faster (in ms vs us): flagged faster;
- relu/forward's ranges are apart but the medians differ by 0.5%, under --min-change: not flagged;
- one benchmark is only in each file, and one failed in both."""
import io
import json
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import bench_baseline  # noqa: E402

BASE = os.path.join(HERE, "fixtures", "baseline.json")
NEW = os.path.join(HERE, "fixtures", "new.json")


def run(*argv):
    out, err = io.StringIO(), io.StringIO()
    stderr, sys.stderr = sys.stderr, err
    try:
        code = bench_baseline.main(list(argv), out=out)
    finally:
        sys.stderr = stderr
    return code, out.getvalue(), err.getvalue()


class CompareTest(unittest.TestCase):
    def verdicts(self, min_change=0.02, metric="cpu"):
        base, _, _, _ = bench_baseline.load_runs(BASE, metric)
        new, _, _, _ = bench_baseline.load_runs(NEW, metric)
        return {name: (round(ratio, 3), verdict) for name, _, _, ratio, verdict in
                bench_baseline.compare(base, new, min_change)}

    def test_regression_flagged_noise_not(self):
        v = self.verdicts()
        self.assertEqual(v["nn.conv2d/forward"], (1.198, "slower"))  # 101 us → 121 us
        self.assertEqual(v["add/backward/manual_time"], (1.077, ""))             # within both runs' spread
        self.assertEqual(v["matmul/forward"], (0.75, "faster"))
        self.assertEqual(v["relu/forward"][1], "")                   # apart, but +0.5%
        self.assertEqual(set(v), {"nn.conv2d/forward", "add/backward/manual_time", "matmul/forward", "relu/forward"})

    def test_real_time_gives_the_same_verdicts_here(self):
        self.assertEqual({k: v[1] for k, v in self.verdicts(metric="real").items()},
                         {k: v[1] for k, v in self.verdicts(metric="cpu").items()})

    def test_cpu_metric_of_a_manually_timed_benchmark(self):
        # its backward_cpu_time counter (seconds) is compared, never its cpu_time (which covers the setup)
        base, _, missing, _ = bench_baseline.load_runs(BASE, "cpu")
        self.assertAlmostEqual(base["add/backward/manual_time"][0], 50 * 1e3 * 1.01)
        self.assertEqual(missing, [])
        entry = {"name": "x/backward/manual_time", "run_type": "iteration", "real_time": 5, "cpu_time": 9, "time_unit": "us"}
        self.assertIsNone(bench_baseline.repetition_ns(entry, "cpu"))
        self.assertEqual(bench_baseline.repetition_ns(entry, "real"), 5000.0)

    def test_min_change_zero_flags_a_small_but_clean_change(self):
        self.assertEqual(self.verdicts(min_change=0.0)["relu/forward"][1], "slower")
        self.assertEqual(self.verdicts(min_change=0.0)["add/backward/manual_time"][1], "")

    def test_repetitions_and_aggregates(self):
        base, errors, _, ctx = bench_baseline.load_runs(BASE, "real")
        self.assertEqual(len(base["add/backward/manual_time"]), 5)  # the _median aggregate is not a repetition
        self.assertEqual(base["nn.conv2d/forward"][0], 100000.0)  # ns
        self.assertEqual(errors, ["broken/backward/manual_time"])
        self.assertEqual(ctx["host_name"], "fixture")

    def test_report_lists_ops(self):
        code, out, _ = run("--baseline", BASE, NEW)
        self.assertEqual(code, 0)
        self.assertIn("slower (1): nn.conv2d (forward +19.8%)", out)
        self.assertIn("faster (1): matmul (forward -25.0%)", out)
        self.assertEqual(bench_baseline.split_op("add/backward/manual_time"), ("add", "backward"))
        self.assertEqual(bench_baseline.split_op("nn.linear/forward/process_time"), ("nn.linear", "forward"))
        self.assertEqual(bench_baseline.split_op("BM_Other/256"), ("BM_Other/256", ""))
        self.assertIn("only in the baseline (1): removed_op/forward", out)
        self.assertIn("only in the new run (1): new_op/forward", out)
        self.assertIn("failed in the new run (1): broken/backward/manual_time", out)
        self.assertIn("101 us [99-103]", out)  # real time by default
        self.assertIn("102 us [99.99-104]", run("--baseline", BASE, NEW, "--metric", "cpu")[1])  # 1.01 × here
        self.assertEqual(run("--baseline", BASE, NEW, "--fail-on-slower")[0], 1)
        self.assertEqual(run("--baseline", NEW, BASE, "--fail-on-slower")[0], 1)  # matmul slower that way
        self.assertEqual(run("--baseline", BASE, BASE, "--fail-on-slower")[0], 0)

    def test_bad_input(self):
        with tempfile.TemporaryDirectory() as d:
            not_json = os.path.join(d, "x.json")
            with open(not_json, "w") as f:
                f.write("not json")
            code, _, err = run("--baseline", not_json, NEW)
            self.assertEqual(code, 2)
            self.assertIn("x.json: cannot read Google Benchmark JSON", err)
            one_rep = os.path.join(d, "one.json")
            with open(NEW) as f:
                data = json.load(f)
            data["benchmarks"] = [b for b in data["benchmarks"] if b.get("repetition_index", 0) == 0]
            with open(one_rep, "w") as f:
                json.dump(data, f)
            code, _, err = run("--baseline", BASE, one_rep)
            self.assertEqual(code, 2)
            self.assertIn("has 1 repetition(s) in the new run; at least 3 are needed", err)
            other = os.path.join(d, "other.json")
            with open(other, "w") as f:
                json.dump({"benchmarks": [{"name": "x", "run_type": "iteration", "real_time": 1, "time_unit": "ns"}]}, f)
            code, _, err = run("--baseline", BASE, other)
            self.assertEqual(code, 2)
            self.assertIn("no benchmark in common", err)


if __name__ == "__main__":
    unittest.main()
