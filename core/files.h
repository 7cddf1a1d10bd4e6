#pragma once
/// Files gacc writes and reads.

#include <string>

namespace gacc {

/// Writes `content` to `path` atomically: a temporary file beside it, flushed, then renamed over
/// it, so that an interrupted run never leaves a half-written report. Throws EnvironmentError.
void write_file_atomically(const std::string& path, const std::string& content);

/// Refuses, before any work, a file path gacc could not write at the end: throws EnvironmentError
/// ("cannot write PATH: why") if PATH is a directory or no file can be created beside it (where
/// write_file_atomically puts its temporary). Leaves nothing behind.
void check_file_writable(const std::string& path);

/// The same for a directory gacc will create if need be and write into: PATH must be a writable
/// directory, or its nearest existing ancestor must be. Throws EnvironmentError ("cannot create
/// the directory PATH: why"); creates nothing.
void check_directory_writable(const std::string& path);

/// The whole file; throws InputError naming the path if it cannot be read.
std::string read_file(const std::string& path);

}  // namespace gacc
