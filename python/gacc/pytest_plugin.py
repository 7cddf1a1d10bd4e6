"""gacc's pytest plugin: the fixture ``gacc`` checks a training stack's gradient accumulation
against large-batch training inside a test (``gacc.check``, the ``gacc`` program's whole property
loop), and fails the test with what the program found.

    # test_train_accumulate.py, next to examples/python/train_accumulate.py
    import train_accumulate
    from gacc import zoo

    def test_accumulation_equals_large_batch(gacc):
        gacc.check(train_accumulate.train)   # oracle mode; a failure shows the counterexample

    def test_gacc_flags_the_mean_of_means(gacc, monkeypatch):   # transformers issue 24725
        monkeypatch.setattr(train_accumulate, "micro_batch_loss",
                            lambda scenario, out, tgt, n, k: zoo.batch_loss(scenario, out, tgt) / k)
        gacc.check(train_accumulate.train, expect="fail", cases=6, seed=3)

    $ pytest test_train_accumulate.py                              # 8 cases, seed 1: a PR's CI
    $ pytest test_train_accumulate.py --gacc-cases 200 --gacc-seed 7   # nightly

The plugin is registered by the package's entry point (``pytest11``, name ``gacc``): installing
the package (``pip install ./python``) is all. It imports neither torch nor the stack until a test
calls ``gacc.check``; a session that does not use the fixture is unaffected.

Options (command line; each also an ini option, ``gacc_cases = 20`` under ``[pytest]``):

    --gacc-cases N          generated scenarios per check (default 8: a PR's CI; nightly, hundreds)
    --gacc-seed S           the scenario generator's seed (default 1: the same seed, the same cases)
    --gacc-precision P      draw only fp32, bf16 or fp16 cases (default: all three)
    --gacc-shrinks N        stack runs allowed to shrink one failure (default 40)
    --gacc-timeout SEC      seconds one case may take before gacc gives up (exit 4; default 120)
    --gacc-keep DIR         keep every check's case, result and report files in DIR/<test id>,
                            passing or failing (default: a failing check's files are kept in
                            pytest's temporary directory, retained for the last 3 sessions; a
                            passing check's are removed)
    --gacc-binary PATH      the gacc program (default: $GACC_BINARY, gacc on the PATH, gacc next to
                            this Python, the checkout's build/gacc)
    --gacc-missing fail|skip   no gacc program: fail the test (default) or skip it

Precedence: an argument the test passes (``gacc.check(stack, cases=6)``) > the command line > the
ini file > the default. A test should pin only what it needs (a precision its stack supports; the
seed and cases that show a known bug, for ``expect="fail"``) and leave the rest to the command
line, so that a nightly run can draw more cases from other seeds.

``gacc.check(stack, *, mode="oracle", cases=None, seed=None, precision=None, shrinks=None,
timeout=None, expect="pass", **kwargs) -> gacc.Report`` (``kwargs``: the rest of ``gacc.check``'s,
e.g. ``junit_path``, ``keep``, ``binary``):

- exit 0 (every property held): returns the report; the test may assert more
  (``report.worst_ratio("gradient-equivalence") < 0.5``).
- exit 1 (a failing verdict): fails the test with each failing row (property, worst detail,
  diagnosis), the shrunk counterexample's scenario, where its case and result files were kept with
  the ``gacc case verify CASE RESULT`` line that re-judges them, and the pytest command that
  reruns just this test with the same seed, cases and precision.
- exit 3 (gacc refused the input), 4 (the stack raised or misbehaved on a case: its traceback is
  in the test's captured stderr), any other code: fails the test with gacc's own message, marked
  as no verdict.
- ``expect="fail"``: the test regression-tests that gacc catches a known bug. Exit 1 returns the
  report (assert which property failed: ``report.failures``); exit 0 fails the test (the bug was
  not drawn: pin ``cases=`` and ``seed=`` that show it). It does not shrink (``--gacc-shrinks``
  is for checks expected to pass) unless the test passes ``shrinks=``. ``expect="any"``: the
  report whatever the exit code, for the test to judge.

gacc's own table (coverage included) is printed to the test's standard output: pytest shows it
under "Captured stdout call" when the test fails (``-rP`` for passing tests too).

No gacc program: the test fails with where the plugin looked, since a check that cannot run must
not look like one that passed; ``--gacc-missing skip`` (or ini ``gacc_missing = skip``) skips it
instead, for a machine without the C++ build.

A stack that hangs cannot be interrupted from here (it runs in the test's process): gacc gives up
after ``--gacc-timeout`` and the check returns once the stack does; use pytest-timeout for a hard
bound.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

if TYPE_CHECKING:
    from gacc.checking import Report

DEFAULTS = {"cases": 8, "seed": 1, "precision": None, "shrinks": 40, "timeout": 120.0, "keep": None,
            "binary": None, "missing": "fail"}
PRECISIONS = ("fp32", "bf16", "fp16")
EXPECTS = ("pass", "fail", "any")

#: What a gacc exit code other than 0 and 1 says (docs/command-line.md, "Exit codes").
EXIT_MEANINGS = {
    2: "gacc refused its command line (exit 2, usage error)",
    3: "gacc refused the input (exit 3, bad input: an invalid scenario, case or result file)",
    4: "the stack raised or misbehaved on a case, or the environment failed (exit 4)",
    130: "gacc was interrupted (exit 130, SIGINT)",
    143: "gacc was terminated (exit 143, SIGTERM)",
}


# --- options --------------------------------------------------------------------------------------

def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r}: " + ("at least 1" if minimum == 1 else "not negative"))
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def _non_negative_int(text: str) -> int:
    return _whole_number(text, 0)


def _seed(text: str) -> int:
    value = _non_negative_int(text)
    if value >= 2**64:
        raise argparse.ArgumentTypeError(f"{text!r}: 0 to 2^64 - 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.1 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r}: 0.1 to 86400 seconds")
    return value


def _precision(text: str) -> str:
    if text not in PRECISIONS:
        raise argparse.ArgumentTypeError(f"{text!r}: one of {', '.join(PRECISIONS)}")
    return text


def _missing(text: str) -> str:
    if text not in ("fail", "skip"):
        raise argparse.ArgumentTypeError(f"{text!r}: fail or skip")
    return text


#: name -> (parse, metavar, help). Each is --gacc-NAME on the command line and gacc_NAME in the ini.
_OPTIONS: dict[str, tuple[Callable[[str], Any], str, str]] = {
    "cases": (_positive_int, "N", "gacc: generated scenarios per gacc.check (default 8)"),
    "seed": (_seed, "S", "gacc: the scenario generator's seed (default 1)"),
    "precision": (_precision, "fp32|bf16|fp16", "gacc: draw only this precision (default: all three)"),
    "shrinks": (_non_negative_int, "N", "gacc: stack runs allowed to shrink one failure (default 40)"),
    "timeout": (_seconds, "SEC", "gacc: seconds one case may take (default 120)"),
    "keep": (str, "DIR", "gacc: keep every check's case, result and report files in DIR/<test id> "
                         "(default: a failing check's, in pytest's temporary directory)"),
    "binary": (str, "PATH", "gacc: the gacc program (default: $GACC_BINARY, gacc on the PATH, ...)"),
    "missing": (_missing, "fail|skip", "gacc: no gacc program: fail the test (default) or skip it"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gacc", "gacc: gradient accumulation against large-batch training (fixture gacc)")
    for name, (parse, metavar, help_text) in _OPTIONS.items():
        group.addoption(f"--gacc-{name}", dest=f"gacc_{name}", type=parse, metavar=metavar, default=None,
                        help=help_text)
        parser.addini(f"gacc_{name}", help_text + " [--gacc-" + name + "]", default="")


class _Settings:
    """The session's values: the command line's, else the ini file's, else the defaults."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.values: dict[str, Any] = {}
        self.from_command_line: set[str] = set()
        for name, (parse, _, _) in _OPTIONS.items():
            value = config.getoption(f"gacc_{name}")
            if value is not None:
                self.from_command_line.add(name)
            else:
                raw = str(config.getini(f"gacc_{name}") or "").strip()
                if raw:
                    try:
                        value = parse(raw)
                    except argparse.ArgumentTypeError as error:
                        raise pytest.UsageError(f"ini option gacc_{name} = {raw}: {error}") from None
                    if name in ("keep", "binary"):  # relative to the ini file, as pytest's paths are
                        value = str(_ini_base(config) / value)
            self.values[name] = DEFAULTS[name] if value is None else value
        for name in ("keep", "binary"):  # the command line's: relative to where pytest was started
            if name in self.from_command_line:
                self.values[name] = str(Path(config.invocation_params.dir) / self.values[name])


