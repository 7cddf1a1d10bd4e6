#pragma once
/// Differential mode: gradient accumulation judged for a model gacc does not know.
///
/// gacc generates only the SPLITS — per optimizer step the window's micro-batches, as lists of
/// example indices into the stack's own dataset — and writes them as a differential case. The stack
/// trains its own model from its own initialization three ways and writes a differential result:
/// `accumulated` (its accumulation loop over the given micro-batches, float64), `large_batch`
/// (each window as one micro-batch, float64) and `large_batch_fp32` (the same in float32: its
/// rounding noise, measured). gacc judges accumulated against large_batch element by element with a
/// tolerance derived from that measured noise (docs/external-stacks.md, "Differential mode"). Every reader error is
/// an InputError naming the key (exit 3).

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace gacc::external {

inline constexpr const char* kDifferentialCaseFormat = "gacc-differential-case";
inline constexpr const char* kDifferentialResultFormat = "gacc-differential-result";
inline constexpr int64_t kDifferentialVersion = 1;

/// The variants a differential result holds, in file order, and the dtype each runs in.
inline constexpr const char* kAccumulated = "accumulated";
inline constexpr const char* kLargeBatch = "large_batch";
inline constexpr const char* kLargeBatchFp32 = "large_batch_fp32";

/// The most micro-batches a generated window holds, and the most examples in one micro-batch.
inline constexpr int kMaxDifferentialK = 6;
inline constexpr int kMaxDifferentialMicroSize = 4;
inline constexpr int kMaxDifferentialSteps = 3;

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

/// Splits drawn from `seed`: S in 1..3 steps, K in 1..6 micro-batches of uneven sizes (1..4
/// examples each) summing to the global batch, a partial last window in a third of the cases.
Splits generate_splits(uint64_t seed);

/// Smaller splits to try when shrinking a failure, most promising first: fewer steps, a smaller K
/// (two neighbours merged, or one dropped, in every window that holds them), a shorter last window,
/// fewer examples. Each keeps every window but the last at K micro-batches.
std::vector<Splits> shrink_candidates(const Splits& splits);

std::vector<char> encode_differential_case(const Splits& splits);
void write_differential_case(const std::string& path, const Splits& splits);
Splits decode_differential_case(const std::vector<char>& bytes, const std::string& origin);
Splits read_differential_case(const std::string& path);
/// Whether the file at `path` is tagged as a differential case (false for anything else: the
/// oracle-mode reader then says what is wrong with it).
bool is_differential_case(const std::string& path);

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

struct DifferentialResult {
  std::vector<std::string> names;  ///< the stack's parameter names, in the file's order
  std::vector<DifferentialStep> accumulated, large_batch, large_batch_fp32;
  DifferentialCounters counters;  ///< of the accumulated run
};

/// Reads a result and checks it against its splits: S steps in every variant, the same names and
/// shapes everywhere, float64 in accumulated and large_batch, float32 in large_batch_fp32.
DifferentialResult decode_differential_result(const std::vector<char>& bytes, const Splits& splits,
                                              const std::string& origin);
DifferentialResult read_differential_result(const std::string& path, const Splits& splits);
/// The file a stack would write (tests): accumulated and large_batch float64, the third float32.
std::vector<char> encode_differential_result(const DifferentialResult& result);

/// One judged quantity over one case: its worst ratio (error / tolerance; at least 1 fails,
/// infinity for a structural failure) and where it was, with the tolerance's derivation.
struct DifferentialCheck {
  std::string name;   ///< differential-gradients, -losses, -params, -counters, -fp32-probe
  std::string claim;  ///< what it checks, one line
  double ratio = 0.0;
  std::string detail;
  std::string diagnosis = {};  ///< of a failure, where a known signature fits (Note [diagnosis])
  bool failed() const { return !(ratio < 1.0); }
};

/// The names of the checks, in the order judge_differential returns them.
std::vector<std::string> differential_check_names();

/// Judges a result against its splits (the derivation: docs/external-stacks.md):
///   noise64(Q) = 2^-29 x max_i |large_batch_fp32_i - large_batch_i| over quantity Q of a step
///                (the whole gradient, the whole parameters, the loss)
///   tolerance_i = kToleranceMargin x (2 x noise64(Q) + (K + 1) u64 (|acc_i| + |lb_i|))
/// for every gradient, loss and parameter after each step; the counters structurally; and the
/// probe that the float32 variant is rounding noise at all (within 2^-10 of large_batch's scale),
/// without which a wrong float32 run would loosen every tolerance.
std::vector<DifferentialCheck> judge_differential(const Splits& splits, const DifferentialResult& result);

/// Whether any check failed.
bool any_failed(const std::vector<DifferentialCheck>& checks);

}  // namespace gacc::external
