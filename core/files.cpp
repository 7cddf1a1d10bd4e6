#include "core/files.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/errors.h"

namespace gacc {

void write_file_atomically(const std::string& path, const std::string& content) {
  std::string temporary = path + ".tmp.XXXXXX";
  const int fd = mkstemp(temporary.data());
  if (fd < 0) {
    throw EnvironmentError("cannot write " + path + ": " + std::strerror(errno));
  }
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = std::strerror(errno);
      ::close(fd);
      std::remove(temporary.c_str());
      throw EnvironmentError("cannot write " + path + ": " + why);
    }
    written += static_cast<size_t>(n);
  }
  // mkstemp creates the file 0600; a report is an ordinary file.
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd, 0666 & ~mask);
  if (::fsync(fd) != 0 || ::close(fd) != 0 || std::rename(temporary.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(temporary.c_str());
    throw EnvironmentError("cannot write " + path + ": " + why);
  }
}

namespace {

/// Whether a file can be created in `directory`: creates one, then removes it. Empty, or why not.
std::string probe_directory(const std::string& directory) {
  std::string probe = (std::filesystem::path(directory) / ".gacc-write-probe.XXXXXX").string();
  const int fd = mkstemp(probe.data());
  if (fd < 0) return std::strerror(errno);
  ::close(fd);
  std::remove(probe.c_str());
  return {};
}

}  // namespace

void check_file_writable(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw EnvironmentError("cannot write " + path + ": it is a directory");
  // write_file_atomically's own temporary, made and removed: exactly what the end of the run needs.
  std::string temporary = path + ".tmp.XXXXXX";
  const int fd = mkstemp(temporary.data());
  if (fd < 0) throw EnvironmentError("cannot write " + path + ": " + std::strerror(errno));
  ::close(fd);
  std::remove(temporary.c_str());
}

void check_directory_writable(const std::string& path) {
  std::error_code ec;
  std::filesystem::path existing = std::filesystem::absolute(path, ec);
  if (ec) throw EnvironmentError("cannot create the directory " + path + ": " + ec.message());
  while (!std::filesystem::exists(existing, ec) && existing.has_relative_path()) existing = existing.parent_path();
  if (!std::filesystem::is_directory(existing, ec)) {
    throw EnvironmentError("cannot create the directory " + path + ": " + existing.string() + " is not a directory");
  }
  if (const std::string why = probe_directory(existing.string()); !why.empty()) {
    throw EnvironmentError("cannot create the directory " + path + ": " + existing.string() + ": " + why);
  }
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw InputError("cannot read " + path + ": it is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) throw InputError("cannot read " + path);
  return content.str();
}

}  // namespace gacc
