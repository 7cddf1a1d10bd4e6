// Another program as a recipe: the command line, its failures, its deadline, its leftovers.

#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "implementations/external/case_file.h"
#include "implementations/external/external_recipe.h"
#include "implementations/external/shell_command.h"
#include "implementations/torch/training_loop.h"

namespace {

using gacc::external::ExternalOptions;
using gacc::external::ExternalRecipe;

const gacc::Scenario& small_scenario() {
  static const auto scenario = gacc::parse_scenario(
      R"({"model": {"arch": "linear", "input_dim": 2, "output_dim": 1, "init_seed": 3},
          "data": {"seed": 5, "global_batch": 3, "windows": [[[2, 1]]]},
          "loss": {"kind": "mse", "reduction": "mean"}, "optimizer": {"kind": "sgd", "lr": 0.01},
          "precision": "fp32", "accumulation_steps": 2, "steps": 1})");
  return scenario;
}

std::string temporary_directory() {
  std::string pattern = (std::filesystem::temp_directory_path() / "gacc-external-test.XXXXXX").string();
  REQUIRE(mkdtemp(pattern.data()) != nullptr);
  return pattern;
}

ExternalOptions options_for(const std::string& command, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  ExternalOptions options;
  options.command = command;
  options.timeout = timeout;
  return options;
}

std::string environment_error_of(const ExternalRecipe& recipe) {
  try {
    recipe.run(small_scenario());
  } catch (const gacc::EnvironmentError& e) {
    return e.what();
  }
  return "no EnvironmentError";
}

}  // namespace

TEST_CASE("a command line without {case} and {result} is a usage error", "[cpu]") {
  CHECK_THROWS_AS(ExternalRecipe(options_for("python train.py {case}")), gacc::UsageError);
  CHECK_THROWS_AS(ExternalRecipe(options_for("python train.py")), gacc::UsageError);
}

TEST_CASE("paths are shell-quoted into the command line", "[cpu]") {
  CHECK(gacc::external::shell_quoted("a b") == "'a b'");
  CHECK(gacc::external::shell_quoted("it's") == "'it'\\''s'");
  const ExternalRecipe recipe(options_for("run {case} --out {result} {case}"));
  CHECK(recipe.command_for("/tmp/x y/c.pt", "r.pt") == "run '/tmp/x y/c.pt' --out 'r.pt' '/tmp/x y/c.pt'");
}

TEST_CASE("the external recipe hands the case to the command and reads its result back", "[cpu]") {
  // The "stack" copies a result prepared by the LibTorch loop: what it writes is what gacc reads.
  const auto directory = temporary_directory();
  const std::string prepared = directory + "/prepared.pt";
  const gacc::torch_recipes::TorchTrainingLoop loop;
  const auto trace = loop.run(small_scenario());
  {
    const auto bytes = gacc::external::encode_result(trace, small_scenario());
    std::ofstream(prepared, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  const ExternalRecipe recipe(options_for("test -s {case} && cp " + prepared + " {result}"));
  const auto read = recipe.run(small_scenario());
  CHECK(gacc::to_json(read).dump() == gacc::to_json(trace).dump());
  CHECK(recipe.runs() == 1);
  std::filesystem::remove_all(directory);
}

TEST_CASE("a command that fails, writes nothing or hangs is an environment error with its output", "[cpu]") {
  SECTION("a non-zero exit, with the tail of its standard error") {
    const ExternalRecipe recipe(options_for("echo 'Traceback: boom' >&2; exit 3 # {case} {result}"));
    const auto message = environment_error_of(recipe);
    CHECK_THAT(message, Catch::Contains("exited with status 3"));
    CHECK_THAT(message, Catch::Contains("Traceback: boom"));
    CHECK_THAT(message, Catch::Contains("\"arch\":\"linear\""));
  }
  SECTION("success without a result") {
    CHECK_THAT(environment_error_of(ExternalRecipe(options_for("true {case} {result}"))),
               Catch::Contains("exited with status 0 but wrote no result"));
  }
  SECTION("killed by a signal") {
    CHECK_THAT(environment_error_of(ExternalRecipe(options_for("kill -9 $$ # {case} {result}"))),
               Catch::Contains("was killed by signal"));
  }
  SECTION("past the deadline: the whole process group is ended, promptly") {
    const auto directory = temporary_directory();
    const std::string marker = directory + "/survivor";
    // A background grandchild that would outlive a plain kill of the shell.
    const ExternalRecipe recipe(options_for(
        "(sleep 3; touch " + marker + ") & sleep 30 # {case} {result}", std::chrono::milliseconds(300)));
    const auto start = std::chrono::steady_clock::now();
    CHECK_THAT(environment_error_of(recipe), Catch::Contains("ran past --timeout 0.3 s"));
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(3500));
    CHECK_FALSE(std::filesystem::exists(marker));
    std::filesystem::remove_all(directory);
  }
}

TEST_CASE("a command's background leftovers are ended when it exits", "[cpu]") {
  const auto directory = temporary_directory();
  const std::string marker = directory + "/survivor";
  const auto outcome = gacc::external::run_shell_command("(sleep 1; touch " + marker + ") & exit 0",
                                                         std::chrono::seconds(10), directory + "/log.txt");
  CHECK(outcome.exit_status == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  CHECK_FALSE(std::filesystem::exists(marker));
  std::filesystem::remove_all(directory);
}

TEST_CASE("the tail of a log keeps its last lines", "[cpu]") {
  const auto directory = temporary_directory();
  const std::string path = directory + "/log.txt";
  {
    std::ofstream out(path);
    for (int i = 0; i < 50; ++i) out << "line " << i << "\n";
  }
  const auto tail = gacc::external::file_tail(path, 3, 1000);
  CHECK(tail == "line 47\nline 48\nline 49");
  CHECK(gacc::external::file_tail(directory + "/missing", 3, 1000).empty());
  std::filesystem::remove_all(directory);
}
