// gacc: proves or refutes that gradient accumulation equals large-batch training.

#include <cstdint>
#include <iostream>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include "cli/commands.h"
#include "core/errors.h"
#include "core/files.h"
#include "core/interrupt.h"

namespace {

std::optional<uint64_t> parse_seed(const std::string& text) {
  if (text.empty() || text.size() > 20 || text.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  uint64_t value = 0;
  for (char c : text) {
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

/// A seed is a plain decimal integer that fits in 64 bits (no sign, no exponent, no wrap-around).
CLI::Validator seed_validator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        if (!parse_seed(text)) return "must be an integer from 0 to 18446744073709551615, got " + text;
        return {};
      },
      "SEED");
}

/// A path gacc writes: an empty one would silently write nothing.
CLI::Validator path_validator() {
  return CLI::Validator(
      [](std::string& text) -> std::string { return text.empty() ? "must name a path, got an empty one" : ""; },
      "PATH");
}

/// --ranks, --backend, --timeout and the hidden --inject-fault, for a command that runs recipes.
void add_data_parallel_options(CLI::App* command, gacc::cli::DataParallelArguments& args) {
  command->add_option("--ranks", args.ranks,
                      "data-parallel rank processes to start: the largest world size judged (default 8; "
                      "with --backend nccl, one per CUDA device up to 8)")
      ->check(CLI::Range(1, 64));
  command->add_option("--backend", args.backend,
                      "the data-parallel process groups: gloo (CPU, default) or nccl (one CUDA device per rank)")
      ->check(CLI::IsMember({"gloo", "nccl"}));
  command->add_option("--timeout", args.timeout_seconds,
                      "seconds a collective (or a rank without progress) may wait before the run fails (default 20)")
      ->check(CLI::Range(0.1, 3600.0));
  command->add_option("--inject-fault", args.inject_fault, "testing: crash|hang|exit|throw:RANK")->group("");
}

/// --precision: draw only fp32, bf16 or fp16 scenarios.
void add_precision_option(CLI::App* command, std::string& precision) {
  command->add_option("--precision", precision, "draw only this precision policy: fp32, bf16 or fp16 (default: all three)")
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
}

int usage_error(const CLI::App& app, const std::string& message) {
  std::cerr << "gacc: " << message << "\n\n" << app.help();
  return static_cast<int>(gacc::ExitCode::usage);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gacc: is gradient accumulation (K micro-batches, then one optimizer step) equivalent "
               "to true large-batch training?"};
  app.require_subcommand(1);

  gacc::cli::RunArguments run_args;
  auto* run = app.add_subcommand("run", "every property against every recipe: a table and an exit code");
  run->add_option("--filter", run_args.filter, "only properties or recipes whose name contains this text");
  run->add_option("--cases", run_args.cases, "generated scenarios (default 100)")
      ->check(CLI::Range(1, 10000000));
  std::string seed_text;
  run->add_option("--seed", seed_text, "seed of the scenario generator, 0 to 2^64-1 (default 1)")
      ->check(seed_validator());
  run->add_option("--json", run_args.json_path, "write the JSON report to this file")->check(path_validator());
  run->add_option("--junit", run_args.junit_path, "write JUnit XML to this file")->check(path_validator());
  run->add_flag("--verbose,-v", run_args.verbose, "details for every row, not only failures (implies --all)");
  run->add_flag("--all", run_args.all_rows, "list the rows that applied to no case (not applicable) too");
  add_precision_option(run, run_args.precision);
  gacc::cli::DataParallelArguments data_parallel_args;
  add_data_parallel_options(run, data_parallel_args);

  bool list_json = false;
  auto* list = app.add_subcommand("list", "properties, recipes (correct or pitfall), models, optimizers");
  list->add_flag("--json", list_json, "as JSON");

