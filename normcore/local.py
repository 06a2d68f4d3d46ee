r"""Local normalization of images and feature maps: LRN, local contrast and divisive normalization.

Before batch normalization, convolutional networks normalized each position by statistics of
its *neighbourhood*, across channels or across space, computed on the example itself:

* **local response normalization** (LRN, AlexNet): each activation is divided by the energy of
  the same position in neighbouring channels (:func:`local_response_norm_forward`, with its
  backward; PyTorch's ``torch.nn.functional.local_response_norm``);
* **local contrast normalization** (LCN, Jarrett et al. 2009; Pinto et al. 2008): subtract a
  Gaussian-weighted local mean (over space and all channels), then divide by the local standard
  deviation, but never by less than its mean over the image (:func:`local_contrast_norm`);
* **divisive normalization** (Heeger 1992; Lyu & Simoncelli 2008): divide by the root of a
  constant plus the local energy, a soft version of the divisive step
  (:func:`divisive_norm`).

Images and feature maps have shape ``(N, C, H, W)``; float32 or float64, and the output has the
input's dtype. Spatial windows are separable Gaussians normalized to sum 1, with reflected
borders (so a constant image has local mean equal to itself everywhere, also at the border).
"""

from __future__ import annotations

import numbers

import numpy as np

from ._checks import check_finite, check_float_array, check_scalar

__all__ = [
    "divisive_norm",
    "gaussian_window",
    "local_contrast_norm",
    "local_mean",
    "local_response_norm_backward",
    "local_response_norm_forward",
    "local_std",
]


# ----------------------------------------------------------------------------- checks


def _check_images(func: str, x) -> np.ndarray:
    check_float_array(func, "x", x, ndim=4)
    if min(x.shape) < 1:
        raise ValueError(f"{func}: x must have shape (N, C, H, W) with every size >= 1, "
                         f"got {x.shape}")
    check_finite(func, "x", x)
    return x


def _check_kernel(func: str, kernel_size, sigma) -> tuple[int, float]:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, numbers.Integral):
        raise TypeError(f"{func}: kernel_size must be an int, got {kernel_size!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"{func}: kernel_size must be a positive odd int, got {kernel_size}")
    sigma = float(check_scalar(func, "sigma", sigma, low=0.0, low_inclusive=False))
    return int(kernel_size), sigma


# ----------------------------------------------------------------------------- LRN


def _channel_window_sum(a: np.ndarray, before: int, after: int) -> np.ndarray:
    """out[:, c] = sum of a[:, c - before : c + after + 1] (zero outside the channels)."""
    C = a.shape[1]
    pad = [(0, 0)] * a.ndim
    pad[1] = (before + 1, after)
    cumulative = np.cumsum(np.pad(a, pad), axis=1)
    return cumulative[:, before + 1 + after:] - cumulative[:, :C]


def local_response_norm_forward(x, size: int, alpha: float = 1e-4, beta: float = 0.75,
                                k: float = 1.0):
    r"""Local response normalization across channels, as ``torch.nn.LocalResponseNorm``.

    .. math::

        y_c = x_c \Big(k + \frac{\alpha}{n} \sum_{c' = c - \lfloor n/2 \rfloor}^{c + \lfloor
        (n-1)/2 \rfloor} x_{c'}^2\Big)^{-\beta},

    with channels outside :math:`0, \dots, C-1` counted as zero.

    Parameters
    ----------
    x : ndarray, shape (N, C, *), float32 or float64
        At least one dimension after the channels, as in PyTorch.
    size : int, >= 1
        :math:`n`, the number of channels in the window.
    alpha, beta, k : float
        :math:`\alpha \ge 0`, :math:`\beta \ge 0`, :math:`k > 0`.

    Returns
    -------
    out : ndarray, shape of ``x``
    cache : tuple
        For :func:`local_response_norm_backward`.

    Notes
    -----
    AlexNet (Krizhevsky et al., 2012) writes the sum without the division by :math:`n`,
    :math:`b = a (k + \alpha' \sum a^2)^{-\beta}` with :math:`k = 2, n = 5,
    \alpha' = 10^{-4}, \beta = 0.75`. PyTorch (and this function) average instead, so
    AlexNet's layer is ``size=5, alpha=5e-4, beta=0.75, k=2``.

    For a single active channel the response :math:`x (k + \alpha x^2 / n)^{-\beta}` peaks at
    :math:`x^* = \sqrt{k n / (\alpha (2\beta - 1))}` when :math:`\beta > 1/2` and falls beyond:
    strong responses are compressed, not only rescaled.
    """
    func = "local_response_norm_forward"
    check_float_array(func, "x", x, min_ndim=3)
    check_finite(func, "x", x)
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"{func}: size must be a positive int, got {size!r}")
    alpha = check_scalar(func, "alpha", alpha, low=0.0)
    beta = check_scalar(func, "beta", beta, low=0.0)
    k = check_scalar(func, "k", k, low=0.0, low_inclusive=False)
    before, after = size // 2, (size - 1) // 2
    squares = _channel_window_sum(x * x, before, after)
    denom = k + (alpha / size) * squares
    scale = denom ** (-beta)
    out = (x * scale).astype(x.dtype, copy=False)
    return out, (x, denom, scale, size, alpha, beta)


