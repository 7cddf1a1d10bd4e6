# ccache for every compiler when it is installed. PCH needs the sloppiness below, or ccache
# refuses to cache translation units that include a precompiled header.
find_program(GACC_CCACHE ccache)
if(GACC_CCACHE)
  set(_gacc_launcher ${CMAKE_COMMAND} -E env
      CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
      ${GACC_CCACHE})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${_gacc_launcher})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${_gacc_launcher})
endif()
