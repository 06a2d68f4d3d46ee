r"""Checks that grade the exercise notebooks and say what is wrong in words a student can use.

A test cell of an exercise compares the student's function with normcore's reference on
the same inputs::

    from normcore import grading, normalization as ref

    grading.check_against_reference(
        batch_norm_forward, ref.batch_norm_forward, (x, gamma, beta), name="batch_norm_forward",
        returns=("out", None))

:func:`check_against_reference` copies the inputs, calls both functions and compares what
they return and how they change their array arguments (in-place updates such as batch
norm's running statistics are part of the result). When something differs it raises an
``AssertionError`` whose message names the wrong part, the input, and, where it can, the
cause. The causes come from :data:`CATALOG`, a list of common mistakes. Each
:class:`Mistake` holds a *mutant*: an implementation that makes exactly that mistake. A
mistake is diagnosed when the student's wrong part equals the mutant's on the same input,
so the catalog is at once the detector and the set of wrong implementations the course's
tests must catch. The catalog itself is instructor-side: the course's grader registers it
here (with :func:`_register` and :func:`_graded`) in its own process, where graded tests are
decided; in a student's environment it is empty, and the checks report what differs without
naming a cause.

The other checks work the same way: :func:`check_example` compares with values worked out
by hand (the visible tests of a notebook), :func:`check_gradient` compares a backward with
centered differences of the student's own forward, :func:`check_optimizer` compares the
iterates of two optimizer step functions, and :func:`assert_close` compares two arrays.

While the student's function runs it is watched (:func:`student_code`): a call into
normcore's references, ``torch.nn``, ``torch.optim`` or scikit-learn's preprocessing fails the
check, as does running longer than a time limit; what the function prints is captured
instead of flooding the notebook. (In a notebook this watch only helps the student: the
grader runs the student's functions in a separate sandboxed process where those references
are not there at all, and an exception that carries a ``delegated`` attribute is reported
as delegation.)

Mutant signatures are those of the graded function as it is passed to the check. For a
backward the graded function is the composite ``f(dout, *forward_args, **forward_kwargs)
-> grads`` built by :func:`backward_through`, so a backward mutant computes its own
forward and then makes its mistake; no cache layout is shared between implementations.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import io
import math
import numbers
import re
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from .gradcheck import numerical_gradient_array, rel_error

__all__ = [
    "Mistake",
    "CATALOG",
    "Graded",
    "GRADED",
    "check_graded",
    "mistakes_for",
    "get_mistake",
    "assert_close",
    "check_against_reference",
    "check_example",
    "check_gradient",
    "backward_through",
    "run_optimizer",
    "check_optimizer",
    "check_steps",
    "check_backward",
    "student_code",
    "DTYPE_MESSAGE",
    "INPUT_MESSAGE",
    "FORBIDDEN_MODULES",
]

#: Module prefixes a graded function must not call into while it runs.
FORBIDDEN_MODULES = (
    "normcore.",
    "torch.nn",
    "torch.optim",
    "torch._C._nn",
    "sklearn.preprocessing",
    "sklearn.decomposition",
)
#: normcore modules a student may use: validation, numerical gradients, data and grading.
_ALLOWED_NORMCORE = ("normcore._checks", "normcore.gradcheck", "normcore.data", "normcore.grading",
                     "normcore.book")
#: Names of torch's C functions that compute a graded operation in one call.
_TORCH_GRADED_OPS = re.compile(
    r"^(native_|cudnn_|miopen_)?(batch|layer|group|instance)_norm|dropout|^_?fused_"
    r"|^_foreach_|^_functional_"
)
_MAX_CAPTURED = 2000

#: What a result of the wrong dtype is told (also the catalog's message for that mistake).
DTYPE_MESSAGE = ("Keep the dtype of the inputs: float32 in, float32 out (np.zeros(shape), "
                 "np.float64 constants and np.array(...) of Python floats create float64 "
                 "arrays that promote the result; use np.zeros_like(x) or .astype(x.dtype)).")
#: What a function that modifies an input array is told (also the catalog's message).
INPUT_MESSAGE = ("Your function changes an input array in place (x -= mean, x /= std, or "
                 "x[...] = ...), so the caller's array changes. Compute into new arrays "
                 "instead (xc = x - mean): the inputs must never be modified.")


# ----------------------------------------------------------------------------- catalog


@dataclasses.dataclass(frozen=True)
class Mistake:
    """A common mistake: where it happens, how to explain it, and an implementation of it.

    Attributes
    ----------
    key : str
        Unique identifier, e.g. ``"bn_unbiased_batch_var"``.
    applies_to : tuple of str
        Names of the graded functions (the ``name`` given to the checks) it concerns.
    message : str
        What is wrong and how to fix it, addressed to the student.
    mutant : callable
        The graded function's signature, making exactly this mistake (NumPy only).
    """

    key: str
    applies_to: tuple
    message: str
    mutant: Callable


CATALOG: list[Mistake] = []


def _register(key: str, applies_to, message: str, mutant: Callable) -> None:
    if any(m.key == key for m in CATALOG):
        raise ValueError(f"grading: mistake key {key!r} is registered twice")
    if isinstance(applies_to, str):
        applies_to = (applies_to,)
    mutant.__name__ = mutant.__qualname__ = f"mutant_{key}"
    CATALOG.append(Mistake(key, tuple(applies_to), message, mutant))


@dataclasses.dataclass(frozen=True)
class Graded:
    """A graded function: its reference, a correct implementation and inputs that test it.

    Attributes
    ----------
    name : str
        The graded function's name (the ``name`` given to the checks).
    reference : callable
        normcore's implementation with the graded signature (for a backward, the composite
        of :func:`backward_through`; for an optimizer, the step function).
    flawless : callable
        The catalog's mutant factory with no flaw: a correct implementation that shares all
        the code of the mutants, so that a mutant differs from it by its flaw alone.
    cases : callable
        ``cases() -> list of (args, kwargs)``: inputs on which every catalog mistake of
        the function shows.
    returns : tuple or str
        The ``returns`` of :func:`check_against_reference`.
    kind : str
        ``"function"`` (checked with :func:`check_against_reference`) or ``"optimizer"``
        (args are ``(w0, grads)``, checked with :func:`check_optimizer`).
    """

    name: str
    reference: Callable
    flawless: Callable
    cases: Callable
    returns: tuple | str = ("out", None)
    kind: str = "function"


#: Graded functions by name; each module of the grader's catalog registers its own.
GRADED: dict[str, Graded] = {}


def _graded(name: str, reference: Callable, flawless: Callable, cases: Callable, *,
            returns=("out", None), kind: str = "function") -> None:
    if name in GRADED:
        raise ValueError(f"grading: graded function {name!r} is registered twice")
    if kind not in ("function", "optimizer"):
        raise ValueError(f"grading: kind must be 'function' or 'optimizer', got {kind!r}")
    GRADED[name] = Graded(name, reference, flawless, cases, returns, kind)


def check_graded(name: str, fn: Callable, args, kwargs=None, **options) -> None:
    """Check ``fn`` against the reference registered as ``name`` in :data:`GRADED`."""
    entry = GRADED[name]
    kwargs = {} if kwargs is None else kwargs
    if entry.kind == "optimizer":
        check_optimizer(fn, entry.reference, *args, kwargs, name=name, **options)
    else:
        check_against_reference(fn, entry.reference, args, kwargs, name=name,
                                returns=entry.returns, **options)


def mistakes_for(name: str) -> list[Mistake]:
    """The catalog entries that concern the graded function ``name``."""
    return [m for m in CATALOG if name in m.applies_to]


def get_mistake(key: str) -> Mistake:
    """The catalog entry with this key (``KeyError`` listing the keys if unknown)."""
    for m in CATALOG:
        if m.key == key:
            return m
    raise KeyError(f"get_mistake: unknown key {key!r}; known: {[m.key for m in CATALOG]}")


# ----------------------------------------------------------------------- student calls


class _TimeLimit(BaseException):
    """Raised by the alarm inside the student's code; not an Exception, so not swallowed."""