def _ini_base(config: pytest.Config) -> Path:
    inipath = getattr(config, "inipath", None)
    return Path(inipath).parent if inipath else Path(config.rootpath)


# --- the fixture ----------------------------------------------------------------------------------

@pytest.fixture
def gacc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> "GaccFixture":
    """Checks a training stack with gacc: ``gacc.check(stack, ...)`` (module ``gacc.pytest_plugin``)."""
    return GaccFixture(request, tmp_path_factory)


class GaccFixture:
    """What the fixture ``gacc`` returns: ``check`` runs ``gacc.check`` with the session's options."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._request = request
        self._tmp_path_factory = tmp_path_factory
        self._calls = 0
        try:
            self.settings = _Settings(request.config)
        except pytest.UsageError as error:
            pytest.fail(str(error), pytrace=False)

    def check(self, stack: Callable, *, mode: str = "oracle", cases: int | None = None, seed: int | None = None,
              precision: str | None = None, shrinks: int | None = None, timeout: float | None = None,
              expect: str = "pass", **kwargs: Any) -> Report:
        """Runs ``gacc.check`` on ``stack``; returns its ``gacc.Report``, or fails the test (module
        docstring). The arguments override the command line's ``--gacc-*`` values."""
        from gacc import checking  # no torch: checking imports gacc.case when the stack is served

        if expect not in EXPECTS:
            raise ValueError(f"expect must be one of {EXPECTS}, got {expect!r}")
        values = self.settings.values
        cases = values["cases"] if cases is None else cases
        seed = values["seed"] if seed is None else seed
        precision = values["precision"] if precision is None else precision
        if shrinks is None:  # a known bug flagged passes the test: no counterexample to shrink for it
            shrinks = 0 if expect == "fail" else values["shrinks"]
        timeout = values["timeout"] if timeout is None else timeout
        binary = self._binary(kwargs.pop("binary", None), checking)
        self._calls += 1
        directory, explicit_keep = self._directory(kwargs.pop("keep", None))
        json_path = kwargs.pop("json_path", None) or str(directory / "report.json")
        # (expect="fail" fails the test only when nothing failed: its rerun needs no --gacc-shrinks)
        run = _Run(self, binary=binary, mode=mode, cases=cases, seed=seed, precision=precision,
                   shrinks=DEFAULTS["shrinks"] if expect == "fail" else shrinks, directory=directory)

        report = checking.check(stack, mode=mode, cases=cases, seed=seed, precision=precision, shrinks=shrinks,
                                timeout=timeout, json_path=json_path, keep=str(directory), binary=binary,
                                **kwargs)
        no_verdict = report.exit_code not in (0, 1) and expect != "any"
        if not no_verdict or len(_tail(report.text, 41)) > 40:  # else the failure message holds it all
            print(report.text)  # the test's captured stdout: shown when it fails (-rP: always)

        if report.exit_code == 0 and expect == "fail":
            pytest.fail(run.escaped(report), pytrace=False)
        if report.exit_code == 1 and expect == "pass":
            pytest.fail(run.verdict(report), pytrace=False)
        if no_verdict:
            pytest.fail(run.no_verdict(report), pytrace=False)
        if not explicit_keep:  # as expected: nothing to keep
            shutil.rmtree(directory, ignore_errors=True)
        return report

    # -- where things are --

    def _binary(self, given: str | None, checking) -> str:
        binary = given or self.settings.values["binary"]
        try:
            if binary is None:
                return checking.find_binary()
            if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
                source = "binary=" if given else "--gacc-binary" if "binary" in self.settings.from_command_line \
                    else "ini gacc_binary"
                raise checking.GaccNotFound(f"{source} {binary}: not an executable file")
            return binary
        except checking.GaccNotFound as error:
            message = (f"gacc: {error}\n(--gacc-binary PATH or ini gacc_binary names it; "
                       f"--gacc-missing skip skips the tests that need it instead of failing them)")
            if self.settings.values["missing"] == "skip":
                pytest.skip(message)
            pytest.fail(message, pytrace=False)
            raise  # not reached

    def _directory(self, given: str | None) -> tuple[Path, bool]:
        """The directory of this check's case, result and report files; whether it is the user's."""
        suffix = "" if self._calls == 1 else f"-{self._calls}"
        if given is not None:
            directory, explicit = Path(given), True
        elif self.settings.values["keep"] is not None:
            name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", self._request.node.nodeid).strip("_")[:120]
            directory, explicit = Path(self.settings.values["keep"]) / (name + suffix), True
        else:
            name = re.sub(r"[^A-Za-z0-9_-]+", "_", self._request.node.name)[:30]
            return self._tmp_path_factory.mktemp(f"gacc-{name}{suffix}", numbered=True), False
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.iterdir():  # an earlier session's files would be taken for this one's
            if re.fullmatch(r"\d+-(case|result)\.pt|\d+-log\.txt|worker-log\.txt|report\.json", stale.name):
                stale.unlink()
        return directory, explicit

    def rerun_command(self, cases: int, seed: int, precision: str | None, shrinks: int) -> str:
        """The pytest command line that reruns just this test with these values."""
        config = self._request.config
        nodeid = self._request.node.nodeid
        path, _, rest = nodeid.partition("::")
        relative = os.path.relpath(Path(config.rootpath) / path, config.invocation_params.dir)
        words = ["pytest", relative + ("::" + rest if rest else ""), "--gacc-seed", str(seed), "--gacc-cases", str(cases)]
        if precision:
            words += ["--gacc-precision", precision]
        if shrinks != DEFAULTS["shrinks"]:
            words += ["--gacc-shrinks", str(shrinks)]
        if "binary" in self.settings.from_command_line:
            words += ["--gacc-binary", self.settings.values["binary"]]
        return " ".join(shlex.quote(word) for word in words)

    def retention_note(self) -> str:
        try:
            policy = self._request.config.getini("tmp_path_retention_policy")
        except ValueError:  # a pytest before 7.3
            return ""
        if policy == "none":
            return " (pytest's tmp_path_retention_policy is 'none': they go at the session's end; --gacc-keep DIR keeps them)"
        return ""


