"""``gacc.check``: gacc's whole property loop against a stack held in this Python process.

    import gacc

    def my_stack(case):                 # oracle mode: train gacc's zoo model through the case
        ...
        return steps, counters          # as gacc.case.record_step / save_result take them

    report = gacc.check(my_stack, cases=20, seed=1)
    assert report.passed, report

The judging — generators, oracle, tolerances, properties, shrinking, reports — is the ``gacc``
program's, not a Python copy: ``check`` starts it with ``--worker-fds`` and serves it each case in
this process over the worker protocol (Note [worker protocol]), so Python and torch start once.
The program is found as ``$GACC_BINARY``, else ``gacc`` on the PATH, else ``gacc`` next to this
Python (a virtual environment's ``bin/``), else the checkout's ``build/gacc`` next to this package
(an editable install). ``import gacc`` does not import torch: ``gacc.case`` is imported when a
stack is served (the pytest plugin, ``gacc.pytest_plugin``, is loaded by every pytest session).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from gacc import worker as gacc_worker

MODES = ("oracle", "differential")
PRECISIONS = ("fp32", "bf16", "fp16")


class GaccNotFound(RuntimeError):
    """No ``gacc`` program to run."""


def find_binary() -> str:
    """The gacc program: $GACC_BINARY, ``gacc`` on the PATH, ``gacc`` next to this Python (a virtual
    environment's bin/), or the checkout's build/gacc; GaccNotFound names every place it looked."""
    explicit = os.environ.get("GACC_BINARY")
    if explicit:
        if not os.access(explicit, os.X_OK) or os.path.isdir(explicit):
            raise GaccNotFound(f"GACC_BINARY={explicit} is not an executable file")
        return explicit
    on_path = shutil.which("gacc")
    if on_path:
        return on_path
    beside_python = Path(sys.executable).parent / "gacc"
    checkout = Path(__file__).resolve().parents[2] / "build" / "gacc"
    for candidate in (beside_python, checkout):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise GaccNotFound(
        "no gacc program (the C++ harness that judges the stack): GACC_BINARY is not set, no gacc on the "
        f"PATH, none at {beside_python} or {checkout}. Build it (make, in a gacc checkout) and set "
        "GACC_BINARY=/path/to/build/gacc, or put it on the PATH")


@dataclass
class Report:
    """What ``gacc check-external`` found: its exit code, its table and its ``--json`` report."""

    exit_code: int
    text: str
    json: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Every property held (exit 0)."""
        return self.exit_code == 0

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per property: verdict, cases, cases judged, worst ratio, diagnosis, counterexample."""
        return self.json.get("results", [])

    @property
    def failures(self) -> list[dict[str, Any]]:
        """The rows that failed."""
        return [row for row in self.rows if row.get("verdict") == "fail"]

    def worst_ratio(self, prop: str) -> float | None:
        """The worst ratio a property saw (None: structural, or no such row)."""
        for row in self.rows:
            if row.get("property") == prop:
                return row.get("worst_ratio")
        return None

    def __str__(self) -> str:
        return self.text


def _handler(stack: Callable, mode: str) -> gacc_worker.Handler:
    from gacc import case as gacc_case  # torch: imported when a stack is served, not by ``import gacc``

    if mode == "oracle":
        def run_case(case_path: str, result_path: str) -> None:
            steps, counters = stack(gacc_case.load_case(case_path))
            gacc_case.save_result(result_path, steps, counters)
    else:
        def run_case(case_path: str, result_path: str) -> None:
            runs, counters = stack(gacc_case.load_differential_case(case_path))
            gacc_case.save_differential_result(result_path, runs, counters)
    return run_case


def check(stack: Callable, *, cases: int = 20, seed: int = 1, precision: str | None = None,
          mode: str = "oracle", shrinks: int = 40, timeout: float = 120.0, json_path: str | None = None,
          junit_path: str | None = None, keep: str | None = None, rerun: str | None = None,
          binary: str | None = None) -> Report:
    """Checks ``stack`` on ``cases`` generated scenarios; returns the report (it never raises for a
    failing stack: that is a verdict).

    stack: oracle mode, ``stack(case) -> (steps, counters)`` (``gacc.case.Case``; steps as
    ``record_step`` makes them); differential mode, ``stack(case) -> (runs, counters)``
    (``gacc.case.DifferentialCase``; runs as ``save_differential_result`` takes them).
    rerun: the command a counterexample's reproduce line pipes its one request into (a worker
    command that serves this stack), if there is one.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    program = binary or find_binary()
    with tempfile.TemporaryDirectory(prefix="gacc-check-") as scratch:
        report_path = json_path or os.path.join(scratch, "report.json")
        requests_read, requests_write = os.pipe()  # gacc -> this process
        answers_read, answers_write = os.pipe()    # this process -> gacc
        command = [program, "check-external", "--worker-fds", f"{answers_read},{requests_write}",
                   "--mode", mode, "--cases", str(cases), "--seed", str(seed), "--shrinks", str(shrinks),
                   "--timeout", str(timeout), "--json", report_path]
        if precision:
            command += ["--precision", precision]
        if junit_path:
            command += ["--junit", junit_path]
        if keep:
            command += ["--keep", keep]
        if rerun:
            command += ["--cmd", rerun]
        # gacc's table goes to a file, not a pipe: a pipe nobody reads while this process serves
        # cases could fill and stall gacc.
        with open(os.path.join(scratch, "out.txt"), "w+") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                       pass_fds=(answers_read, requests_write))
            os.close(answers_read)
            os.close(requests_write)
            requests, answers = os.fdopen(requests_read, "r"), os.fdopen(answers_write, "w")
            try:
                gacc_worker.serve_on(_handler(stack, mode), requests, answers)
            except BrokenPipeError:
                pass  # gacc stopped listening (it failed, or was interrupted): its exit code says why
            except BaseException:
                # Not the stack's Exception (serve_on answers those, and gacc reports them, exit 4):
                # Ctrl-C, SystemExit, a test framework's skip or fail raised inside the stack. gacc
                # must not outlive the call: end it, then let the exception go on.
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                raise
            finally:
                requests.close()
                try:
                    answers.close()
                except BrokenPipeError:
                    pass
            exit_code = process.wait()
            out.seek(0)
            text = out.read()
        data: dict[str, Any] = {}
        if os.path.exists(report_path):
            with open(report_path) as file:
                data = json.load(file)
    return Report(exit_code=exit_code, text=text, json=data)

