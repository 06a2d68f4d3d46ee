"""Mistakes that every graded function can make, registered after the topic modules.

* ``<name>_dtype_promoted``: float32 in, float64 out (a float64 constant or ``np.zeros(shape)``
  promotes the result);
* ``<name>_modifies_input``: a function that changes its first input array in place
  (``x -= mean``);
* for optimizer steps, ``<name>_state_not_written_back`` (the buffers are computed from the
  state but never stored back, so every step starts from their initial zeros) and
  ``<name>_state_rebound`` (``state = {...}`` makes a new dict: the caller's stays empty and
  every call is a first step).

Each is registered only for the functions whose catalog cases show it (a float32 case for the
dtype, an input array the reference leaves alone for the in-place change).
"""

from __future__ import annotations

import copy
import functools
import inspect

import numpy as np

from normcore.grading import DTYPE_MESSAGE, GRADED, INPUT_MESSAGE, _register

STATE_NOT_WRITTEN_MESSAGE = (
    "Your step computes its buffers (momentum, moment estimates, accumulators) from state but "
    "never stores the new values back: every step starts again from the initial zeros. After "
    "computing them, write them into the dict, e.g. state['exp_avg'] = m (the caller passes "
    "the same dict to the next call).")
STATE_REBOUND_MESSAGE = (
    "Your step rebinds state (state = {...} or state = dict(...)) instead of writing into the "
    "dict it receives, so the caller's state stays empty and every call is a first step. "
    "Write into it: state['step'] = ..., state['exp_avg'] = ...")


def _float32_cases(entry) -> bool:
    """Whether a case has float32 inputs on which the reference returns a float32 array."""
    for args, kwargs in entry.cases():
        if not any(isinstance(v, np.ndarray) and v.dtype == np.float32
                   for v in list(args) + list(kwargs.values())):
            continue
        if entry.kind == "optimizer":
            return True
        result = entry.reference(*copy.deepcopy(tuple(args)), **copy.deepcopy(kwargs))
        parts = result if isinstance(result, tuple) else (result,)
        if any(isinstance(p, np.ndarray) and p.dtype == np.float32 for p in parts):
            return True
    return False


def _promote(result):
    if isinstance(result, np.ndarray) and result.dtype == np.float32:
        return result.astype(np.float64)
    if isinstance(result, tuple):
        return tuple(_promote(r) for r in result)
    return result


def _with_signature(fn, like):
    functools.update_wrapper(fn, like, assigned=("__doc__",), updated=())
    try:
        fn.__signature__ = inspect.signature(like)
    except (TypeError, ValueError):
        pass
    return fn


def _dtype_mutant(flawless):
    def promoted(*args, **kwargs):
        return _promote(flawless(*args, **kwargs))

    return _with_signature(promoted, flawless)


def _first_float_array(args) -> int | None:
    for i, v in enumerate(args):
        if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size > 1:
            return i
    return None


def _copied(result):
    if isinstance(result, np.ndarray):
        return result.copy()
    if isinstance(result, tuple):
        return tuple(_copied(r) for r in result)
    return result


def _modifying_mutant(flawless):
    def modifying(*args, **kwargs):
        # in-place updates (running stats) as they should be; the result never aliases an input
        result = _copied(flawless(*args, **kwargs))
        i = _first_float_array(args)
        if i is not None:
            a = args[i]
            a -= a.mean()
            if not np.any(a):
                a += 1
        return result

    return _with_signature(modifying, flawless)


def _leaves_first_array_alone(entry) -> bool:
    found = False
    for args, kwargs in entry.cases():
        i = _first_float_array(args)
        if i is None:
            return False
        a = copy.deepcopy(tuple(args))
        entry.reference(*a, **copy.deepcopy(kwargs))
        if not np.array_equal(a[i], args[i]):
            return False
        found = True
    return found


def _not_written_mutant(flawless):
    def step(w, dw, state, **hyper):
        local = dict(state)
        new_w = flawless(w, dw, local, **hyper)
        for key, value in local.items():
            if not isinstance(value, np.ndarray):
                state[key] = value
            elif key not in state:
                state[key] = np.zeros_like(value)
        return new_w

    return _with_signature(step, flawless)


def _rebound_mutant(flawless):
    def step(w, dw, state, **hyper):
        state = {}
        return flawless(w, dw, state, **hyper)

    return _with_signature(step, flawless)


def register() -> None:
    for name, entry in sorted(GRADED.items()):
        if _float32_cases(entry):
            _register(f"{name}_dtype_promoted", name, DTYPE_MESSAGE, _dtype_mutant(entry.flawless))
        if entry.kind == "optimizer":
            _register(f"{name}_state_not_written_back", name, STATE_NOT_WRITTEN_MESSAGE,
                      _not_written_mutant(entry.flawless))
            _register(f"{name}_state_rebound", name, STATE_REBOUND_MESSAGE,
                      _rebound_mutant(entry.flawless))
        elif "backward" not in name and _leaves_first_array_alone(entry):
            _register(f"{name}_modifies_input", name, INPUT_MESSAGE,
                      _modifying_mutant(entry.flawless))