def local_response_norm_backward(dout, cache):
    r"""Gradient of :func:`local_response_norm_forward`.

    With :math:`d_c = k + \frac{\alpha}{n} S_c` and :math:`S_c` the window sum of squares,

    .. math::

        \frac{\partial L}{\partial x_j} = \frac{\partial L}{\partial y_j} d_j^{-\beta}
        - \frac{2 \alpha \beta}{n} x_j \sum_{c:\, j \in W(c)}
          \frac{\partial L}{\partial y_c} x_c d_c^{-\beta - 1},

    where the channels :math:`c` whose window contains :math:`j` form the mirrored window
    around :math:`j`.

    Returns
    -------
    dx : ndarray, shape of ``x``
    """
    x, denom, scale, size, alpha, beta = cache
    check_float_array("local_response_norm_backward", "dout", dout)
    if dout.shape != x.shape:
        raise ValueError(f"local_response_norm_backward: dout must have shape {x.shape}, "
                         f"got {dout.shape}")
    t = dout * x * scale / denom
    # c has j in its window  <=>  c in [j - (size - 1) // 2, j + size // 2]
    mirrored = _channel_window_sum(t, (size - 1) // 2, size // 2)
    dx = dout * scale - (2.0 * alpha * beta / size) * x * mirrored
    return dx.astype(x.dtype, copy=False)


# ----------------------------------------------------------------------------- windows


def gaussian_window(kernel_size: int = 9, sigma: float = 2.0, *, dtype=np.float64):
    r"""Separable Gaussian window :math:`w_{pq} \propto e^{-(p^2 + q^2) / (2\sigma^2)}`,
    normalized so that :math:`\sum_{pq} w_{pq} = 1`.

    Returns
    -------
    ndarray, shape (kernel_size, kernel_size)
    """
    kernel_size, sigma = _check_kernel("gaussian_window", kernel_size, sigma)
    g = _gauss_1d(kernel_size, sigma)
    return np.outer(g, g).astype(dtype)


def _gauss_1d(kernel_size: int, sigma: float) -> np.ndarray:
    r = np.arange(kernel_size) - kernel_size // 2
    g = np.exp(-0.5 * (r / sigma) ** 2)
    return g / g.sum()


def _blur(x64: np.ndarray, kernel_size: int, sigma: float) -> np.ndarray:
    """Separable Gaussian filter over the last two axes, reflected borders."""
    g = _gauss_1d(kernel_size, sigma)
    half = kernel_size // 2
    H, W = x64.shape[-2:]
    mode = "reflect" if min(H, W) > half else "symmetric"
    pad = [(0, 0)] * (x64.ndim - 2) + [(half, half), (half, half)]
    padded = np.pad(x64, pad, mode=mode)
    rows = sum(g[p] * padded[..., p:p + H, :] for p in range(kernel_size))
    return sum(g[q] * rows[..., :, q:q + W] for q in range(kernel_size))


def local_mean(x, kernel_size: int = 9, sigma: float = 2.0, *, across_channels: bool = True):
    r"""Gaussian-weighted local mean :math:`\sum_{pq} w_{pq} x_{c, h+p, w+q}`.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    kernel_size : odd int
    sigma : float, > 0
    across_channels : bool
        Average over the channels as well (the window of Jarrett et al. sums to one over
        channels and space, so every channel gets the same local mean).

    Returns
    -------
    ndarray, shape (N, C, H, W), dtype of ``x``
    """
    func = "local_mean"
    _check_images(func, x)
    kernel_size, sigma = _check_kernel(func, kernel_size, sigma)
    x64 = x.astype(np.float64)
    if across_channels:
        x64 = x64.mean(axis=1, keepdims=True)
    out = _blur(x64, kernel_size, sigma)
    return np.broadcast_to(out, x.shape).astype(x.dtype)


def local_std(x, kernel_size: int = 9, sigma: float = 2.0, *, across_channels: bool = True):
    r"""Local standard deviation :math:`\sqrt{\sum_{pq} w_{pq} (x - \bar{x})^2_{h+p, w+q}}`
    around the local mean :math:`\bar{x}` (:func:`local_mean`).

    This is the :math:`\sigma_{hw}` of local contrast normalization, and a map of local
    contrast: large on edges and texture, near zero on flat regions.

    Returns
    -------
    ndarray, shape (N, C, H, W) (every channel equal when ``across_channels``), dtype of ``x``
    """
    func = "local_std"
    _check_images(func, x)
    kernel_size, sigma = _check_kernel(func, kernel_size, sigma)
    v = x.astype(np.float64) - local_mean(x.astype(np.float64), kernel_size, sigma,
                                          across_channels=across_channels)
    return np.sqrt(_local_energy(v, kernel_size, sigma, across_channels)).astype(x.dtype)


def _local_energy(v64, kernel_size, sigma, across_channels):
    sq = v64 * v64
    if across_channels:
        sq = sq.mean(axis=1, keepdims=True)
    return np.broadcast_to(_blur(sq, kernel_size, sigma), v64.shape)


# ----------------------------------------------------------------------------- LCN


def local_contrast_norm(x, kernel_size: int = 9, sigma: float = 2.0, *,
                        divisive: bool = True, eps: float = 1e-4):
    r"""Local contrast normalization (Jarrett et al., 2009), per image.

    Subtractive step, with a Gaussian window :math:`w` that sums to one over space and channels:

    .. math::

        v_{chw} = x_{chw} - \sum_{c' pq} \frac{w_{pq}}{C} x_{c', h+p, w+q}.

    Divisive step:

    .. math::

        \sigma_{hw} = \Big(\sum_{c' pq} \frac{w_{pq}}{C} v_{c', h+p, w+q}^2\Big)^{1/2},
        \qquad y_{chw} = \frac{v_{chw}}{\max(c, \sigma_{hw})},
        \qquad c = \operatorname{mean}_{hw} \sigma_{hw} \text{ (per image)},

    so low-contrast regions are not blown up (their divisor is :math:`c`, not their own tiny
    :math:`\sigma`). ``eps`` keeps a constant image finite (:math:`\max(c, \sigma, \epsilon)`).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    kernel_size : odd int
    sigma : float, > 0
        Width of the Gaussian window, in pixels.
    divisive : bool
        ``False``: subtractive step only.
    eps : float, > 0

    Returns
    -------
    ndarray, shape (N, C, H, W), dtype of ``x``

    Notes
    -----
    For every image and ``a > 0``, ``local_contrast_norm(a * x + b) == local_contrast_norm(x)``
    (up to ``eps``): the output is invariant to the brightness and contrast of the image.
    """
    func = "local_contrast_norm"
    _check_images(func, x)
    kernel_size, sigma = _check_kernel(func, kernel_size, sigma)
    eps = check_scalar(func, "eps", eps, low=0.0, low_inclusive=False)
    x64 = x.astype(np.float64)
    v = x64 - local_mean(x64, kernel_size, sigma, across_channels=True)
    if not divisive:
        return v.astype(x.dtype)
    sigma_map = np.sqrt(_local_energy(v, kernel_size, sigma, True))
    c = sigma_map.mean(axis=(1, 2, 3), keepdims=True)
    return (v / np.maximum(np.maximum(sigma_map, c), eps)).astype(x.dtype)


def divisive_norm(x, kernel_size: int = 9, sigma: float = 2.0, *, bias: float = 0.1,
                  across_channels: bool = True):
    r"""Divisive normalization: each value divided by the root of a constant plus the local
    energy of its neighbourhood.

    .. math::

        y_{chw} = \frac{x_{chw}}{\sqrt{b^2 + \sum_{c' pq} w_{pq} x_{c', h+p, w+q}^2 / C}}

    (the sum over :math:`c'` only with ``across_channels``; otherwise :math:`c' = c` and no
    division by :math:`C`). Unlike the hard :math:`\max(c, \sigma)` of
    :func:`local_contrast_norm`, the constant :math:`b` makes the gain saturate smoothly:
    :math:`y \approx x / b` where the neighbourhood is quiet, :math:`y \approx x / \lVert x
    \rVert_\text{local}` where it is active. Apply it to zero-mean signals (for instance after
    the subtractive step of LCN, or to filter responses).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    kernel_size : odd int
    sigma : float, > 0
    bias : float, > 0
        :math:`b`, in the units of ``x``.
    across_channels : bool

    Returns
    -------
    ndarray, shape (N, C, H, W), dtype of ``x``
    """
    func = "divisive_norm"
    _check_images(func, x)
    kernel_size, sigma = _check_kernel(func, kernel_size, sigma)
    bias = check_scalar(func, "bias", bias, low=0.0, low_inclusive=False)
    x64 = x.astype(np.float64)
    energy = _local_energy(x64, kernel_size, sigma, across_channels)
    return (x64 / np.sqrt(bias**2 + energy)).astype(x.dtype)
