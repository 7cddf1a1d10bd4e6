#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <catch2/catch.hpp>

#include "core/errors.h"
#include "core/files.h"

namespace fs = std::filesystem;

TEST_CASE("a report is written atomically and replaces the old one whole", "[files]") {
  const fs::path dir = fs::temp_directory_path() / ("gacc_files_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "report.json").string();
  gacc::write_file_atomically(path, "first");
  gacc::write_file_atomically(path, "second, longer");
  CHECK(gacc::read_file(path) == "second, longer");
  // No temporary file is left beside it.
  int entries = 0;
  for (const auto& entry : fs::directory_iterator(dir)) entries += entry.is_regular_file();
  CHECK(entries == 1);
  fs::remove_all(dir);
}

TEST_CASE("an unwritable report path is an environment error", "[files]") {
  CHECK_THROWS_AS(gacc::write_file_atomically("/nonexistent-dir/report.json", "x"), gacc::EnvironmentError);
}

TEST_CASE("a missing or unreadable file is an input error naming it", "[files]") {
  CHECK_THROWS_WITH(gacc::read_file("/nonexistent/scenario.json"),
                    Catch::Matchers::Contains("/nonexistent/scenario.json"));
  CHECK_THROWS_AS(gacc::read_file(fs::temp_directory_path().string()), gacc::InputError);
}
