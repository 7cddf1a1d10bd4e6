#include "implementations/distributed/process_group_backend.h"

#include "core/errors.h"

namespace gacc::distributed {

ProcessGroupBackend parse_process_group_backend(const std::string& text) {
  if (text == "gloo") return ProcessGroupBackend::gloo;
  if (text == "nccl") return ProcessGroupBackend::nccl;
  throw UsageError("unknown process-group backend \"" + text + "\" (gloo or nccl)");
}

std::string to_string(ProcessGroupBackend backend) {
  return backend == ProcessGroupBackend::nccl ? "nccl" : "gloo";
}

}  // namespace gacc::distributed
