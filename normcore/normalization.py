r"""Batch, layer, instance and group normalization: NumPy references that match PyTorch.

Every layer standardizes its input over some set of axes and then applies a learned
per-feature scale and shift:

.. math::

    \hat{x} = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad
    y = \gamma \hat{x} + \beta,

where :math:`\mu` and :math:`\sigma^2` are the mean and the *biased* variance over the
normalized axes. For ``x`` of shape ``(N, C, *spatial)`` the layers differ only in those
axes:

=================  ============================================  ==========================
layer              statistics computed over                      one statistic per
=================  ============================================  ==========================
batch norm         ``N`` and all spatial axes                    channel
layer norm         the trailing ``gamma.ndim`` axes              sample
instance norm      all spatial axes                              sample and channel
group norm         ``C // num_groups`` channels and all spatial  sample and group
=================  ============================================  ==========================

Layer norm over ``(C, *spatial)`` and instance norm are the two ends of group norm:
``num_groups=1`` and ``num_groups=C`` (up to the shape of the affine parameters).

Two variants of batch norm complete the module: batch renormalization
(:func:`batch_renorm_forward`), which corrects the batch statistics towards the running ones,
and batch group normalization (:func:`batch_group_norm_forward`), which computes one statistic
per group of ``C // num_groups`` channels over the batch and all spatial axes.

All four share one centering core (:func:`_center`) that works on a 3-d view
``(A, B, D)`` of the input with one statistic per ``B`` and the reductions over the axes
``A`` and ``D``, and one closed-form backward (:func:`_closed_form_coefficients`).

Numerics: the variance is computed in two passes, never as
:math:`E[x^2] - E[x]^2`, which loses every significant digit when the mean is large
compared with the spread (float32 data around :math:`10^4` with unit variance). The
first pass computes the mean :math:`m`; the second averages the squared deviations
:math:`(x - m)^2` and also the deviations themselves, whose mean :math:`r` is the
rounding error of the first pass. This is the corrected two-pass algorithm:
:math:`\sigma^2 = \overline{(x - m)^2} - r^2` with :math:`r` tiny, and :math:`r` is
removed from the centered data wherever it exceeds the working precision, so that the
normalized values are accurate to working precision even far from zero.

Every forward returns ``(out, cache)`` and every backward ``(dout, cache)`` returns the
gradients in the order of the forward's array inputs. No function modifies its array
arguments, except that :func:`batch_norm_forward` updates ``running_mean`` and
``running_var`` in place when training, like :func:`torch.nn.functional.batch_norm`.
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import check_float_array, check_same_dtype, check_scalar, check_shape

__all__ = [
    "batch_norm_forward",
    "batch_norm_backward",
    "batch_norm_backward_alt",
    "batch_renorm_forward",
    "batch_renorm_backward",
    "layer_norm_forward",
    "layer_norm_backward",
    "instance_norm_forward",
    "instance_norm_backward",
    "group_norm_forward",
    "group_norm_backward",
    "batch_group_norm_forward",
    "batch_group_norm_backward",
    "fold_batch_norm",
]


# --------------------------------------------------------------------------- core


def _sum(a: np.ndarray) -> np.ndarray:
    """Sum of an ``(A, B, D)`` array over axes 0 and 2, shape ``(B,)``."""
    return np.einsum("abd->b", a)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sum(a * b)`` over axes 0 and 2 of two ``(A, B, D)`` arrays, without a temporary."""
    return np.einsum("abd,abd->b", a, b)


def _center(x3: np.ndarray, eps: float):
    """Center an ``(A, B, D)`` array with one mean and variance per index of axis 1.

    Returns ``(xc, mean, var, inv_std)``: the centered data (a fresh array of shape
    ``(A, B, D)``; ``xc * inv_std[:, None]`` is the standardized data), and the per-row
    mean, biased variance and :math:`1/\\sqrt{\\sigma^2+\\epsilon}`, each of shape ``(B,)``.
    """
    count = x3.shape[0] * x3.shape[2]
    mean = _sum(x3) / count
    xc = x3 - mean[:, None]
    var = _dot(xc, xc) / count
    # The centered data still carries the rounding error of the first mean: its mean is
    # not exactly 0 but a tiny residual r. The mean square about the corrected mean is
    # var - r**2 (no cancellation, r is tiny), and r is subtracted from xc wherever it
    # is visible at working precision, i.e. when the data sit far from zero.
    residual = _sum(xc) / count
    mean += residual
    var -= residual**2
    np.maximum(var, 0.0, out=var)
    if np.any(np.abs(residual) > np.finfo(x3.dtype).eps * np.sqrt(var)):
        xc -= residual[:, None]
    inv_std = 1.0 / np.sqrt(var + eps)
    return xc, mean, var, inv_std


def _closed_form_coefficients(sum_g, sum_g_xhat, inv_std, count: int):
    r"""Per-group coefficients of the gradient through standardization.

    For :math:`g = \partial L / \partial \hat{x}` and sums over the ``count`` values of
    one group (one statistic),

    .. math::

        \frac{\partial L}{\partial x} = \frac{1}{\sigma}\Big(g - \operatorname{mean}(g)
            - \hat{x}\,\operatorname{mean}(g\,\hat{x})\Big)
        = \frac{1}{\sigma}\, g + k\,\hat{x} + c,

    with :math:`k = -\operatorname{mean}(g\hat{x}) / \sigma` and
    :math:`c = -\operatorname{mean}(g) / \sigma`, which are returned as ``(k, c)``. Every
    closed-form backward in this module evaluates this expression with the per-group
    factors folded together, so that each full-size array is touched only a few times.
    """
    k = -inv_std * sum_g_xhat / count
    c = -inv_std * sum_g / count
    return k, c