class _Run:
    """One check's values, and the messages that fail its test."""

    def __init__(self, fixture: GaccFixture, *, binary: str, mode: str, cases: int, seed: int,
                 precision: str | None, shrinks: int, directory: Path) -> None:
        self.fixture, self.binary, self.mode = fixture, binary, mode
        self.cases, self.seed, self.precision, self.shrinks = cases, seed, precision, shrinks
        self.directory = directory

    def what(self) -> str:
        precision = self.precision or ("every precision" if self.mode == "oracle" else "")
        return f"{self.mode} mode, seed {self.seed}, {self.cases} cases" + (f", {precision}" if precision else "")

    def rerun(self) -> str:
        return "rerun this test: " + self.fixture.rerun_command(self.cases, self.seed, self.precision, self.shrinks)

    def gacc_word(self) -> str:
        """``gacc`` where the PATH finds this binary, else its path."""
        on_path = shutil.which("gacc")
        if on_path and os.path.realpath(on_path) == os.path.realpath(self.binary):
            return "gacc"
        return shlex.quote(self.binary)

    def kept(self, keep_all: bool) -> str:
        what = "every case and result gacc ran (N-case.pt, N-result.pt) and report.json"
        note = "" if keep_all else self.fixture.retention_note()
        return f"kept: {self.directory} ({what}){note}"

    def verdict(self, report) -> str:
        failures = report.failures
        lines = [f"gacc: the stack fails {len(failures)} "
                 f"propert{'y' if len(failures) == 1 else 'ies'} (exit 1, a failing verdict; {self.what()})"]
        if not failures:  # exit 1 without a failing row in the JSON report: show gacc's own words
            lines += ["", *_tail(report.text, 40)]
        counterexamples: list[tuple[str, dict]] = []  # (canonical JSON, scenario or splits)
        for row in failures:
            cases = row.get("cases")
            lines += ["", f"FAIL {row.get('property')} (recipe {row.get('recipe')}, {cases} case{'' if cases == 1 else 's'}, "
                          f"{row.get('cases_judged')} judged, worst ratio {_ratio(row.get('worst_ratio'))})"]
            detail = str(row.get("worst_detail") or "").splitlines() or [""]
            worst_case = row.get("worst_case")
            lines.append(f"  worst{'' if worst_case is None else f' (case {worst_case})'}: " + detail[0])
            lines += ["    " + line.strip() for line in detail[1:]]
            counterexample = row.get("counterexample") or {}
            diagnosis = row.get("diagnosis") or counterexample.get("diagnosis") or ""
            lines.append("  diagnosis: " + (diagnosis or "none of gacc's signatures fits"))
            if counterexample.get("diagnosis") and counterexample["diagnosis"] != diagnosis:
                lines.append("  the counterexample's diagnosis: " + counterexample["diagnosis"])
            scenario = counterexample.get("scenario") if self.mode == "oracle" else _splits(row)
            if scenario:
                key = json.dumps(scenario, sort_keys=True, separators=(",", ":"))
                if key not in [k for k, _ in counterexamples]:
                    counterexamples.append((key, scenario))
                label = [k for k, _ in counterexamples].index(key) + 1
                if counterexample:
                    lines.append(f"  counterexample [{label}] ({counterexample.get('shrinks')} shrinks, ratio "
                                 f"{_ratio(counterexample.get('ratio'))}): {counterexample.get('detail')}")
                else:
                    lines.append(f"  counterexample [{label}]: in the detail above")
            if row.get("property") == "split-invariance":
                lines.append("  (split-invariance reruns the stack: only gacc.check judges it, not gacc case verify)")
        found = _kept_files(self.directory, self.mode, [s for _, s in counterexamples])
        for label, (key, _) in enumerate(counterexamples, 1):
            lines += ["", f"counterexample [{label}], {'scenario' if self.mode == 'oracle' else 'splits'}: {key}"]
            pair = found.get(key)
            if pair:
                case_path, result_path = (shlex.quote(str(p)) for p in pair)
                lines.append(f"  its case and result: {case_path} {result_path}")
                lines.append(f"  re-judge them: {self.gacc_word()} case verify {case_path} {result_path}")
            else:
                lines.append("  (no kept case file holds it; the rerun command below reproduces it)")
        keep_all = self.fixture.settings.values["keep"] is not None
        lines += ["", self.rerun(), self.kept(keep_all),
                  "gacc's table is in the captured stdout below"]
        return "\n".join(lines)

    def escaped(self, report) -> str:
        return "\n".join([
            f"gacc: expected to flag this stack (expect=\"fail\"), but every property held ({self.what()}).",
            "The bug was not drawn in these cases: pin cases= and seed= that show it (or precision=),",
            "or the stack is no longer broken.",
            self.rerun()])

    def no_verdict(self, report) -> str:
        code = report.exit_code
        meaning = EXIT_MEANINGS.get(code) or (f"gacc was killed by signal {-code}" if code < 0
                                              else f"gacc failed (exit {code})")
        lines = [f"gacc: {meaning}: no verdict ({self.what()})"]
        if code == 4:
            lines.append("(a stack that raised: its traceback is in the captured stderr below)")
        lines += ["--- the end of gacc's output ---", *_tail(report.text, 40), "---", self.rerun(),
                  self.kept(True)]
        return "\n".join(lines)