class _Capture(io.TextIOBase):
    """A text stream that keeps the first characters written to it and counts the rest."""

    def __init__(self):
        self.head = []
        self.kept = 0
        self.total = 0

    def writable(self):
        return True

    def write(self, s):
        s = str(s)
        self.total += len(s)
        if self.kept < _MAX_CAPTURED:
            piece = s[: _MAX_CAPTURED - self.kept]
            self.head.append(piece)
            self.kept += len(piece)
        return len(s)

    def text(self) -> str:
        return "".join(self.head)


@dataclasses.dataclass
class _Watch:
    name: str
    delegated: str | None = None
    output: _Capture = dataclasses.field(default_factory=_Capture)
    caught_warnings: list = dataclasses.field(default_factory=list)

    def output_note(self) -> str:
        notes = []
        if self.output.total:
            text = self.output.text().strip()
            more = "..." if self.output.total > self.output.kept else ""
            notes.append(f" While grading, {self.name} printed {self.output.total} characters: "
                         f"{text[:300]!r}{more}.")
        if self.caught_warnings:
            msgs = sorted({str(w.message) for w in self.caught_warnings})[:3]
            notes.append(f" NumPy or Python warned: {'; '.join(msgs)}.")
        return "".join(notes)


def _forbidden_target(module: str | None, forbidden) -> bool:
    if not module:
        return False
    if module == "normcore" or any(module == m or module.startswith(m + ".")
                                   for m in _ALLOWED_NORMCORE):
        return False
    return any(module == p.rstrip(".") or module.startswith(p) for p in forbidden)


_WATCH_CALLS = [True]


@contextlib.contextmanager
def calls_unwatched():
    """Within the block, :func:`student_code` does not profile calls for delegation.

    For a grader whose student functions run in another (sandboxed) process, where the
    references are not there to call: watching every call of the trusted process would only
    slow it down.
    """
    saved = _WATCH_CALLS[0]
    _WATCH_CALLS[0] = False
    try:
        yield
    finally:
        _WATCH_CALLS[0] = saved


@contextlib.contextmanager
def student_code(name: str, *, forbidden=FORBIDDEN_MODULES, time_limit: float | None = 10.0):
    """Run the block as the student's code: watch for delegation, time it, capture output.

    Yields a record whose ``delegated`` attribute names the first forbidden function that
    was called (or is None), and whose ``output`` holds what was printed. A block that runs
    longer than ``time_limit`` seconds (main thread only) raises ``AssertionError``.
    """
    watch = _Watch(name)
    previous = sys.getprofile()

    def profile(frame, event, arg):
        if event == "call":
            module = frame.f_globals.get("__name__")
            code_name = frame.f_code.co_name
            # Dunder methods (a result dataclass's __init__, say) compute nothing graded.
            dunder = code_name.startswith("__") and code_name.endswith("__")
            if not dunder and _forbidden_target(module, forbidden):
                watch.delegated = f"{module}.{frame.f_code.co_qualname}"
        elif event == "c_call":
            module = getattr(arg, "__module__", None)
            owner = getattr(arg, "__self__", None)
            if not module and owner is not None:
                module = getattr(owner, "__name__", None) or type(owner).__module__
            fname = getattr(arg, "__name__", "")
            if _forbidden_target(module, forbidden) or (
                module and module.startswith("torch") and _TORCH_GRADED_OPS.search(fname)
            ):
                watch.delegated = f"{module}.{fname}"
        if watch.delegated is not None:
            sys.setprofile(None)  # one finding is enough; let the rest run at full speed

    use_alarm = (
        time_limit is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if use_alarm:

        def on_alarm(signum, frame):
            raise _TimeLimit()

        old_handler = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        with (
            contextlib.redirect_stdout(watch.output),
            contextlib.redirect_stderr(watch.output),
            warnings.catch_warnings(record=True) as caught,
            np.errstate(all="warn"),
        ):
            warnings.simplefilter("always")
            if _WATCH_CALLS[0]:
                sys.setprofile(profile)
            try:
                yield watch
            finally:
                sys.setprofile(previous)
                watch.caught_warnings = list(caught)
    except _TimeLimit:
        raise AssertionError(
            f"{name} did not finish within {time_limit:g} s on a small input: is there an "
            f"infinite loop, or a Python loop over every element?"
        ) from None
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_handler)