# --------------------------------------------------------------------------- validation


def _spatial_size(shape: tuple) -> int:
    return math.prod(shape[2:])


def _check_x(func: str, x, *, min_ndim: int = 2) -> np.ndarray:
    check_float_array(func, "x", x, min_ndim=min_ndim)
    if x.size == 0:
        raise ValueError(f"{func}: x must not be empty, got shape {x.shape}")
    return x


def _check_channel_params(func: str, x: np.ndarray, **params) -> None:
    """Float arrays of shape ``(C,)`` with the dtype of ``x`` (None entries are skipped)."""
    channels = x.shape[1]
    for name, value in params.items():
        if value is None:
            continue
        check_float_array(func, name, value)
        check_shape(func, name, value, (channels,))
    check_same_dtype(func, x=x, **params)


def _check_eps(func: str, eps) -> float:
    return check_scalar(func, "eps", eps, low=0.0)


def _check_dout(func: str, dout, cache: dict) -> np.ndarray:
    check_float_array(func, "dout", dout)
    check_shape(func, "dout", dout, cache["shape"])
    return dout


def _channel_view(a: np.ndarray) -> np.ndarray:
    """``(N, C, *spatial)`` as ``(N, C, S)``; a view whenever ``a`` is contiguous."""
    return a.reshape(a.shape[0], a.shape[1], -1)


# --------------------------------------------------------------------------- batch norm


def batch_norm_forward(
    x,
    gamma,
    beta,
    running_mean=None,
    running_var=None,
    *,
    training=True,
    momentum=0.1,
    eps=1e-5,
):
    r"""Batch normalization: standardize each channel over the batch and all spatial axes.

    .. math::

        \mu_c = \frac{1}{m}\sum_{n,s} x_{n c s}, \quad
        \sigma_c^2 = \frac{1}{m}\sum_{n,s} (x_{n c s} - \mu_c)^2, \quad
        y_{n c s} = \gamma_c \frac{x_{n c s} - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}} + \beta_c,

    with :math:`m = N \cdot \prod \mathrm{spatial}` values per channel. In evaluation mode
    :math:`\mu` and :math:`\sigma^2` are replaced by ``running_mean`` and ``running_var``.
    While training, the running statistics are updated in place:

    .. math::

        \mathrm{running\_mean} \leftarrow (1 - \mathrm{momentum})\,\mathrm{running\_mean}
            + \mathrm{momentum}\,\mu, \quad
        \mathrm{running\_var} \leftarrow (1 - \mathrm{momentum})\,\mathrm{running\_var}
            + \mathrm{momentum}\,\tfrac{m}{m-1}\sigma^2.

    Parameters
    ----------
    x : ndarray, shape (N, C) or (N, C, *spatial)
        Input, float32 or float64. For a convolutional layer ``(N, C, H, W)``
        ("spatial batch norm"); the statistics are shared by all positions of a channel.
    gamma, beta : ndarray, shape (C,)
        Scale and shift, same dtype as ``x``.
    running_mean, running_var : ndarray, shape (C,), or None
        Running statistics, both given or both None. Updated in place when ``training``;
        used instead of the batch statistics when not training.
    training : bool
        Batch statistics (True) or running statistics (False).
    momentum : float in [0, 1]
        Weight of the current batch in the running averages (PyTorch's convention).
    eps : float >= 0
        Added to the variance for numerical stability.

    Returns
    -------
    out : ndarray, shape of ``x``
    cache : dict
        What :func:`batch_norm_backward` and :func:`batch_norm_backward_alt` need.

    Raises
    ------
    ValueError
        One value per channel while training (:math:`m = 1`), evaluation mode without
        running statistics, only one of the running statistics given, wrong shapes,
        ``momentum`` outside [0, 1] or negative ``eps``.
    TypeError
        Arrays that are not float32/float64 ndarrays, or of mixed dtypes.

    Notes
    -----
    *Momentum convention.* Huang's lecture slides write the running averages as
    :math:`E[x] \leftarrow \beta\,\mu_B + (1 - \beta)\,E[x]` and
    :math:`\mathrm{Var}[x] \leftarrow \beta\,\sigma_B^2 + (1 - \beta)\,\mathrm{Var}[x]`,
    with the weight :math:`\beta` on the *new batch* and no value given: that is PyTorch's
    convention, ``running = (1 - momentum) * running + momentum * batch``, with
    ``momentum`` :math:`= \beta` (default 0.1). The other lecture only says "running
    averages", and the blog notes average :math:`\mu` and the standard deviation
    :math:`\sigma` rather than the variance. Keras and TensorFlow weight the *old* value
    instead (``momentum=0.99`` there is ``momentum=0.01`` here). This momentum is the decay
    of an exponential moving average of statistics, unrelated to the momentum of an
    optimizer (which accumulates gradients into a velocity).

    *Biased and unbiased variance.* The batch is normalized with the biased variance
    (divide by :math:`m`), as in the original algorithm, while ``running_var``
    accumulates the unbiased estimate (divide by :math:`m - 1`), as PyTorch does, which is
    why training needs more than one value per channel.
    """
    func = "batch_norm_forward"
    _check_x(func, x)
    _check_channel_params(
        func, x, gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var
    )
    if (running_mean is None) != (running_var is None):
        given = "running_mean" if running_var is None else "running_var"
        raise ValueError(
            f"{func}: running_mean and running_var must both be arrays or both be None, "
            f"got only {given}"
        )
    if not isinstance(training, bool | np.bool_):
        raise TypeError(f"{func}: training must be a bool, got {training!r}")
    check_scalar(func, "momentum", momentum, low=0.0, high=1.0)
    _check_eps(func, eps)

    x3 = _channel_view(x)
    count = x3.shape[0] * x3.shape[2]
    if training:
        if count == 1:
            raise ValueError(
                f"{func}: expected more than 1 value per channel when training, "
                f"got input of shape {x.shape}"
            )
        xc, mean, var, inv_std = _center(x3, eps)
        if running_mean is not None:
            running_mean *= 1.0 - momentum
            running_mean += momentum * mean
            running_var *= 1.0 - momentum
            running_var += (momentum * count / (count - 1)) * var
    else:
        if running_mean is None:
            raise ValueError(
                f"{func}: evaluation mode (training=False) needs running_mean and "
                f"running_var, got None"
            )
        inv_std = 1.0 / np.sqrt(running_var + eps)
        xc = x3 - running_mean[:, None]

    # gamma * xhat + beta with xhat = xc * inv_std, the two per-channel factors combined
    out = xc * (gamma * inv_std)[:, None]
    out += beta[:, None]
    cache = {
        "training": bool(training),
        "shape": x.shape,
        "xc": xc,
        "inv_std": inv_std,
        "gamma": gamma,
    }
    return out.reshape(x.shape), cache


