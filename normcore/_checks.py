"""Input validation shared by every normcore module.

All checks raise ``TypeError`` or ``ValueError`` with a message of the form
``"<function>: <what was expected>, got <what came>"``; none uses ``assert``.

Dtype policy (the same everywhere in normcore): arrays must be NumPy arrays of
``float32`` or ``float64``. Integer, boolean and complex arrays, Python lists and
torch tensors are rejected with a ``TypeError`` rather than silently cast, because a
silent cast hides the most common student mistake (building data with ``np.arange``)
and would change the output dtype behind the caller's back.
"""

from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _is_allowed_float(dtype) -> bool:
    """True for float32 and float64 only (float16, longdouble, ints, complex are refused)."""
    return any(dtype == allowed for allowed in FLOAT_DTYPES)


def check_float_array(func: str, name: str, x, *, ndim=None, min_ndim=None) -> np.ndarray:
    """Return ``x`` unchanged if it is a float32/float64 ndarray, else raise TypeError.

    ``ndim`` (an int or a tuple of allowed ints) and ``min_ndim`` add a ValueError
    check on the number of axes.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{func}: {name} must be a numpy.ndarray of float32 or float64, "
            f"got {type(x).__name__}"
        )
    if not _is_allowed_float(x.dtype):
        raise TypeError(
            f"{func}: {name} must have dtype float32 or float64, got {x.dtype} "
            f"(convert with {name}.astype(np.float64))"
        )
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(
                f"{func}: {name} must have {want} dimensions, got shape {x.shape}"
            )
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(
            f"{func}: {name} must have at least {min_ndim} dimensions, got shape {x.shape}"
        )
    return x


def check_float_dtype(func: str, dtype, name: str = "dtype") -> np.dtype:
    """Return ``numpy.dtype(dtype)`` if it is float32 or float64, else raise TypeError.

    For functions that create arrays (``dtype=`` arguments): float16 is refused like every
    other dtype, because normcore's references are checked against PyTorch only in float32
    and float64.
    """
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{func}: {name} must be float32 or float64, got {dtype!r}") from None
    if not _is_allowed_float(dt):
        raise TypeError(f"{func}: {name} must be float32 or float64, got {dt}")
    return dt


def check_same_dtype(func: str, **arrays) -> None:
    """Raise TypeError unless every non-None array has the same dtype."""
    present = {k: v for k, v in arrays.items() if v is not None}
    dtypes = {v.dtype for v in present.values()}
    if len(dtypes) > 1:
        desc = ", ".join(f"{k}={v.dtype}" for k, v in present.items())
        raise TypeError(f"{func}: all arrays must share one dtype, got {desc}")


def check_shape(func: str, name: str, x: np.ndarray, expected: tuple) -> None:
    """Raise ValueError unless ``x.shape == expected``."""
    if tuple(x.shape) != tuple(expected):
        raise ValueError(
            f"{func}: {name} must have shape {tuple(expected)}, got {tuple(x.shape)}"
        )


def check_finite(func: str, name: str, x: np.ndarray) -> None:
    """Raise ValueError if ``x`` contains NaN or infinity."""
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{func}: {name} must be finite, got NaN or inf values")


def check_scalar(
    func: str,
    name: str,
    value,
    *,
    low=None,
    high=None,
    low_inclusive=True,
    high_inclusive=True,
    integer=False,
):
    """Validate a real (or integer) scalar hyperparameter and return it.

    ``low``/``high`` bound the value; the message names the interval.
    """
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        want = "an integer" if integer else "a real number"
        raise TypeError(f"{func}: {name} must be {want}, got {value!r}")
    if not integer and not np.isfinite(value):
        raise ValueError(f"{func}: {name} must be finite, got {value!r}")
    bad_low = low is not None and (value < low if low_inclusive else value <= low)
    bad_high = high is not None and (value > high if high_inclusive else value >= high)
    if bad_low or bad_high:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        raise ValueError(f"{func}: {name} must be in {left}{lo}, {hi}{right}, got {value!r}")
    return value


def check_rng(func: str, rng) -> np.random.Generator:
    """Accept a Generator, an int seed or None (fresh entropy); return a Generator."""
    if rng is None or isinstance(rng, numbers.Integral):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(
        f"{func}: rng must be a numpy.random.Generator, an int seed or None, "
        f"got {type(rng).__name__}"
    )
