#!/usr/bin/env bash
# Installs tapegrad's build and test dependencies from Debian packages, only those missing.
# Idempotent: a second run installs nothing. Runs apt-get as root, or through sudo.
#   scripts/install_deps.sh            build + test dependencies
#   scripts/install_deps.sh --compare  also python3-torch and libtorch-dev (make bench-compare)
#   scripts/install_deps.sh --docs     also doxygen (make docs)
set -euo pipefail

packages=(cmake make g++ pkg-config libxtensor-dev libxtensor-blas-dev libxsimd-dev libopenblas-dev
          doctest-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev zlib1g-dev ccache python3
          libpng-dev)  # libpng: examples/explain's PNG grids only
# libxsmm: optional for the build (small-GEMM kernels, autograd/gemm_backend.hpp), installed by default
# so the tests cover both GEMM backends.
packages+=(libxsmm-dev)
# MPI: optional for the build (distributed/ over Open MPI; without it the world is one process),
# installed by default so the tests run the 2-rank data-parallel checks under mpirun.
packages+=(libopenmpi-dev openmpi-bin)
if [[ "${1:-}" == "--compare" ]]; then
  packages+=(python3-torch libtorch-dev)
fi
if [[ "${1:-}" == "--docs" ]]; then
  packages+=(doxygen)
fi
if [[ "${1:-}" == "--fuzz" ]]; then
  packages+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "tapegrad: installing missing packages: ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "tapegrad: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
