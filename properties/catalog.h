#pragma once
/// The properties, each in a file of its own (its claim in its name() and claim()), made by the
/// factories below; all_properties() (property.h) lists them in report order.

#include <memory>

#include "properties/property.h"

namespace gacc::properties {

/// Property 1: at every step, the gradient the optimizer is handed (after clipping), its pre-clip
/// norm and the window's loss equal the large-batch ones at the recipe's own parameters.
std::unique_ptr<Property> gradient_equivalence();
/// Property 2: over S steps, parameters, optimizer state, buffers and learning rate equal large-batch
/// training, step by step and along the trajectory; gradients are checked before each step too.
std::unique_ptr<Property> step_equivalence();
/// Property 3: the recipe with each window as one micro-batch (K = 1) agrees with its split run within
/// the two runs' tolerances.
std::unique_ptr<Property> split_invariance();
/// Property 4: with BatchNorm, accumulation equals ghost BatchNorm; the deviation from the large batch
/// is the documented non-equivalence (an expected failure), measured.
std::unique_ptr<Property> batch_norm_semantics();
/// Property 5: a token-mean loss divides by the counted tokens of the whole window.
std::unique_ptr<Property> token_normalization();
/// Property 6: clipping acts once, on the whole window's gradient.
std::unique_ptr<Property> clipping_after_window();
/// Property 7: under autocast, gradients and steps are within the autocast-derived bound, and loss
/// scale and skipped steps follow GradScaler's semantics.
std::unique_ptr<Property> mixed_precision();
/// Property 8: optimizer steps, scheduler steps, the scheduled rate and the optimizer's step count
/// advance once per optimizer step.
std::unique_ptr<Property> schedules_and_counters();
/// Property 9: W ranks x K micro-batches equal the large batch of the whole window; the replicas
/// stay identical; the whole gradient is all-reduced once per window or once per micro-batch.
std::unique_ptr<Property> data_parallel();

/// The scenario with each window's micro-batches merged into one (K = 1), per rank.
Scenario unsplit(const Scenario& scenario);

}  // namespace gacc::properties
