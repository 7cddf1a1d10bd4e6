#pragma once
/// Files gacc writes and reads.

#include <string>

namespace gacc {

/// Writes `content` to `path` atomically: a temporary file beside it, flushed, then renamed over
/// it, so that an interrupted run never leaves a half-written report. Throws EnvironmentError.
void write_file_atomically(const std::string& path, const std::string& content);

/// The whole file; throws InputError naming the path if it cannot be read.
std::string read_file(const std::string& path);

}  // namespace gacc
