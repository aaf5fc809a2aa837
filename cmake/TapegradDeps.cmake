# What every CMake project of this repository shares: the main build (CMakeLists.txt) and the
# clang/libFuzzer build of tests/fuzz. Include it after project().
#
#   tapegrad_library(<target> <components...>)   a library (static unless BUILD_SHARED_LIBS) of
#                                                <component>/**/*.cpp under the repository root, with
#                                                its include paths, ABI flags and dependencies

get_filename_component(TAPEGRAD_ROOT ${CMAKE_CURRENT_LIST_DIR}/.. ABSOLUTE)

# ccache, with paths under the repository rewritten relative to the build folder and the build
# folder's own path left out of the hash (it is in -g's debug info), so a fresh clone anywhere — CI's
# clean checkout — reuses the objects of an earlier clone. A CCACHE_BASEDIR set by the user wins.
find_program(CCACHE ccache)
if(CCACHE)
  if(DEFINED ENV{CCACHE_BASEDIR})
    set(CMAKE_CXX_COMPILER_LAUNCHER ${CCACHE})
  else()
    set(CMAKE_CXX_COMPILER_LAUNCHER ${CMAKE_COMMAND} -E env CCACHE_BASEDIR=${TAPEGRAD_ROOT}
        CCACHE_NOHASHDIR=1 ${CCACHE})
  endif()
endif()
include(GNUInstallDirs)

# All from Debian packages (scripts/install_deps.sh). cmake/tapegradConfig.cmake.in finds the same
# ones for a consumer of the installed library.
find_package(xsimd REQUIRED)
find_package(xtensor REQUIRED)
find_package(xtensor-blas REQUIRED)
set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(ZLIB REQUIRED)
# Optional: libxsmm (Debian libxsmm-dev), JIT small-GEMM kernels that kernels::gemm_raw picks per shape
# (autograd/gemm_backend.hpp). Without it every product runs on OpenBLAS. Found through its libxsmm.pc
# (a static library); TAPEGRAD_LIBXSMM=OFF leaves it out even when installed.
option(TAPEGRAD_LIBXSMM "Use libxsmm's small-GEMM kernels when libxsmm-dev is installed" ON)
set(TAPEGRAD_HAVE_LIBXSMM OFF)
if(TAPEGRAD_LIBXSMM)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(LIBXSMM QUIET IMPORTED_TARGET libxsmm)
  endif()
  if(TARGET PkgConfig::LIBXSMM)
    set(TAPEGRAD_HAVE_LIBXSMM ON)
  endif()
endif()
message(STATUS "tapegrad: libxsmm small-GEMM kernels: ${TAPEGRAD_HAVE_LIBXSMM}")
# Optional: MPI (Debian libopenmpi-dev + openmpi-bin), the transport of distributed/ (collectives,
# DistributedDataParallel). AUTO uses it when found, ON requires it, OFF leaves it out; without it
# distributed/ still builds and the world is one process (every collective the identity). Only the
# C API is used (MPI_CXX_SKIP_MPICXX: no libmpi_cxx), and only distributed/comm.cpp includes mpi.h.
set(TAPEGRAD_MPI AUTO CACHE STRING "Use MPI for distributed/ (AUTO: when found, ON: required, OFF: never)")
set_property(CACHE TAPEGRAD_MPI PROPERTY STRINGS AUTO ON OFF)
set(TAPEGRAD_HAVE_MPI OFF)
if(NOT TAPEGRAD_MPI STREQUAL "OFF")
  set(MPI_CXX_SKIP_MPICXX TRUE)
  if(TAPEGRAD_MPI STREQUAL "ON")
    find_package(MPI REQUIRED COMPONENTS CXX)
  else()
    find_package(MPI QUIET COMPONENTS CXX)
  endif()
  if(TARGET MPI::MPI_CXX)
    set(TAPEGRAD_HAVE_MPI ON)
  endif()
endif()
message(STATUS "tapegrad: MPI (distributed/): ${TAPEGRAD_HAVE_MPI}")

# xsimd-accelerated xtensor: the definition and the arch flags change xtensor's and xsimd's types
# (and the SIMD width of the library's own kernels), so every target of every build gets the same —
# and so does every consumer: tapegrad_library() makes them INTERFACE requirements of the library
# (the ABI flags; see README "Use it in your project"). -fno-math-errno lets sqrt and friends
# vectorise (tapegrad never reads errno); it does not change a type, so it stays private.
set(TAPEGRAD_ARCH_FLAGS "-mavx2;-mfma" CACHE STRING "Architecture flags applied to every target (ABI: consumers get them too)")
add_compile_definitions(XTENSOR_USE_XSIMD)
add_compile_options(${TAPEGRAD_ARCH_FLAGS} -fno-math-errno)

