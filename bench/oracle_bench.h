#pragma once
/// `gacc bench oracle`: the cost of the oracle on the tiny language model, side by side with
/// LibTorch in float64 on the same step.

#include <ostream>

#include <nlohmann/json.hpp>

namespace gacc::bench {

/// Times one optimizer step of the causal LM (d_model 16, vocabulary 32, sequences of 1..12 tokens,
/// batch 16, Adam) in cpp_bin_float_50, in double, as the whole Oracle (truth and bounds), and in
/// LibTorch float64; prints a table to `out` and returns the figures.
nlohmann::json run_oracle_bench(std::ostream& out);

}  // namespace gacc::bench
