# LibTorch, from the torch wheel of GACC_TORCH_PYTHON (the project's .venv by default), or from
# the default search paths (Debian's libtorch-dev fallback).
#
# gacc::torch links the CPU part of LibTorch only: binaries start without loading LibTorch's CUDA
# libraries, and run on machines without them. Code that hands LibTorch CUDA tensors loads
# libtorch_cuda at run time instead (implementations/cuda/load_torch_cuda.h): linking the whole of
# libtorch into gacc made its copy of std::filesystem::remove_all take over gacc's (a crash). gacc_torch_pch carries <torch/torch.h> as a
# precompiled header that every LibTorch target reuses (gacc_use_torch below).

if(GACC_TORCH_PYTHON)
  execute_process(
    COMMAND ${GACC_TORCH_PYTHON} -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _gacc_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _gacc_torch_rc ERROR_QUIET)
  if(_gacc_torch_rc EQUAL 0)
    list(APPEND CMAKE_PREFIX_PATH ${_gacc_torch_prefix})
  else()
    message(WARNING "gacc: ${GACC_TORCH_PYTHON} cannot import torch; searching the default paths")
  endif()
endif()

if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(ENV{TORCH_CUDA_ARCH_LIST} "9.0")
endif()
find_package(Torch REQUIRED)
message(STATUS "gacc: LibTorch ${Torch_VERSION} from ${TORCH_INSTALL_PREFIX}")

add_library(gacc_torch INTERFACE)
add_library(gacc::torch ALIAS gacc_torch)
target_include_directories(gacc_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
if(TARGET torch_cpu_library)
  target_link_libraries(gacc_torch INTERFACE torch_cpu_library c10)
else()
  target_link_libraries(gacc_torch INTERFACE ${TORCH_LIBRARIES})
endif()

add_library(gacc_torch_pch OBJECT ${CMAKE_CURRENT_LIST_DIR}/torch_pch.cpp)
target_link_libraries(gacc_torch_pch PUBLIC gacc_torch gacc_warnings)
target_precompile_headers(gacc_torch_pch PRIVATE <torch/torch.h>)

# Links LibTorch into TARGET and reuses the shared precompiled header.
function(gacc_use_torch target)
  target_link_libraries(${target} PUBLIC gacc_torch)
  target_precompile_headers(${target} REUSE_FROM gacc_torch_pch)
endfunction()

