#pragma once
/// Differential mode's values: the splits gacc hands a stack and the result it writes back, plain
/// and JSON-serializable. The file format is implementations/external/differential.h's; the
/// generator, the judge and the loop are properties/differential.h's.
///
/// gacc generates only the SPLITS — per optimizer step the window's micro-batches, as lists of
/// example indices into the stack's own dataset. The stack trains its own model from its own
/// initialization three ways: `accumulated` (its accumulation loop over the given micro-batches,
/// float64), `large_batch` (each window as one micro-batch, float64) and `large_batch_fp32` (the
/// same in float32: its rounding noise, measured) — docs/external-stacks.md, "Differential mode".

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gacc {

/// How the examples are cut: `windows[s][m]` lists the example indices of micro-batch m in the
/// window of optimizer step s (distinct within a step, each at least 0). The stack takes example
/// `i` of its own dataset as it likes (the example: i mod its size); `global_batch` is the size of a
/// full window (a partial last window holds fewer examples), at least every window's size.
/// `accumulation_steps` is K: every window but the last holds K micro-batches, the last 1 to K —
/// what a stack with a fixed gradient_accumulation_steps (Trainer, accelerate, Lightning) can run.
struct Splits {
  uint64_t seed = 0;  ///< the stack may seed its initialization with it (below 2^31)
  int64_t global_batch = 1;
  int64_t accumulation_steps = 1;
  std::vector<std::vector<std::vector<int64_t>>> windows;

  int steps() const { return static_cast<int>(windows.size()); }
  int micro_batches() const;
  bool operator==(const Splits& other) const;
};

/// Throws InputError naming the first invalid field under `root` (`splits.windows[1][0]: ...`).
void validate(const Splits& splits, const std::string& root = "splits");
nlohmann::json to_json(const Splits& splits);
/// One line: `{"seed":..,"global_batch":..,"accumulation_steps":..,"windows":[[[0,1],[2]],...]}`.
std::string to_json_text(const Splits& splits);
/// Parses and validates splits JSON (unknown keys refused); InputError naming the field.
Splits parse_splits(const std::string& text);

/// One of the stack's parameters at one step: its shape and values (row-major).
struct StackTensor {
  std::vector<int64_t> shape;
  std::vector<double> values;
};

struct DifferentialStep {
  double loss = 0.0;
  std::vector<StackTensor> grad;          ///< in DifferentialResult::names' order
  std::vector<StackTensor> params_after;  ///< the same
};

struct DifferentialCounters {
  int64_t micro_batches = 0;    ///< forward/backward passes
  int64_t optimizer_steps = 0;  ///< optimizer.step() calls
  int64_t zero_grads = 0;       ///< zero_grad() calls
};

/// What a stack wrote for one splits: its three runs, one step per window (the accumulated run may
/// hold any number: its step count is judged).
struct DifferentialResult {
  std::vector<std::string> names;  ///< the stack's parameter names, in the file's order
  std::vector<DifferentialStep> accumulated, large_batch, large_batch_fp32;
  DifferentialCounters counters;  ///< of the accumulated run
};

}  // namespace gacc
