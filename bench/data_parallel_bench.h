#pragma once
/// `gacc bench data-parallel`: what synchronizing once per window saves over synchronizing every
/// micro-batch, on the real engine (c10d over Gloo, one process per rank, loopback TCP; or over
/// NCCL, one CUDA device per rank).

#include <nlohmann/json.hpp>
#include <ostream>

#include "implementations/distributed/process_group_backend.h"

namespace gacc::bench {

/// For W = 2, 4, 8 ranks (over NCCL: those the CUDA devices allow, one per rank; fewer than two
/// devices is an EnvironmentError): an MLP (6.4k parameters, 25 KiB of fp32 gradient) trained for 8 optimizer
/// steps of K = 4 micro-batches of 4 examples per rank, with the gradient all-reduced once per window
/// (ddp-accumulate) and every micro-batch (ddp-sync-every-micro-batch). Reports, per optimizer step,
/// gradient collectives, bytes, rank 0's wall time in the loop and the part of it spent in
/// collectives (fastest of 5 jobs), and the whole job as the driver sees it (dispatch, traces and the
/// replica check included), beside one process running the same global batch. Prints a table;
/// returns the figures.
nlohmann::json run_data_parallel_bench(
    std::ostream& out, distributed::ProcessGroupBackend backend = distributed::ProcessGroupBackend::gloo);

}  // namespace gacc::bench
