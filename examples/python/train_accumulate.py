#!/usr/bin/env python3
"""Gradient accumulation in plain PyTorch, as gacc checks it.

    python train_accumulate.py                 check this loop with gacc.check (20 cases)
    python train_accumulate.py CASE RESULT     train through one case file (check-external --cmd)
    python train_accumulate.py --worker        serve every case over Note [worker protocol]

gacc hands the loop a case (a scenario, gacc's zoo model with its initial weights, every
micro-batch); the loop trains through it — K micro-batches, then one optimizer step — and records
what it did at every step. gacc judges that against large-batch training.

Per window: each micro-batch's loss, summed over its elements, is divided by the loss elements of
the WHOLE window and back-propagated; then, once, GradScaler's unscale_ (fp16), clipping, one
optimizer step, one scheduler step and zero_grad. bf16 and fp16 run the forward pass and the loss
under CPU autocast with fp32 weights; fp16 scales every backward with torch.amp.GradScaler.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import torch

try:
    import gacc
except ImportError:  # run from a checkout without the package installed (pip install ./python)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
    import gacc

from gacc import case as gacc_case, training, worker as gacc_worker, zoo  # noqa: E402


def micro_batch_loss(scenario: dict[str, Any], outputs: torch.Tensor, targets: torch.Tensor,
                     window_elements: int, micro_batches: int) -> torch.Tensor:
    """One micro-batch's loss, summed over its own elements, divided by the WHOLE window's loss
    elements: the window's backward passes then add up to the large batch's mean however it is cut."""
    summed = zoo.summed_loss(scenario, outputs, targets)
    return summed if scenario["loss"]["reduction"] == "sum" else summed / window_elements


def train(case: gacc_case.Case, scheduler_holds_on_skipped_step: bool = False):
    """Trains through the case; returns the result's steps and counters. The scheduler steps once per
    window (PyTorch's AMP example); with ``scheduler_holds_on_skipped_step`` it holds on a step
    GradScaler skipped (accelerate). gacc accepts either."""
    scenario = case.scenario
    model = zoo.build_model(scenario, case).train()
    params = [model.get_parameter(name) for name in case.parameter_names]
    optimizer = training.make_optimizer(scenario["optimizer"], params)
    scheduler = training.make_scheduler(scenario.get("schedule"), optimizer)
    scaler = training.make_grad_scaler(scenario)
    counters = dict.fromkeys(gacc_case.COUNTER_NAMES, 0)
    steps = []
    for window in case.batches:
        micro_batches = window[0]  # this rank's micro-batches (one rank: all of them)
        elements = training.window_elements(scenario, micro_batches)
        window_loss = 0.0
        for batch in micro_batches:  # accumulate: gradients add up in .grad
            with training.autocast(scenario["precision"]):
                outputs = model(batch["inputs"])
                loss = micro_batch_loss(scenario, outputs, batch["targets"], elements, len(micro_batches))
            (scaler.scale(loss) if scaler else loss).backward()
            window_loss += loss.item()
            counters["micro_batches"] += 1
        if scaler:  # once per window: unscale, clip, step
            scaler.unscale_(optimizer)
        pre_clip_norm = training.clip_gradients(params, scenario.get("clipping"))
        training.fill_missing_gradients(params)
        grad, lr = gacc_case.gradients(model), optimizer.param_groups[0]["lr"]
        loss_scale = scaler.get_scale() if scaler else 1.0
        skipped = training.optimizer_step(optimizer, scaler)
        counters["optimizer_steps"] += not skipped
        steps.append(gacc_case.record_step(model, optimizer, grad=grad, pre_clip_norm=pre_clip_norm, loss=window_loss,
                                           lr=lr, loss_scale=loss_scale, skipped=skipped))
        if scheduler and not (skipped and scheduler_holds_on_skipped_step):
            scheduler.step()
            counters["scheduler_steps"] += 1
        optimizer.zero_grad()
        counters["zero_grads"] += 1
    return steps, counters


def run_case(case_path: str, result_path: str) -> None:
    """Trains through one case file and writes its result file."""
    case = gacc_case.load_case(case_path)
    if case.world_size != 1:
        raise gacc_case.CaseError(f"this loop trains one process; the case has world_size {case.world_size}")
    steps, counters = train(case)
    gacc_case.save_result(result_path, steps, counters)


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)  # gacc's own recipes run on one intra-op thread
    if len(argv) == 1:  # gacc's property loop against this loop, in this process
        report = gacc.check(train, cases=20, seed=1)
        print(report)
        return report.exit_code
    if argv[1:] == ["--worker"]:  # started once, serving every case (gacc check-external --worker)
        return gacc_worker.serve(run_case)
    if len(argv) != 3:
        print(f"usage: {argv[0]}  |  {argv[0]} CASE RESULT  |  {argv[0]} --worker", file=sys.stderr)
        return 2
    try:
        run_case(argv[1], argv[2])
    except (OSError, gacc_case.CaseError) as error:
        print(f"{argv[0]}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