def batch_norm_backward(dout, cache):
    r"""Backward of :func:`batch_norm_forward`, stage by stage through the computational graph.

    The forward is the chain :math:`\mu \to x_c = x - \mu \to \sigma^2 = \overline{x_c^2}
    \to q = (\sigma^2 + \epsilon)^{-1/2} \to \hat{x} = x_c q \to y = \gamma\hat{x} + \beta`;
    going back through it, with sums over the batch and spatial axes of one channel,

    .. math::

        \frac{\partial L}{\partial \beta} = \sum \delta, \quad
        \frac{\partial L}{\partial \gamma} = \sum \delta\,\hat{x}, \quad
        \frac{\partial L}{\partial \sigma^2} = -\tfrac{1}{2}\, q^3
            \sum \gamma\,\delta\, x_c, \\
        \frac{\partial L}{\partial \mu} = -q \sum \gamma\,\delta
            - \frac{2}{m} \frac{\partial L}{\partial \sigma^2} \sum x_c, \quad
        \frac{\partial L}{\partial x} = \gamma\,\delta\, q
            + \frac{2}{m} \frac{\partial L}{\partial \sigma^2}\, x_c
            + \frac{1}{m} \frac{\partial L}{\partial \mu},

    where :math:`\delta` is ``dout``. Each stage is one vectorized expression per channel;
    the full-size arrays are touched only to form the two sums and the final ``dx``. In
    evaluation mode the statistics are constants and
    :math:`\partial L / \partial x = \gamma\,\delta\,q`.

    Parameters
    ----------
    dout : ndarray, shape of ``x``
        Upstream gradient.
    cache : dict
        From :func:`batch_norm_forward`.

    Returns
    -------
    dx : ndarray, shape of ``x``
    dgamma, dbeta : ndarray, shape (C,)

    See Also
    --------
    batch_norm_backward_alt : the same gradient from the simplified closed form.
    """
    _check_dout("batch_norm_backward", dout, cache)
    d3 = _channel_view(dout)
    xc, inv_std, gamma = cache["xc"], cache["inv_std"], cache["gamma"]
    count = d3.shape[0] * d3.shape[2]

    # out = gamma * xhat + beta, and xhat = xc * inv_std with inv_std constant per channel.
    dbeta = _sum(d3)
    dout_xc = _dot(d3, xc)
    dgamma = dout_xc * inv_std
    if not cache["training"]:
        dx = d3 * (gamma * inv_std)[:, None]
        return dx.reshape(cache["shape"]), dgamma, dbeta

    # dxhat = gamma * dout; d inv_std = sum(dxhat * xc); inv_std = (var + eps)^(-1/2)
    dinv_std = gamma * dout_xc
    dvar = -0.5 * inv_std**3 * dinv_std
    # var = mean(xc**2); xc = x - mu; mu = mean(x). sum(xc) vanishes in exact arithmetic.
    dmu = -inv_std * gamma * dbeta - (2.0 / count) * dvar * _sum(xc)
    dx = d3 * (gamma * inv_std)[:, None]
    dx += xc * ((2.0 / count) * dvar)[:, None]
    dx += (dmu / count)[:, None]
    return dx.reshape(cache["shape"]), dgamma, dbeta