# The baseline and the run-time paths (autograd/cpu.hpp). TAPEGRAD_ARCH_FLAGS is the baseline: the
# least CPU the library runs on (a CPU below it stops with an error naming what it lacks, from
# autograd/cpu.cpp, compiled without AVX for that reason). The row kernels of autograd/simd.hpp are
# compiled once more for AVX-512 (autograd/simd_avx512.cpp, -mavx512f -mavx512dq: xsimd 8.1 needs DQ) and, when the baseline lacks
# AVX2, for AVX2 + FMA (simd_avx2.cpp), and pick a path per call from the CPU (cpu.hpp's kernel_isa).
include(CheckCXXSourceCompiles)
string(MAKE_C_IDENTIFIER "${TAPEGRAD_ARCH_FLAGS}" arch_id)
string(REPLACE ";" " " TAPEGRAD_ARCH_FLAGS_TEXT "${TAPEGRAD_ARCH_FLAGS}")
set(CMAKE_REQUIRED_QUIET ON)
set(CMAKE_REQUIRED_FLAGS "${TAPEGRAD_ARCH_FLAGS_TEXT}")
check_cxx_source_compiles("#if !defined(__AVX2__) || !defined(__FMA__)\n#error no AVX2\n#endif\nint main() {}"
                          TAPEGRAD_BASELINE_AVX2_${arch_id})
check_cxx_source_compiles("#ifndef __AVX512F__\n#error no AVX-512\n#endif\nint main() {}"
                          TAPEGRAD_BASELINE_AVX512_${arch_id})
set(CMAKE_REQUIRED_FLAGS "-mavx2 -mfma -mavx512f -mavx512dq")
check_cxx_source_compiles("#include <immintrin.h>\nint main() { __m512 a = _mm512_setzero_ps(); (void)a; }"
                          TAPEGRAD_COMPILER_AVX512)
unset(CMAKE_REQUIRED_FLAGS)
unset(CMAKE_REQUIRED_QUIET)
set(TAPEGRAD_SIMD_AVX512 OFF)
set(TAPEGRAD_SIMD_AVX2 OFF)
if(TAPEGRAD_COMPILER_AVX512 AND NOT TAPEGRAD_BASELINE_AVX512_${arch_id})
  set(TAPEGRAD_SIMD_AVX512 ON)
endif()
if(TAPEGRAD_COMPILER_AVX512 AND NOT TAPEGRAD_BASELINE_AVX2_${arch_id})
  set(TAPEGRAD_SIMD_AVX2 ON)
endif()
if(TAPEGRAD_BASELINE_AVX2_${arch_id})
  set(baseline_text "x86-64 with AVX2 and FMA")
else()
  set(baseline_text "below AVX2 + FMA")
endif()
message(STATUS "tapegrad: baseline TAPEGRAD_ARCH_FLAGS = \"${TAPEGRAD_ARCH_FLAGS_TEXT}\" (${baseline_text}); "
               "run-time kernel paths: AVX-512 ${TAPEGRAD_SIMD_AVX512}, AVX2 ${TAPEGRAD_SIMD_AVX2}")

