"""The command line of every adapter, ``python -m gacc.adapters.NAME``:

    python -m gacc.adapters.NAME [--mode oracle|differential] [--broken NAME] [--cases N] [--seed S]
                                 [--precision P] [--shrinks N]          # gacc.check, its report printed
    python -m gacc.adapters.NAME --worker [--mode M] [--broken NAME]   # serves gacc check-external --worker
    python -m gacc.adapters.NAME [--mode M] [--broken NAME] CASE RESULT  # one case file into its result file

An adapter module offers ``oracle_stack(broken=...)``, ``differential_stack(broken=...)``, ``BROKEN``
and ``SUPPORTED_PRECISIONS``; its ``main(argv)`` is ``_command_line.main(sys.modules[__name__], argv)``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from types import ModuleType

import torch

from gacc import case as gacc_case
from gacc import checking
from gacc import worker as gacc_worker
from gacc.adapters._shared import UnsupportedCase


def main(adapter: ModuleType, argv: list[str] | None = None) -> int:
    """The command line of ``adapter`` (the module), ``argv`` without the program (sys.argv's rest
    when None); returns the exit code."""
    module = adapter.__spec__.name if adapter.__spec__ is not None else adapter.__name__  # -m: __name__ is __main__
    parser = argparse.ArgumentParser(
        prog=f"python -m {module}",
        description="Without --worker or files: checks the stack with gacc.check (GACC_BINARY, or gacc on the "
                    "PATH) and prints the report; in oracle mode without --precision, once per supported "
                    "precision. With --worker: serves gacc's cases over standard input and output "
                    f"(gacc check-external --worker --cmd 'python -m {module} --worker ...'). With CASE RESULT: "
                    "trains the one case file into the result file.")
    parser.add_argument("--worker", action="store_true", help="serve cases over standard input and output")
    parser.add_argument("--mode", choices=("oracle", "differential"), default="oracle")
    parser.add_argument("--broken", choices=sorted(adapter.BROKEN), default=None,
                        help="; ".join(f"{name}: {text}" for name, text in adapter.BROKEN.items()))
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--precision", choices=adapter.SUPPORTED_PRECISIONS, default=None)
    parser.add_argument("--shrinks", type=int, default=40)
    parser.add_argument("files", nargs="*", metavar="CASE RESULT", help="a case file and the result file to write")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker and args.files:
        parser.error("--worker takes no files")
    if args.files and len(args.files) != 2:
        parser.error("give CASE RESULT, --worker, or neither")
    torch.set_num_threads(1)  # gacc's own recipes run on one intra-op thread
    factory = adapter.oracle_stack if args.mode == "oracle" else adapter.differential_stack
    stack = factory(broken=args.broken)
    handle = checking._handler(stack, args.mode)  # what gacc.check serves: a case file into its result file
    if args.worker:
        return gacc_worker.serve(handle)
    if args.files:
        try:
            handle(*args.files)
        except (OSError, gacc_case.CaseError, UnsupportedCase) as error:
            print(f"{parser.prog}: {error}", file=sys.stderr)
            return 2
        return 0
    import gacc

    rerun = [sys.executable, "-m", module, "--worker", "--mode", args.mode]
    if args.broken:
        rerun += ["--broken", args.broken]
    precisions = ([args.precision] if args.precision or args.mode == "differential"
                  else list(adapter.SUPPORTED_PRECISIONS))
    exit_code = 0
    for precision in precisions:
        report = gacc.check(stack, cases=args.cases, seed=args.seed, precision=precision, mode=args.mode,
                            shrinks=args.shrinks, rerun=shlex.join(rerun))
        print(report)
        exit_code = max(exit_code, report.exit_code)
    return exit_code