def batch_norm_backward_alt(dout, cache):
    r"""Backward of :func:`batch_norm_forward` from the closed form derived on paper.

    Simplifying the staged gradient of :func:`batch_norm_backward` gives, per channel with
    :math:`m` values and :math:`\sigma = \sqrt{\sigma^2 + \epsilon}`,

    .. math::

        \frac{\partial L}{\partial x} = \frac{\gamma}{m\,\sigma}\Big(
            m\,\delta - \sum \delta - \hat{x} \sum \delta\,\hat{x}\Big)
        = \frac{\gamma}{m\,\sigma}\Big(m\,\delta - \frac{\partial L}{\partial \beta}
            - \hat{x}\,\frac{\partial L}{\partial \gamma}\Big).

    It needs two reductions and no intermediate per-stage gradients. The cache holds
    :math:`x - \mu`; the factor :math:`1/\sigma` that turns it into :math:`\hat{x}` is
    folded into the per-channel coefficients. In evaluation mode the gradient is
    :math:`\gamma\,\delta / \sigma`, as in :func:`batch_norm_backward`.

    Parameters
    ----------
    dout : ndarray, shape of ``x``
    cache : dict
        From :func:`batch_norm_forward`.

    Returns
    -------
    dx : ndarray, shape of ``x``
    dgamma, dbeta : ndarray, shape (C,)
    """
    _check_dout("batch_norm_backward_alt", dout, cache)
    d3 = _channel_view(dout)
    xc, inv_std, gamma = cache["xc"], cache["inv_std"], cache["gamma"]
    count = d3.shape[0] * d3.shape[2]

    dbeta = _sum(d3)
    dgamma = _dot(d3, xc) * inv_std
    dx = d3 * (gamma * inv_std)[:, None]
    if cache["training"]:
        # g = gamma * dout, so sum(g) = gamma * dbeta and sum(g * xhat) = gamma * dgamma
        k, c = _closed_form_coefficients(gamma * dbeta, gamma * dgamma, inv_std, count)
        dx += xc * (k * inv_std)[:, None]  # xhat = xc * inv_std
        dx += c[:, None]
    return dx.reshape(cache["shape"]), dgamma, dbeta


# --------------------------------------------------------------------------- batch renorm


def batch_renorm_forward(
    x,
    gamma,
    beta,
    running_mean,
    running_var,
    *,
    training=True,
    momentum=0.1,
    eps=1e-5,
    rmax=3.0,
    dmax=5.0,
):
    r"""Batch renormalization (Ioffe, 2017): batch norm corrected towards the running statistics.

    With the batch statistics :math:`\mu_B`, :math:`\sigma_B = \sqrt{\sigma_B^2 + \epsilon}`
    of each channel (as in :func:`batch_norm_forward`) and the running ones
    :math:`\mu`, :math:`\sigma = \sqrt{\mathrm{running\_var} + \epsilon}`,

    .. math::

        r = \operatorname{clip}_{[1/r_{\max},\, r_{\max}]}\Big(\frac{\sigma_B}{\sigma}\Big),
        \quad
        d = \operatorname{clip}_{[-d_{\max},\, d_{\max}]}\Big(\frac{\mu_B - \mu}{\sigma}\Big),
        \quad
        \hat{x} = \frac{x - \mu_B}{\sigma_B}\, r + d, \quad
        y = \gamma \hat{x} + \beta,

    where :math:`r` and :math:`d` are treated as constants by the backward pass (a
    stop-gradient). When no clipping happens, :math:`\hat{x} = (x - \mu)/\sigma`: the
    training-mode output equals the evaluation-mode output, yet the gradient still flows
    through the batch statistics as in batch norm. With :math:`r_{\max} = 1`,
    :math:`d_{\max} = 0` it is batch norm. The running statistics are updated in place after
    :math:`r` and :math:`d` are computed, exactly as in :func:`batch_norm_forward`; in
    evaluation mode the layer is batch norm's evaluation mode.

    Parameters
    ----------
    x : ndarray, shape (N, C) or (N, C, *spatial)
        Input, float32 or float64.
    gamma, beta : ndarray, shape (C,)
        Scale and shift, same dtype as ``x``.
    running_mean, running_var : ndarray, shape (C,)
        Running statistics (required: the correction is relative to them). Updated in place
        when ``training``.
    training : bool
        Renormalized batch statistics (True) or running statistics (False).
    momentum : float in [0, 1]
        Weight of the current batch in the running averages (PyTorch's convention).
    eps : float >= 0
        Added to the variances.
    rmax : float >= 1
        Clipping bound of :math:`r`.
    dmax : float >= 0
        Clipping bound of :math:`d`.

    Returns
    -------
    out : ndarray, shape of ``x``
    cache : dict
        What :func:`batch_renorm_backward` needs; ``cache["r"]`` and ``cache["d"]`` hold the
        corrections of each channel (ones and zeros in evaluation mode).

    Raises
    ------
    ValueError
        One value per channel while training, wrong shapes, ``momentum`` outside [0, 1],
        negative ``eps`` or ``dmax``, ``rmax < 1``.
    TypeError
        Arrays that are not float32/float64 ndarrays, or of mixed dtypes.

    Notes
    -----
    The paper keeps a moving average of :math:`\sigma` and updates
    :math:`\mu \leftarrow \mu + \alpha(\mu_B - \mu)`; here the running *variance* is
    averaged as in PyTorch's batch norm (unbiased, ``momentum`` :math:`= \alpha`), so that a
    trained layer has the same buffers as ``torch.nn.BatchNorm*d`` and can be folded with
    :func:`fold_batch_norm`. The paper starts with :math:`r_{\max} = 1, d_{\max} = 0` and
    relaxes them to :math:`3` and :math:`5`, the defaults here.
    """
    func = "batch_renorm_forward"
    _check_x(func, x)
    if running_mean is None or running_var is None:
        raise ValueError(f"{func}: running_mean and running_var are required, got None")
    _check_channel_params(
        func, x, gamma=gamma, beta=beta, running_mean=running_mean, running_var=running_var
    )
    if not isinstance(training, bool | np.bool_):
        raise TypeError(f"{func}: training must be a bool, got {training!r}")
    check_scalar(func, "momentum", momentum, low=0.0, high=1.0)
    _check_eps(func, eps)
    check_scalar(func, "rmax", rmax, low=1.0)
    check_scalar(func, "dmax", dmax, low=0.0)

    x3 = _channel_view(x)
    count = x3.shape[0] * x3.shape[2]
    run_std = np.sqrt(running_var + eps)
    if not training:
        out, cache = batch_norm_forward(
            x, gamma, beta, running_mean, running_var, training=False, eps=eps
        )
        cache.update(renorm=True, r=np.ones_like(gamma), d=np.zeros_like(gamma))
        return out, cache
    if count == 1:
        raise ValueError(
            f"{func}: expected more than 1 value per channel when training, "
            f"got input of shape {x.shape}"
        )
    xc, mean, var, inv_std = _center(x3, eps)
    r = np.clip(np.sqrt(var + eps) / run_std, 1.0 / rmax, rmax).astype(x.dtype, copy=False)
    d = np.clip((mean - running_mean) / run_std, -dmax, dmax).astype(x.dtype, copy=False)
    running_mean *= 1.0 - momentum
    running_mean += momentum * mean
    running_var *= 1.0 - momentum
    running_var += (momentum * count / (count - 1)) * var

    # y = gamma * (xc * inv_std * r + d) + beta, the per-channel factors combined
    out = xc * (gamma * inv_std * r)[:, None]
    out += (gamma * d + beta)[:, None]
    cache = {
        "training": True,
        "renorm": True,
        "shape": x.shape,
        "xc": xc,
        "inv_std": inv_std,
        "gamma": gamma,
        "r": r,
        "d": d,
    }
    return out.reshape(x.shape), cache


