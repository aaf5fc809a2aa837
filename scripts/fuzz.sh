#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz, clang++ with ASan + UBSan) and fuzzes each parser for
# SECONDS (default 60), all at once. The corpora grow in build-fuzz/corpus/<harness> across runs,
# seeded by tests/fuzz/make_seeds.py; crashes land in build-fuzz/artifacts/. Exits non-zero on any
# finding: a crash, a hang (> 10 s on one input), a sanitizer report, an exception other than the
# parser's own error, or one allocation over 64 MB (no valid input under 4 KB needs that much).
#
# Usage: bash scripts/fuzz.sh [SECONDS]      (make fuzz FUZZ_SECONDS=600)
#        FUZZ_HARNESSES="fuzz_npy fuzz_csv" bash scripts/fuzz.sh 60   (some harnesses only; built alone)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
build="${FUZZ_BUILD:-build-fuzz}"
all="fuzz_idx fuzz_safetensors fuzz_npy fuzz_npz fuzz_csv"
read -r -a harnesses <<< "${FUZZ_HARNESSES:-$all}"

bash scripts/install_deps.sh --fuzz
CXX=clang++ cmake -S tests/fuzz -B "$build" > /dev/null
cmake --build "$build" -j "${JOBS:-2}" --target "${harnesses[@]}"

python3 tests/fuzz/make_seeds.py "$build/seeds" > /dev/null
mkdir -p "$build/artifacts" "$build/logs"
export TMPDIR="$build"  # the harnesses' scratch files
# Extra arguments and seed folders per harness; the .npy / .npz ones start from the files NumPy wrote.
declare -A extra=([fuzz_idx]="" [fuzz_safetensors]="-dict=tests/fuzz/safetensors.dict" [fuzz_npy]="" [fuzz_npz]=""
                  [fuzz_csv]="")
declare -A seeds=([fuzz_idx]="$build/seeds/idx" [fuzz_safetensors]="$build/seeds/safetensors"
                  [fuzz_npy]="tests/datasets/fixtures" [fuzz_npz]="tests/datasets/fixtures" [fuzz_csv]="$build/seeds/csv")
pids=()
for h in "${harnesses[@]}"; do
  [[ -v "seeds[$h]" ]] || { echo "fuzz.sh: unknown harness '$h' (known: $all)" >&2; exit 2; }
  mkdir -p "$build/corpus/$h"
  # shellcheck disable=SC2086
  "$build/$h" "$build/corpus/$h" ${seeds[$h]} ${extra[$h]} -max_total_time="$seconds" \
    -timeout=10 -malloc_limit_mb=64 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$h-" > "$build/logs/$h.log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  h=${harnesses[$i]}
  if wait "${pids[$i]}"; then result=clean; else result="FAILED (see $build/logs/$h.log)"; status=1; fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$build/logs/$h.log" | grep -o '[0-9]*$' || echo '?')
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*/[0-9]*[a-zA-Z]*' "$build/logs/$h.log" | tail -1 || true)
  echo "$h: ${seconds}s, $execs executions, $cov, corpus $(ls "$build/corpus/$h" | wc -l) files: $result"
done
exit $status
