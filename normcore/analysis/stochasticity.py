r"""The stochastic normalization disturbance (SND) of batch standardization and of PCA,
ZCA and Cholesky batch whitening: how much a sample's normalized output changes with the
mini-batch it is normalized in.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_float_array, check_rng, check_scalar
from ._common import _check_choice, _check_int

__all__ = [
    "normalized_sample_outputs",
    "stochastic_normalization_disturbance",
]


_SND_METHODS = ("bn", "pca", "zca", "cd")


def _whiten_queries(batches: np.ndarray, queries: np.ndarray, method: str, eps: float):
    r"""Normalize ``queries`` (R, Q, G, c) with the statistics of ``batches`` (R, B, G, c).

    Each of the R batches and G groups gets its own mean and covariance
    :math:`\Sigma = X_c^T X_c / B + \epsilon I`; all are processed at once with batched
    ``eigh`` / ``cholesky``.
    """
    mean = batches.mean(axis=1, keepdims=True)  # (R, 1, G, c)
    centered = batches - mean
    q = (queries - mean).transpose(0, 2, 3, 1)  # (R, G, c, Q)
    if method == "bn":
        var = np.mean(centered**2, axis=1)[..., None]  # (R, G, c, 1)
        out = q / np.sqrt(var + eps)
    else:
        xc = centered.transpose(0, 2, 1, 3)  # (R, G, B, c)
        cov = xc.transpose(0, 1, 3, 2) @ xc / batches.shape[1]
        cov = cov + eps * np.eye(cov.shape[-1])
        if method == "cd":
            out = np.linalg.solve(np.linalg.cholesky(cov), q)
        else:
            evals, evecs = np.linalg.eigh(cov)
            evals, evecs = evals[..., ::-1], evecs[..., ::-1]  # descending, as in PCA
            proj = (evecs.swapaxes(-1, -2) @ q) / np.sqrt(evals)[..., None]
            out = evecs @ proj if method == "zca" else proj
    return out.transpose(0, 3, 1, 2)  # (R, Q, G, c)


def _draw_batches(gen: np.random.Generator, n: int, rows: np.ndarray, others: int,
                  include_sample: bool) -> np.ndarray:
    """Row indices (R, B): ``others`` distinct samples other than ``rows[r]`` for every r,
    drawn without replacement, with ``rows[r]`` itself first when ``include_sample``."""
    keys = gen.random((rows.size, n))
    keys[np.arange(rows.size), rows] = 2.0  # never draw x itself as "another" sample
    idx = np.argpartition(keys, others - 1, axis=1)[:, :others]
    if include_sample:
        idx = np.concatenate([rows[:, None], idx], axis=1)
    return idx


def _check_snd_args(func, data, method, batch_size, num_batches, num_groups, eps,
                    include_sample):
    check_float_array(func, "data", data, ndim=2)
    _check_choice(func, "method", method, _SND_METHODS)
    n, d = data.shape
    _check_int(func, "batch_size", batch_size, low=2)
    limit = n if include_sample else n - 1
    if batch_size > limit:
        raise ValueError(
            f"{func}: batch_size must be <= {limit} for {n} samples "
            f"(include_sample={include_sample}), got {batch_size}"
        )
    _check_int(func, "num_batches", num_batches, low=2)
    _check_int(func, "num_groups", num_groups, low=1)
    if d % num_groups:
        raise ValueError(f"{func}: num_groups={num_groups} does not divide d={d}")
    check_scalar(func, "eps", eps, low=0)
    if not isinstance(include_sample, bool):
        raise TypeError(f"{func}: include_sample must be a bool, got {include_sample!r}")


def normalized_sample_outputs(
    data,
    method="bn",
    batch_size=64,
    *,
    sample_index=0,
    num_batches=32,
    num_groups=1,
    eps=1e-5,
    include_sample=True,
    return_batches=False,
    rng=None,
):
    r"""One sample's normalized output :math:`G(X_i^B; x)` in each of ``num_batches`` batches.

    The points whose spread :func:`stochastic_normalization_disturbance` measures: row
    :math:`i` is the sample ``data[sample_index]`` normalized with the statistics of the
    :math:`i`-th random mini-batch :math:`X_i^B` (the transformations are listed there).
    Plotting two coordinates of the rows shows the disturbance as a cloud, as in the CVPR
    2021 tutorial: a tight cloud for BN and ZCA, scattered sign-flipped copies for PCA.

    Parameters
    ----------
    data : ndarray, shape (n, d), float32 or float64
    method : {"bn", "pca", "zca", "cd"}
    batch_size : int, >= 2
    sample_index : int, 0 <= sample_index < n
    num_batches : int, >= 2
    num_groups : int, >= 1
        Whiten groups of ``d / num_groups`` consecutive features separately.
    eps : float, >= 0
    include_sample : bool
        Whether each batch contains the sample itself (as in training); it is then the
        batch's first row.
    return_batches : bool
        Also return the ``(num_batches, batch_size)`` row indices of the batches.
    rng : numpy.random.Generator or int or None

    Returns
    -------
    outputs : ndarray, shape (num_batches, d), float64
    batches : ndarray of int, shape (num_batches, batch_size), only with ``return_batches``

    Notes
    -----
    The mean over the rows of :math:`\lVert G(X_i^B; x) - \bar G(x)\rVert` is the SND
    :math:`\hat\Delta_G(x)` of this one sample.
    """
    func = "normalized_sample_outputs"
    _check_snd_args(func, data, method, batch_size, num_batches, num_groups, eps,
                    include_sample)
    n, d = data.shape
    _check_int(func, "sample_index", sample_index, low=0)
    if sample_index >= n:
        raise ValueError(f"{func}: sample_index must be < n={n}, got {sample_index}")
    if not isinstance(return_batches, bool):
        raise TypeError(f"{func}: return_batches must be a bool, got {return_batches!r}")
    gen = check_rng(func, rng)
    X = data.astype(np.float64)
    rows = np.full(num_batches, sample_index)
    others = batch_size - 1 if include_sample else batch_size
    idx = _draw_batches(gen, n, rows, others, include_sample)
    c = d // num_groups
    batches = X[idx].reshape(num_batches, batch_size, num_groups, c)
    queries = X[rows].reshape(num_batches, 1, num_groups, c)
    out = _whiten_queries(batches, queries, method, eps).reshape(num_batches, d)
    return (out, idx) if return_batches else out


def stochastic_normalization_disturbance(
    data,
    method="bn",
    batch_size=64,
    *,
    num_samples=None,
    num_batches=32,
    num_groups=1,
    eps=1e-5,
    include_sample=True,
    return_per_sample=False,
    rng=None,
):
    r"""Empirical stochastic normalization disturbance (SND) of batch normalization/whitening.

    A sample :math:`x` is normalized with the statistics of a random mini-batch, so its
    output :math:`G(X^B; x)` is a random variable over the choice of the batch
    :math:`X^B`. The empirical SND over :math:`s` batches is (introduced with IterNorm,
    Huang et al., CVPR 2019; used to compare whitening methods in Huang et al., CVPR 2020
    and in the CVPR 2021 tutorial)

    .. math::

        \hat\Delta_G(x) = \frac{1}{s}\sum_{i=1}^{s}
            \Big\| G(X_i^B; x) - \frac{1}{s}\sum_{j=1}^{s} G(X_j^B; x) \Big\|_2 ,

    the mean distance of the normalized sample from its average over batches. This function
    averages it over ``num_samples`` samples drawn from ``data``. With
    :math:`\mu, \Sigma = X_c^TX_c/B + \epsilon I` the batch mean and covariance and
    :math:`\Sigma = D\Lambda D^T = LL^T`, the transformations :math:`G` are

    ================  =====================================================
    ``"bn"``          :math:`(x - \mu) / \sqrt{\operatorname{diag}\Sigma}`
    ``"pca"``         :math:`\Lambda^{-1/2} D^T (x - \mu)` (eigenvalues descending)
    ``"zca"``         :math:`D\Lambda^{-1/2} D^T (x - \mu)`
    ``"cd"``          :math:`L^{-1} (x - \mu)`
    ================  =====================================================

    The tutorial's findings: SND grows with the dimension and shrinks with the batch size,
    and :math:`\mathrm{PCA} > \mathrm{CD} > \mathrm{ZCA} > \mathrm{BN}`. PCA's is large
    because its output axes are the batch's eigenvectors, whose signs and order change
    from batch to batch; ZCA rotates back and is the whitening closest to the input.
    Whitening groups of ``d / num_groups`` features separately reduces the disturbance.

    Parameters
    ----------
    data : ndarray, shape (n, d), float32 or float64
        The data set batches are drawn from (computed in float64).
    method : {"bn", "pca", "zca", "cd"}
    batch_size : int, >= 2
        :math:`B`; at most ``n`` (``n - 1`` with ``include_sample=False``).
    num_samples : int, >= 1, optional
        Distinct samples :math:`x` the SND is averaged over; default ``min(32, n)``.
    num_batches : int, >= 2
        :math:`s`, batches per sample.
    num_groups : int, >= 1
        Whiten ``num_groups`` groups of ``d / num_groups`` consecutive features separately
        (no effect on ``"bn"``).
    eps : float, >= 0
        Added to the variance / covariance diagonal, as in the layers.
    include_sample : bool
        ``True`` (default, as in training): each batch is :math:`x` plus ``batch_size - 1``
        other samples drawn without replacement. ``False``: ``batch_size`` samples other
        than :math:`x`.
    return_per_sample : bool
        Return the ``(num_samples,)`` array of :math:`\hat\Delta_G(x)` instead of its mean.
    rng : numpy.random.Generator or int or None

    Returns
    -------
    float or ndarray, shape (num_samples,)
    """
    func = "stochastic_normalization_disturbance"
    _check_snd_args(func, data, method, batch_size, num_batches, num_groups, eps,
                    include_sample)
    n, d = data.shape
    if num_samples is None:
        num_samples = min(32, n)
    _check_int(func, "num_samples", num_samples, low=1)
    if num_samples > n:
        raise ValueError(f"{func}: num_samples must be <= n={n}, got {num_samples}")
    gen = check_rng(func, rng)

    X = data.astype(np.float64)
    samples = gen.choice(n, num_samples, replace=False)
    others = batch_size - 1 if include_sample else batch_size
    c = d // num_groups
    # chunks of samples so that the random keys and batches stay a few tens of MB
    per_chunk = max(1, int(4e6 // (num_batches * max(n, batch_size * d))))
    snd = np.empty(num_samples)
    for start in range(0, num_samples, per_chunk):
        chunk = samples[start : start + per_chunk]
        rows = np.repeat(chunk, num_batches)  # (R,)
        idx = _draw_batches(gen, n, rows, others, include_sample)
        batches = X[idx].reshape(rows.size, batch_size, num_groups, c)
        queries = X[rows].reshape(rows.size, 1, num_groups, c)
        out = _whiten_queries(batches, queries, method, eps).reshape(
            chunk.size, num_batches, d
        )
        dev = out - out.mean(axis=1, keepdims=True)
        snd[start : start + chunk.size] = np.linalg.norm(dev, axis=2).mean(axis=1)
    return snd if return_per_sample else float(snd.mean())