def batch_renorm_backward(dout, cache):
    r"""Backward of :func:`batch_renorm_forward`, with :math:`r` and :math:`d` held constant.

    With :math:`\hat{x}_B = (x - \mu_B)/\sigma_B`, :math:`\hat{x} = r\hat{x}_B + d` and
    :math:`g = \gamma\, r\, \delta`, sums over the batch and spatial axes of a channel,

    .. math::

        \frac{\partial L}{\partial \beta} = \sum \delta, \quad
        \frac{\partial L}{\partial \gamma} = \sum \delta\,\hat{x}, \quad
        \frac{\partial L}{\partial x} = \frac{1}{\sigma_B}\Big(g - \operatorname{mean}(g)
            - \hat{x}_B\,\operatorname{mean}(g\,\hat{x}_B)\Big):

    batch norm's closed-form backward with the upstream gradient scaled by :math:`r`. In
    evaluation mode :math:`\partial L/\partial x = \gamma\,\delta/\sigma`.

    Parameters
    ----------
    dout : ndarray, shape of ``x``
    cache : dict
        From :func:`batch_renorm_forward`.

    Returns
    -------
    dx : ndarray, shape of ``x``
    dgamma, dbeta : ndarray, shape (C,)
    """
    func = "batch_renorm_backward"
    if not isinstance(cache, dict) or not cache.get("renorm"):
        raise ValueError(f"{func}: cache must come from batch_renorm_forward")
    _check_dout(func, dout, cache)
    if not cache["training"]:
        return batch_norm_backward_alt(dout, cache)
    d3 = _channel_view(dout)
    xc, inv_std, gamma = cache["xc"], cache["inv_std"], cache["gamma"]
    r, d = cache["r"], cache["d"]
    count = d3.shape[0] * d3.shape[2]

    dbeta = _sum(d3)
    dout_xhat_b = _dot(d3, xc) * inv_std          # sum(dout * xhat_B)
    dgamma = r * dout_xhat_b + d * dbeta          # xhat = r * xhat_B + d
    scale = gamma * r                             # g = scale * dout
    k, c = _closed_form_coefficients(scale * dbeta, scale * dout_xhat_b, inv_std, count)
    dx = d3 * (scale * inv_std)[:, None]
    dx += xc * (k * inv_std)[:, None]
    dx += c[:, None]
    return dx.reshape(cache["shape"]), dgamma, dbeta


# --------------------------------------------------------------------------- layer norm


def layer_norm_forward(x, gamma, beta, *, eps=1e-5):
    r"""Layer normalization: standardize each sample over its trailing ``gamma.ndim`` axes.

    .. math::

        \mu_n = \frac{1}{M}\sum_{j} x_{n j}, \quad
        \sigma_n^2 = \frac{1}{M}\sum_{j} (x_{n j} - \mu_n)^2, \quad
        y_{n j} = \gamma_j \frac{x_{n j} - \mu_n}{\sqrt{\sigma_n^2 + \epsilon}} + \beta_j,

    where :math:`j` runs over the :math:`M` elements of the normalized trailing shape and
    :math:`n` over all leading positions. Statistics do not depend on the batch, so
    training and evaluation compute the same thing.

    Parameters
    ----------
    x : ndarray, shape (N, ..., *normalized_shape)
        Input, float32 or float64, at least 2 dimensions.
    gamma, beta : ndarray, shape normalized_shape
        Elementwise scale and shift; ``gamma.shape`` must be a suffix of ``x.shape``
        (PyTorch's ``normalized_shape``).
    eps : float >= 0

    Returns
    -------
    out : ndarray, shape of ``x``
    cache : dict

    Notes
    -----
    For ``x`` of shape ``(N, C, *spatial)`` and ``normalized_shape = (C, *spatial)`` this is
    :func:`group_norm_forward` with ``num_groups=1``, except that group norm has one scale
    per channel while layer norm has one per element.
    """
    func = "layer_norm_forward"
    _check_x(func, x)
    check_float_array(func, "gamma", gamma, min_ndim=1)
    check_float_array(func, "beta", beta)
    check_same_dtype(func, x=x, gamma=gamma, beta=beta)
    k = gamma.ndim
    if k > x.ndim or x.shape[x.ndim - k :] != gamma.shape:
        raise ValueError(
            f"{func}: gamma.shape must be a suffix of x.shape (normalized_shape), "
            f"got gamma.shape={gamma.shape} and x.shape={x.shape}"
        )
    check_shape(func, "beta", beta, gamma.shape)
    _check_eps(func, eps)

    size = gamma.size
    x2 = x.reshape(-1, size)
    xc, _, _, inv_std = _center(x2[None], eps)
    xhat = xc[0]
    xhat *= inv_std[:, None]
    out = xhat * gamma.reshape(size)
    out += beta.reshape(size)
    cache = {"shape": x.shape, "xhat": xhat, "inv_std": inv_std, "gamma": gamma}
    return out.reshape(x.shape), cache


