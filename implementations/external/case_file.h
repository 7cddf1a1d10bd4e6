#pragma once
/// Case and result files: how a stack outside gacc (PyTorch in Python, first of all) is judged.
/// gacc writes a case — a scenario with its initial weights and every micro-batch — that
/// `torch.load` reads; the stack trains through it and writes a result with `torch.save` holding
/// what a Trace holds. The format is documented field by field in docs/external-stacks.md ("External stacks:
/// case files"); every reader error is an InputError naming the key (exit 3).

#include <cstdint>
#include <string>
#include <vector>

#include "core/scenario.h"
#include "core/trace.h"

namespace gacc::external {

inline constexpr const char* kCaseFormat = "gacc-case";
inline constexpr const char* kResultFormat = "gacc-result";
/// The one version of both formats this gacc writes and reads.
inline constexpr int64_t kFormatVersion = 1;

/// The case of `scenario`, as the bytes of a `torch.load`-able file.
std::vector<char> encode_case(const Scenario& scenario);
/// Writes the case of `scenario` to `path` atomically (temporary file, then rename).
void write_case(const std::string& path, const Scenario& scenario);

/// Reads a case and checks every key against its scenario (names, shapes, dtypes and values of
/// the weights and micro-batches); returns the scenario. `origin` names the file in messages.
Scenario decode_case(const std::vector<char>& bytes, const std::string& origin);
Scenario read_case(const std::string& path);

/// A result's trace, checked against the scenario of its case (every parameter and buffer of every
/// step, shapes and dtypes). The number of steps is the stack's: any count reads (a wrong one is a
/// failing verdict, not bad input).
Trace decode_result(const std::vector<char>& bytes, const Scenario& scenario, const std::string& origin);
Trace read_result(const std::string& path, const Scenario& scenario);

/// The result file a stack would write for `trace` (tests, and `gacc case` round trips): float32
/// tensors as the format documents.
std::vector<char> encode_result(const Trace& trace, const Scenario& scenario);

}  // namespace gacc::external
