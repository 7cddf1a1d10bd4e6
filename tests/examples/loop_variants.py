#!/usr/bin/env python3
"""Variants of examples/python/train_accumulate.py that gacc has never seen, for its tests.

    python loop_variants.py VARIANT CASE RESULT

Correct variants (gacc must pass them):
  reversed          each window's micro-batches run last to first (BatchNorm's running statistics
                    then follow another order: still a correct loop)
  scheduler-holds   the LR scheduler holds on a step GradScaler skipped, as accelerate does
Broken variants (gacc must fail them, with a verdict, never as bad input):
  skip-partial-window   the loop drops a last window shorter than the others (a drop_last the
                    loop's author did not mean): one optimizer step too few
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "python"))
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))

import torch  # noqa: E402

from gacc import case as gacc_case  # noqa: E402
import train_accumulate  # noqa: E402

VARIANTS = ("reversed", "scheduler-holds", "skip-partial-window")


def main(argv):
    if len(argv) != 4 or argv[1] not in VARIANTS:
        print(f"usage: {argv[0]} {{{','.join(VARIANTS)}}} CASE RESULT", file=sys.stderr)
        return 2
    variant, case_path, result_path = argv[1:]
    torch.set_num_threads(1)
    case = gacc_case.load_case(case_path)
    if variant == "reversed":
        case.batches = [[list(reversed(rank)) for rank in window] for window in case.batches]
    if variant == "skip-partial-window" and len(case.batches) > 1:
        def examples(window):
            return sum(batch["inputs"].shape[0] for batch in window[0])
        if examples(case.batches[-1]) < examples(case.batches[0]):
            case.batches = case.batches[:-1]
    steps, counters = train_accumulate.train(case, scheduler_holds_on_skipped_step=variant == "scheduler-holds")
    gacc_case.save_result(result_path, steps, counters)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