def layer_norm_backward(dout, cache):
    r"""Backward of :func:`layer_norm_forward`.

    With :math:`g = \gamma\,\delta` and means over the normalized elements of one sample,

    .. math::

        \frac{\partial L}{\partial x} = \frac{1}{\sigma}\big(g - \bar{g}
            - \hat{x}\,\overline{g\hat{x}}\big), \quad
        \frac{\partial L}{\partial \gamma} = \sum_n \delta\,\hat{x}, \quad
        \frac{\partial L}{\partial \beta} = \sum_n \delta.

    Parameters
    ----------
    dout : ndarray, shape of ``x``
    cache : dict
        From :func:`layer_norm_forward`.

    Returns
    -------
    dx : ndarray, shape of ``x``
    dgamma, dbeta : ndarray, shape of ``gamma``
    """
    _check_dout("layer_norm_backward", dout, cache)
    xhat, inv_std, gamma = cache["xhat"], cache["inv_std"], cache["gamma"]
    d2 = dout.reshape(xhat.shape)
    dgamma = np.einsum("pm,pm->m", d2, xhat).reshape(gamma.shape)
    dbeta = np.einsum("pm->m", d2).reshape(gamma.shape)
    dx = d2 * gamma.reshape(-1)  # g = dL/dxhat, overwritten by dL/dx
    k, c = _closed_form_coefficients(_sum(dx[None]), _dot(dx[None], xhat[None]), inv_std,
                                     xhat.shape[1])
    dx *= inv_std[:, None]
    dx += xhat * k[:, None]
    dx += c[:, None]
    return dx.reshape(cache["shape"]), dgamma, dbeta


# ------------------------------------------------------------------- group / instance norm