# --- helpers --------------------------------------------------------------------------------------

def _tail(text: str, lines: int) -> list[str]:
    return [line for line in text.rstrip("\n").splitlines()[-lines:]]


def _ratio(value: Any) -> str:
    if value is None:  # the JSON report's null: a structural failure, or a value not finite
        return "inf"
    return f"{value:.3g}" if isinstance(value, (int, float)) else str(value)


def _splits(row: dict) -> dict | None:
    """A differential row's counterexample splits (its JSON report carries them in the detail)."""
    match = re.search(r"counterexample \([^)]*\): splits (\{.*\})", str(row.get("worst_detail") or ""))
    if not match:
        return None
    try:
        return json.loads(match.group(1))
    except ValueError:
        return None


def _kept_files(directory: Path, mode: str, wanted: list[dict]) -> dict[str, tuple[Path, Path]]:
    """The kept case and result files of each counterexample (by its canonical JSON): the latest run
    of that scenario (or those splits) among ``N-case.pt`` in ``directory``."""
    if not wanted:
        return {}
    from gacc import case as gacc_case  # torch: the stack was served, so it is loaded already

    keys = {json.dumps(w, sort_keys=True, separators=(",", ":")) for w in wanted}
    found: dict[str, tuple[Path, Path]] = {}
    runs = sorted((int(p.name.split("-")[0]), p) for p in directory.glob("*-case.pt")
                  if p.name.split("-")[0].isdigit())
    for run, case_path in reversed(runs):
        result_path = directory / f"{run}-result.pt"
        if not result_path.exists():
            continue
        try:
            if mode == "oracle":
                content: dict = gacc_case.load_case(case_path).scenario
                key = json.dumps(content, sort_keys=True, separators=(",", ":"))
                if key not in keys:
                    continue
            else:
                case = gacc_case.load_differential_case(case_path)
                windows = [[indices.tolist() for indices in window] for window in case.windows]
                key = next((k for k in keys if json.loads(k).get("seed") == case.seed
                            and json.loads(k).get("windows") == windows), "")
        except Exception:  # noqa: BLE001 - a file that does not read is no match
            continue
        if key in keys and key not in found:
            found[key] = (case_path, result_path)
            if len(found) == len(keys):
                break
    return found
