"""gacc's pytest plugin (python/gacc/pytest_plugin.py, the fixture ``gacc``), run for real: pytest
sessions in subprocesses (pytester) checking examples/python/train_accumulate.py's loop with the
gacc program of $GACC_BINARY, and once from a fresh virtual environment holding only torch, pytest
and the package installed from python/ (not editable).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import gacc

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "python"
EXAMPLES = ROOT / "examples" / "python"

try:
    GACC = gacc.find_binary()
except gacc.GaccNotFound as error:
    pytest.skip(f"{error} (CTest sets GACC_BINARY to the build's gacc)", allow_module_level=True)

#: The README's ten-line example (the plugin's module docstring too), read from README.md itself so
#: that the test runs what a reader copies: its first Python code block.
TEN_LINES = re.search(r"```python\n(.*?)```", (Path(__file__).resolve().parents[2] / "README.md").read_text(),
                      re.S).group(1)

MEAN_OF_MEANS = '''\
import train_accumulate
from gacc import zoo

def mean_of_means(scenario, outputs, targets, window_elements, micro_batches):
    # Broken! each micro-batch's own mean over the micro-batches (transformers issue 24725)
    if scenario["loss"]["reduction"] == "sum":
        return zoo.summed_loss(scenario, outputs, targets)
    return zoo.batch_loss(scenario, outputs, targets) / micro_batches
'''


def _plugin_entry_point() -> bool:
    group = metadata.entry_points()
    points = group.select(group="pytest11") if hasattr(group, "select") else group.get("pytest11", [])
    return any(point.value == "gacc.pytest_plugin" for point in points)


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Runs pytest in a subprocess on pytester's directory with this checkout's package and plugin
    (the installed entry point, else -p) and the examples importable."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(PACKAGE), str(EXAMPLES)]))
    monkeypatch.setenv("GACC_BINARY", GACC)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    plugin = [] if _plugin_entry_point() else ["-p", "gacc.pytest_plugin"]

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *plugin, *args, timeout=300)

    run.plugin_args = plugin
    return run


def test_a_session_without_the_fixture_is_unaffected(pytester, inner):
    pytester.makepyfile(test_plain='''
        import sys
        def test_plain(pytestconfig):
            assert pytestconfig.pluginmanager.hasplugin("gacc")   # loaded ...
            assert "torch" not in sys.modules                    # ... and cheap
    ''')
    inner().assert_outcomes(passed=1)
    help_text = inner("--help").stdout.str()
    for option in ("--gacc-cases", "--gacc-seed", "--gacc-precision", "--gacc-keep", "--gacc-binary", "gacc_cases"):
        assert option in help_text
    result = inner("--gacc-precision", "fp64")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--gacc-precision: 'fp64': one of fp32, bf16, fp16" in result.stderr.str()


def test_a_passing_stack_passes_and_the_options_reach_gacc(pytester, inner):
    # Precedence: the test's argument > the command line > the ini file > the default.
    pytester.makeini("[pytest]\ngacc_cases = 2\ngacc_seed = 4\ngacc_precision = bf16\n")
    pytester.makepyfile(test_stack='''
        import train_accumulate

        def precisions(report):
            return {cell.rsplit(" x ", 1)[1] for row in report.json["coverage"].values() for cell in row["cells"]}

        def test_command_line_over_ini(gacc):
            report = gacc.check(train_accumulate.train)
            assert report.passed and report.exit_code == 0
            assert "seed 5, 3 cases" in report.text
            assert report.json["seed"] == 5 and report.json["cases"] == 3
            assert precisions(report) == {"bf16"}     # the ini's, not overridden
            assert report.worst_ratio("gradient-equivalence") < 0.5

        def test_arguments_over_command_line(gacc):
            report = gacc.check(train_accumulate.train, cases=2, precision="fp32")
            assert "seed 5, 2 cases" in report.text
            assert precisions(report) == {"fp32"}
    ''')
    inner("--gacc-cases", "3", "--gacc-seed", "5").assert_outcomes(passed=2)


def _between(text: str, start: str) -> str:
    match = re.search(re.escape(start) + r"(.*)", text)
    assert match, f"no line with {start!r} in:\n{text}"
    return match.group(1).strip()


def test_a_broken_stack_fails_with_a_counterexample_and_the_lines_that_rerun_it(pytester, inner, tmp_path):
    pytester.makepyfile(test_broken=MEAN_OF_MEANS + '''

def test_mean_of_means(gacc, monkeypatch):
    monkeypatch.setattr(train_accumulate, "micro_batch_loss", mean_of_means)
    gacc.check(train_accumulate.train)

def test_gacc_catches_it(gacc, monkeypatch):
    monkeypatch.setattr(train_accumulate, "micro_batch_loss", mean_of_means)
    report = gacc.check(train_accumulate.train, expect="fail")
    assert "gradient-equivalence" in {row["property"] for row in report.failures}

def test_a_correct_stack_expected_to_fail(gacc):
    gacc.check(train_accumulate.train, expect="fail", cases=2)
''')
    result = inner("--gacc-cases", "3", "--gacc-seed", "3", "--gacc-shrinks", "6")
    result.assert_outcomes(failed=2, passed=1)
    out = result.stdout.str()

    # the failing verdict: each failing row, its diagnosis, the counterexample, the rerun command
    assert "gacc: the stack fails " in out and "(exit 1, a failing verdict; oracle mode, seed 3, 3 cases" in out
    assert re.search(r"^FAIL gradient-equivalence \(recipe external, \d+ cases, \d+ judged, worst ratio ", out, re.M), out
    assert re.search(r"^  diagnosis: \S", out, re.M), out
    assert re.search(r"^  counterexample \[1\] \(\d+ shrinks, ratio ", out, re.M), out
    scenarios = sorted(set(re.findall(r"^counterexample \[\d+\], scenario: (\{.*\})$", out, re.M)))
    assert scenarios, out
    rerun = _between(out, "rerun this test: ")
    assert rerun == "pytest test_broken.py::test_mean_of_means --gacc-seed 3 --gacc-cases 3 --gacc-shrinks 6", rerun
    assert "kept: " in out
    # ... told apart from a stack that was expected to fail and passed
    assert 'expected to flag this stack (expect="fail"), but every property held' in out
    assert "rerun this test: pytest test_broken.py::test_a_correct_stack_expected_to_fail --gacc-seed 3 --gacc-cases 2" in out

    # the kept case and result of the counterexample: gacc case verify judges them failing again
    verify = _between(out, "re-judge them: ")
    words = shlex.split(verify)
    assert words[1:3] == ["case", "verify"] and all(Path(p).is_file() for p in words[3:5]), verify
    judged = subprocess.run([GACC, *words[1:]], capture_output=True, text=True, timeout=120)
    assert judged.returncode == 1, judged.stdout + judged.stderr
    assert re.search(r"^gradient-equivalence +result +correct +fail", judged.stdout, re.M), judged.stdout

    # the rerun command fails again the same way (kept this time in a directory of its own)
    keep = tmp_path / "kept"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *inner.plugin_args,
               *shlex.split(rerun)[1:], "--gacc-keep", str(keep)]
    again = subprocess.run(command, cwd=pytester.path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "1 failed" in again.stdout
    assert sorted(set(re.findall(r"^counterexample \[\d+\], scenario: (\{.*\})$", again.stdout, re.M))) == scenarios
    kept = Path(shlex.split(_between(again.stdout, "re-judge them: "))[3])
    assert kept.parent == keep / "test_broken.py_test_mean_of_means" and kept.is_file(), kept
    assert (kept.parent / "report.json").is_file()


def test_a_stack_that_raises_fails_with_gacc_s_message_and_the_session_goes_on(pytester, inner):
    pytester.makepyfile(test_misbehaving='''
        import pytest
        import torch
        import train_accumulate

        def test_raises(gacc):
            def stack(case):
                raise RuntimeError("shapes do not match")
            gacc.check(stack)

        def test_writes_a_bad_result(gacc):
            def stack(case):
                steps, counters = train_accumulate.train(case)
                name = next(iter(steps[0]["grad"]))
                steps[0]["grad"][name] = torch.zeros(7, 7)
                return steps, counters
            gacc.check(stack, cases=2)

        def test_skips_inside_the_stack(gacc):
            def stack(case):
                pytest.skip("no GPU here")
            gacc.check(stack)

        def test_after_them(gacc):
            assert gacc.check(train_accumulate.train, cases=2).passed
    ''')
    result = inner()
    result.assert_outcomes(failed=2, passed=1, skipped=1)
    out = result.stdout.str()
    assert "gacc: the stack raised or misbehaved on a case, or the environment failed (exit 4): no verdict" in out
    assert "failed on this case: RuntimeError: shapes do not match" in out
    assert "gacc: gacc refused the input (exit 3, bad input" in out
    assert 'result.steps[0].grad["' in out and "shape [7, 7], expected" in out
    assert "FAIL " not in out  # no verdict rows for either


def test_no_gacc_program_fails_the_test_or_skips_it(pytester, inner, monkeypatch):
    pytester.makepyfile(test_needs_gacc='''
        def test_check(gacc):
            gacc.check(lambda case: None)
    ''')
    result = inner("--gacc-binary", "no/such/gacc")
    result.assert_outcomes(failed=1)
    assert re.search(r"gacc: --gacc-binary \S*no/such/gacc: not an executable file", result.stdout.str())
    inner("--gacc-binary", "no/such/gacc", "--gacc-missing", "skip").assert_outcomes(skipped=1)
    monkeypatch.setenv("GACC_BINARY", "/no/such/gacc")
    result = inner()
    result.assert_outcomes(failed=1)
    assert "GACC_BINARY=/no/such/gacc is not an executable file" in result.stdout.str()


# --- a non-editable install in a fresh virtual environment ------------------------------------------

def _closure(names: list[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``names`` need, transitively (extras left out)."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in found:
            continue
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement of another platform
        found[key] = distribution
        for requirement in distribution.requires or []:
            if "extra ==" not in requirement:
                todo.append(re.match(r"[A-Za-z0-9_.-]+", requirement).group(0))
    return found


def _top_level(distribution: metadata.Distribution) -> set[str]:
    """What a distribution put into site-packages: its packages, modules and .dist-info."""
    entries = {Path(str(file)).parts[0] for file in distribution.files or []}
    return {entry for entry in entries if entry not in ("..", "__pycache__") and not entry.endswith(".pth")}


def _wheel_package() -> list[Path]:
    """The ``wheel`` package and its metadata (setuptools before 70.1 builds wheels with its
    bdist_wheel command): this environment's, or the base interpreter's (Debian's python3-wheel)."""
    for python in (sys.executable, getattr(sys, "_base_executable", sys.executable)):
        found = subprocess.run([python, "-c", "import wheel, os; print(os.path.dirname(wheel.__file__))"],
                               capture_output=True, text=True)
        if found.returncode == 0:
            package = Path(found.stdout.strip())
            return [package, *package.parent.glob("wheel-*.dist-info"), *package.parent.glob("wheel-*.egg-info")]
    return []


def test_the_ten_line_example_passes_in_a_fresh_environment_with_a_non_editable_install(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                        text=True).strip())
    # torch and pytest, what they need, and the build's tools (pip, setuptools), from this
    # environment by symbolic links in a directory of a .pth file: nothing else of it
    linked = tmp_path / "linked"
    linked.mkdir()
    distributions = _closure(["torch", "pytest", "pip", "setuptools"])
    if "pip" not in distributions or "setuptools" not in distributions:
        pytest.skip("this environment has no pip or setuptools to install the package with")
    for distribution in distributions.values():
        origin = Path(str(distribution.locate_file("")))
        for entry in _top_level(distribution):
            if (origin / entry).exists() and not (linked / entry).exists():
                (linked / entry).symlink_to(origin / entry)
    setuptools_version = tuple(int(part) for part in distributions["setuptools"].version.split(".")[:2])
    if setuptools_version < (70, 1) and not (linked / "wheel").exists():
        wheel = _wheel_package()
        if len(wheel) < 2:
            pytest.skip(f"setuptools {distributions['setuptools'].version} builds wheels with the package wheel, "
                        "which is not here (offline: no build isolation)")
        for path in wheel:
            (linked / path.name).symlink_to(path)
    (site / "torch-and-pytest.pth").write_text(f"{linked}\n")
    # the package, installed from a copy of python/ (a build leaves files behind), without network
    source = tmp_path / "source"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                                "--no-index", "--disable-pip-version-check", str(source)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # a project: the example loop, the ten lines, and a test that it is this installation
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(EXAMPLES / "train_accumulate.py", project)
    (project / "test_train_accumulate.py").write_text(TEN_LINES)
    (project / "test_installed.py").write_text(
        "import sys, gacc, gacc.pytest_plugin\n\n"
        "def test_installed(pytestconfig):\n"
        f"    assert gacc.__file__.startswith({str(site)!r}), gacc.__file__\n"
        "    assert pytestconfig.pluginmanager.getplugin('gacc') is gacc.pytest_plugin\n"
        "    assert not any('transformers' in name for name in sys.modules)\n")
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
    env.update(GACC_BINARY=GACC, OMP_NUM_THREADS="1")
    command = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--gacc-cases", "4"]
    ran = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0 and "3 passed" in ran.stdout, ran.stdout + ran.stderr
    # without $GACC_BINARY (and no gacc on the PATH, none beside the fresh Python): a clear failure
    del env["GACC_BINARY"]
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and not (Path(p) / "gacc").exists())
    elsewhere = tmp_path / "no-gacc"
    elsewhere.mkdir()
    (elsewhere / "test_check.py").write_text("def test_check(gacc):\n    gacc.check(lambda case: None)\n")
    ran = subprocess.run(command, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 1 and "1 failed" in ran.stdout, ran.stdout + ran.stderr
    assert "gacc: no gacc program (the C++ harness that judges the stack): GACC_BINARY is not set" in ran.stdout
