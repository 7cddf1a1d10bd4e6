#pragma once
/// `gacc bench accumulate`: the fused accumulator on the GPU against the device's own copy
/// bandwidth and against LibTorch, timed with CUDA events (bench/RESULTS.md has the figures).
///
/// - device-to-device copy bandwidth, measured in the same run (the ceiling);
/// - the fused accumulate on one large buffer (16 MiB to 1 GiB of fp32): GB/s counting 10 bytes per
///   bf16 element (12 per fp32) and its share of the copy bandwidth (target: >= 90% from 64 MiB);
/// - a realistic list (a 12-layer transformer's 197 gradients, 110M elements, bf16 and fp32): the
///   fused accumulate against LibTorch's per-tensor `acc.add_(g.float(), alpha)` loop and, for fp32
///   gradients, `_foreach_add_` (target: >= 2x LibTorch);
/// - finalize (unscale, non-finite check, norm, clip) against LibTorch's
///   `_amp_foreach_non_finite_check_and_unscale_` + `clip_grad_norm_`, and against the same with
///   `_foreach_norm` and `_foreach_mul_` as PyTorch's Python does it (target: >= 2x).
///
/// The LibTorch rows need a LibTorch built with CUDA (the GPU host's); with a CPU-only LibTorch they
/// are reported as not measured.

#include <ostream>

#include <nlohmann/json.hpp>

namespace gacc::bench {

/// Runs the benchmark on CUDA device 0, prints a table to `out` and returns the figures. Throws
/// EnvironmentError when there is no CUDA device (or gacc was built without nvcc).
nlohmann::json run_accumulate_gpu_bench(std::ostream& out);

}  // namespace gacc::bench
