# CUDA is built whenever nvcc is found (CI included: it must compile), for sm_90 plus PTX.
include(CheckLanguage)
check_language(CUDA)
if(CMAKE_CUDA_COMPILER)
  option(GACC_WITH_CUDA "Build the CUDA accumulation path" ON)
else()
  option(GACC_WITH_CUDA "Build the CUDA accumulation path" OFF)
endif()
# LibTorch's CMake config resets CMAKE_CUDA_ARCHITECTURES to OFF, so gacc's CUDA targets take their
# architectures from this variable instead (gacc_cuda_target below).
set(GACC_CUDA_ARCHITECTURES "90-real;90-virtual" CACHE STRING "CUDA architectures of gacc's kernels")
if(GACC_WITH_CUDA)
  enable_language(CUDA)
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  find_package(CUDAToolkit REQUIRED)
  message(STATUS "gacc: CUDA path enabled (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, archs ${GACC_CUDA_ARCHITECTURES})")
else()
  message(STATUS "gacc: nvcc not found, the CUDA path is not built")
endif()

# Builds TARGET's CUDA sources for GACC_CUDA_ARCHITECTURES.
function(gacc_cuda_target target)
  set_target_properties(${target} PROPERTIES CUDA_ARCHITECTURES "${GACC_CUDA_ARCHITECTURES}")
endfunction()
