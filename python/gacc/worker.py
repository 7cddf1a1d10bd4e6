"""The Python side of gacc's worker protocol: a training stack started once serves many cases.

Without it, ``gacc check-external --cmd "python stack.py {case} {result}"`` starts Python and torch
for every case, which is most of the time a case takes. With it, the stack is started once:

    gacc check-external --worker --cmd "python stack.py --worker"

and ``stack.py`` calls :func:`serve` with a function that trains one case file into a result file.
The protocol (one JSON object per line, each way) is Note [worker protocol] in
``implementations/external/worker.h``; docs/python.md, "Worker".
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Callable, TextIO

PROTOCOL_VERSION = 1

#: Trains one case: ``handle(case_path, result_path)`` reads the case file and writes the result file.
Handler = Callable[[str, str], None]


def _answer(output: TextIO, message: dict) -> None:
    output.write(json.dumps(message) + "\n")
    output.flush()


def serve_on(handle: Handler, requests: TextIO, answers: TextIO) -> int:
    """Serves cases read from ``requests`` until it ends, answering on ``answers``; returns 0.

    A case whose handler raises is answered ``{"error": ...}`` (its traceback goes to standard
    error) and the worker goes on; a request that is not the protocol's ends the worker with 2.
    """
    _answer(answers, {"gacc_worker": PROTOCOL_VERSION})
    for line in requests:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            case_path, result_path = request["case"], request["result"]
        except (ValueError, KeyError, TypeError):
            print(f"gacc worker: not a request of protocol {PROTOCOL_VERSION}: {line.strip()[:200]}",
                  file=sys.stderr)
            return 2
        try:
            handle(case_path, result_path)
        except Exception as error:  # the stack failed on this case: gacc reports it, the worker stays
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            _answer(answers, {"error": f"{type(error).__name__}: {error}"})
            continue
        _answer(answers, {"done": True})
    return 0


def serve(handle: Handler) -> int:
    """Serves cases over standard input and output (``gacc check-external --worker``).

    Standard output carries the protocol only: everything the stack prints (``print``, logging,
    a progress bar) is sent to standard error instead, where gacc keeps it for its messages.
    """
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # prints of C extensions too
    sys.stdout = sys.stderr
    try:
        return serve_on(handle, sys.stdin, answers)
    finally:
        answers.close()
