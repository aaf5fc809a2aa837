#!/usr/bin/env bash
# Builds and runs tests/consumer/consumer.cpp against tapegrad one way (ctest runs each; see
# tests/CMakeLists.txt). The consumer is built in WORK, a folder of its own, from nothing.
#   run.sh install          SOURCE BUILD PREFIX   cmake --install BUILD --prefix PREFIX (once, the fixture)
#   run.sh find_package     SOURCE WORK  PREFIX   find_package(tapegrad) from PREFIX
#   run.sh add_subdirectory SOURCE WORK           add_subdirectory(SOURCE)
#   run.sh pkg-config       SOURCE WORK  PREFIX   g++ -std=c++20 consumer.cpp $(pkg-config --cflags --libs tapegrad)
# CMAKE and CXX name the tools (default: cmake, c++); ccache is used when present.
set -euo pipefail
mode=$1 source=$2 work=$3 prefix=${4:-}
cmake=${CMAKE:-cmake}
cxx=${CXX:-c++}
launcher=()
ccache=$(command -v ccache || true)
[[ -n $ccache ]] && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER="$ccache")
consumer=$source/tests/consumer

case $mode in
  install)
    rm -rf "$prefix"
    "$cmake" --install "$work" --prefix "$prefix" > /dev/null
    test -f "$prefix/include/tapegrad/tapegrad.hpp"
    ;;
  find_package|add_subdirectory)
    rm -rf "$work"
    args=(-S "$consumer" -B "$work" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx"
          -DTAPEGRAD_CONSUMER_MODE="$mode" "${launcher[@]}")
    if [[ $mode == find_package ]]; then
      args+=(-DCMAKE_PREFIX_PATH="$prefix")
    else
      args+=(-DTAPEGRAD_SOURCE_DIR="$source")
    fi
    "$cmake" "${args[@]}" > "$work.configure.log" || { cat "$work.configure.log"; exit 1; }
    "$cmake" --build "$work" --target consumer -j "${JOBS:-2}"
    "$work/consumer"
    ;;
  pkg-config)
    rm -rf "$work" && mkdir -p "$work"
    export PKG_CONFIG_PATH=$(echo "$prefix"/lib*/pkgconfig "$prefix"/lib/*/pkgconfig | tr ' ' ':')
    flags=$(pkg-config --cflags --libs tapegrad)
    echo "pkg-config --cflags --libs tapegrad: $flags"
    # shellcheck disable=SC2086  # the flags are words
    ${ccache:+$ccache} "$cxx" -std=c++20 -O2 "$consumer/consumer.cpp" -o "$work/consumer" $flags
    "$work/consumer"
    ;;
  *)
    echo "run.sh: unknown mode '$mode'" >&2
    exit 2
    ;;
esac