def _grouped_forward(x, num_groups: int, gamma, beta, eps):
    """Group norm on the view ``(N, G, C // G, S)``: statistics per sample and group."""
    n, c = x.shape[:2]
    xc, _, _, inv_std = _center(x.reshape(1, n * num_groups, -1), eps)
    xc = xc.reshape(n, num_groups, c // num_groups, -1)
    inv_std = inv_std.reshape(n, num_groups)
    gamma2 = gamma.reshape(num_groups, -1)
    # gamma * xhat + beta with xhat = xc * inv_std: one factor per (sample, channel)
    out = xc * (inv_std[:, :, None] * gamma2)[..., None]
    out += beta.reshape(num_groups, -1, 1)
    cache = {"shape": x.shape, "xc": xc, "inv_std": inv_std, "gamma": gamma2}
    return out.reshape(x.shape), cache


def _grouped_backward(dout, cache):
    xc, inv_std, gamma2 = cache["xc"], cache["inv_std"], cache["gamma"]
    d4 = dout.reshape(xc.shape)
    # per (sample, channel): sum_s dout * xc and sum_s dout
    dout_xc = np.einsum("ngcs,ngcs->ngc", d4, xc)
    dout_sum = np.einsum("ngcs->ngc", d4)
    dgamma = np.einsum("ngc,ng->gc", dout_xc, inv_std).reshape(-1)
    dbeta = dout_sum.sum(axis=0).reshape(-1)
    # g = gamma * dout summed over each group: sum(g) and sum(g * xhat)
    sum_g = np.einsum("ngc,gc->ng", dout_sum, gamma2)
    sum_g_xhat = np.einsum("ngc,gc->ng", dout_xc, gamma2) * inv_std
    k, c = _closed_form_coefficients(sum_g, sum_g_xhat, inv_std, xc.shape[2] * xc.shape[3])
    dx = d4 * (inv_std[:, :, None] * gamma2)[..., None]
    dx += xc * (k * inv_std)[:, :, None, None]  # xhat = xc * inv_std
    dx += c[:, :, None, None]
    return dx.reshape(cache["shape"]), dgamma, dbeta


def group_norm_forward(x, num_groups, gamma, beta, *, eps=1e-5):
    r"""Group normalization: standardize each sample over groups of consecutive channels.

    The ``C`` channels are split into ``G = num_groups`` groups of ``C // G`` consecutive
    channels; for sample :math:`n` and group :math:`g` with the set :math:`S_g` of its
    :math:`M = (C/G)\prod\mathrm{spatial}` elements,

    .. math::

        \mu_{n g} = \frac{1}{M}\sum_{(c, s) \in S_g} x_{n c s}, \quad
        \sigma_{n g}^2 = \frac{1}{M}\sum_{(c, s) \in S_g} (x_{n c s} - \mu_{n g})^2, \quad
        y_{n c s} = \gamma_c \frac{x_{n c s} - \mu_{n g}}{\sqrt{\sigma_{n g}^2 + \epsilon}}
            + \beta_c.

    Parameters
    ----------
    x : ndarray, shape (N, C) or (N, C, *spatial)
    num_groups : int
        Must divide ``C``.
    gamma, beta : ndarray, shape (C,)
        Per-channel scale and shift.
    eps : float >= 0

    Returns
    -------
    out : ndarray, shape of ``x``
    cache : dict

    Notes
    -----
    ``num_groups=1`` is layer norm over ``(C, *spatial)`` and ``num_groups=C`` is instance
    norm; both keep the per-channel ``gamma`` and ``beta`` of group norm. Matches
    :func:`torch.nn.functional.group_norm`.
    """
    func = "group_norm_forward"
    _check_x(func, x)
    check_scalar(func, "num_groups", num_groups, low=1, integer=True)
    _check_channel_params(func, x, gamma=gamma, beta=beta)
    if x.shape[1] % num_groups != 0:
        raise ValueError(f"{func}: num_groups={num_groups} does not divide C={x.shape[1]}")
    _check_eps(func, eps)
    return _grouped_forward(x, int(num_groups), gamma, beta, eps)


def group_norm_backward(dout, cache):
    r"""Backward of :func:`group_norm_forward`.

    With :math:`g = \gamma_c\,\delta` and means over the elements of one group of one sample,

    .. math::

        \frac{\partial L}{\partial x} = \frac{1}{\sigma}\big(g - \bar{g}
            - \hat{x}\,\overline{g\hat{x}}\big), \quad
        \frac{\partial L}{\partial \gamma_c} = \sum_{n, s} \delta\,\hat{x}, \quad
        \frac{\partial L}{\partial \beta_c} = \sum_{n, s} \delta.

    Parameters
    ----------
    dout : ndarray, shape of ``x``
    cache : dict
        From :func:`group_norm_forward`.

    Returns
    -------
    dx : ndarray, shape of ``x``
    dgamma, dbeta : ndarray, shape (C,)
    """
    _check_dout("group_norm_backward", dout, cache)
    return _grouped_backward(dout, cache)


def instance_norm_forward(x, gamma, beta, *, eps=1e-5):
    r"""Instance normalization: standardize each channel of each sample over its spatial axes.

    .. math::

        \mu_{n c} = \frac{1}{S}\sum_{s} x_{n c s}, \quad
        \sigma_{n c}^2 = \frac{1}{S}\sum_{s} (x_{n c s} - \mu_{n c})^2, \quad
        y_{n c s} = \gamma_c \frac{x_{n c s} - \mu_{n c}}{\sqrt{\sigma_{n c}^2 + \epsilon}}
            + \beta_c,

    with :math:`S = \prod \mathrm{spatial}`. Equals :func:`group_norm_forward` with
    ``num_groups=C``, and :func:`torch.nn.functional.instance_norm` with ``weight`` and
    ``bias`` and no running statistics.

    Parameters
    ----------
    x : ndarray, shape (N, C, *spatial)
        At least one spatial axis and more than one spatial element.
    gamma, beta : ndarray, shape (C,)
    eps : float >= 0

    Returns
    -------
    out : ndarray, shape of ``x``
    cache : dict
    """
    func = "instance_norm_forward"
    _check_x(func, x, min_ndim=3)
    _check_channel_params(func, x, gamma=gamma, beta=beta)
    if _spatial_size(x.shape) == 1:
        raise ValueError(
            f"{func}: expected more than 1 spatial element per channel, got input of "
            f"shape {x.shape}"
        )
    _check_eps(func, eps)
    return _grouped_forward(x, x.shape[1], gamma, beta, eps)


def instance_norm_backward(dout, cache):
    r"""Backward of :func:`instance_norm_forward` (group norm with one channel per group).

    Parameters
    ----------
    dout : ndarray, shape of ``x``
    cache : dict
        From :func:`instance_norm_forward`.

    Returns
    -------
    dx : ndarray, shape of ``x``
    dgamma, dbeta : ndarray, shape (C,)
    """
    _check_dout("instance_norm_backward", dout, cache)
    return _grouped_backward(dout, cache)


# --------------------------------------------------------------------------- batch group norm


def batch_group_norm_forward(x, num_groups, gamma, beta, *, eps=1e-5):
    r"""Batch group normalization (Zhou et al., 2020): statistics over the batch *and* a group.

    The channels are split into ``num_groups`` groups of :math:`C/G` channels, as in group
    norm, but each group's mean and variance are taken over all samples of the batch as well:

    .. math::

        \mu_g = \frac{1}{m}\sum_{n,\, c \in g,\, s} x_{n c s}, \quad
        \sigma_g^2 = \frac{1}{m}\sum_{n,\, c \in g,\, s} (x_{n c s} - \mu_g)^2, \quad
        y_{n c s} = \gamma_c \frac{x_{n c s} - \mu_{g(c)}}{\sqrt{\sigma_{g(c)}^2 + \epsilon}}
            + \beta_c,

    with :math:`m = N (C/G) \prod \mathrm{spatial}`. ``num_groups = C`` is batch norm; with
    ``N = 1`` it is group norm. Fewer groups give each statistic more values, which is how
    BGN keeps the statistics reliable when the batch is small. (The paper estimates running
    averages for inference, as batch norm does; this reference computes the training-mode
    statistics.)

    Parameters
    ----------
    x : ndarray, shape (N, C) or (N, C, *spatial)
    num_groups : int
        Divides ``C``.
    gamma, beta : ndarray, shape (C,)
    eps : float >= 0

    Returns
    -------
    out : ndarray, shape of ``x``
    cache : dict
    """
    func = "batch_group_norm_forward"
    _check_x(func, x)
    _check_channel_params(func, x, gamma=gamma, beta=beta)
    check_scalar(func, "num_groups", num_groups, low=1, integer=True)
    channels = x.shape[1]
    if channels % num_groups:
        raise ValueError(f"{func}: num_groups={num_groups} does not divide C={channels}")
    _check_eps(func, eps)
    n = x.shape[0]
    x3 = x.reshape(n, num_groups, -1)                       # (N, G, C/G * S)
    if x3.shape[0] * x3.shape[2] == 1:
        raise ValueError(f"{func}: expected more than 1 value per group, got input of shape "
                         f"{x.shape} with num_groups={num_groups}")
    xc, _, _, inv_std = _center(x3, eps)
    xc = xc.reshape(n, num_groups, channels // num_groups, -1)
    gamma2 = gamma.reshape(num_groups, -1)
    out = xc * (inv_std[:, None] * gamma2)[None, :, :, None]
    out += beta.reshape(1, num_groups, -1, 1)
    cache = {"shape": x.shape, "xc": xc, "inv_std": inv_std, "gamma": gamma2,
             "batch_group": True}
    return out.reshape(x.shape), cache


def batch_group_norm_backward(dout, cache):
    r"""Backward of :func:`batch_group_norm_forward`: batch norm's closed form per group.

    With :math:`g = \gamma\,\delta` and sums over the :math:`m` values of group :math:`g`
    (all samples, the group's channels and positions),
    :math:`\partial L / \partial x = \frac{1}{\sigma}\big(g - \operatorname{mean}(g)
    - \hat{x}\,\operatorname{mean}(g\,\hat{x})\big)`.

    Returns
    -------
    dx : ndarray, shape of ``x``
    dgamma, dbeta : ndarray, shape (C,)
    """
    func = "batch_group_norm_backward"
    if not isinstance(cache, dict) or not cache.get("batch_group"):
        raise ValueError(f"{func}: cache must come from batch_group_norm_forward")
    _check_dout(func, dout, cache)
    xc, inv_std, gamma2 = cache["xc"], cache["inv_std"], cache["gamma"]
    d4 = dout.reshape(xc.shape)                              # (N, G, C/G, S)
    dout_xc = np.einsum("ngcs,ngcs->gc", d4, xc)
    dout_sum = np.einsum("ngcs->gc", d4)
    dgamma = (dout_xc * inv_std[:, None]).reshape(-1)
    dbeta = dout_sum.reshape(-1)
    sum_g = (dout_sum * gamma2).sum(axis=1)
    sum_g_xhat = (dout_xc * gamma2).sum(axis=1) * inv_std
    count = xc.shape[0] * xc.shape[2] * xc.shape[3]
    k, c = _closed_form_coefficients(sum_g, sum_g_xhat, inv_std, count)
    dx = d4 * (inv_std[:, None] * gamma2)[None, :, :, None]
    dx += xc * (k * inv_std)[None, :, None, None]
    dx += c[None, :, None, None]
    return dx.reshape(cache["shape"]), dgamma, dbeta


# --------------------------------------------------------------------------- folding


def fold_batch_norm(weight, bias, gamma, beta, running_mean, running_var, *, eps=1e-5):
    r"""Fold an evaluation-mode batch norm into the linear or convolution layer before it.

    In evaluation mode batch norm is an affine map per output channel, so
    ``bn(conv(x; W, b))`` equals a single ``conv(x; W', b')`` with

    .. math::

        s_o = \frac{\gamma_o}{\sqrt{\mathrm{running\_var}_o + \epsilon}}, \quad
        W'_{o\ldots} = s_o W_{o\ldots}, \quad
        b'_o = s_o\,(b_o - \mathrm{running\_mean}_o) + \beta_o.

    This is the structural re-parameterization behind RepVGG: train with batch norm,
    deploy a plain convolution.

    Parameters
    ----------
    weight : ndarray, shape (out, in) or (out, in, *kernel)
        Weight of a linear layer or of a convolution of any dimension.
    bias : ndarray, shape (out,), or None
        None means no bias (zero).
    gamma, beta, running_mean, running_var : ndarray, shape (out,)
        The batch norm's parameters and running statistics.
    eps : float >= 0
        The batch norm's ``eps``.

    Returns
    -------
    folded_weight : ndarray, shape of ``weight``
    folded_bias : ndarray, shape (out,)
    """
    func = "fold_batch_norm"
    check_float_array(func, "weight", weight, min_ndim=2)
    out_features = weight.shape[0]
    arrays = {
        "bias": bias,
        "gamma": gamma,
        "beta": beta,
        "running_mean": running_mean,
        "running_var": running_var,
    }
    for name, value in arrays.items():
        if value is None and name == "bias":
            continue
        check_float_array(func, name, value)
        check_shape(func, name, value, (out_features,))
    check_same_dtype(func, weight=weight, **arrays)
    _check_eps(func, eps)

    scale = gamma / np.sqrt(running_var + eps)
    folded_weight = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    centered_bias = -running_mean if bias is None else bias - running_mean
    folded_bias = centered_bias * scale + beta
    return folded_weight, folded_bias
