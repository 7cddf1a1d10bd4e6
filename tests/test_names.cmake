# Fails if a Catch2 test name under DIR holds a ';': CTest cuts the name there, and the test it
# registers matches no test, so it never runs (eleven tests were lost that way).
file(GLOB_RECURSE files "${DIR}/*.cpp")
set(offenders "")
foreach(f ${files})
  file(STRINGS "${f}" lines REGEX "(TEST_CASE|SECTION)[ \t]*\\([ \t]*\"[^\"]*;")
  if(lines)
    list(APPEND offenders "${f}")
  endif()
endforeach()
if(offenders)
  message(FATAL_ERROR "test names must not hold ';' (CTest cuts them and the test never runs):\n${offenders}")
endif()
message(STATUS "no test name under ${DIR} holds ';'")
