# Fails if any file under the directories DIRS (a ;-list) includes a LibTorch header (torch/, ATen/,
# c10/, caffe2/) or a folder that does (implementations/, cli/, api/, bench/): what judges must not
# share code with what it judges, and the judge's own layers build without LibTorch.
set(offenders "")
foreach(dir ${DIRS})
  file(GLOB_RECURSE files "${dir}/*")
  foreach(f ${files})
    file(STRINGS "${f}" lines
         REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"](torch|ATen|c10|caffe2|implementations|cli|api|bench)/")
    if(lines)
      list(APPEND offenders "${f}: ${lines}")
    endif()
  endforeach()
endforeach()
if(offenders)
  message(FATAL_ERROR "these folders must not include LibTorch, directly or through implementations/, cli/, api/ or bench/:\n${offenders}")
endif()
message(STATUS "no LibTorch include in ${DIRS}")
