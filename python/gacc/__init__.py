"""gacc for Python stacks.

    import gacc
    report = gacc.check(my_stack, cases=20)     # gacc's property loop against a stack in this process

Modules: ``gacc.case`` (case and result files), ``gacc.zoo`` (gacc's models in PyTorch),
``gacc.worker`` (the worker protocol's stack side), ``gacc.checking`` (``gacc.check``). The judging itself —
generators, oracle, tolerances, properties, shrinking, reports — is the ``gacc`` program's
(docs/python.md). ``gacc.pytest_plugin`` is the pytest plugin (the fixture ``gacc``).

``import gacc`` is cheap and does not import torch (every pytest session in an environment holding
this package loads its plugin): the submodules are imported when first used.
"""

__version__ = "0.1.0"

from gacc.checking import GaccNotFound, Report, check, find_binary  # noqa: E402,F401


_SUBMODULES = ("case", "zoo", "worker", "training", "checking", "adapters", "pytest_plugin")


def __getattr__(name: str):
    """``gacc.case`` and the others after a plain ``import gacc``, imported on first use."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"gacc.{name}")
    raise AttributeError(f"module 'gacc' has no attribute {name!r}")
