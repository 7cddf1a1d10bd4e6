#pragma once
/// Which c10d process group carries a data-parallel job's collectives: Gloo (CPU, the default; any
/// number of ranks on one machine) or NCCL (one CUDA device per rank; LibTorch's ProcessGroupNCCL
/// through gacc's plugin, nccl_plugin.h).

#include <string>

namespace gacc::distributed {

enum class ProcessGroupBackend { gloo, nccl };

/// "gloo" or "nccl"; anything else is a UsageError naming both.
ProcessGroupBackend parse_process_group_backend(const std::string& text);
std::string to_string(ProcessGroupBackend backend);

}  // namespace gacc::distributed
