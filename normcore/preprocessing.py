r"""Input preprocessing: centering, standardization, PCA and ZCA whitening, image means.

Every transform is *fitted* once on training data, returning a small frozen object of
statistics, and then *applied unchanged* to any new data (validation, test, a single
example). Statistics are never recomputed on the data being transformed.

Conventions
-----------
* ``X`` is a data matrix of shape ``(N, D)``: one example per row.
* Means, variances and covariances use the population normalization :math:`1/N`,
  as in the lecture, :math:`C = \frac{1}{N}\sum_i (x_i - \mu)(x_i - \mu)^\top`
  (``np.var``'s default ``ddof=0``, scikit-learn's ``StandardScaler``; note that
  ``sklearn.decomposition.PCA`` uses :math:`1/(N-1)` for its variances).
* ``eps`` is added to variances / eigenvalues before the square root, so constant
  features and zero-variance directions give finite outputs instead of NaN.
* Statistics are computed and stored in float64; ``transform`` returns the dtype of
  its input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import check_finite, check_float_array, check_scalar

__all__ = [
    "Centering",
    "Standardization",
    "Whitening",
    "condition_number",
    "condition_numbers_from_moments",
    "fit_center",
    "fit_pca_whitening",
    "fit_standardize",
    "fit_zca_whitening",
    "per_channel_mean",
    "per_pixel_mean",
    "subtract_mean",
]


# ----------------------------------------------------------------------------- helpers


def _check_data(func: str, X, *, min_samples: int = 2) -> np.ndarray:
    check_float_array(func, "X", X, ndim=2)
    if X.shape[0] < min_samples:
        raise ValueError(
            f"{func}: X must have at least {min_samples} rows (examples), got shape {X.shape}"
        )
    if X.shape[1] < 1:
        raise ValueError(f"{func}: X must have at least 1 column (feature), got shape {X.shape}")
    check_finite(func, "X", X)
    return X


def _check_new_data(func: str, X, D: int) -> np.ndarray:
    check_float_array(func, "X", X, ndim=2)
    if X.shape[1] != D:
        raise ValueError(
            f"{func}: X must have D={D} columns (as at fit time), got shape {X.shape}"
        )
    return X


def _mean(X64: np.ndarray):
    """Column means of a float64 matrix, and a mask of its constant columns.

    A constant column gets its exact value as mean (a float sum can be off by an ulp),
    so centering maps it exactly to 0.
    """
    mean = X64.mean(axis=0)
    constant = np.all(X64 == X64[0], axis=0)
    mean[constant] = X64[0, constant]
    return mean, constant


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.flags.writeable = False
    return a


def _check_eps(func: str, eps: float) -> float:
    return float(check_scalar(func, "eps", eps, low=0.0))


def _eigh_descending(C: np.ndarray):
    """Eigen-decomposition of a symmetric PSD matrix, eigenvalues descending, clipped at 0.

    The sign of each eigenvector is fixed so that its largest-magnitude entry is positive.
    """
    vals, vecs = np.linalg.eigh(C)
    vals, vecs = vals[::-1], vecs[:, ::-1]
    vals = np.maximum(vals, 0.0)
    idx = np.argmax(np.abs(vecs), axis=0)
    signs = np.sign(vecs[idx, np.arange(vecs.shape[1])])
    signs[signs == 0] = 1.0
    return vals, vecs * signs


def _numerically_zero(vals: np.ndarray, D: int) -> np.ndarray:
    top = vals[0] if vals.size and vals[0] > 0 else 1.0
    return vals <= top * D * np.finfo(np.float64).eps


# ----------------------------------------------------------------------------- centering


@dataclass(frozen=True)
class Centering:
    r"""Fitted centering :math:`x \mapsto x - \mu`; create it with :func:`fit_center`.

    Attributes
    ----------
    mean : ndarray, shape (D,), float64, read-only
    """

    mean: np.ndarray

    def transform(self, X):
        """Return ``X - mean``; ``X`` has shape (M, D), same dtype out."""
        _check_new_data("Centering.transform", X, self.mean.shape[0])
        return (X - self.mean).astype(X.dtype, copy=False)

    def inverse_transform(self, Z):
        """Return ``Z + mean``."""
        _check_new_data("Centering.inverse_transform", Z, self.mean.shape[0])
        return (Z + self.mean).astype(Z.dtype, copy=False)


def fit_center(X) -> Centering:
    r"""Fit per-feature centering, :math:`\mu = \frac{1}{N}\sum_i x_i`.

    Parameters
    ----------
    X : ndarray, shape (N, D), float32 or float64, N >= 2

    Returns
    -------
    Centering
    """
    _check_data("fit_center", X)
    mean, _ = _mean(X.astype(np.float64))
    return Centering(mean=_frozen(mean))


# ----------------------------------------------------------------------------- standardization


@dataclass(frozen=True)
class Standardization:
    r"""Fitted standardization :math:`x \mapsto (x - \mu) / \sqrt{\sigma^2 + \epsilon}`.

    Create it with :func:`fit_standardize`.

    Attributes
    ----------
    mean, var : ndarray, shape (D,), float64, read-only
        Per-feature mean and population variance (:math:`1/N`) of the training data.
    eps : float
    """

    mean: np.ndarray
    var: np.ndarray
    eps: float

    @property
    def scale(self) -> np.ndarray:
        r"""The divisor :math:`\sqrt{\sigma^2 + \epsilon}`, shape (D,)."""
        return np.sqrt(self.var + self.eps)

    def transform(self, X):
        """Standardize ``X`` of shape (M, D) with the training statistics."""
        _check_new_data("Standardization.transform", X, self.mean.shape[0])
        return ((X - self.mean) / self.scale).astype(X.dtype, copy=False)

    def inverse_transform(self, Z):
        """Map standardized data back: ``Z * scale + mean``."""
        _check_new_data("Standardization.inverse_transform", Z, self.mean.shape[0])
        return (Z * self.scale + self.mean).astype(Z.dtype, copy=False)


def fit_standardize(X, eps: float = 1e-5) -> Standardization:
    r"""Fit per-feature standardization (centering + scaling).

    .. math::

        \mu_j = \frac{1}{N}\sum_i x_{ij}, \qquad
        \sigma_j^2 = \frac{1}{N}\sum_i (x_{ij} - \mu_j)^2, \qquad
        \hat{x}_{ij} = \frac{x_{ij} - \mu_j}{\sqrt{\sigma_j^2 + \epsilon}}.

    Parameters
    ----------
    X : ndarray, shape (N, D), float32 or float64, N >= 2
    eps : float, >= 0
        Added to the variance. A constant feature is mapped to 0. With ``eps=0``
        a constant feature raises ``ValueError``.

    Returns
    -------
    Standardization

    Notes
    -----
    With ``eps=0`` this is ``sklearn.preprocessing.StandardScaler`` (which also uses
    :math:`1/N`), except that StandardScaler silently divides constant features by 1.
    """
    func = "fit_standardize"
    _check_data(func, X)
    eps = _check_eps(func, eps)
    X64 = X.astype(np.float64)
    mean, constant = _mean(X64)
    var = ((X64 - mean) ** 2).mean(axis=0)
    if eps == 0.0 and np.any(constant):
        j = int(np.flatnonzero(constant)[0])
        raise ValueError(
            f"{func}: feature {j} is constant (zero variance); use eps > 0, got eps=0"
        )
    return Standardization(mean=_frozen(mean), var=_frozen(var), eps=eps)


# ----------------------------------------------------------------------------- whitening


@dataclass(frozen=True)
class Whitening:
    r"""Fitted PCA or ZCA whitening; create it with :func:`fit_pca_whitening` or
    :func:`fit_zca_whitening`.

    With :math:`C = U \Lambda U^\top` the eigen-decomposition of the training
    covariance (eigenvalues descending), the transform is
    :math:`z = W (x - \mu)` with

    .. math::

        W_\text{PCA} = (\Lambda + \epsilon I)^{-1/2} U^\top, \qquad
        W_\text{ZCA} = U (\Lambda + \epsilon I)^{-1/2} U^\top = U W_\text{PCA}.

    Attributes
    ----------
    method : {'pca', 'zca'}
    mean : ndarray, shape (D,)
    eigenvalues : ndarray, shape (D,)
        Of the covariance (:math:`1/N`), descending, clipped at 0.
    eigenvectors : ndarray, shape (D, D)
        Columns :math:`u_k`; the largest-magnitude entry of each is positive.
    eps : float
    matrix : ndarray, shape (K, D)
        :math:`W` (``K = n_components`` for PCA, ``K = D`` for ZCA).
    """

    method: str
    mean: np.ndarray
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    eps: float
    matrix: np.ndarray

    @property
    def n_components(self) -> int:
        """Number of output features ``K``."""
        return self.matrix.shape[0]

    def transform(self, X):
        """Whiten ``X`` of shape (M, D) with the training statistics; returns (M, K)."""
        _check_new_data("Whitening.transform", X, self.mean.shape[0])
        return ((X - self.mean) @ self.matrix.T).astype(X.dtype, copy=False)

    def inverse_transform(self, Z):
        r"""Map whitened data of shape (M, K) back to input space.

        Exact when ``K = D``; with fewer PCA components it returns the projection
        of the data onto the kept principal subspace.
        """
        func = "Whitening.inverse_transform"
        check_float_array(func, "Z", Z, ndim=2)
        K = self.n_components
        if Z.shape[1] != K:
            raise ValueError(f"{func}: Z must have K={K} columns, got shape {Z.shape}")
        U = self.eigenvectors[:, :K]
        root = np.sqrt(self.eigenvalues[:K] + self.eps)
        if self.method == "pca":
            back = (Z * root) @ U.T
        else:
            back = ((Z @ U) * root) @ U.T
        return (back + self.mean).astype(Z.dtype, copy=False)


def _fit_whitening(func: str, X, eps: float, method: str, n_components) -> Whitening:
    _check_data(func, X)
    eps = _check_eps(func, eps)
    N, D = X.shape
    if n_components is None:
        K = D
    else:
        check_scalar(func, "n_components", n_components, low=1, high=D, integer=True)
        K = int(n_components)
    X64 = X.astype(np.float64)
    mean, _ = _mean(X64)
    Xc = X64 - mean
    cov = (Xc.T @ Xc) / N
    vals, vecs = _eigh_descending(cov)
    if eps == 0.0 and np.any(_numerically_zero(vals, D)[:K]):
        raise ValueError(
            f"{func}: the covariance is singular (rank < {K}); use eps > 0, got eps=0"
        )
    inv_root = 1.0 / np.sqrt(vals[:K] + eps)
    W = inv_root[:, None] * vecs[:, :K].T
    if method == "zca":
        W = vecs @ W
    return Whitening(
        method=method,
        mean=_frozen(mean),
        eigenvalues=_frozen(vals),
        eigenvectors=_frozen(vecs),
        eps=eps,
        matrix=_frozen(W),
    )


def fit_pca_whitening(X, eps: float = 1e-5, n_components: int | None = None) -> Whitening:
    r"""Fit PCA whitening: rotate onto the principal axes, then scale each to unit variance.

    .. math::

        z = (\Lambda_K + \epsilon I)^{-1/2} U_K^\top (x - \mu)

    where :math:`U_K, \Lambda_K` are the top ``n_components`` eigenvectors and
    eigenvalues of the training covariance. On the training data,
    :math:`\operatorname{Cov}(z) = \operatorname{diag}(\lambda_k / (\lambda_k + \epsilon))`,
    the identity up to the effect of ``eps``.

    Parameters
    ----------
    X : ndarray, shape (N, D), float32 or float64, N >= 2
    eps : float, >= 0
        Added to the eigenvalues; keeps near-zero-variance directions finite.
    n_components : int in [1, D], optional
        Keep only the leading components (dimensionality reduction). Default: all.

    Returns
    -------
    Whitening

    Notes
    -----
    ``sklearn.decomposition.PCA(whiten=True)`` divides by the eigenvalues of the
    :math:`1/(N-1)` covariance and chooses other signs, so with ``eps=0`` its output
    is this one times :math:`\sqrt{(N-1)/N}`, up to the sign of each column.
    """
    return _fit_whitening("fit_pca_whitening", X, eps, "pca", n_components)


def fit_zca_whitening(X, eps: float = 1e-5) -> Whitening:
    r"""Fit ZCA ("zero-phase") whitening: PCA whitening rotated back to the input axes.

    .. math::

        z = U (\Lambda + \epsilon I)^{-1/2} U^\top (x - \mu)

    The matrix is symmetric, and among all whitening matrices it changes the data the
    least (it maximizes :math:`\sum_j \operatorname{corr}(x_j, z_j)`), so ZCA-whitened
    images still look like images. It differs from PCA whitening only by the rotation
    :math:`U`: :math:`z_\text{ZCA} = U z_\text{PCA}`.

    Parameters
    ----------
    X : ndarray, shape (N, D), float32 or float64, N >= 2
    eps : float, >= 0

    Returns
    -------
    Whitening
    """
    return _fit_whitening("fit_zca_whitening", X, eps, "zca", None)


def condition_number(X, *, centered: bool = False) -> float:
    r"""Condition number :math:`\kappa = \lambda_\max / \lambda_\min` of the input's
    second-moment matrix.

    .. math::

        \Sigma = \frac{1}{N} \sum_i x_i x_i^\top \quad (\text{or } \frac{1}{N}
        \sum_i (x_i - \mu)(x_i - \mu)^\top \text{ with } \texttt{centered=True})

    For least-squares regression :math:`\frac{1}{2}\lVert Wx - y \rVert^2` without a bias
    this matrix is the Hessian, so :math:`\kappa` controls how many gradient-descent
    steps are needed; this is why centering (which removes the large mean direction),
    standardization and whitening (:math:`\kappa = 1`) speed up optimization.

    Parameters
    ----------
    X : ndarray, shape (N, D), float32 or float64, N >= 2
    centered : bool
        Subtract the mean first (the covariance proper). The default ``False`` uses
        the raw second moment, the matrix the lecture calls the covariance.

    Returns
    -------
    kappa : float
        ``inf`` when the smallest eigenvalue is (numerically) zero.
    """
    func = "condition_number"
    _check_data(func, X)
    X64 = X.astype(np.float64)
    if centered:
        X64 = X64 - X64.mean(axis=0)
    vals = np.linalg.eigvalsh((X64.T @ X64) / X64.shape[0])
    vals = np.maximum(vals[::-1], 0.0)
    if vals[0] == 0.0 or _numerically_zero(vals, X.shape[1])[-1]:
        return float("inf")
    return float(vals[0] / vals[-1])



def condition_numbers_from_moments(mean, cov) -> dict:
    r"""Condition number of the least-squares Hessian before and after each preprocessing step.

    For a linear model without bias the Hessian is the input's second moment
    :math:`H = \mathbb{E}[x x^\top] = \Sigma + \mu\mu^\top`. Each step replaces it by

    .. math::

        H_\text{raw} = \Sigma + \mu\mu^\top, \quad
        H_\text{centered} = \Sigma, \quad
        H_\text{scaled} = D^{-1/2} (\Sigma + \mu\mu^\top) D^{-1/2}, \quad
        H_\text{standardized} = D^{-1/2} \Sigma D^{-1/2}, \quad
        H_\text{whitened} = I,

    with :math:`D = \operatorname{diag}(\Sigma)` ("scaled": divided by the standard deviation
    without centering). None of the first four is ordered in general: centering *raises*
    :math:`\kappa` when :math:`\mu` points along a direction of small variance (it removes
    the rank-one term that lifted the smallest eigenvalue), and for :math:`D > 2` the
    diagonal scaling can raise it too (by at most a factor :math:`D`, van der Sluis 1969).
    Only whitening always gives :math:`\kappa = 1`.

    Parameters
    ----------
    mean : ndarray, shape (D,), float32 or float64
        :math:`\mu`.
    cov : ndarray, shape (D, D), float32 or float64
        :math:`\Sigma`, symmetric positive semi-definite with a positive diagonal.

    Returns
    -------
    dict
        ``{'raw', 'centered', 'scaled', 'standardized', 'whitened'}`` to :math:`\kappa`
        (``inf`` for a singular matrix).

    Examples
    --------
    The mean along the low-variance axis: centering takes :math:`\kappa` from 1.01 to 100.

    >>> k = condition_numbers_from_moments(np.array([0.0, 1.0]), np.diag([1.0, 0.01]))
    >>> round(k["raw"], 6), round(k["centered"], 6)
    (1.01, 100.0)
    """
    func = "condition_numbers_from_moments"
    check_float_array(func, "mean", mean, ndim=1)
    check_float_array(func, "cov", cov, ndim=2)
    D = mean.shape[0]
    if D < 1 or cov.shape != (D, D):
        raise ValueError(f"{func}: cov must have shape (D, D) = ({D}, {D}) for mean of shape "
                         f"({D},), got {cov.shape}")
    check_finite(func, "mean", mean)
    check_finite(func, "cov", cov)
    mu, sigma = mean.astype(np.float64), cov.astype(np.float64)
    if not np.allclose(sigma, sigma.T, rtol=1e-10, atol=1e-12 * np.abs(sigma).max()):
        raise ValueError(f"{func}: cov must be symmetric")
    if np.linalg.eigvalsh(sigma)[0] < -1e-10 * max(np.abs(sigma).max(), 1e-300):
        raise ValueError(f"{func}: cov must be positive semi-definite, its smallest "
                         f"eigenvalue is {np.linalg.eigvalsh(sigma)[0]:.3g}")
    diag = np.diag(sigma)
    if np.any(diag <= 0):
        raise ValueError(f"{func}: cov must have a positive diagonal (no constant feature), "
                         f"got diag {diag}")

    def kappa(H):
        vals = np.maximum(np.linalg.eigvalsh((H + H.T) / 2)[::-1], 0.0)
        if vals[0] == 0.0 or _numerically_zero(vals, D)[-1]:
            return float("inf")
        return float(vals[0] / vals[-1])

    second = sigma + np.outer(mu, mu)
    inv_std = 1.0 / np.sqrt(diag)
    scale = np.outer(inv_std, inv_std)
    return {"raw": kappa(second), "centered": kappa(sigma), "scaled": kappa(second * scale),
            "standardized": kappa(sigma * scale), "whitened": 1.0}

# ----------------------------------------------------------------------------- images


def _check_images(func: str, images) -> np.ndarray:
    check_float_array(func, "images", images, min_ndim=3)
    if images.shape[0] < 1:
        raise ValueError(f"{func}: images must contain at least 1 image, got shape {images.shape}")
    return images


def per_channel_mean(images) -> np.ndarray:
    r"""Mean of each channel over all images and pixels (the VGG convention).

    .. math::

        \mu_c = \frac{1}{N H W} \sum_{n, h, w} x_{nchw}

    Parameters
    ----------
    images : ndarray, shape (N, C, *spatial), e.g. (N, C, H, W)

    Returns
    -------
    mean : ndarray, shape (C,), dtype of ``images``

    Notes
    -----
    The lecture describes CIFAR-10 images as ``[32, 32, 3]`` (channels last); here
    images are channels first, as in PyTorch. For CIFAR-10 the result is 3 numbers.
    """
    _check_images("per_channel_mean", images)
    axes = (0,) + tuple(range(2, images.ndim))
    return images.mean(axis=axes, dtype=np.float64).astype(images.dtype)


def per_pixel_mean(images) -> np.ndarray:
    r"""The mean image: the mean of every (channel, pixel) over the images (AlexNet).

    .. math::

        \mu_{chw} = \frac{1}{N} \sum_n x_{nchw}

    Parameters
    ----------
    images : ndarray, shape (N, C, *spatial)

    Returns
    -------
    mean : ndarray, shape (C, *spatial), dtype of ``images``
        For CIFAR-10, a (3, 32, 32) array.
    """
    _check_images("per_pixel_mean", images)
    return images.mean(axis=0, dtype=np.float64).astype(images.dtype)


def subtract_mean(images, mean) -> np.ndarray:
    r"""Subtract a per-channel ``(C,)`` or per-pixel ``(C, *spatial)`` mean from images.

    Use the mean of the *training* images for every split.

    Parameters
    ----------
    images : ndarray, shape (N, C, *spatial)
    mean : ndarray, shape (C,) or (C, *spatial), same dtype as ``images``

    Returns
    -------
    centered : ndarray, same shape and dtype as ``images`` (a new array)
    """
    func = "subtract_mean"
    _check_images(func, images)
    check_float_array(func, "mean", mean)
    if mean.dtype != images.dtype:
        raise TypeError(
            f"{func}: mean must have the dtype of images ({images.dtype}), got {mean.dtype}"
        )
    C, spatial = images.shape[1], images.shape[2:]
    if mean.shape == (C,):
        return images - mean.reshape((C,) + (1,) * len(spatial))
    if mean.shape == images.shape[1:]:
        return images - mean
    raise ValueError(
        f"{func}: mean must have shape {(C,)} (per channel) or {images.shape[1:]} "
        f"(per pixel), got {mean.shape}"
    )
