r"""Weight normalization and centered weight normalization.

Both re-parameterize a weight matrix by a direction :math:`v` and a length :math:`g`, one per
output unit (row), so that the optimizer moves the length and the direction separately:

.. math::

    \text{WN:}\quad w_i = g_i \, \frac{v_i}{\lVert v_i \rVert},
    \qquad
    \text{CWN:}\quad w_i = g_i \, \frac{v_i - \bar v_i \mathbf 1}{\lVert v_i - \bar v_i \mathbf 1
    \rVert},\quad \bar v_i = \frac{1}{D}\sum_j v_{ij}.

Weight normalization is Salimans & Kingma (NIPS 2016); centered weight normalization
(Huang et al., ICCV 2017) also centers each row, so every output unit sees a zero-mean weight
vector of length :math:`|g_i|`.

Shapes
------
``v`` has shape ``(out_features, in_features)`` for a linear layer, or
``(out_channels, in_channels, kh, kw)`` (any number of trailing axes) for a convolution; each
output unit's weights, ``v[i]``, are normalized over all its other axes together, which is what
``torch.nn.utils.parametrizations.weight_norm(module, dim=0)`` does. ``g`` has shape
``(out_features,)``; PyTorch stores it as ``(out, 1, ..., 1)``.

The optional ``eps`` enters as :math:`\lVert v_i \rVert_\epsilon = \sqrt{\lVert v_i \rVert^2 +
\epsilon}`. With the default ``eps=0.0`` the formulas are exact, and a row whose norm is zero
(an all-zero row for WN, a constant row for CWN) has no direction and raises ``ValueError``.
"""

from __future__ import annotations

import numpy as np

from ._checks import check_finite, check_float_array, check_same_dtype, check_scalar, check_shape

__all__ = [
    "weight_norm_forward",
    "weight_norm_backward",
    "centered_weight_norm_forward",
    "centered_weight_norm_backward",
]


def _check_inputs(func: str, v, g, eps) -> None:
    check_float_array(func, "v", v, min_ndim=2)
    check_float_array(func, "g", g)
    check_same_dtype(func, v=v, g=g)
    check_shape(func, "g", g, (v.shape[0],))
    check_finite(func, "v", v)
    check_finite(func, "g", g)
    check_scalar(func, "eps", eps, low=0.0)


def _direction(func: str, rows: np.ndarray, g: np.ndarray, eps: float, zero_rows, what: str):
    """Return ``(w_rows, norm)`` with ``norm = sqrt(sum(rows**2) + eps)`` per row."""
    norm = np.sqrt(np.sum(rows * rows, axis=1) + eps)
    if eps == 0 and np.any(zero_rows):
        bad = np.flatnonzero(zero_rows).tolist()
        raise ValueError(
            f"{func}: every row of v must have a nonzero {what} (or pass eps > 0), "
            f"got zero norm in rows {bad}"
        )
    w_rows = rows * (g / norm)[:, None]
    return w_rows, norm


def weight_norm_forward(v, g, *, eps=0.0):
    r"""Weight normalization: each output unit's weight vector is ``g_i`` times a unit direction.

    .. math::

        w_i = g_i \, \frac{v_i}{\lVert v_i \rVert},
        \qquad \lVert v_i \rVert = \sqrt{\textstyle\sum_j v_{ij}^2 + \epsilon}

    Parameters
    ----------
    v : ndarray, shape (out_features, in_features) or (out_channels, *)
        Direction parameter. Row ``v[i]`` (all axes after the first) is one output unit.
    g : ndarray, shape (out_features,)
        Length parameter, same dtype as ``v``.
    eps : float, default 0.0
        Added under the square root. With ``eps=0`` an all-zero row raises ``ValueError``.

    Returns
    -------
    w : ndarray, same shape and dtype as ``v``
        The effective weight, with :math:`\lVert w_i \rVert = |g_i|` when ``eps=0``.
    cache : tuple
        What :func:`weight_norm_backward` needs.

    Notes
    -----
    PyTorch's ``torch.nn.utils.parametrizations.weight_norm(module, dim=0)`` computes the same
    weight with ``g`` stored as ``original0`` of shape ``(out, 1, ..., 1)`` and ``v`` as
    ``original1``; it has no ``eps``. The result is invariant to rescaling :math:`v \to a v`,
    :math:`a > 0`.

    Examples
    --------
    >>> import numpy as np
    >>> w, _ = weight_norm_forward(np.array([[3.0, 4.0]]), np.array([2.0]))
    >>> w
    array([[1.2, 1.6]])
    """
    func = "weight_norm_forward"
    _check_inputs(func, v, g, eps)
    rows = v.reshape(v.shape[0], -1)
    zero_rows = ~np.any(rows != 0, axis=1)
    w_rows, norm = _direction(func, rows, g, eps, zero_rows, "norm")
    cache = (rows, g, norm, v.shape)
    return w_rows.reshape(v.shape), cache


def _row_backward(dw_rows, rows, g, norm):
    """Gradients of ``w = g * rows / norm`` with ``norm = sqrt(|rows|^2 + eps)``."""
    proj = np.sum(dw_rows * rows, axis=1)  # <rows_i, dw_i>
    dg = proj / norm
    drows = (g / norm)[:, None] * (dw_rows - rows * (proj / norm**2)[:, None])
    return drows, dg


