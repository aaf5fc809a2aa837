#!/usr/bin/env bash
# Builds and runs tests/consumer/consumer.cpp against tapegrad one way (ctest runs each; see
# tests/CMakeLists.txt). The consumer is built in WORK, a folder of its own, from nothing.
#   run.sh install          SOURCE BUILD PREFIX   cmake --install BUILD --prefix PREFIX (once, the fixture)
#   run.sh find_package     SOURCE WORK  PREFIX   find_package(tapegrad) from PREFIX
#   run.sh add_subdirectory SOURCE WORK           add_subdirectory(SOURCE)
#   run.sh pkg-config       SOURCE WORK  PREFIX   g++ -std=c++20 consumer.cpp $(pkg-config --cflags --libs tapegrad)
#   run.sh shared           SOURCE WORK           the library built with BUILD_SHARED_LIBS=ON in WORK/build
#                                                 (objects from ccache after the first run), installed into
#                                                 WORK/prefix, its SONAME checked with readelf, then the
#                                                 find_package consumer built against it and run
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
  shared)
    # WORK/build is kept between runs (an incremental rebuild); the prefix and the consumer are not.
    rm -rf "$work/prefix" "$work/consumer" && mkdir -p "$work"
    "$cmake" -S "$source" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" \
      -DBUILD_SHARED_LIBS=ON -DTAPEGRAD_BUILD_TESTS=OFF -DTAPEGRAD_EXAMPLES=OFF -DTAPEGRAD_BENCH=OFF \
      > "$work/configure.log" || { cat "$work/configure.log"; exit 1; }
    "$cmake" --build "$work/build" --target tapegrad -j "${JOBS:-2}" > "$work/build.log" || { cat "$work/build.log"; exit 1; }
    "$cmake" --install "$work/build" --prefix "$work/prefix" > /dev/null
    libs=("$work"/prefix/lib*/libtapegrad.so.*.*.*)
    [[ ${#libs[@]} == 1 && -f ${libs[0]} ]] || { echo "shared: no libtapegrad.so.X.Y.Z installed" >&2; exit 1; }
    lib=${libs[0]} libdir=$(dirname "${libs[0]}")
    # libtapegrad.so.0.1.0: the SONAME is libtapegrad.so.0.1 (major.minor while the version is 0.x).
    version=${lib##*/libtapegrad.so.}
    expected=libtapegrad.so.${version%.*}
    soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    echo "shared: ${lib#"$work"/} has SONAME '$soname'"
    [[ $soname == "$expected" ]] || { echo "shared: expected SONAME '$expected'" >&2; exit 1; }
    [[ $(readlink "$libdir/$soname") == "${lib##*/}" && $(readlink "$libdir/libtapegrad.so") == "$soname" ]] ||
      { echo "shared: the links $soname -> ${lib##*/} and libtapegrad.so -> $soname are missing" >&2; exit 1; }
    [[ ! -e $libdir/libtapegrad.a ]] || { echo "shared: a static libtapegrad.a was installed too" >&2; exit 1; }
    # Paths under WORK rewritten relative to it: a fresh clone's consumer compile hits ccache too.
    CCACHE_BASEDIR="$work" CCACHE_NOHASHDIR=1 "$0" find_package "$source" "$work/consumer" "$work/prefix" \
      > "$work/consumer.log" ||
      { cat "$work/consumer.log"; exit 1; }
    cat "$work/consumer.log"
    # The consumer needs the SONAME and loads the installed library (not a copy from the build tree).
    readelf -d "$work/consumer/consumer" | grep -q "(NEEDED).*\[$soname\]" ||
      { echo "shared: the consumer does not record NEEDED $soname" >&2; exit 1; }
    loaded=$(ldd "$work/consumer/consumer" | sed -n "s/^[[:space:]]*$soname => \([^ ]*\).*/\1/p")
    echo "shared: the consumer loads $loaded"
    [[ $(realpath "$loaded") == $(realpath "$lib") ]] || { echo "shared: expected it to load $lib" >&2; exit 1; }
    ;;
  *)
    echo "run.sh: unknown mode '$mode'" >&2
    exit 2
    ;;
esac
