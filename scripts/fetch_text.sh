#!/usr/bin/env bash
# Installs the default text corpus of the character-level examples and prints its path.
#
#   scripts/fetch_text.sh          installs Debian's `fortunes` package when missing (apt-get, as root
#                                  or through sudo) and prints /usr/share/games/fortunes on stdout.
#
# The corpus is the package's plain cookie files only: datasets::load_text skips the `*.dat` strfile
# indexes and the `*.u8` symbolic links (2,576,674 bytes, 113 distinct characters, 43 files).
# Idempotent: an installed corpus is left alone. Any other text: the example's `--text PATH` (a UTF-8
# file, or a folder of them).
set -euo pipefail

dir=/usr/share/games/fortunes
if [[ "${1:-}" == -* ]]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  [[ "$1" == "-h" || "$1" == "--help" ]] && exit 0 || exit 2
fi

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo > /dev/null; then sudo "$@"
  else echo "fetch_text: need root or sudo to run: $*" >&2; exit 1
  fi
}

if ! dpkg-query -W -f='${Status}' fortunes 2>/dev/null | grep -q "install ok installed" || [[ ! -f "$dir/fortunes" ]]; then
  echo "fetch_text: installing fortunes from Debian" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fortunes >&2
fi
[[ -f "$dir/fortunes" ]] || { echo "fetch_text: fortunes is installed but $dir/fortunes is missing" >&2; exit 1; }
echo "$dir"
