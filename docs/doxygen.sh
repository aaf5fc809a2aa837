#!/usr/bin/env bash
# Runs Doxygen (docs/Doxyfile) over tapegrad's public headers into out/docs/html; `make docs` calls it.
#   docs/doxygen.sh          fails (exit 1) on any Doxygen warning (an undocumented public symbol, a
#                            malformed comment, a link to a missing page), on a public enum value without
#                            a comment (docs/undocumented_enum_values.py: Doxygen does not warn about
#                            those), all listed in out/docs/warnings.txt, and on a relative link in the
#                            HTML that leads nowhere (a README link to a source file works on a forge,
#                            not in out/docs/html)
#   docs/doxygen.sh --list   writes the HTML and the list, exits 0 whatever it holds
#
# INPUT is built here, not written in the Doxyfile, because Doxygen fails on an INPUT path that does
# not exist: tapegrad.hpp, README.md (the main page), docs/*.md and every library folder below that
# exists. Every top-level folder that holds a header must be named in LIBRARY_DIRS (documented, public)
# or in NOT_LIBRARY_DIRS, so that a new layer cannot escape the check by being forgotten here.
set -euo pipefail
cd "$(dirname "$0")/.."

LIBRARY_DIRS=(autograd nn optim datasets distributed train)
NOT_LIBRARY_DIRS=(tests bench examples cmake scripts docs out)

warn_as_error=FAIL_ON_WARNINGS
if [[ "${1:-}" == "--list" ]]; then
  warn_as_error=NO
elif [[ $# -gt 0 ]]; then
  echo "usage: docs/doxygen.sh [--list]" >&2
  exit 2
fi

# Top-level folders with headers, from git when this is a checkout (build folders are untracked), else
# every folder without a CMakeCache.txt (not a build tree).
if git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
  header_dirs=$(git ls-files --cached --others --exclude-standard -- '*.hpp' '*.h' | awk -F/ 'NF > 1 {print $1}' | sort -u)
else
  header_dirs=$(find . -mindepth 2 \( -name '*.hpp' -o -name '*.h' \) -not -path './build*' | awk -F/ '{print $2}' | sort -u)
fi
for d in $header_dirs; do
  [[ -f "$d/CMakeCache.txt" ]] && continue
  if [[ " ${LIBRARY_DIRS[*]} ${NOT_LIBRARY_DIRS[*]} " != *" $d "* ]]; then
    echo "docs: top-level folder '$d' holds headers but is in neither LIBRARY_DIRS nor NOT_LIBRARY_DIRS" \
         "of docs/doxygen.sh: add it to one of them" >&2
    exit 1
  fi
done

input=(tapegrad.hpp README.md docs/*.md)
for d in "${LIBRARY_DIRS[@]}"; do
  [[ -d "$d" ]] && input+=("$d")
done

rm -rf out/docs && mkdir -p out/docs
rc=0
TAPEGRAD_DOCS_INPUT="${input[*]}" TAPEGRAD_DOCS_WARN_AS_ERROR=$warn_as_error \
  doxygen docs/Doxyfile > out/docs/doxygen.log 2>&1 || rc=$?
# Enum values without a comment join Doxygen's warnings (same format, same file).
if [[ -d out/docs/xml ]]; then
  python3 docs/undocumented_enum_values.py out/docs/xml | sed "s|^$PWD/||" >> out/docs/warnings.txt || true
fi
n=$(grep -c -E '(warning|error):' out/docs/warnings.txt 2> /dev/null || true)
n=${n:-0}
if [[ $n -gt 0 && $warn_as_error != NO ]]; then
  rc=1
fi
echo "docs: out/docs/html/index.html from ${input[*]}; $n warnings (out/docs/warnings.txt)"

# Relative links of the generated pages (README.md is index.html, docs/x.md is md_docs_x.html) that
# name no generated file.
broken=0
if [[ -d out/docs/html ]]; then
  while read -r page target; do
    [[ -e "out/docs/html/$target" ]] && continue
    echo "docs: out/docs/html/$page links to '$target', which is not in the HTML: link a page (docs/*.md)," \
         "a documented symbol, or a full URL; name a source file in \`backticks\` instead" >&2
    broken=$((broken + 1))
  done < <(cd out/docs/html && grep -o -E 'href="[^"]*"' ./*.html | sed -E 's|^\./||; s|:href="| |; s|"$||; s|#.*||' |
           grep -v -E ' (https?:|mailto:|javascript:|$)' | sort -u)
fi
if [[ $broken -gt 0 && $warn_as_error != NO ]]; then
  rc=1
fi
if [[ $rc -ne 0 ]]; then
  # The first warnings, so that a CI log shows what to fix without opening the file; when there is
  # none, Doxygen itself failed (a bad Doxyfile): its own output.
  if [[ $n -gt 0 ]]; then
    head -n 20 out/docs/warnings.txt | sed "s|$PWD/||" >&2
    if [[ $n -gt 20 ]]; then echo "docs: ... and $((n - 20)) more in out/docs/warnings.txt" >&2; fi
  elif [[ $broken -eq 0 ]]; then
    tail -n 20 out/docs/doxygen.log >&2
  fi
  exit 1
fi
