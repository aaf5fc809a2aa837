#!/usr/bin/env bash
# Checks that AVX-512 code in a built tapegrad library (static .a or shared .so) can only run where
# it was dispatched to, never reach a baseline caller (autograd/simd_kernels.hpp explains the risk):
#   1. the objects compiled for AVX-512 (autograd/simd_avx512.cpp) define no global or weak symbol
#      without "avx512" in its name: an inline function of a header compiled there (and merged by
#      the linker with the baseline copy, one of the two at random) would carry AVX-512 code into
#      baseline callers (a static library only; a shared one has merged them already);
#   2. every function of the library that uses an AVX-512 register or encoding (zmm, xmm16-31,
#      ymm16-31, mask registers k1-k7, {1toN} broadcasts) has "avx512" in its demangled name (the
#      dispatched instantiations simd::Kernels<xsimd::avx512f, T>, Adam's adam_avx512*).
# Usage: scripts/check_isa_symbols.sh <libtapegrad.a|libtapegrad.so>   (ctest "isa: ..." runs it)
set -euo pipefail
lib=${1:?usage: check_isa_symbols.sh <libtapegrad.a|libtapegrad.so>}
[[ -f $lib ]] || { echo "check_isa_symbols: no such file: $lib" >&2; exit 2; }
lib=$(realpath "$lib")
status=0

if [[ $lib == *.a ]]; then
  members=$(ar t "$lib" | grep -E 'simd_avx512\.cpp\.o$' || true)
  if [[ -z $members ]]; then
    echo "check_isa_symbols: $lib has no simd_avx512.cpp.o (the AVX-512 path is not built); part 1 skipped"
  fi
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  for m in $members; do
    (cd "$tmp" && ar x "$lib" "$m")
    # Defined symbols of global binding (upper-case type) other than the exception-personality
    # reference every C++ object has.
    bad=$(nm -C --defined-only "$tmp/$m" | awk '$2 ~ /^[A-Z]$/' | grep -v 'DW.ref.__gxx_personality_v0' |
          grep -v avx512 || true)
    if [[ -n $bad ]]; then
      echo "check_isa_symbols: $m defines symbols without avx512 in their names (a baseline caller may be linked to them):"
      echo "$bad"
      status=1
    fi
  done
fi

# Part 2: function by function over the disassembly.
report=$(objdump -d -C --no-show-raw-insn "$lib" | awk '
  /^[0-9a-f]+ <.*>:$/ { fn = substr($0, index($0, "<") + 1); sub(/>:$/, "", fn); next }
  /%zmm|%[xy]mm(1[6-9]|2[0-9]|3[01])\>|%k[1-7]\>|\{1to[0-9]+\}/ {
    if (fn !~ /avx512/ && !(fn in seen)) { seen[fn] = 1; print fn "    e.g. " $0 }
    wide++
  }
  END { print "# " wide + 0 " AVX-512 instructions" > "/dev/stderr" }')
if [[ -n $report ]]; then
  echo "check_isa_symbols: functions outside the dispatched AVX-512 paths use AVX-512 instructions:"
  echo "$report"
  status=1
fi
[[ $status == 0 ]] && echo "check_isa_symbols: $lib: AVX-512 code only in dispatched (avx512-named) functions"
exit $status