def _describe(args, kwargs, names) -> str:
    """Short description of a call's inputs: array shapes and dtypes, scalar options."""
    parts = []
    for nm, value in list(zip(names, args)) + list(kwargs.items()):
        if isinstance(value, np.ndarray):
            parts.append(f"{nm} of shape {value.shape} {value.dtype}")
        elif value is None or isinstance(value, bool | numbers.Number | str):
            parts.append(f"{nm}={value!r}")
    return ", ".join(parts)


def _param_names(fn, n_args: int) -> list[str]:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return (names + [f"argument {i}" for i in range(len(names), n_args)])[:n_args]


def _call_student(fn, args, kwargs, *, name, desc, forbidden, time_limit):
    """Call the student's function on the given (already copied) inputs."""
    __tracebackhide__ = True
    with student_code(name, forbidden=forbidden, time_limit=time_limit) as watch:
        try:
            result = fn(*args, **kwargs)
        except NotImplementedError:
            raise AssertionError(
                f"{name} is not implemented yet (it raises NotImplementedError): replace "
                f"the `raise NotImplementedError()` line with your code."
            ) from None
        except AssertionError:
            raise
        except Exception as exc:
            if getattr(exc, "delegated", None):
                watch.delegated = str(exc.delegated)
            if watch.delegated is None:
                hint = ""
                if isinstance(exc, TypeError) and "argument" in str(exc):
                    hint = " Keep the signature given in the notebook."
                raise AssertionError(
                    f"{name} raised {type(exc).__name__}: {exc} (on {desc}).{hint}"
                    f"{watch.output_note()}"
                ) from exc
            result = None
    if watch.delegated is not None:
        raise AssertionError(
            f"{name} calls {watch.delegated}, which computes the graded operation for you. "
            f"Write the computation yourself with NumPy; calling normcore's reference, "
            f"torch.nn / torch.optim or scikit-learn earns no points for this test."
        )
    return result, watch


# -------------------------------------------------------------------------- comparison


def _tolerances(expected, rtol: float | None, atol: float | None) -> tuple[float, float]:
    """``rtol, atol`` where given, else the defaults for the dtypes of ``expected``."""
    float32 = any(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in expected)
    d_rtol, d_atol = (1e-4, 1e-5) if float32 else (1e-6, 1e-9)
    return (d_rtol if rtol is None else rtol), (d_atol if atol is None else atol)


def _shape_hint(got: tuple, expected: tuple) -> str:
    if len(expected) > 2 and got == expected[:2]:
        return " Did you drop the spatial axes?"
    if math.prod(got) == math.prod(expected):
        if got == expected[::-1]:
            return " Is it transposed?"
        squeezed = tuple(s for s in got if s != 1)
        if squeezed == tuple(s for s in expected if s != 1) and len(got) > len(expected):
            return " Drop the extra axes of length 1 (keepdims=True, or a missing reshape?)."
        return f" Reshape it to {expected}."
    if math.prod(got) > math.prod(expected):
        return " Did you reduce over too few axes?"
    return " Did you reduce over too many axes, or forget to broadcast back?"


def _structure_error(label: str, got, expected) -> str | None:
    """Message if ``got`` cannot be compared with ``expected`` (type, shape, dtype), else None."""
    if isinstance(expected, np.ndarray):
        if got is None:
            return f"{label} is None: did you forget a return statement?"
        if type(got).__module__.startswith("torch"):
            return f"{label} is a torch tensor; return a NumPy array (NumPy only here)."
        if not isinstance(got, np.ndarray):
            return (f"{label} must be a numpy.ndarray of shape {expected.shape}, "
                    f"got {type(got).__name__}.")
        if got.shape != expected.shape:
            return (f"{label} has shape {got.shape} but expected {expected.shape}."
                    f"{_shape_hint(got.shape, expected.shape)}")
        if got.dtype != expected.dtype:
            return f"{label} has dtype {got.dtype} but expected {expected.dtype}: {DTYPE_MESSAGE}"
        return None
    if isinstance(expected, numbers.Real):
        if isinstance(got, np.ndarray) and got.size == 1:
            return None
        if not isinstance(got, numbers.Real):
            return f"{label} must be a number, got {type(got).__name__}."
        return None
    return None


def _mismatch(got, expected, rtol: float, atol: float) -> str | None:
    """Describe where ``got`` differs from ``expected`` beyond tolerance, else None."""
    g = np.asarray(got, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    scale = float(np.max(np.abs(e))) if e.size else 0.0
    tol = atol * max(1.0, scale) + rtol * np.abs(e)
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(g - e) <= tol)
    bad &= ~(np.isnan(e) & np.isnan(g))
    if not np.any(bad):
        return None
    if np.any(np.isnan(g) & ~np.isnan(e)):
        idx = tuple(int(i) for i in np.argwhere(np.isnan(g))[0])
        return (f"contains NaN (first at index {idx}): a square root of a negative number or "
                f"a division by zero?")
    err = np.where(bad, np.abs(g - e), -1.0)
    flat = int(np.argmax(err))
    idx = tuple(int(i) for i in np.unravel_index(flat, e.shape)) if e.ndim else ()
    where = f" at index {idx}" if idx else ""
    count = f" ({int(bad.sum())} of {bad.size} values differ)" if e.size > 1 else ""
    return (f"differs from the expected values: largest error {err.flat[flat]:.3g}{where} "
            f"(got {g.flat[flat]:.6g}, expected {e.flat[flat]:.6g}){count}")