  gacc::cli::PitfallsArguments pitfall_args;
  std::string pitfall_seed;
  auto* pitfalls = app.add_subcommand("pitfalls", "the demonstrator: each pitfall, what catches it, by how much");
  pitfalls->add_option("--cases", pitfall_args.cases, "generated scenarios (default 200)")->check(CLI::Range(1, 10000000));
  pitfalls->add_option("--seed", pitfall_seed, "seed of the scenario generator (default 1)")->check(seed_validator());
  pitfalls->add_option("--json", pitfall_args.json_path, "write the per-pitfall figures to this file")->check(path_validator());
  pitfalls->add_option("--plot", pitfall_args.plot_directory,
                       "write SVG loss curves (large batch, correct loop, each pitfall) into this directory")
      ->check(path_validator());
  add_data_parallel_options(pitfalls, data_parallel_args);
  add_precision_option(pitfalls, pitfall_args.precision);

  std::string explain_pitfall, explain_seed;
  int explain_cases = 100;
  auto* explain = app.add_subcommand("explain", "one pitfall: the bug, a minimal counterexample, the fix");
  explain->add_option("pitfall", explain_pitfall, "the pitfall's name (see gacc list)")->required();
  explain->add_option("--cases", explain_cases, "generated scenarios searched (default 100)")->check(CLI::Range(1, 10000000));
  explain->add_option("--seed", explain_seed, "seed of the scenario generator (default 1)")->check(seed_validator());
  add_data_parallel_options(explain, data_parallel_args);
  std::string explain_precision;
  add_precision_option(explain, explain_precision);

  gacc::cli::BenchArguments bench_args;
  auto* bench = app.add_subcommand(
      "bench", "performance: oracle (the oracle's cost on the tiny LM), data-parallel (collectives and time per step), "
      "accumulate (the fused accumulator on the GPU against copy bandwidth and LibTorch), coverage (cases until "
      "every pitfall is caught, independent draws against stratified ones)");
  bench->add_option("what", bench_args.what, "which benchmark: oracle, data-parallel, accumulate or coverage")->required();
  bench->add_option("--json", bench_args.json_path, "write the figures to this file")->check(path_validator());
  bench
      ->add_option("--backend", bench_args.backend,
                   "data-parallel: the process groups, gloo (default) or nccl (one CUDA device per rank)")
      ->check(CLI::IsMember({"gloo", "nccl"}));
  bench->add_option("--cases", bench_args.cases, "coverage: the most cases per seed (default 300)")
      ->check(CLI::Range(1, 10000000));
  add_precision_option(bench, bench_args.precision);

  gacc::cli::ReproArguments repro_args;
  auto* repro = app.add_subcommand("repro", "rerun one scenario against every property and recipe, verbosely");
  std::string repro_seed;
  auto* repro_scenario = repro->add_option("scenario", repro_args.scenario, "Scenario JSON, or a file holding it");
  auto* repro_case = repro->add_option("--case", repro_args.case_index,
                                       "instead of a scenario: generated case N of a run (gacc run's \"worst (case N)\")")
                         ->check(CLI::Range(0, 10000000 - 1));
  repro_case->excludes(repro_scenario);
  repro->add_option("--seed", repro_seed, "with --case: the run's seed (default 1)")->check(seed_validator())->needs(repro_case);
  add_precision_option(repro, repro_args.precision);
  repro->add_option("--recipe", repro_args.recipe, "only this recipe");
  repro->add_option("--trace", repro_args.trace_path,
                    "write the oracle's trajectory (with tolerances) and each recipe's trace as JSON")
      ->check(path_validator());
  add_data_parallel_options(repro, data_parallel_args);

