r"""Numerical gradients by centered differences, and the relative error used to compare them.

For a scalar function :math:`f` and an array argument :math:`x`, the centered difference

.. math::

    \frac{\partial f}{\partial x_i} \approx \frac{f(x + h e_i) - f(x - h e_i)}{2h}

has error :math:`O(h^2)`; with float64 and :math:`h = 10^{-5}` it is accurate to about
:math:`10^{-10}`, which is why every backward in normcore is checked in float64.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._checks import check_float_array, check_scalar

__all__ = ["numerical_gradient", "numerical_gradient_array", "rel_error"]


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, *, h: float = 1e-5):
    """Gradient of a scalar function ``f`` at ``x`` by centered differences.

    Parameters
    ----------
    f : callable
        ``f(x) -> float``. It is evaluated ``2 * x.size`` times.
    x : ndarray, float64, any shape
        The point. It is perturbed in place during the computation and restored
        exactly before returning.
    h : float
        Step size.

    Returns
    -------
    grad : ndarray, same shape as ``x``
    """
    check_float_array("numerical_gradient", "x", x)
    check_scalar("numerical_gradient", "h", h, low=0, low_inclusive=False)
    grad = np.zeros_like(x)
    flat_x, flat_g = x.reshape(-1), grad.reshape(-1)
    if not np.shares_memory(flat_x, x):
        raise ValueError("numerical_gradient: x must be contiguous so it can be perturbed")
    for i in range(flat_x.size):
        old = flat_x[i]
        flat_x[i] = old + h
        f_plus = float(f(x))
        flat_x[i] = old - h
        f_minus = float(f(x))
        flat_x[i] = old
        flat_g[i] = (f_plus - f_minus) / (2 * h)
    return grad


def numerical_gradient_array(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dout: np.ndarray, *, h: float = 1e-5
):
    """Vector-Jacobian product ``sum(dout * f(x))`` differentiated numerically w.r.t. ``x``.

    This is what a layer's backward returns for upstream gradient ``dout``.
    """
    check_float_array("numerical_gradient_array", "dout", dout)
    return numerical_gradient(lambda z: np.sum(f(z) * dout), x, h=h)


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    r"""Largest elementwise relative error :math:`|a-b| / \max(10^{-8}, |a| + |b|)`."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes differ, got {a.shape} and {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))