def assert_close(name: str, got, expected, *, rtol: float | None = None, atol: float | None = None):
    """Assert that ``got`` equals ``expected`` within tolerance, checking type, shape and dtype.

    ``name`` labels the value in the message, e.g. ``"batch_norm_forward: out"``. The
    default tolerances depend on the expected dtype (float64: ``rtol=1e-6``, float32:
    ``rtol=1e-4``); the absolute tolerance is relative to the largest expected magnitude.
    """
    __tracebackhide__ = True
    rtol, atol = _tolerances([expected], rtol, atol)
    problem = _structure_error(name, got, expected)
    if problem is None:
        diff = _mismatch(got, expected, rtol, atol)
        problem = None if diff is None else f"{name} {diff}."
    if problem is not None:
        raise AssertionError(problem)


# ---------------------------------------------------------------- reference comparison


def _as_parts(result, returns, label: str):
    """Split a result into named parts; a string message for a malformed result."""
    if isinstance(returns, str):
        return {returns: result}
    if returns and all(isinstance(r, str) and r.startswith(".") for r in returns):
        missing = [r[1:] for r in returns if not hasattr(result, r[1:])]
        if missing:
            return (f"{label} must return an object with the attributes "
                    f"{', '.join(r[1:] for r in returns)}; got a {type(result).__name__}"
                    f" without {', '.join(missing)}.")
        return {r[1:]: getattr(result, r[1:]) for r in returns}
    n = len(returns)
    if n == 1 and isinstance(returns[0], str) and isinstance(result, np.ndarray):
        return {returns[0]: result}  # a single gradient, returned bare
    if result is None:
        values = ", ".join(r or "cache" for r in returns)
        return f"{label} returned None: did you forget `return {values}`?"
    if not isinstance(result, tuple | list):
        return (f"{label} must return a tuple of {n} values "
                f"({', '.join(r or 'cache' for r in returns)}), got a {type(result).__name__}.")
    if len(result) != n:
        return f"{label} returned {len(result)} values, expected {n}."
    return {r: v for r, v in zip(returns, result) if r is not None}


def _run(fn, args, kwargs, returns, names, *, student, name, desc, forbidden, time_limit):
    """Call ``fn`` on deep copies of the inputs; return (parts, arrays after the call, watch)."""
    __tracebackhide__ = True
    a = copy.deepcopy(tuple(args))
    k = copy.deepcopy(dict(kwargs))
    result, watch = _call_student(fn, a, k, name=name if student else f"{name} (expected)",
                                  desc=desc, forbidden=forbidden if student else (),
                                  time_limit=time_limit)
    parts = _as_parts(result, returns, name)
    arrays = {nm: v for nm, v in list(zip(names, a)) + list(k.items())
              if isinstance(v, np.ndarray)}
    return parts, arrays, watch


def _close(a, b, rtol, atol) -> bool:
    if _structure_error("", a, b) is not None:
        return False
    return _mismatch(a, b, rtol, atol) is None


def _after(name: str) -> str:
    return f"{name} (after the call)"


def _dependency_note(student_fn, args, kwargs, forbidden, time_limit) -> str | None:
    """For a backward composed with the student's forward: a note naming the forward when it
    is wrong on this input (the grader knows the forward's reference), else None."""
    forward = getattr(student_fn, "forward", None)
    fname = getattr(forward, "__name__", None)
    entry = GRADED.get(fname) if fname else None
    if forward is None or entry is None or entry.kind != "function" or not args:
        return None
    problem = _forward_problem(forward, entry.reference, tuple(args[1:]), kwargs,
                               forward_name=fname, forbidden=forbidden, time_limit=time_limit)
    if problem is None:
        return None
    return (f"This test runs your backward on the cache of your {fname}, and {problem}: fix "
            f"{fname} first (see its test), then run this test again.")


def _first_step(got, expected, rtol, atol) -> str | None:
    """For stacked iterates: where the student's trajectory first leaves the expected one."""
    g, e = np.asarray(got), np.asarray(expected)
    if g.shape != e.shape or g.ndim < 1:
        return None
    for t in range(e.shape[0]):
        diff = _mismatch(g[t], e[t], rtol, atol)
        if diff is not None:
            return (f"The iterates agree up to step {t - 1} and first differ at step t = {t} "
                    f"(w after {t} step{'s' if t != 1 else ''}; t = 0 is w0): w_{t} {diff}")
    return None


