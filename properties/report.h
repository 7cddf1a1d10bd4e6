#pragma once
/// Reports of a run: the terminal table, the JSON report and JUnit XML (shapes in docs/command-line.md).

#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "properties/runner.h"

namespace gacc::properties {

/// The JSON report: {"version", "seed", "cases", "results": [...], "summary": {...}}.
nlohmann::json to_json(const RunReport& report);

/// JUnit XML: one testsuite per property, one testcase per recipe. A testcase fails when a correct
/// recipe fails or a pitfall escapes; a caught pitfall passes.
std::string to_junit(const RunReport& report);

/// What the table shows beyond its default: the rows that went wrong, in detail.
struct TableOptions {
  bool details = false;   ///< every row's details (worst case, notes), not only what went wrong
  bool all_rows = false;  ///< the rows that applied to no case ("not applicable") too
};

/// The table a person reads, with counterexamples and reproduce lines for what went wrong.
void print_table(std::ostream& out, const RunReport& report, const TableOptions& options = {});

}  // namespace gacc::properties
