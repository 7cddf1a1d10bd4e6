#include "cli/commands.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <stdexcept>

#include <unistd.h>

#include "bench/coverage_bench.h"
#include "bench/data_parallel_bench.h"
#ifdef GACC_WITH_GPU_BENCH
#include "bench/accumulate_gpu_bench.h"
#endif
#include "bench/oracle_bench.h"
#include "core/errors.h"
#include "core/files.h"
#include "reference/oracle.h"
#include "implementations/distributed/data_parallel.h"
#include "implementations/distributed/nccl_plugin.h"
#include "implementations/distributed/process_group_backend.h"
#include "implementations/distributed/rank_pool.h"
#include "implementations/external/case_file.h"
#include "implementations/external/differential.h"
#include "implementations/external/external_recipe.h"
#include "implementations/external/shell_command.h"
#include "implementations/registry.h"
#include "properties/generators.h"
#include "properties/loss_curves.h"
#include "properties/compare.h"
#include "properties/differential.h"
#include "properties/pitfall_report.h"
#include "properties/report.h"
#include "properties/runner.h"
#include "properties/shrinking.h"

namespace gacc::cli {
namespace {

struct Catalog {
  std::vector<std::unique_ptr<properties::Property>> owned_properties = properties::all_properties();
  std::vector<std::unique_ptr<Recipe>> owned_recipes = all_recipes();