function(tapegrad_library target)
  set(sources)
  foreach(component ${ARGN})
    file(GLOB_RECURSE component_sources CONFIGURE_DEPENDS ${TAPEGRAD_ROOT}/${component}/*.cpp)
    list(APPEND sources ${component_sources})
  endforeach()
  add_library(${target} ${sources})

  # Two include forms, both for the source tree and the installed tree:
  #   #include <tapegrad/autograd/tensor.hpp>   canonical for consumers (<prefix>/include)
  #   #include "autograd/tensor.hpp"            the library's own form (<prefix>/include/tapegrad)
  # In the build tree <tapegrad/...> comes from a folder of links to the components (INTERFACE only,
  # so the library's own compile lines, and their ccache entries, do not depend on the build folder).
  set(glue ${CMAKE_CURRENT_BINARY_DIR}/${target}_include)
  file(MAKE_DIRECTORY ${glue}/tapegrad)
  foreach(entry ${ARGN} tapegrad.hpp)
    if(EXISTS ${TAPEGRAD_ROOT}/${entry} AND NOT EXISTS ${glue}/tapegrad/${entry})
      file(CREATE_LINK ${TAPEGRAD_ROOT}/${entry} ${glue}/tapegrad/${entry} SYMBOLIC)
    endif()
  endforeach()
  target_include_directories(${target}
    PUBLIC $<BUILD_INTERFACE:${TAPEGRAD_ROOT}>
           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/tapegrad>
           $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    INTERFACE $<BUILD_INTERFACE:${glue}>)

  # ABI requirements, shared with every consumer (the same values go into tapegrad.pc).
  target_compile_features(${target} PUBLIC cxx_std_20)
  target_compile_definitions(${target} PUBLIC XTENSOR_USE_XSIMD)
  target_compile_options(${target} PUBLIC ${TAPEGRAD_ARCH_FLAGS})

  # Public headers include xtensor/xsimd (autograd/interop.hpp, kernels.hpp) and nlohmann/json_fwd
  # (nn/serialize.hpp); BLAS, LAPACK (through xtensor-blas) and zlib are only linked.
  target_link_libraries(${target} PUBLIC xtensor xsimd nlohmann_json::nlohmann_json
                        PRIVATE xtensor-blas BLAS::BLAS ZLIB::ZLIB)
  # The run-time ISA paths (above): the wide instantiations' flags on their own files only; the
  # path switches on the files that include autograd/simd_kernels.hpp (it refuses others); cpu.cpp
  # without AVX (and without BMI/POPCNT, which -march=x86-64-v3 and the like bring) so that its
  # start-up check runs on any x86-64, and a link option that keeps that check in every static
  # program. Per-source settings, so that the other files' compile lines (and ccache entries) stay.
  set(simd_dir ${TAPEGRAD_ROOT}/autograd)
  set(simd_users ${simd_dir}/simd.cpp ${simd_dir}/simd_avx512.cpp ${simd_dir}/simd_avx2.cpp
      ${simd_dir}/ops/softmax.cpp ${TAPEGRAD_ROOT}/nn/norm.cpp)
  set(avx512 0)
  set(avx2 0)
  if(TAPEGRAD_SIMD_AVX512)
    set(avx512 1)
    set_property(SOURCE ${simd_dir}/simd_avx512.cpp APPEND PROPERTY COMPILE_OPTIONS -mavx2 -mfma -mavx512f -mavx512dq)
  endif()
  if(TAPEGRAD_SIMD_AVX2)
    set(avx2 1)
    set_property(SOURCE ${simd_dir}/simd_avx2.cpp APPEND PROPERTY COMPILE_OPTIONS -mavx2 -mfma)
  endif()
  set_property(SOURCE ${simd_users} APPEND PROPERTY COMPILE_DEFINITIONS TAPEGRAD_SIMD_PATHS=1
               TAPEGRAD_SIMD_AVX512=${avx512} TAPEGRAD_SIMD_AVX2=${avx2})
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    set_property(SOURCE ${simd_dir}/cpu.cpp APPEND PROPERTY COMPILE_OPTIONS
                 -mno-avx -mno-bmi -mno-bmi2 -mno-popcnt -mno-lzcnt -mno-movbe)
    set_property(SOURCE ${simd_dir}/cpu.cpp APPEND PROPERTY COMPILE_DEFINITIONS
                 "TAPEGRAD_ARCH_FLAGS_TEXT=\"${TAPEGRAD_ARCH_FLAGS_TEXT}\"")
    get_target_property(kind ${target} TYPE)
    if(kind STREQUAL "STATIC_LIBRARY")
      target_link_options(${target} INTERFACE "LINKER:--undefined=tapegrad_check_cpu_baseline")
    endif()
  endif()
  if(TAPEGRAD_HAVE_LIBXSMM)
    # Only gemm_backend.cpp includes libxsmm.h: the definition stays off every other compile line.
    set_property(SOURCE ${TAPEGRAD_ROOT}/autograd/gemm_backend.cpp APPEND PROPERTY COMPILE_DEFINITIONS
                 TAPEGRAD_HAVE_LIBXSMM)
    target_link_libraries(${target} PRIVATE PkgConfig::LIBXSMM)
  endif()
  if(TAPEGRAD_HAVE_MPI AND "distributed" IN_LIST ARGN)
    # Only comm.cpp includes mpi.h and sees TAPEGRAD_HAVE_MPI. MPI::MPI_CXX's usage requirements
    # (-DOMPI_SKIP_MPICXX..., its include folders) still reach every source of the library itself
    # ($<LINK_ONLY:...> keeps them from consumers only), so the library's compile lines, and their
    # ccache entries, differ between builds with and without MPI; consumers' do not. A static
    # library's consumers link libmpi too (tapegradConfig.cmake finds MPI for them).
    set_property(SOURCE ${TAPEGRAD_ROOT}/distributed/comm.cpp APPEND PROPERTY COMPILE_DEFINITIONS TAPEGRAD_HAVE_MPI)
    set_property(SOURCE ${TAPEGRAD_ROOT}/distributed/comm.cpp APPEND PROPERTY INCLUDE_DIRECTORIES
                 ${MPI_CXX_INCLUDE_DIRS})
    target_link_libraries(${target} PRIVATE $<LINK_ONLY:MPI::MPI_CXX>)
  endif()
endfunction()