def _compare(student_fn, args, kwargs, names, desc, expected, *, name, returns, mistakes,
             rtol, atol, forbidden, time_limit, reference_unchanged=(), flawless=None):
    """Run the student's function and compare the parts listed in ``expected``."""
    __tracebackhide__ = True
    got_parts, got_arrays, watch = _run(student_fn, args, kwargs, returns, names, student=True,
                                        name=name, desc=desc, forbidden=forbidden,
                                        time_limit=time_limit)
    if isinstance(got_parts, str):
        raise AssertionError(f"{got_parts} (on {desc})")
    rtol, atol = _tolerances(list(expected.values()), rtol, atol)
    got = {**got_parts, **{_after(nm): v for nm, v in got_arrays.items()}}
    for label, exp in expected.items():
        problem = _structure_error(f"{name}: {label}", got.get(label), exp)
        if problem is not None:
            causes = []
            if (isinstance(got.get(label), np.ndarray) and isinstance(exp, np.ndarray)
                    and got[label].shape == exp.shape):  # a dtype: which path promotes?
                causes = [c for c in _diagnose([label], got, expected, args, kwargs, returns,
                                               names, name, mistakes, rtol or 1e-4, atol or 1e-5,
                                               flawless=flawless) if c != DTYPE_MESSAGE]
            more = "".join(f" Likely cause: {c}" for c in causes)
            raise AssertionError(f"{problem} (on {desc}).{more}{watch.output_note()}")
    wrong = [lb for lb in expected if not _close(got[lb], expected[lb], rtol, atol)]
    if not wrong:
        return

    causes = _diagnose(wrong, got, expected, args, kwargs, returns, names, name, mistakes,
                       rtol, atol, flawless=flawless)
    first = wrong[0]
    verb = "is" if len(wrong) == 1 else "are"
    lines = [f"{name}: {', '.join(wrong)} {verb} wrong (on {desc})."]
    originals = dict(zip(names, args)) | kwargs
    base = first.removesuffix(" (after the call)")
    dependency = _dependency_note(student_fn, args, kwargs, forbidden, time_limit)
    if causes:
        lines += [f"Likely cause: {c}" for c in causes]
    elif base in reference_unchanged and dependency:
        lines.append(f"{base} changed during the call.")
    elif base in reference_unchanged:
        lines.append(
            f"{name} changed its argument {base} in place "
            f"({_mismatch(got[first], expected[first], rtol, atol)}). {INPUT_MESSAGE}"
        )
    elif first != base and _close(got[first], originals.get(base), 0.0, 0.0):
        lines.append(
            f"{base} should be updated in place but is unchanged: update the caller's array "
            f"(`{base} *= ...; {base} += ...` or `{base}[...] = ...`); assigning a new array "
            f"to the name inside the function does not change it."
        )
    elif first.startswith("iterates") and _first_step(got[first], expected[first], rtol, atol):
        lines.append(_first_step(got[first], expected[first], rtol, atol) + ".")
    else:
        lines.append(f"{first} {_mismatch(got[first], expected[first], rtol, atol)}.")
    if dependency:
        lines.append(dependency)
    raise AssertionError(" ".join(lines) + watch.output_note())


def check_against_reference(
    student_fn: Callable,
    reference_fn: Callable,
    args: Sequence = (),
    kwargs: dict | None = None,
    *,
    name: str,
    returns: str | Sequence = "out",
    mistakes: Sequence[Mistake] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    forbidden=FORBIDDEN_MODULES,
    time_limit: float | None = 5.0,
) -> None:
    """Compare the student's function with the reference on one input; explain any difference.

    Parameters
    ----------
    student_fn, reference_fn : callable
        Called as ``fn(*args, **kwargs)``, each on its own deep copy of the inputs.
    args, kwargs
        The input.
    name : str
        The graded function's name; used in messages and to look up the mistakes.
    returns : str or sequence of (str or None)
        A name for a single returned value, or one name per element of a returned tuple;
        ``None`` marks an element that is not compared (a cache). Names that all start with
        a dot (``(".mean", ".var")``) compare those attributes of a returned object.
    mistakes : sequence of Mistake, optional
        Candidate causes; default :func:`mistakes_for` ``(name)``.
    rtol, atol : float, optional
        Tolerances; by default from the dtype (see :func:`assert_close`).
    forbidden : tuple of str
        Module prefixes the student's function must not call (delegation).
    time_limit : float or None
        Seconds each of the two functions may run.

    Raises
    ------
    AssertionError
        With a message naming the function, the wrong part, the input and the likely cause.

    Notes
    -----
    Array arguments are compared after the call too: if the reference updates an argument
    in place (running statistics), the student's must end up equal; if the reference leaves
    it alone, the student's function must not change it.
    """
    __tracebackhide__ = True
    kwargs = {} if kwargs is None else dict(kwargs)
    names = _param_names(reference_fn, len(args))
    desc = _describe(args, kwargs, names)
    ref_parts, ref_arrays, _ = _run(reference_fn, args, kwargs, returns, names, student=False,
                                    name=name, desc=desc, forbidden=(), time_limit=time_limit)
    if isinstance(ref_parts, str):
        raise TypeError(f"check_against_reference: the reference does not fit returns: "
                        f"{ref_parts}")
    originals = dict(zip(names, args)) | kwargs
    unchanged = [nm for nm, v in ref_arrays.items() if _close(v, originals[nm], 0.0, 0.0)]
    expected = {**ref_parts, **{_after(nm): v for nm, v in ref_arrays.items()}}
    _compare(student_fn, args, kwargs, names, desc, expected, name=name, returns=returns,
             mistakes=mistakes, rtol=rtol, atol=atol, forbidden=forbidden,
             time_limit=time_limit, reference_unchanged=unchanged)


def check_example(
    student_fn: Callable,
    args: Sequence = (),
    kwargs: dict | None = None,
    *,
    name: str,
    expected: dict,
    returns: str | Sequence = "out",
    modifies: Sequence[str] = (),
    mistakes: Sequence[Mistake] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    forbidden=FORBIDDEN_MODULES,
    time_limit: float | None = 5.0,
) -> None:
    """Check the student's function on an example whose answer is known.

    ``expected`` maps the names of returned values (see ``returns``) or of array arguments
    (their values after the call, for in-place updates) to the expected arrays. The other
    array arguments must be left unchanged, except those named in ``modifies`` (updated in
    place by the function, but not checked here). Failures are explained as in
    :func:`check_against_reference`.
    """
    __tracebackhide__ = True
    kwargs = {} if kwargs is None else dict(kwargs)
    # Argument names as documented (a catalog mutant has the graded signature), so that a
    # student who renamed a parameter is still checked by the names of the notebook.
    documented = mistakes_for(name) if mistakes is None else list(mistakes)
    names = _param_names(documented[0].mutant if documented else student_fn, len(args))
    desc = _describe(args, kwargs, names)
    parts = {r for r in ([returns] if isinstance(returns, str) else returns) if r}
    want = {}
    for key, value in expected.items():
        label = key if key in parts else _after(key)
        want[label] = np.asarray(value) if isinstance(value, list | tuple) else value
    unchanged = []
    for nm, value in list(zip(names, args)) + list(kwargs.items()):
        # (an argument named like a returned value, fold_batch_norm's weight, is still tracked)
        if (isinstance(value, np.ndarray) and nm not in modifies
                and (nm in parts or nm not in expected)):
            want[_after(nm)] = value.copy()
            unchanged.append(nm)
    _compare(student_fn, args, kwargs, names, desc, want, name=name, returns=returns,
             mistakes=mistakes, rtol=rtol, atol=atol, forbidden=forbidden,
             time_limit=time_limit, reference_unchanged=unchanged,
             flawless=_flawless(name) if mistakes is None else None)