  std::vector<const properties::Property*> properties() const {
    std::vector<const properties::Property*> out;
    for (const auto& p : owned_properties) out.push_back(p.get());
    return out;
  }
  std::vector<const Recipe*> recipes() const {
    std::vector<const Recipe*> out;
    for (const auto& r : owned_recipes) out.push_back(r.get());
    return out;
  }
};

/// Progress on stderr: on a terminal "case 12/100", rewritten in place; elsewhere (a CI log, a
/// file) a line "gacc: case 12/100, 31 s" at most every 30 seconds, so that a long run shows it is
/// alive without flooding the log.
std::function<void(int, int)> progress_on_stderr() {
  if (isatty(STDERR_FILENO)) {
    return [](int done, int total) {
      std::cerr << "\rcase " << done << "/" << total << std::flush;
      if (done == total) std::cerr << "\r" << std::string(24, ' ') << "\r" << std::flush;
    };
  }
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  return [start, last = start](int done, int total) mutable {
    const auto now = Clock::now();
    if (done == total || now - last < std::chrono::seconds(30)) return;
    last = now;
    std::cerr << "gacc: case " << done << "/" << total << ", "
              << std::chrono::duration_cast<std::chrono::seconds>(now - start).count() << " s" << std::endl;
  };
}

void write_reports(const properties::RunReport& report, const std::string& json_path,
                   const std::string& junit_path) {
  if (!json_path.empty()) write_file_atomically(json_path, properties::to_json(report).dump(2) + "\n");
  if (!junit_path.empty()) write_file_atomically(junit_path, properties::to_junit(report));
}

}  // namespace

namespace {

/// torchrun's view of this process, from its environment variables; nullopt outside torchrun (or
/// with WORLD_SIZE 1, where there is nothing to share).
struct TorchrunRank {
  int rank = 0;
  int world = 1;
  distributed::Master master;
};

std::optional<TorchrunRank> torchrun_from_environment() {
  const char* rank_text = std::getenv("RANK");
  const char* world_text = std::getenv("WORLD_SIZE");
  if (!rank_text || !world_text) return std::nullopt;
  const auto number = [](const char* name, const char* text, int lowest) {
    const auto value = distributed::whole_integer(text);
    if (value && *value >= lowest) return *value;
    throw UsageError(std::string(name) + "=\"" + text + "\" (torchrun's convention) is not an integer of at least " +
                     std::to_string(lowest));
  };
  TorchrunRank out;
  out.world = number("WORLD_SIZE", world_text, 1);
  out.rank = number("RANK", rank_text, 0);
  if (out.rank >= out.world) {
    throw UsageError("RANK=" + std::to_string(out.rank) + " is not below WORLD_SIZE=" + std::to_string(out.world));
  }
  if (out.world == 1) return std::nullopt;
  const char* host = std::getenv("MASTER_ADDR");
  const char* port = std::getenv("MASTER_PORT");
  if (!host || !port) {
    throw UsageError("RANK and WORLD_SIZE are set (torchrun's convention) but MASTER_ADDR and MASTER_PORT are not");
  }
  out.master = distributed::parse_master(host, port);
  return out;
}

std::chrono::milliseconds collective_timeout(const DataParallelArguments& args) {
  return std::chrono::milliseconds(static_cast<int64_t>(args.timeout_seconds * 1000.0));
}

}  // namespace

bool configure_data_parallel(const DataParallelArguments& args) {
  distributed::RankPoolOptions options;
  options.backend = distributed::parse_process_group_backend(args.backend);
  options.ranks = args.ranks > 0 ? args.ranks : 8;
  options.timeout = collective_timeout(args);
  if (!args.inject_fault.empty()) options.fault = distributed::parse_fault(args.inject_fault);
  const auto torchrun = torchrun_from_environment();
  if (torchrun) {
    options.ranks = torchrun->world;
    options.torchrun_master = torchrun->master;
    options.find = find_data_parallel_loop;
  } else if (options.backend == distributed::ProcessGroupBackend::nccl) {
    // A local NCCL pool: said now, not when the first data-parallel case starts the pool.
    options.ranks = distributed::local_nccl_ranks(args.ranks, "--backend nccl");
  }
  distributed::configure_shared_pool(std::move(options));
  return torchrun && torchrun->rank > 0;
}

int serve_torchrun_rank(const DataParallelArguments& args) {
  const auto torchrun = torchrun_from_environment();
  if (!torchrun || torchrun->rank == 0) throw UsageError("not one of torchrun's ranks 1..WORLD_SIZE-1");
  distributed::serve_rank(torchrun->master, torchrun->rank, torchrun->world, collective_timeout(args),
                          find_data_parallel_loop, /*torchrun=*/true,
                          distributed::parse_process_group_backend(args.backend));
  return 0;
}

properties::GeneratorRange command_range(const std::string& precision, int max_world) {
  auto range = properties::whole_zoo();
  range.max_world = max_world;
  if (!precision.empty()) {
    const auto named = std::find_if(range.precisions.begin(), range.precisions.end(),
                                    [&](Precision p) { return to_string(p) == precision; });
    if (named == range.precisions.end()) throw UsageError("--precision must be fp32, bf16 or fp16, got " + precision);
    range.precisions = {*named};
  }
  return range;
}

namespace {

/// The largest world the data-parallel recipes run (the rank pool's size; 1 with --ranks 1), and so
/// the largest a command draws: a world no recipe runs would be judged by none.
int data_parallel_world() {
  return std::min(distributed::shared_pool_ranks(), properties::kMaxGeneratedWorld);
}

/// --verbose and --all as the table takes them: details imply every row.
template <typename Arguments>
properties::TableOptions table_options(const Arguments& args) {
  return {args.verbose, args.verbose || args.all_rows};
}

/// Runs every property against `recipes` on the stratified scenarios of `range` (Note [coverage]).
properties::RunReport run_stratified(const std::vector<const properties::Property*>& properties,
                                     const std::vector<const Recipe*>& recipes, const properties::GeneratorRange& range,
                                     properties::RunOptions options) {
  options.cells = properties::cell_names(range);
  options.pass = properties::pass_length(range);
  return properties::run_properties(properties, recipes, properties::stratified(range, options.seed), options);
}

}  // namespace

int run_command(const RunArguments& args) {
  const Catalog catalog;
  properties::RunOptions options;
  options.cases = args.cases;
  options.seed = args.seed;
  options.filter = args.filter;
  options.progress = progress_on_stderr();
  const auto report = run_stratified(catalog.properties(), catalog.recipes(),
                                     command_range(args.precision, data_parallel_world()), options);
  properties::print_table(std::cout, report, table_options(args));
  write_reports(report, args.json_path, args.junit_path);
  return static_cast<int>(report.exit_code());
}

int pitfalls_command(const PitfallsArguments& args) {
  const Catalog catalog;
  properties::RunOptions options;
  options.cases = args.cases;
  options.seed = args.seed;
  options.progress = progress_on_stderr();
  const auto recipes = catalog.recipes();
  const auto report =
      run_stratified(catalog.properties(), recipes, command_range(args.precision, data_parallel_world()), options);
  const auto pitfalls = properties::summarize_pitfalls(report, recipes);
  const auto separation = properties::separation(report, pitfalls);

  std::cout << "gacc's pitfall catalog: " << pitfalls.size() << " real gradient-accumulation bugs, " << args.cases
            << " generated scenarios (seed " << args.seed << ")\n\n";
  for (const auto& p : pitfalls) {
    std::cout << p.pitfall << "\n  what it does: " << p.summary << "\n  reported in: " << p.reference << "\n";
    std::cout << "  shows in " << p.showing << " of " << p.cases << " cases";
    if (p.showing > 0) {
      std::cout << ", each time by a ratio of at least " << properties::format_ratio(p.min_ratio) << " (case "
                << p.min_ratio_case << ")";
    }
    std::cout << "\n  caught by:";
    if (p.caught_by.empty()) {
      std::cout << (p.cases == 0 ? " nothing applied to it in these cases: not judged (try more --cases)"
                                 : " nothing — it ESCAPES");
    }
    for (const auto& [property, ratio] : p.caught_by) std::cout << " " << property << " (" << properties::format_ratio(ratio) << ")";
    std::cout << "\n";
    if (!p.diagnoses.empty()) std::cout << "  diagnosed as: " << p.diagnoses.front() << "\n";
    if (p.counterexample) {
      std::cout << "  smallest counterexample (" << p.counterexample_property << "): "
                << properties::reproduce_line(*p.counterexample, report.seed) << "\n";
    }
    std::cout << "\n";
  }
  std::cout << "separation: correct recipes' worst ratio " << properties::format_ratio(separation.correct_worst)
            << " (must stay at most 0.5; " << separation.correct_worst_at << ")\n"
            << "            pitfalls' smallest catching ratio " << properties::format_ratio(separation.pitfall_min)
            << " (must stay at least 10; " << separation.pitfall_min_at << ")\n"
            << "            weakest showing of a pitfall in any case " << properties::format_ratio(separation.weakest_showing)
            << " (" << separation.weakest_showing_at << ")\n";
  if (!args.json_path.empty()) write_file_atomically(args.json_path, properties::to_json(pitfalls).dump(2) + "\n");
  if (!args.plot_directory.empty()) {
    const auto files = properties::write_loss_curves(args.plot_directory, recipes);
    std::cout << "loss curves: " << files.size() << " SVG files in " << args.plot_directory << " (index.svg shows them all)\n";
  }
  return static_cast<int>(report.exit_code());
}

namespace {

/// `text` wrapped at `width` columns, each line indented by `indent`.
std::string wrapped(const std::string& text, size_t width, const std::string& indent) {
  std::string out, line;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(start, end - start);
    if (!line.empty() && indent.size() + line.size() + 1 + word.size() > width) {
      out += indent + line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + word;
    start = end + 1;
  }
  if (!line.empty()) out += indent + line + "\n";
  return out;
}

std::string indented(const std::string& text, const std::string& indent) {
  std::string out = indent;
  for (char c : text) {
    out += c;
    if (c == '\n') out += indent;
  }
  return out + "\n";
}

}  // namespace

int explain_command(const std::string& name, int cases, uint64_t seed, const std::string& precision) {
  const Catalog catalog;
  const Recipe* pitfall = nullptr;
  std::string known;
  for (const auto* r : catalog.recipes()) {
    if (r->kind() != RecipeKind::pitfall) continue;
    known += (known.empty() ? "" : ", ") + r->name();
    if (r->name() == name) pitfall = r;
  }
  if (!pitfall) throw UsageError("unknown pitfall \"" + name + "\"; the pitfalls are: " + known);

  properties::RunOptions options;
  options.cases = cases;
  options.seed = seed;
  options.progress = progress_on_stderr();
  const auto report =
      run_stratified(catalog.properties(), {pitfall}, command_range(precision, data_parallel_world()), options);
  const auto summary = properties::summarize_pitfalls(report, {pitfall}).at(0);

  std::cout << pitfall->name() << " — " << pitfall->summary() << "\n";
  std::cout << "reported in: " << pitfall->reference() << "\n\n";
  std::cout << "the bug:\n" << wrapped(pitfall->explanation(), 100, "  ") << "\n";
  if (summary.counterexample) {
    const auto& c = *summary.counterexample;
    std::cout << "a minimal counterexample (shrunk " << c.shrinks << " times"
              << properties::shrink_budget_note(c.budget_ended) << "; " << summary.counterexample_property
              << ", ratio " << properties::format_ratio(c.ratio) << "):\n";
    const auto scenario = to_json(c.scenario);
    for (const auto& [key, value] : scenario.items()) std::cout << "  " << key << ": " << value.dump() << "\n";
    std::cout << wrapped(c.detail, 100, "  ");
    if (!c.diagnosis.empty()) std::cout << wrapped("diagnosis: " + c.diagnosis, 100, "  ");
    std::cout << "  " << properties::reproduce_line(c, report.seed) << "\n\n";
  } else {
    std::cout << "no counterexample in " << cases << " cases: it did not show (try --cases or --seed)\n\n";
  }
  std::cout << "the fix:\n" << indented(pitfall->fix(), "  ") << "\n";
  std::cout << "caught by:";
  for (const auto& [property, ratio] : summary.caught_by) {
    std::cout << " " << property << " (" << properties::format_ratio(ratio) << ")";
  }
  std::cout << (summary.caught_by.empty() ? " nothing in these cases" : "") << "; shows in " << summary.showing
            << " of " << summary.cases << " cases\n";
  return summary.caught_by.empty() ? static_cast<int>(ExitCode::property_failed) : 0;
}

int list_command(bool json) {
  const Catalog catalog;
  nlohmann::json out;
  out["properties"] = nlohmann::json::array();
  for (const auto* p : catalog.properties()) {
    out["properties"].push_back({{"name", p->name()}, {"claim", p->claim()}});
  }
  out["recipes"] = nlohmann::json::array();
  for (const auto* r : catalog.recipes()) {
    out["recipes"].push_back({{"name", r->name()},
                              {"kind", to_string(r->kind())},
                              {"summary", r->summary()},
                              {"reference", r->reference()}});
  }
  out["models"] = all_architectures();
  out["losses"] = all_losses();
  out["optimizers"] = all_optimizers();
  out["schedules"] = all_schedules();
  out["clipping"] = all_clippings();
  out["precisions"] = all_precisions();
  if (json) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::cout << "properties:\n";
  for (const auto& p : out["properties"]) {
    std::cout << "  " << p["name"].get<std::string>() << "\n      " << p["claim"].get<std::string>() << "\n";
  }
  std::cout << "recipes:\n";
  for (const auto& r : out["recipes"]) {
    std::cout << "  " << r["name"].get<std::string>() << " (" << r["kind"].get<std::string>()
              << ")\n      " << r["summary"].get<std::string>() << "\n";
    if (!r["reference"].get<std::string>().empty()) {
      std::cout << "      reported in: " << r["reference"].get<std::string>() << "\n";
    }
  }
  auto print_list = [&](const char* title, const nlohmann::json& items) {
    std::cout << title << ":";
    const char* separator = " ";
    for (const auto& item : items) {
      std::cout << separator << item.get<std::string>();
      separator = ", ";
    }
    std::cout << "\n";
  };
  for (const char* key : {"models", "losses", "optimizers", "schedules", "clipping", "precisions"}) {
    print_list(key, out[key]);
  }
  return 0;
}

int bench_command(const BenchArguments& args) {
  const std::string& what = args.what;
  if (what != "data-parallel" && args.backend != "gloo") {
    throw UsageError("--backend is for gacc bench data-parallel, not " + what);
  }
  if (what != "coverage" && (args.cases != 0 || !args.precision.empty())) {
    throw UsageError("--cases and --precision are for gacc bench coverage, not " + what);
  }
  nlohmann::json figures;
  if (what == "oracle") {
    figures = bench::run_oracle_bench(std::cout);
  } else if (what == "data-parallel") {
    figures = bench::run_data_parallel_bench(std::cout, distributed::parse_process_group_backend(args.backend));
  } else if (what == "coverage") {
    const Catalog catalog;
    std::vector<const Recipe*> pitfalls;
    for (const auto* r : catalog.recipes()) {
      if (r->kind() == RecipeKind::pitfall) pitfalls.push_back(r);
    }
    figures = bench::run_coverage_bench(std::cout, catalog.properties(), pitfalls,
                                        command_range(args.precision, data_parallel_world()),
                                        args.cases > 0 ? args.cases : 300, 20);
  } else if (what == "accumulate") {
#ifdef GACC_WITH_GPU_BENCH
    figures = bench::run_accumulate_gpu_bench(std::cout);
#else
    throw EnvironmentError("gacc bench accumulate measures the GPU path, and this gacc was built without CUDA "
                           "(nvcc was not found when it was configured)");
#endif
  } else {
    throw UsageError("unknown benchmark \"" + what + "\" (available: oracle, data-parallel, accumulate, coverage)");
  }
  if (!args.json_path.empty()) write_file_atomically(args.json_path, figures.dump(2) + "\n");
  return 0;
}

namespace {

nlohmann::json expectation_json(const reference::WindowExpectation& e) {
  return {{"step", e.step},
          {"lr", e.lr},
          {"lr_tolerance", e.lr_tolerance},
          {"loss", e.loss},
          {"loss_tolerance", e.loss_tolerance},
          {"grad", e.grad},
          {"grad_tolerance", e.grad_tolerance},
          {"pre_clip_norm", e.norm},
          {"pre_clip_norm_tolerance", e.norm_tolerance},
          {"params_after", e.params_after},
          {"params_after_tolerance", e.params_after_tolerance},
          {"optimizer_state", e.state_after},
          {"optimizer_state_tolerance", e.state_after_tolerance},
          {"buffers_after", e.buffers_after},
          {"buffers_after_tolerance", e.buffers_after_tolerance},
          {"loss_scale", e.loss_scale},
          {"overflow", e.overflow == reference::Overflow::none        ? "none"
                       : e.overflow == reference::Overflow::definite ? "definite"
                                                                     : "ambiguous"},
          {"skipped", e.skipped}};
}

}  // namespace

Scenario scenario_argument(const std::string& text_or_path) {
  const auto first = text_or_path.find_first_not_of(" \t\r\n");
  const bool inline_json = first != std::string::npos && text_or_path[first] == '{';
  return parse_scenario(inline_json ? text_or_path : read_file(text_or_path));
}

int repro_command(const ReproArguments& args) {
  const Scenario scenario =
      args.case_index < 0
          ? scenario_argument(args.scenario)
          : properties::generated_case(
                properties::stratified(command_range(args.precision, data_parallel_world()), args.seed), args.seed,
                args.case_index)
                .value();
  const Catalog catalog;
  std::vector<const Recipe*> recipes;
  for (const auto* r : catalog.recipes()) {
    if (args.recipe.empty() || r->name() == args.recipe) recipes.push_back(r);
  }
  if (recipes.empty()) throw UsageError("unknown recipe \"" + args.recipe + "\" (see gacc list)");
  // The runner keeps its oracle and each recipe's trace: --trace writes what was judged.
  properties::ScenarioOutcomes outcomes;
  const auto report = properties::run_scenario(catalog.properties(), recipes, scenario, &outcomes);
  std::cout << "scenario: " << to_json_text(scenario) << "\n\n";
  properties::print_table(std::cout, report, {true, true});
  if (!args.trace_path.empty()) {
    nlohmann::json out = {{"scenario", to_json(scenario)}, {"parameters", nlohmann::json::array()}};
    out["oracle"] = nlohmann::json::array();
    if (const auto* oracle = outcomes.oracle.get()) {
      for (int64_t i = 0; i < oracle->layout().size; ++i) out["parameters"].push_back(oracle->layout().element_name(i));
      for (const auto& e : oracle->trajectory()) out["oracle"].push_back(expectation_json(e));
    }
    out["recipes"] = nlohmann::json::object();
    for (const auto& ran : outcomes.recipes) {
      out["recipes"][ran.recipe] = ran.trace ? to_json(*ran.trace) : nlohmann::json{{"error", ran.error}};
    }
    write_file_atomically(args.trace_path, out.dump(1) + "\n");
    std::cout << "traces: " << args.trace_path << " (the oracle's trajectory with tolerances, each recipe's trace)\n";
  }
  // One scenario need not show every pitfall (K = 1 shows none): only a failing correct recipe
  // makes a rerun fail.
  return static_cast<int>(report.correct_failing().empty() ? ExitCode::ok : ExitCode::property_failed);
}

namespace {

/// `gacc case verify`: a result file, as the one trace of a recipe (for its case's scenario only).
class RecordedResult : public Recipe {
 public:
  RecordedResult(std::string path, Scenario scenario, Trace trace)
      : path_(std::move(path)), scenario_text_(to_json_text(scenario)), trace_(std::move(trace)) {}
  std::string name() const override { return "result"; }
  RecipeKind kind() const override { return RecipeKind::correct; }
  std::string summary() const override { return "the result file " + path_; }
  bool supports(const Scenario& scenario) const override { return to_json_text(scenario) == scenario_text_; }
  Trace run(const Scenario& scenario) const override {
    if (!supports(scenario)) throw std::logic_error("a result file holds the trace of its own case only");
    return trace_;
  }

