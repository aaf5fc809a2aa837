#!/usr/bin/env bash
# `make bench-compare`: tapegrad against libtorch and PyTorch, side by side (issue 5).
#
#   scripts/bench_compare.sh [driver flags]     e.g. --rounds 5, --cnn-train 60000, --no-cnn, --no-pytorch
#
# 1. installs python3-torch and libtorch-dev from Debian when missing (scripts/install_deps.sh --compare)
#    and Fashion-MNIST (dataset-fashion-mnist, scripts/fetch_mnist.sh --fashion-mnist);
# 2. builds tapegrad's mnist_mlp, mnist_cnn and benchmarks (tape, train, per-op) in $BUILD (default build), and
#    bench/compare (torch_compare: libtorch; gemm_floor: bare OpenBLAS sgemm) in build-compare;
# 3. runs bench/compare/driver.py: tapegrad, libtorch, PyTorch alternately, 3 epochs each at batch 32
#    and 256, 3 rounds (the small CNN and the char GPT also at 2 threads, beside libtorch / PyTorch at the
#    same torch.set_num_threads: --thread-counts 1,2); prints one table of medians and ratios, then per-op forward / backward times
#    against libtorch; writes them with the raw numbers to build-compare/bench_compare.{txt,json}.
# Takes about 5 minutes on a 2-core Xeon. Timings are noisy on a busy machine: check `uptime`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${BUILD:-build}"
jobs="${JOBS:-2}"
compare_build="${COMPARE_BUILD:-build-compare}"

# apt may be held briefly by another apt-get: retry a few times.
for attempt in 1 2 3 4 5 6; do
  if bash scripts/install_deps.sh --compare; then break; fi
  [[ $attempt -eq 6 ]] && { echo "bench-compare: could not install the dependencies" >&2; exit 1; }
  echo "bench-compare: install failed (apt locked?), retrying in 10 s" >&2
  sleep 10
done
bash scripts/fetch_mnist.sh --fashion-mnist
bash scripts/fetch_text.sh > /dev/null

[[ -f "$build/CMakeCache.txt" ]] || cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release > /dev/null
targets=(mnist_mlp char_gpt bench_tape bench_train bench_nn bench_elementwise bench_softmax)
[[ -f examples/mnist_cnn.cpp ]] && targets+=(mnist_cnn)
cmake --build "$build" -j "$jobs" --target "${targets[@]}"
cmake -S bench/compare -B "$compare_build" -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build "$compare_build" -j "$jobs"

echo "bench-compare: load average $(cut -d' ' -f1-3 /proc/loadavg) (timings need a quiet machine)"
python3 bench/compare/driver.py --tapegrad-build "$build" --compare-build "$compare_build" \
  --json "$compare_build/bench_compare.json" "$@" | tee "$compare_build/bench_compare.txt"
