"""gacc for Python stacks.

    import gacc
    report = gacc.check(my_stack, cases=20)     # gacc's property loop against a stack in this process

Modules: ``gacc.case`` (case and result files), ``gacc.zoo`` (gacc's models in PyTorch),
``gacc.worker`` (the worker protocol's stack side), ``gacc.checking`` (``gacc.check``). The judging itself —
generators, oracle, tolerances, properties, shrinking, reports — is the ``gacc`` program's
(README, "External stacks").
"""

__version__ = "0.1.0"

from gacc.checking import GaccNotFound, Report, check, find_binary  # noqa: E402,F401
