#pragma once
/// Files gacc runs or loads beside its own executable: the rank process (gacc-rank) and the NCCL
/// plugin (libgacc_c10d_nccl.so).

#include <string>

namespace gacc::distributed {

/// The directory of the running executable ("" if /proc cannot tell).
std::string self_directory();

/// `file_name`, found as: the path in environment variable `variable` (an EnvironmentError if it
/// names no file), else beside the running executable, else `build_path` (where this build put it;
/// may be empty). Empty when none exists. `executable`: the file must be executable, not only
/// readable.
std::string find_companion_file(const std::string& file_name, const char* variable, const std::string& build_path,
                                bool executable);

}  // namespace gacc::distributed