def _flawless(name: str):
    """The catalog's correct implementation of ``name`` (None outside the grader)."""
    entry = GRADED.get(name)
    return None if entry is None else entry.flawless


def _outcome(fn, args, kwargs, returns, names, name):
    """``{label: value}`` of ``fn`` on copies of the input (returned parts and arrays after
    the call), or None when it fails."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            parts, arrays, _ = _run(fn, args, kwargs, returns, names, student=False, name=name,
                                    desc="", forbidden=(), time_limit=None)
    except (Exception, AssertionError):
        return None
    if isinstance(parts, str):
        return None
    return {**parts, **{_after(nm): v for nm, v in arrays.items()}}


def _diagnose(wrong, got, expected, args, kwargs, returns, names, name, mistakes, rtol, atol,
              flawless=None):
    """Messages of the catalog mistakes that are true of the student's wrong parts.

    A mistake is named for a wrong part when its mutant reproduces the student's value AND
    the mistake shows on this input: the mutant's value differs from what a correct
    implementation gives on the very same input (``flawless``, the catalog's correct
    implementation, run on the same arguments, e.g. the same optimizer state; without one,
    the expected value). A mistake that is inert under the test's settings (eps inside the
    square root with eps = 0, weight decay with weight_decay = 0) is never named.
    """
    candidates = mistakes_for(name) if mistakes is None else list(mistakes)
    if flawless is None and mistakes is None:
        flawless = _flawless(name)
    baseline = None if flawless is None else _outcome(flawless, args, kwargs, returns, names,
                                                      name)
    if baseline is None:
        baseline = expected
    explained: dict[str, list[str]] = {}
    for mistake in candidates:
        mutant = _outcome(mistake.mutant, args, kwargs, returns, names, name)
        if mutant is None:
            continue
        hits = [lb for lb in wrong
                if lb in mutant and lb in baseline and _close(got[lb], mutant[lb], rtol, atol)
                and not _close(mutant[lb], baseline[lb], rtol, atol)]
        if hits:
            explained.setdefault(mistake.message, []).extend(hits)
    # Prefer the mistakes that explain everything that is wrong.
    full = [msg for msg, hits in explained.items() if set(hits) == set(wrong)]
    return full or list(explained)


# ------------------------------------------------------------------------ backward & grad


def backward_through(forward: Callable, backward: Callable) -> Callable:
    """Compose a forward and its backward into ``f(dout, *args, **kwargs) -> grads``.

    ``f`` runs ``out, cache = forward(*args, **kwargs)`` and returns
    ``backward(dout, cache)``: the form in which backward passes are compared (two
    implementations need not share a cache layout).
    """

    def composite(dout, *args, **kwargs):
        result = forward(*args, **kwargs)
        if not isinstance(result, tuple | list) or len(result) != 2:
            raise TypeError(
                f"{getattr(forward, '__name__', 'forward')} must return (out, cache), "
                f"got {type(result).__name__}"
            )
        return backward(dout, result[1])

    try:
        sig = inspect.signature(forward)
        dout = inspect.Parameter("dout", inspect.Parameter.POSITIONAL_OR_KEYWORD)
        composite.__signature__ = sig.replace(parameters=[dout, *sig.parameters.values()])
    except (TypeError, ValueError):
        pass
    composite.__name__ = getattr(backward, "__name__", "backward")
    composite.forward = forward
    return composite


def check_gradient(
    forward: Callable,
    backward: Callable,
    args: Sequence,
    kwargs: dict | None = None,
    *,
    name: str,
    wrt: Sequence[int] | None = None,
    rng=0,
    tol: float = 1e-6,
    mistakes: Sequence[Mistake] | None = None,
    forbidden=FORBIDDEN_MODULES,
    time_limit: float | None = 10.0,
) -> None:
    """Check a backward against centered differences of its own forward (float64 inputs).

    ``wrt`` are the positions in ``args`` of the inputs whose gradients ``backward``
    returns, in order; by default the first ``k`` array arguments, where ``k`` is the
    number of gradients returned. The upstream gradient ``dout`` is random (seeded by
    ``rng``). Raises ``AssertionError`` naming the gradient that disagrees and, when the
    student's gradients equal those of a catalog mistake of ``name`` (whose mutant takes
    ``(dout, *args, **kwargs)``), the mistake.
    """
    __tracebackhide__ = True
    kwargs = {} if kwargs is None else dict(kwargs)
    names = _param_names(forward, len(args))
    desc = _describe(args, kwargs, names)
    gen = np.random.default_rng(rng)
    forward_name = getattr(forward, "__name__", "forward")
    try:
        _call_student(forward, copy.deepcopy(tuple(args)), copy.deepcopy(kwargs),
                      name=forward_name, desc=desc, forbidden=forbidden, time_limit=time_limit)
    except AssertionError as exc:
        raise AssertionError(f"{name} is checked against the gradient of your {forward_name}, "
                             f"which fails: {exc}") from None

    def gradients():
        """(parameter name, the backward's gradient, the numerical one) per input."""
        out, cache = forward(*copy.deepcopy(tuple(args)), **copy.deepcopy(kwargs))
        dout = gen.standard_normal(np.shape(out))
        grads = backward(dout, cache)
        if not isinstance(grads, tuple | list):
            grads = (grads,)
        positions = list(wrt) if wrt is not None else [
            i for i, v in enumerate(args) if isinstance(v, np.ndarray)][: len(grads)]
        results = []
        for pos, grad in zip(positions, grads):

            def f(z, pos=pos):
                b = list(copy.deepcopy(tuple(args)))
                b[pos] = z
                return forward(*b, **copy.deepcopy(kwargs))[0]

            num = numerical_gradient_array(f, np.array(args[pos], dtype=np.float64), dout)
            results.append((names[pos], grad, num))
        return dout, results

    (dout, results), _ = _call_student(gradients, (), {}, name=name, desc=desc,
                                       forbidden=forbidden, time_limit=time_limit)
    labels = [f"d{param}" for param, _, _ in results]
    got = {lb: grad for lb, (_, grad, _) in zip(labels, results)}
    expected = {lb: num for lb, (_, _, num) in zip(labels, results)}
    for label, grad in got.items():
        num = expected[label]
        want = num.astype(grad.dtype) if isinstance(grad, np.ndarray) else num
        problem = _structure_error(f"{name}: {label}", grad, want)
        if problem is not None:
            raise AssertionError(f"{problem} (on {desc})")
    errors = {lb: rel_error(got[lb], expected[lb]) for lb in labels}
    wrong = [lb for lb in labels if not errors[lb] < tol]
    if not wrong:
        return
    causes = _diagnose(wrong, got, expected, (dout, *args), kwargs, tuple(labels),
                       ["dout", *names], name, mistakes, 1e-6, 1e-9)
    causes = [c for c in causes if c != DTYPE_MESSAGE]
    first = wrong[0]
    lines = [f"{name}: {', '.join(wrong)} from your backward "
             f"{'does' if len(wrong) == 1 else 'do'} not match the numerical gradient of your "
             f"forward (relative error {errors[first]:.2e}, should be below {tol:.0e}, on "
             f"{desc})."]
    entry = GRADED.get(forward_name)
    problem = None if entry is None or entry.kind != "function" else _forward_problem(
        forward, entry.reference, args, kwargs, forward_name=forward_name, forbidden=forbidden,
        time_limit=time_limit)
    own = GRADED.get(name)
    if problem is not None and own is not None and own.kind == "function":
        # Not the backward's fault if it gives the right gradients on its forward's cache,
        # or where the forward is right (eps = 0 for a forward that misplaces eps).
        student = backward_through(forward, backward)
        for settings in ([kwargs, {**kwargs, "eps": 0.0}] if kwargs.get("eps") else [kwargs]):
            if settings is not kwargs and _forward_problem(
                    forward, entry.reference, args, settings, forward_name=forward_name,
                    forbidden=forbidden, time_limit=time_limit) is not None:
                continue
            try:
                check_against_reference(student, own.reference, (dout, *args), settings,
                                        name=name, returns=own.returns, mistakes=(),
                                        forbidden=forbidden, time_limit=time_limit)
                return
            except AssertionError:
                pass
    if causes:
        lines += [f"Likely cause: {c}" for c in causes]
    if problem is not None:
        lines.append(f"But {problem}: your backward may be right for the correct forward. Fix "
                     f"{forward_name} first (see its test), then run this test again.")
    elif not causes:
        lines.append("Differentiate your forward again, step by step.")
    raise AssertionError(" ".join(lines))


def _forward_problem(forward, reference_forward, args, kwargs, *, forward_name, forbidden,
                     time_limit) -> str | None:
    """Why the student's forward cannot be trusted on this input (its out is compared with
    the reference's), or None when it is right."""
    names = _param_names(reference_forward, len(args))
    desc = _describe(args, kwargs, names)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            got, _ = _call_student(forward, copy.deepcopy(tuple(args)), copy.deepcopy(kwargs),
                                   name=forward_name, desc=desc, forbidden=forbidden,
                                   time_limit=time_limit)
    except AssertionError as exc:
        return f"your {forward_name} fails on this input ({exc})"
    want = reference_forward(*copy.deepcopy(tuple(args)), **copy.deepcopy(kwargs))
    mine, theirs = copy.deepcopy(tuple(args)), copy.deepcopy(tuple(args))
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            _call_student(forward, mine, copy.deepcopy(kwargs), name=forward_name, desc=desc,
                          forbidden=forbidden, time_limit=time_limit)
    except AssertionError:
        pass
    reference_forward(*theirs, **copy.deepcopy(kwargs))
    for nm, a, b in zip(names, mine, theirs):
        if isinstance(b, np.ndarray) and not _close(a, b, 0.0, 0.0):
            return f"your {forward_name} changes its input {nm} in place"
    if not isinstance(got, tuple | list) or len(got) != 2:
        return f"your {forward_name} does not return (out, cache)"
    problem = _structure_error("out", got[0], want[0])
    if problem is None:
        rtol, atol = _tolerances([want[0]], None, None)
        diff = _mismatch(got[0], want[0], rtol, atol)
        problem = None if diff is None else f"its out {diff}"
    return None if problem is None else (f"your {forward_name} is wrong on this input "
                                         f"({problem}; on {desc})")


def check_backward(
    forward: Callable,
    backward: Callable,
    reference_forward: Callable,
    reference_backward: Callable,
    args: Sequence,
    kwargs: dict | None = None,
    *,
    name: str,
    returns: Sequence = ("dx",),
    forward_name: str | None = None,
    wrt: Sequence[int] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    forbidden=FORBIDDEN_MODULES,
    time_limit: float | None = 5.0,
) -> None:
    """Grade a backward on its own, whether or not the student's forward is right.

    ``args`` is ``(dout, *forward_args)``, as for the composites of :func:`backward_through`.
    Where the student's forward is right on this input, the backward run on its cache must
    give the reference's gradients (a difference is explained with the catalog). Where the
    forward is wrong (or fails), the backward passes if it still gives the reference's
    gradients or if it is the gradient of the student's own forward (centered differences,
    as :func:`check_gradient`); failing both, and when the input has an ``eps``, it is graded
    with ``eps = 0`` where the forward is right there (a forward that adds eps in the wrong
    place is right without it, and the backward should not pay for it); otherwise the message
    names the forward as the dependency to fix first.
    """
    __tracebackhide__ = True
    kwargs = {} if kwargs is None else dict(kwargs)
    forward_name = forward_name or getattr(forward, "__name__", "forward")
    forward_args = tuple(args[1:])
    student = backward_through(forward, backward)
    reference = backward_through(reference_forward, reference_backward)
    options = dict(name=name, returns=returns, rtol=rtol, atol=atol, forbidden=forbidden,
                   time_limit=time_limit)
    problem = _forward_problem(forward, reference_forward, forward_args, kwargs,
                               forward_name=forward_name, forbidden=forbidden,
                               time_limit=time_limit)
    if problem is None:
        check_against_reference(student, reference, args, kwargs, **options)
        return
    try:
        check_against_reference(student, reference, args, kwargs, mistakes=(), **options)
        return
    except AssertionError:
        pass
    try:
        check_gradient(forward, backward, forward_args, kwargs, name=name, wrt=wrt,
                       mistakes=(), forbidden=forbidden)
        return
    except AssertionError as exc:
        detail = str(exc)
    if kwargs.get("eps"):
        without_eps = {**kwargs, "eps": 0.0}
        if _forward_problem(forward, reference_forward, forward_args, without_eps,
                            forward_name=forward_name, forbidden=forbidden,
                            time_limit=time_limit) is None:
            check_against_reference(student, reference, args, without_eps, **options)
            return
    raise AssertionError(
        f"{name} cannot be graded on its own here: {problem}. This test runs your backward on "
        f"the cache of your {forward_name}, and your backward is neither the gradient of your "
        f"forward nor the reference's gradient: fix {forward_name} first (see its test), then "
        f"run this test again. With your {forward_name}: {detail}"
    )


def run_optimizer(step: Callable, w0, grads, **hyper) -> np.ndarray:
    """Iterates of an optimizer step function from an empty state.

    ``step(w, dw, state, **hyper) -> new_w`` is called once per gradient in ``grads``
    (an array of shape ``(T, *w0.shape)``), starting from ``w0`` and ``state = {}``.
    Returns the stacked iterates, shape ``(T + 1, *w0.shape)``: row ``t`` is ``w`` after
    ``t`` steps.
    """
    state, w, path = {}, w0, [w0]
    for g in grads:
        w = step(w, g, state, **hyper)
        if not isinstance(w, np.ndarray) or w.shape != w0.shape:
            got = w.shape if isinstance(w, np.ndarray) else type(w).__name__
            raise TypeError(f"a step must return the new parameter, an array of shape "
                            f"{w0.shape}, got {got}")
        path.append(w)
    return np.stack(path)


def check_optimizer(
    student_step: Callable,
    reference_step: Callable,
    w0,
    grads,
    hyper: dict | None = None,
    *,
    name: str,
    mistakes: Sequence[Mistake] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    forbidden=FORBIDDEN_MODULES,
    time_limit: float | None = 5.0,
) -> None:
    """Compare two optimizer step functions over a sequence of gradients.

    Both run from ``w0`` and an empty state through :func:`run_optimizer`; the iterates
    must agree. The catalog mistakes of ``name`` are step functions too (the optimizer's
    signature) and are run the same way to explain a difference.
    """
    __tracebackhide__ = True
    hyper = {} if hyper is None else dict(hyper)
    check_against_reference(_along(student_step), _along(reference_step), (w0, grads), hyper,
                            name=name, returns=_ITERATES, mistakes=_along_mistakes(name, mistakes),
                            rtol=rtol, atol=atol, forbidden=forbidden, time_limit=time_limit)


_ITERATES = "iterates (row t: w after t steps)"


def _along(step):
    def iterates(w0, grads, **h):
        return run_optimizer(step, w0, grads, **h)

    return iterates


def _along_mistakes(name, mistakes):
    candidates = mistakes_for(name) if mistakes is None else list(mistakes)
    return [dataclasses.replace(m, mutant=_along(m.mutant)) for m in candidates]


def check_steps(
    student_step: Callable,
    w0,
    grads,
    hyper: dict | None = None,
    *,
    name: str,
    expected,
    mistakes: Sequence[Mistake] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    forbidden=FORBIDDEN_MODULES,
    time_limit: float | None = 5.0,
) -> None:
    """Run an optimizer step function from ``w0`` and an empty state; compare its iterates.

    ``grads`` holds one gradient per step (shape ``(T, *w0.shape)``) and ``expected`` the
    iterates worked out by hand, one per step (``expected[t - 1]`` is ``w`` after ``t``
    steps). The student's step is called as ``step(w, grads[t], state, **hyper)`` with the
    same ``state`` dict throughout, exactly as a training loop would; ``w0`` and the
    gradients must not be modified. A difference names the first step ``t`` at which the
    iterates part, and the catalog mistakes that reproduce the whole trajectory.
    """
    __tracebackhide__ = True
    hyper = {} if hyper is None else dict(hyper)
    w0 = np.asarray(w0) if isinstance(w0, list | tuple) else w0
    grads = np.asarray(grads, dtype=w0.dtype) if isinstance(grads, list | tuple) else grads
    rows = [np.asarray(e, dtype=w0.dtype) for e in expected]
    want = {_ITERATES: np.stack([w0, *rows]), _after("w0"): w0.copy(),
            _after("grads"): grads.copy()}
    names = ["w0", "grads"]
    desc = _describe((w0, grads), hyper, names)
    flawless = _flawless(name)
    _compare(_along(student_step), (w0, grads), hyper, names, desc, want, name=name,
             returns=_ITERATES, mistakes=_along_mistakes(name, mistakes), rtol=rtol,
             atol=atol, forbidden=forbidden, time_limit=time_limit,
             reference_unchanged=("w0", "grads"),
             flawless=None if flawless is None else _along(flawless))


