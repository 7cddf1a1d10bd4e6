#include "implementations/distributed/companion_files.h"

#include <unistd.h>

#include <cstdlib>

#include "core/errors.h"

namespace gacc::distributed {

namespace {

bool usable(const std::string& path, bool executable) {
  return !path.empty() && access(path.c_str(), executable ? X_OK : R_OK) == 0;
}

}  // namespace

std::string self_directory() {
  char buffer[4096];
  const ssize_t n = readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  if (n <= 0) return "";
  std::string path(buffer, static_cast<size_t>(n));
  return path.substr(0, path.find_last_of('/'));
}

std::string find_companion_file(const std::string& file_name, const char* variable, const std::string& build_path,
                                bool executable) {
  if (const char* configured = std::getenv(variable)) {
    if (usable(configured, executable)) return configured;
    throw EnvironmentError(std::string(variable) + "=" + configured + " is not " +
                           (executable ? "an executable" : "a readable file"));
  }
  const std::string beside = self_directory() + "/" + file_name;
  if (usable(beside, executable)) return beside;
  if (usable(build_path, executable)) return build_path;
  return "";
}

}  // namespace gacc::distributed
