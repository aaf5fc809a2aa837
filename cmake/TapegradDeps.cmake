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
