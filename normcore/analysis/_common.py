"""Helpers shared by the analysis modules: argument checks and a lazy ``torch``."""

from __future__ import annotations

import importlib

from .._checks import check_scalar


def _check_choice(func: str, name: str, value, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        want = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{func}: {name} must be one of {want}, got {value!r}")
    return value


def _check_int(func: str, name: str, value, *, low: int) -> int:
    return check_scalar(func, name, value, low=low, integer=True)


class LazyTorch:
    """Stands in for ``torch`` in a module's namespace until first used.

    The NumPy tools (linear regression, SND, constraint counts) then do not pay torch's
    import; the first attribute looked up imports torch and replaces this stand-in in the
    namespace it was created for, so later uses are plain module lookups.
    """

    def __init__(self, namespace: dict):
        object.__setattr__(self, "_namespace", namespace)

    def __getattr__(self, attr):
        module = importlib.import_module("torch")
        self._namespace["torch"] = module
        return getattr(module, attr)
