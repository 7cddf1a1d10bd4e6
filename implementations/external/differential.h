#pragma once
/// Differential mode's files: the case gacc writes (the splits, core/differential.h) and the result
/// a stack writes back (its three runs), in LibTorch's pickle format. The stack trains its own model
/// on the splits three ways — `accumulated` (float64), `large_batch` (each window as one
/// micro-batch, float64) and `large_batch_fp32` (the same in float32) — and gacc judges the result
/// (properties/differential.h; docs/external-stacks.md, "Differential mode"). Every reader error is
/// an InputError naming the key (exit 3).

#include <cstdint>
#include <string>
#include <vector>

#include "core/differential.h"

namespace gacc::external {

inline constexpr const char* kDifferentialCaseFormat = "gacc-differential-case";
inline constexpr const char* kDifferentialResultFormat = "gacc-differential-result";
inline constexpr int64_t kDifferentialVersion = 1;

/// The variants a differential result holds, in file order, and the dtype each runs in.
inline constexpr const char* kAccumulated = "accumulated";
inline constexpr const char* kLargeBatch = "large_batch";
inline constexpr const char* kLargeBatchFp32 = "large_batch_fp32";

std::vector<char> encode_differential_case(const Splits& splits);
void write_differential_case(const std::string& path, const Splits& splits);
Splits decode_differential_case(const std::vector<char>& bytes, const std::string& origin);
Splits read_differential_case(const std::string& path);
/// Whether the file at `path` is tagged as a differential case (false for anything else: the
/// oracle-mode reader then says what is wrong with it).
bool is_differential_case(const std::string& path);

/// Reads a result and checks it against its splits: S steps in every variant, the same names and
/// shapes everywhere, float64 in accumulated and large_batch, float32 in large_batch_fp32.
DifferentialResult decode_differential_result(const std::vector<char>& bytes, const Splits& splits,
                                              const std::string& origin);
DifferentialResult read_differential_result(const std::string& path, const Splits& splits);
/// The file a stack would write (tests): accumulated and large_batch float64, the third float32.
std::vector<char> encode_differential_result(const DifferentialResult& result);

}  // namespace gacc::external
