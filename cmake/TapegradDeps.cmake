# What every CMake project of this repository shares: the main build (CMakeLists.txt) and the
# clang/libFuzzer build of tests/fuzz. Include it after project().
#
#   tapegrad_library(<target> <components...>)   a static library of <component>/**/*.cpp under the
#                                                repository root, with its include path and dependencies

find_program(CCACHE ccache)
if(CCACHE)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CCACHE})
endif()

get_filename_component(TAPEGRAD_ROOT ${CMAKE_CURRENT_LIST_DIR}/.. ABSOLUTE)

# All from Debian packages (scripts/install_deps.sh).
find_package(xsimd REQUIRED)
find_package(xtensor REQUIRED)
find_package(xtensor-blas REQUIRED)
set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(ZLIB REQUIRED)

# xsimd-accelerated xtensor: the definition and the arch flags change xtensor's and xsimd's types
# (and the SIMD width of the library's own kernels), so every target of every build gets the same.
# -fno-math-errno lets sqrt and friends vectorise (tapegrad never reads errno).
set(TAPEGRAD_ARCH_FLAGS "-mavx2;-mfma" CACHE STRING "Architecture flags applied to every target")
add_compile_definitions(XTENSOR_USE_XSIMD)
add_compile_options(${TAPEGRAD_ARCH_FLAGS} -fno-math-errno)

function(tapegrad_library target)
  set(sources)
  foreach(component ${ARGN})
    file(GLOB_RECURSE component_sources CONFIGURE_DEPENDS ${TAPEGRAD_ROOT}/${component}/*.cpp)
    list(APPEND sources ${component_sources})
  endforeach()
  add_library(${target} STATIC ${sources})
  target_include_directories(${target} PUBLIC ${TAPEGRAD_ROOT})
  target_link_libraries(${target} PUBLIC xtensor xtensor-blas xsimd ${BLAS_LIBRARIES} nlohmann_json::nlohmann_json
                        ZLIB::ZLIB)
endfunction()