  gacc::cli::CaseExportArguments export_args;
  gacc::cli::CaseVerifyArguments verify_args;
  std::string export_seed;
  auto* case_files = app.add_subcommand("case", "case files for external stacks: export one, verify a result");
  case_files->require_subcommand(1);
  auto* case_export = case_files->add_subcommand("export", "write the case file of one scenario");
  case_export->add_option("--scenario", export_args.scenario,
                          "Scenario JSON, or a file holding it (default: the first scenario of --seed)");
  case_export->add_option("--seed", export_seed, "seed of the scenario generator (default 1)")->check(seed_validator());
  case_export->add_option("--out", export_args.out, "the case file to write")->required()->check(path_validator());
  case_export->add_option("--mode", export_args.mode,
                          "oracle (a scenario's case, default) or differential (only the splits)")
      ->check(CLI::IsMember({"oracle", "differential"}));
  case_export->add_option("--splits", export_args.splits,
                          "differential mode: splits JSON, or a file holding it (default: the first splits of --seed)");
  auto* case_verify = case_files->add_subcommand("verify", "judge a stack's result file against its case");
  case_verify->add_option("case", verify_args.case_path, "the case file")->required();
  case_verify->add_option("result", verify_args.result_path, "the stack's result file")->required();
  case_verify->add_option("--json", verify_args.json_path, "write the JSON report to this file")->check(path_validator());
  case_verify->add_flag("--verbose,-v", verify_args.verbose, "details for every row, not only failures (implies --all)");
  case_verify->add_flag("--all", verify_args.all_rows, "list the rows that applied to no case (not applicable) too");

