# Install rules, the CMake package (tapegradConfig.cmake, tapegrad::tapegrad), tapegrad.pc and the
# Debian package (make package). Included by the top-level CMakeLists.txt when TAPEGRAD_INSTALL is on.
#
# Installed layout (<prefix> = CMAKE_INSTALL_PREFIX or cmake --install --prefix):
#   <prefix>/include/tapegrad/{tapegrad.hpp, autograd/, nn/, optim/, datasets/, distributed/, train/}   the headers
#   <prefix>/<libdir>/libtapegrad.a (or .so.X.Y with BUILD_SHARED_LIBS=ON)
#   <prefix>/<libdir>/cmake/tapegrad/tapegrad{Config,ConfigVersion,Targets}.cmake
#   <prefix>/<libdir>/pkgconfig/tapegrad.pc
# Consumers get both <prefix>/include (#include <tapegrad/...>, canonical) and
# <prefix>/include/tapegrad (the headers' own "autograd/..." includes) on their include path.
include(CMakePackageConfigHelpers)

set(TAPEGRAD_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/tapegrad CACHE STRING
    "Where tapegradConfig.cmake goes, relative to the prefix")
mark_as_advanced(TAPEGRAD_INSTALL_CMAKEDIR)

install(TARGETS tapegrad EXPORT tapegradTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# Every header of the components the library was built from (new headers are picked up at install).
if(TAPEGRAD_CORE_ONLY)
  set(tapegrad_components autograd)
else()
  set(tapegrad_components autograd nn optim datasets distributed train)
  install(FILES ${TAPEGRAD_ROOT}/tapegrad.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tapegrad)
endif()
foreach(component ${tapegrad_components})
  install(DIRECTORY ${TAPEGRAD_ROOT}/${component}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tapegrad/${component}
          FILES_MATCHING PATTERN "*.hpp")
endforeach()

install(EXPORT tapegradTargets NAMESPACE tapegrad:: DESTINATION ${TAPEGRAD_INSTALL_CMAKEDIR})
string(JOIN " " TAPEGRAD_ARCH_FLAGS_STRING ${TAPEGRAD_ARCH_FLAGS})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/tapegradConfig.cmake.in
                              ${CMAKE_CURRENT_BINARY_DIR}/tapegradConfig.cmake
                              INSTALL_DESTINATION ${TAPEGRAD_INSTALL_CMAKEDIR})
# 0.x: only the same minor version is compatible (the ABI may change between minors).
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/tapegradConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/tapegradConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/tapegradConfigVersion.cmake
        DESTINATION ${TAPEGRAD_INSTALL_CMAKEDIR})

# pkg-config: relocatable (paths from ${pcfiledir}), the same ABI flags as the CMake target.
file(RELATIVE_PATH TAPEGRAD_PC_PREFIX /root/${CMAKE_INSTALL_LIBDIR}/pkgconfig /root)
if(BUILD_SHARED_LIBS)
  # Only the header dependencies are needed to compile; the shared library brings its own links.
  set(TAPEGRAD_PC_REQUIRES "xtensor xsimd nlohmann_json")
  set(TAPEGRAD_PC_REQUIRES_PRIVATE "openblas zlib")
  set(TAPEGRAD_PC_LIBS_PRIVATE "")
  set(TAPEGRAD_PC_LIBS "")
else()
  # A static library: its link dependencies must be on every consumer's link line.
  set(TAPEGRAD_PC_REQUIRES "xtensor xsimd nlohmann_json openblas zlib")
  set(TAPEGRAD_PC_REQUIRES_PRIVATE "")
  set(TAPEGRAD_PC_LIBS_PRIVATE "")
  set(TAPEGRAD_PC_LIBS "")
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
    # As the CMake target's INTERFACE link option: every program keeps the start-up check of the CPU
    # against the build's baseline (autograd/cpu.cpp), not only those that call a dispatched kernel.
    set(TAPEGRAD_PC_LINK_FIRST "-Wl,--undefined=tapegrad_check_cpu_baseline")
  endif()
endif()
if(TAPEGRAD_HAVE_LIBXSMM AND NOT BUILD_SHARED_LIBS)   # libxsmm.a: a shared tapegrad holds it
  string(APPEND TAPEGRAD_PC_REQUIRES " libxsmm")
endif()
if(TAPEGRAD_HAVE_MPI)   # libmpi (Debian's generic mpi-c.pc): static consumers link it, a shared tapegrad holds it
  if(BUILD_SHARED_LIBS)
    string(APPEND TAPEGRAD_PC_REQUIRES_PRIVATE " mpi-c")
  else()
    string(APPEND TAPEGRAD_PC_REQUIRES " mpi-c")
  endif()
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/tapegrad.pc.in ${CMAKE_CURRENT_BINARY_DIR}/tapegrad.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/tapegrad.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# make package: a .deb (CPack). The package is the development package (headers, library, CMake and
# pkg-config files); its dependencies are what a consumer needs to compile and link against it.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tapegrad)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "tapegrad")
set(CPACK_PACKAGE_CONTACT "tapegrad maintainers <tapegrad@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "C++20 reverse-mode automatic differentiation (tensors, nn, optim, datasets, training)")
set(CPACK_PACKAGE_DESCRIPTION "A dynamic (define-by-run) autodiff tape over xtensor and OpenBLAS, with
neural-network modules, optimizers and dataset loaders. Headers, the library, a CMake package
(find_package(tapegrad), target tapegrad::tapegrad) and tapegrad.pc. Built for x86-64 with AVX2 + FMA.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)   # tapegrad_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION libdevel)
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
# xtensor and xsimd are header-only and their types cross the library boundary: pin the series built against.
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libxtensor-dev (>= 0.24), libxtensor-dev (<< 0.25), libxtensor-blas-dev (>= 0.20), libxsimd-dev (>= 8), libxsimd-dev (<< 9), libopenblas-dev, liblapack-dev, nlohmann-json3-dev (>= 3.9), zlib1g-dev")
if(TAPEGRAD_HAVE_LIBXSMM AND NOT BUILD_SHARED_LIBS)   # libxsmm is static: a shared tapegrad holds it
  string(APPEND CPACK_DEBIAN_PACKAGE_DEPENDS ", libxsmm-dev (>= 1.17)")
endif()
if(TAPEGRAD_HAVE_MPI)
  string(APPEND CPACK_DEBIAN_PACKAGE_DEPENDS ", libopenmpi-dev")
endif()
if(BUILD_SHARED_LIBS)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)   # libc6, libstdc++6, libopenblas0, zlib1g from the binary
endif()
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "g++ (>= 4:12) | c++-compiler, cmake (>= 3.18), pkg-config")
include(CPack)