def weight_norm_backward(dw, cache):
    r"""Backward pass of :func:`weight_norm_forward`.

    With :math:`u_i = v_i / \lVert v_i \rVert`,

    .. math::

        \frac{\partial L}{\partial g_i} = u_i^\top \frac{\partial L}{\partial w_i},
        \qquad
        \frac{\partial L}{\partial v_i} = \frac{g_i}{\lVert v_i \rVert}
        \left(I - u_i u_i^\top\right) \frac{\partial L}{\partial w_i},

    so (for ``eps=0``) the gradient with respect to :math:`v_i` is orthogonal to :math:`v_i`.

    Parameters
    ----------
    dw : ndarray, same shape as ``v``
        Upstream gradient with respect to ``w``.
    cache : tuple
        From :func:`weight_norm_forward`.

    Returns
    -------
    dv : ndarray, same shape as ``v``
    dg : ndarray, shape (out_features,)
    """
    rows, g, norm, shape = cache
    check_float_array("weight_norm_backward", "dw", dw)
    check_shape("weight_norm_backward", "dw", dw, shape)
    drows, dg = _row_backward(dw.reshape(rows.shape), rows, g, norm)
    return drows.reshape(shape), dg


def centered_weight_norm_forward(v, g, *, eps=0.0):
    r"""Centered weight normalization (Huang et al., ICCV 2017).

    Each row is centered, then normalized to length ``g_i``:

    .. math::

        \hat v_i = v_i - \tfrac{1}{D} \mathbf 1 \mathbf 1^\top v_i,
        \qquad
        w_i = g_i \, \frac{\hat v_i}{\lVert \hat v_i \rVert},
        \qquad \lVert \hat v_i \rVert = \sqrt{\textstyle\sum_j \hat v_{ij}^2 + \epsilon}

    where :math:`D` is the number of weights per output unit (``in_features``, or
    ``in_channels * kh * kw`` for a convolution).

    Parameters
    ----------
    v : ndarray, shape (out_features, in_features) or (out_channels, *)
        Proxy parameter. Row ``v[i]`` (all axes after the first) is one output unit.
    g : ndarray, shape (out_features,)
        Length parameter, same dtype as ``v``.
    eps : float, default 0.0
        Added under the square root. With ``eps=0`` a constant row (zero after centering)
        raises ``ValueError``.

    Returns
    -------
    w : ndarray, same shape and dtype as ``v``
        Every row has zero mean and (for ``eps=0``) norm :math:`|g_i|`.
    cache : tuple
        What :func:`centered_weight_norm_backward` needs.

    Notes
    -----
    The paper writes the constraint as :math:`w^\top \mathbf 1 = 0,\ \lVert w \rVert = 1` and
    adds the learnable scale ``g`` afterwards; PyTorch has no built-in equivalent. A row counts
    as constant when its centered norm is at rounding level, ``D * machine_eps * max|v_i|``.

    Examples
    --------
    >>> import numpy as np
    >>> w, _ = centered_weight_norm_forward(np.array([[1.0, 3.0]]), np.array([2.0]))
    >>> w.round(6)
    array([[-1.414214,  1.414214]])
    """
    func = "centered_weight_norm_forward"
    _check_inputs(func, v, g, eps)
    rows = v.reshape(v.shape[0], -1)
    centered = rows - rows.mean(axis=1, keepdims=True)
    scale = np.max(np.abs(rows), axis=1)
    tol = rows.shape[1] * np.finfo(rows.dtype).eps * scale
    zero_rows = np.sqrt(np.sum(centered * centered, axis=1)) <= tol
    w_rows, norm = _direction(func, centered, g, eps, zero_rows, "norm after centering")
    cache = (centered, g, norm, v.shape)
    return w_rows.reshape(v.shape), cache


def centered_weight_norm_backward(dw, cache):
    r"""Backward pass of :func:`centered_weight_norm_forward`.

    With :math:`u_i = \hat v_i / \lVert \hat v_i \rVert` (which has zero mean),

    .. math::

        \frac{\partial L}{\partial g_i} = u_i^\top \frac{\partial L}{\partial w_i},
        \qquad
        \frac{\partial L}{\partial v_i} = \frac{g_i}{\lVert \hat v_i \rVert}
        \left(I - \tfrac{1}{D}\mathbf 1 \mathbf 1^\top - u_i u_i^\top\right)
        \frac{\partial L}{\partial w_i}.

    The gradient with respect to :math:`v_i` has zero mean and (for ``eps=0``) is orthogonal
    to :math:`\hat v_i`.

    Parameters
    ----------
    dw : ndarray, same shape as ``v``
        Upstream gradient with respect to ``w``.
    cache : tuple
        From :func:`centered_weight_norm_forward`.

    Returns
    -------
    dv : ndarray, same shape as ``v``
    dg : ndarray, shape (out_features,)
    """
    centered, g, norm, shape = cache
    check_float_array("centered_weight_norm_backward", "dw", dw)
    check_shape("centered_weight_norm_backward", "dw", dw, shape)
    dcentered, dg = _row_backward(dw.reshape(centered.shape), centered, g, norm)
    dv = dcentered - dcentered.mean(axis=1, keepdims=True)
    return dv.reshape(shape), dg
