# Warnings for gacc's own code (third-party headers come in as SYSTEM includes).
add_library(gacc_warnings INTERFACE)
target_compile_options(gacc_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor>)