 private:
  std::string path_, scenario_text_;
  Trace trace_;
};

}  // namespace

namespace {

/// Splits JSON given on the command line: the text itself (starting with `{`) or a file's path.
Splits splits_argument(const std::string& text_or_path) {
  const auto first = text_or_path.find_first_not_of(" \t\r\n");
  const bool inline_json = first != std::string::npos && text_or_path[first] == '{';
  return parse_splits(inline_json ? text_or_path : read_file(text_or_path));
}

}  // namespace

int case_export_command(const CaseExportArguments& args) {
  if (args.mode == "differential") {
    // The first case `gacc check-external --mode differential --seed S` draws.
    const auto splits =
        args.splits.empty() ? properties::generated_splits(args.seed, 0) : splits_argument(args.splits);
    external::write_differential_case(args.out, splits);
    std::cout << "case: " << args.out << " (differential)\nsplits: " << to_json_text(splits) << "\n";
    return 0;
  }
  Scenario scenario;
  if (!args.scenario.empty()) {
    scenario = scenario_argument(args.scenario);
  } else {
    // The first case `gacc check-external --seed S` draws (with its default --ranks 1).
    scenario = properties::generated_case(properties::stratified(command_range("", 1), args.seed), args.seed, 0).value();
  }
  external::write_case(args.out, scenario);
  std::cout << "case: " << args.out << "\nscenario: " << to_json_text(scenario) << "\n";
  return 0;
}

namespace {

/// `gacc case verify` of a differential case.
int differential_verify(const CaseVerifyArguments& args) {
  const auto splits = external::read_differential_case(args.case_path);
  const auto result = external::read_differential_result(args.result_path, splits);
  const auto report = properties::judge_differential_case(splits, result);
  std::cout << "case: " << args.case_path << " (differential)\nresult: " << args.result_path
            << "\nsplits: " << to_json_text(splits) << "\n\n";
  properties::print_table(std::cout, report, table_options(args));
  write_reports(report, args.json_path, "");
  return static_cast<int>(report.exit_code());
}

}  // namespace

int case_verify_command(const CaseVerifyArguments& args) {
  if (external::is_differential_case(args.case_path)) return differential_verify(args);
  const Scenario scenario = external::read_case(args.case_path);
  const RecordedResult result(args.result_path, scenario, external::read_result(args.result_path, scenario));
  const Catalog catalog;
  std::vector<const properties::Property*> judging;
  std::vector<std::string> left_out;
  for (const auto* p : catalog.properties()) {
    if (p->reruns()) {
      left_out.push_back(p->name());
    } else {
      judging.push_back(p);
    }
  }
  const auto report = properties::run_scenario(judging, {&result}, scenario);
  std::cout << "case: " << args.case_path << "\nresult: " << args.result_path << "\nscenario: "
            << to_json_text(scenario) << "\n\n";
  properties::print_table(std::cout, report, table_options(args));
  if (!left_out.empty()) {
    std::cout << "not judged from one result (they rerun the stack; gacc check-external does):";
    for (const auto& name : left_out) std::cout << " " << name;
    std::cout << "\n";
  }
  write_reports(report, args.json_path, "");
  return static_cast<int>(report.exit_code());
}

namespace {

std::string differential_reproducer(const external::ExternalRecipe& recipe, const Splits& splits) {
  return "gacc case export --mode differential --splits " + external::shell_quoted(to_json_text(splits)) +
         " --out case.pt && " + recipe.command_for("case.pt", "result.pt") + " && gacc case verify case.pt result.pt";
}

/// The end of either mode of check-external: the table, how often the command ran, the reports,
/// the exit code.
int finish_external(const properties::RunReport& report, const external::ExternalRecipe& recipe,
                    const CheckExternalArguments& args) {
  properties::print_table(std::cout, report, table_options(args));
  if (args.worker || !args.worker_fds.empty()) {
    std::cout << "the worker served " << recipe.runs() << " cases";
    if (args.worker) std::cout << " (started " << recipe.worker_starts() << (recipe.worker_starts() == 1 ? " time)" : " times)");
  } else {
    std::cout << "the command ran " << recipe.runs() << " times";
  }
  if (!args.keep_directory.empty()) std::cout << "; cases, results and logs are in " << recipe.directory();
  std::cout << "\n";
  write_reports(report, args.json_path, args.junit_path);
  return static_cast<int>(report.exit_code());
}

/// `gacc check-external --mode differential`: generated splits, the command, the differential checks.
int check_external_differential(const CheckExternalArguments& args, const external::ExternalRecipe& recipe) {
  std::cout << "checking: " << recipe.command() << "\n" << args.cases << " generated splits (seed " << args.seed
            << ", differential mode: accumulated against the stack's own large batch)\n\n";
  properties::DifferentialRunOptions options;
  options.cases = args.cases;
  options.seed = args.seed;
  options.max_shrink_evaluations = args.shrinks;
  options.progress = progress_on_stderr();
  options.reproducer = [&recipe](const Splits& splits) { return differential_reproducer(recipe, splits); };
  const auto report = properties::run_differential(
      recipe.name(), [&recipe](const Splits& splits) { return recipe.run_differential(splits); }, options);
  return finish_external(report, recipe, args);
}

}  // namespace

int check_external_command(const CheckExternalArguments& args) {
  external::ExternalOptions options;
  options.command = args.command;
  options.timeout = std::chrono::milliseconds(static_cast<int64_t>(args.timeout_seconds * 1000.0));
  options.keep_directory = args.keep_directory;
  options.max_world = args.ranks;
  options.worker = args.worker;
  if (!args.worker_fds.empty()) {  // IN,OUT, checked by the command line's validator
    const auto comma = args.worker_fds.find(',');
    options.worker_in_fd = std::stoi(args.worker_fds.substr(0, comma));
    options.worker_out_fd = std::stoi(args.worker_fds.substr(comma + 1));
    if (options.command.empty()) options.command = "the stack that started gacc";
  }
  const external::ExternalRecipe recipe(options);
  if (args.mode == "differential") {
    if (args.ranks != 1) throw UsageError("--mode differential runs one rank; --ranks " + std::to_string(args.ranks) +
                                          " is for --mode oracle");
    return check_external_differential(args, recipe);
  }
  const Catalog catalog;
  properties::RunOptions run;
  run.cases = args.cases;
  run.seed = args.seed;
  run.max_shrink_evaluations = args.shrinks;
  run.progress = progress_on_stderr();
  run.record_case_verdicts = true;
  std::cout << "checking: " << recipe.command() << "\n" << args.cases << " generated scenarios (seed " << args.seed
            << ", world sizes up to " << args.ranks << ")\n\n";
  auto report = run_stratified(catalog.properties(), {&recipe}, command_range(args.precision, args.ranks), run);
  report.reproducer = [&recipe](const properties::Counterexample& c) {
    return "gacc case export --scenario " + external::shell_quoted(to_json_text(c.scenario)) +
           " --out case.pt && " + recipe.command_for("case.pt", "result.pt") +
           " && gacc case verify case.pt result.pt";
  };
  return finish_external(report, recipe, args);
}

}  // namespace gacc::cli