  gacc::cli::CheckExternalArguments external_args;
  std::string external_seed;
  auto* check_external = app.add_subcommand(
      "check-external", "the property loop against another program that reads cases and writes results");
  auto* external_cmd = check_external->add_option(
      "--cmd", external_args.command,
      "the command line, with {case} and {result}; with --worker, the worker's command line (no placeholders)");
  check_external->add_flag("--worker", external_args.worker,
                           "start the command once; it serves every case over the worker protocol (docs/python.md, 'Worker')");
  auto* external_fds = check_external->add_option(
      "--worker-fds", external_args.worker_fds,
      "IN,OUT: the program that started gacc serves the cases over these inherited descriptors (gacc reads IN, "
      "writes OUT); --cmd then names the command that reruns one case through the protocol")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            const auto comma = text.find(',');
            const auto number = [](const std::string& part) {
              return !part.empty() && part.size() <= 9 && part.find_first_not_of("0123456789") == std::string::npos;
            };
            return comma != std::string::npos && number(text.substr(0, comma)) && number(text.substr(comma + 1))
                       ? ""
                       : "must be IN,OUT (two descriptor numbers), got \"" + text + "\"";
          },
          "IN,OUT"));
  check_external->add_option("--cases", external_args.cases, "generated scenarios (default 20)")
      ->check(CLI::Range(1, 10000000));
  check_external->add_option("--seed", external_seed, "seed of the scenario generator (default 1)")
      ->check(seed_validator());
  check_external->add_option("--timeout", external_args.timeout_seconds,
                             "seconds one run of the command may take (default 120)")
      ->check(CLI::Range(0.1, 86400.0));
  check_external->add_option("--ranks", external_args.ranks,
                             "the largest world size generated; above 1 the command trains the ranks (default 1)")
      ->check(CLI::Range(1, 64));
  check_external->add_option("--shrinks", external_args.shrinks,
                             "command runs allowed to shrink one failure (default 40; 0: no shrinking)")
      ->check(CLI::Range(0, 100000));
  check_external->add_option("--keep", external_args.keep_directory, "keep every case, result and log in this directory")->check(path_validator());
  check_external->add_option("--json", external_args.json_path, "write the JSON report to this file")->check(path_validator());
  check_external->add_option("--junit", external_args.junit_path, "write JUnit XML to this file")->check(path_validator());
  check_external->add_flag("--verbose,-v", external_args.verbose, "details for every row, not only failures (implies --all)");
  check_external->add_flag("--all", external_args.all_rows, "list the rows that applied to no case (not applicable) too");
  check_external->add_option("--mode", external_args.mode,
                             "oracle (gacc's zoo models against its oracle, default) or differential (the stack's own "
                             "model: accumulated against its own large batch)")
      ->check(CLI::IsMember({"oracle", "differential"}));
  add_precision_option(check_external, external_args.precision);

  if (argc > 1 && argv[1][0] != '-') {
    const std::string command = argv[1];
    bool known = false;
    for (const auto* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
      known = known || sub->get_name() == command;
    }
    if (!known) return usage_error(app, "unknown command \"" + command + "\"");
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::ParseError& e) {
    const auto* sub = app.get_subcommands().empty() ? &app : app.get_subcommands().front();
    return usage_error(*sub, e.what());
  }

  if (!seed_text.empty()) run_args.seed = *parse_seed(seed_text);
  if (!pitfall_seed.empty()) pitfall_args.seed = *parse_seed(pitfall_seed);
  if (!export_seed.empty()) export_args.seed = *parse_seed(export_seed);
  if (!repro_seed.empty()) repro_args.seed = *parse_seed(repro_seed);
  if (*repro && repro_args.scenario.empty() && repro_args.case_index < 0) {
    return usage_error(*repro, "give a scenario, or --case N (with the run's --seed and --precision)");
  }
  if (*repro && !repro_args.precision.empty() && repro_args.case_index < 0) {
    return usage_error(*repro, "--precision is for --case: a scenario names its own precision");
  }
  if (!external_seed.empty()) external_args.seed = *parse_seed(external_seed);
  if (!export_args.scenario.empty() && !export_seed.empty()) {
    return usage_error(*case_export, "--scenario and --seed exclude each other");
  }
  if (!export_args.splits.empty() && !export_seed.empty()) {
    return usage_error(*case_export, "--splits and --seed exclude each other");
  }
  if (!export_args.splits.empty() && export_args.mode != "differential") {
    return usage_error(*case_export, "--splits needs --mode differential");
  }
  if (!export_args.scenario.empty() && export_args.mode == "differential") {
    return usage_error(*case_export, "--scenario is for --mode oracle; differential mode takes --splits");
  }
  if (*check_external && !*external_cmd && !*external_fds) {
    return usage_error(*check_external, "--cmd is required (or --worker-fds, for a worker that started gacc)");
  }
  if (*external_fds && external_args.worker) {
    return usage_error(*check_external, "--worker starts the command; --worker-fds serves over inherited descriptors: "
                                        "give one of them");
  }
  gacc::install_interrupt_handlers();

  // Tiny tensors: one intra-op thread is fastest, and keeps every run's arithmetic the same.
  torch::set_num_threads(1);
  try {
    if (*run || *pitfalls || *explain || *repro || (*bench && bench_args.what == "coverage")) {
      // Under torchrun, ranks 1..N-1 serve rank 0's jobs; rank 0 runs the command.
      if (gacc::cli::configure_data_parallel(data_parallel_args)) {
        return gacc::cli::serve_torchrun_rank(data_parallel_args);
      }
    }
    // Every path the command writes, checked before its work: a report that cannot be written is
    // better known now than after an hour of cases.
    for (const std::string* file : {&run_args.json_path, &run_args.junit_path, &pitfall_args.json_path, &bench_args.json_path,
                                    &repro_args.trace_path, &export_args.out, &verify_args.json_path,
                                    &external_args.json_path, &external_args.junit_path}) {
      if (!file->empty()) gacc::check_file_writable(*file);
    }
    for (const std::string* directory : {&pitfall_args.plot_directory, &external_args.keep_directory}) {
      if (!directory->empty()) gacc::check_directory_writable(*directory);
    }
    if (*run) return gacc::cli::run_command(run_args);
    if (*list) return gacc::cli::list_command(list_json);
    if (*repro) return gacc::cli::repro_command(repro_args);
    if (*bench) return gacc::cli::bench_command(bench_args);
    if (*pitfalls) return gacc::cli::pitfalls_command(pitfall_args);
    if (*case_export) return gacc::cli::case_export_command(export_args);
    if (*case_verify) return gacc::cli::case_verify_command(verify_args);
    if (*check_external) return gacc::cli::check_external_command(external_args);
    if (*explain) return gacc::cli::explain_command(explain_pitfall, explain_cases, explain_seed.empty() ? 1 : *parse_seed(explain_seed),
                                                         explain_precision);
  } catch (const gacc::Error& e) {
    std::cerr << "gacc: " << e.what() << "\n";
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::cerr << "gacc: internal error: " << e.what() << "\n";
    return static_cast<int>(gacc::ExitCode::environment);
  }
  return usage_error(app, "no command given");
}
