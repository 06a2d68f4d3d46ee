"""Common mistakes in input preprocessing: image means, standardization, whitening matrices,
PCA and ZCA whitening of a data set, and the condition number of the input.

Each factory returns an implementation of one graded function with one flaw (or none, the
flawless version); the flaws are isolated, so that a mistake is recognized by what it breaks.
The fitting functions return normcore's own result objects (``Standardization``,
``Whitening``), whose attributes are what the checks compare.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from normcore import preprocessing as _ref
from normcore import whitening as _whitening
from normcore.grading import _graded, _register

# ----------------------------------------------------------------------------- image means


def _channel_axes(images) -> tuple:
    return (0,) + tuple(range(2, images.ndim))


def _channel_mean_mutant(flaw: str) -> Callable:
    def per_channel_mean(images):
        if flaw == "channels_last":  # the (N, H, W, C) layout: every axis but the last
            axes = tuple(range(images.ndim - 1))
        else:
            axes = _channel_axes(images)
        return images.mean(axis=axes, dtype=np.float64).astype(images.dtype)

    return per_channel_mean


def _subtract_mean_mutant(flaw: str) -> Callable:
    def subtract_mean(images, mean):
        C = images.shape[1]
        per_channel = mean.shape == (C,)
        if flaw == "refit_mean":  # the statistics of the images being centered
            axes = _channel_axes(images) if per_channel else (0,)
            mean = images.mean(axis=axes).astype(images.dtype)
        if per_channel and flaw != "broadcast_last_axis":
            mean = mean.reshape((C,) + (1,) * (images.ndim - 2))
        if flaw == "in_place":
            images -= mean
            return images
        return images - mean

    return subtract_mean


_register("prep_channel_mean_channels_last", "per_channel_mean",
          "You average over every axis but the last, as for channels-last images (N, H, W, C). "
          "Here images are channels first, (N, C, H, W) or (N, C, *spatial): average over "
          "axis 0 and the spatial axes 2, 3, ..., i.e. axis=(0,) + tuple(range(2, images.ndim)).",
          _channel_mean_mutant("channels_last"))

_register("prep_subtract_broadcast_last_axis", "subtract_mean",
          "You subtract a per-channel mean of shape (C,) directly, images - mean: NumPy aligns "
          "the trailing axes, so it is subtracted along the last (width) axis, not along the "
          "channels. Reshape it to (C, 1, 1, ...) first: mean.reshape((C,) + (1,) * "
          "(images.ndim - 2)).", _subtract_mean_mutant("broadcast_last_axis"))
_register("prep_subtract_in_place", "subtract_mean",
          "Your function changes the caller's images (images -= mean). Return a new array, "
          "images - mean, and leave the input alone: the same images may be centered again, "
          "or shown, later.", _subtract_mean_mutant("in_place"))
_register("prep_subtract_refit_mean", "subtract_mean",
          "You center the images with their own mean and ignore the mean you are given. The "
          "mean is fitted once on the training images and applied unchanged to every split "
          "(validation, test, a single image): subtract the argument mean.",
          _subtract_mean_mutant("refit_mean"))


# ----------------------------------------------------------------------------- standardization


def _standardize_mutant(flaw: str) -> Callable:
    def fit_standardize(X, eps=1e-5):
        X64 = X.astype(np.float64)
        mean = X64.mean(axis=0)
        var = X64.var(axis=0, ddof=1 if flaw == "unbiased_var" else 0)
        if flaw == "stores_std":
            var = np.sqrt(var)
        elif flaw == "var_plus_eps":
            var = var + eps
        return _ref.Standardization(mean=mean, var=var, eps=float(eps))

    return fit_standardize


_register("prep_standardize_unbiased_var", "fit_standardize",
          "Your variance divides by N - 1 (np.var(..., ddof=1), or np.std's ddof=1, or "
          "np.cov's default). Use the population variance of the training data, "
          "sigma^2 = mean((x - mu)^2), which divides by N (np.var's default ddof=0).",
          _standardize_mutant("unbiased_var"))
_register("prep_standardize_stores_std", "fit_standardize",
          "Your var holds the standard deviation. The Standardization object stores the "
          "variance sigma^2 and takes the square root itself, in transform: "
          "(x - mean) / sqrt(var + eps).", _standardize_mutant("stores_std"))
_register("prep_standardize_var_plus_eps", "fit_standardize",
          "Your var already contains eps. Store the plain variance and eps separately: "
          "transform adds eps under the square root, (x - mean) / sqrt(var + eps), so adding "
          "it at fit time too counts it twice.", _standardize_mutant("var_plus_eps"))


# ----------------------------------------------------------------------------- whitening matrix


def _whitening_matrix_mutant(flaw: str) -> Callable:
    def whitening_matrix(cov, method, eps=1e-5):
        shift = 0.0 if flaw == "eps_ignored" else eps
        if method == "cd":
            eye = np.eye(cov.shape[-1], dtype=cov.dtype)
            inv_l = np.linalg.inv(np.linalg.cholesky(cov + shift * eye))
            return (inv_l.T if flaw == "cd_upper_factor" else inv_l).astype(cov.dtype)
        lam, vecs = np.linalg.eigh(cov)
        if flaw == "eps_outside_sqrt":
            inv_root = 1 / (np.sqrt(np.maximum(lam, 0)) + eps)
        else:
            inv_root = 1 / np.sqrt(lam + shift)
        if flaw == "zca_not_rotated_back":  # Lambda^{-1/2} U^T: PCA whitening
            return (vecs * inv_root).T.astype(cov.dtype)
        if flaw == "eigvecs_as_rows":  # U^T Lambda^{-1/2} U
            return ((vecs.T * inv_root) @ vecs).astype(cov.dtype)
        if method == "pca":  # normcore: eigh's ascending order, largest entry positive
            idx = np.argmax(np.abs(vecs), axis=0)
            vecs = vecs * np.sign(vecs[idx, np.arange(vecs.shape[1])])
            return (vecs * inv_root).T.astype(cov.dtype)
        return ((vecs * inv_root) @ vecs.T).astype(cov.dtype)

    return whitening_matrix


_register("prep_whitening_eps_ignored", "whitening_matrix",
          "Your whitening matrix ignores eps. It whitens Sigma + eps * I: add eps to the "
          "eigenvalues (ZCA) or to the diagonal before the Cholesky factorization (CD), so "
          "that directions of (almost) zero variance stay finite.",
          _whitening_matrix_mutant("eps_ignored"))
_register("prep_whitening_eps_outside_sqrt", "whitening_matrix",
          "You add eps after the square root, 1 / (sqrt(lambda) + eps). It belongs inside: "
          "1 / sqrt(lambda + eps), the inverse square root of the eigenvalues of "
          "Sigma + eps * I.", _whitening_matrix_mutant("eps_outside_sqrt"))
_register("prep_whitening_zca_not_rotated_back", "whitening_matrix",
          "Your 'zca' matrix is Lambda^{-1/2} U^T: that is PCA whitening, which leaves the data "
          "in the eigenvector basis. ZCA rotates it back to the input axes: "
          "W = U Lambda^{-1/2} U^T (a symmetric matrix).",
          _whitening_matrix_mutant("zca_not_rotated_back"))
_register("prep_whitening_eigvecs_as_rows", "whitening_matrix",
          "You treat the rows of the matrix np.linalg.eigh returns as the eigenvectors; they "
          "are its columns, vecs[:, k]. With U = vecs, ZCA is U @ diag(lambda + eps)^(-1/2) @ "
          "U.T, i.e. (vecs / np.sqrt(vals + eps)) @ vecs.T.",
          _whitening_matrix_mutant("eigvecs_as_rows"))
_register("prep_whitening_cd_upper_factor", "whitening_matrix",
          "Your Cholesky whitening matrix is upper triangular: the inverse of the upper factor "
          "(scipy.linalg.cholesky's default), or L^{-1} transposed. Use the lower factor L of "
          "Sigma + eps * I = L L^T (np.linalg.cholesky) and return W = L^{-1}, so that "
          "W (Sigma + eps * I) W^T = I.", _whitening_matrix_mutant("cd_upper_factor"))


# ----------------------------------------------------------------------- PCA and ZCA whitening


def _fit_whitening(X, eps, n_components, method: str, flaw: str):
    X64 = X.astype(np.float64)
    N, D = X64.shape
    K = D if n_components is None else int(n_components)
    mean = X64.mean(axis=0)
    Xc = X64 if flaw == "uncentered_cov" else X64 - mean
    cov = Xc.T @ Xc / (N - 1 if flaw == "unbiased_cov" else N)
    vals, vecs = np.linalg.eigh(cov)
    if flaw != "ascending_order":
        vals, vecs = vals[::-1], vecs[:, ::-1]
    vals = np.maximum(vals, 0.0)
    if flaw != "sign_not_fixed":
        idx = np.argmax(np.abs(vecs), axis=0)
        signs = np.sign(vecs[idx, np.arange(D)])
        signs[signs == 0] = 1.0
        vecs = vecs * signs
    if flaw == "eps_outside_sqrt":
        inv_root = 1 / (np.sqrt(vals[:K]) + eps)
    else:
        inv_root = 1 / np.sqrt(vals[:K] + eps)
    rows = vecs[:K, :] if flaw == "eigvecs_as_rows" else vecs[:, :K].T
    W = inv_root[:, None] * rows
    if method == "zca" and flaw != "not_rotated_back":
        W = vecs @ W
    return _ref.Whitening(method=method, mean=mean, eigenvalues=vals, eigenvectors=vecs,
                          eps=float(eps), matrix=W)


def _pca_mutant(flaw: str) -> Callable:
    def fit_pca_whitening(X, eps=1e-5, n_components=None):
        return _fit_whitening(X, eps, n_components, "pca", flaw)

    return fit_pca_whitening


def _zca_mutant(flaw: str) -> Callable:
    def fit_zca_whitening(X, eps=1e-5):
        return _fit_whitening(X, eps, None, "zca", flaw)

    return fit_zca_whitening


_register("prep_pca_unbiased_cov", "fit_pca_whitening",
          "Your covariance divides by N - 1 (np.cov's default). Use the population covariance "
          "of the training data, Sigma = Xc.T @ Xc / N with Xc = X - mean (np.cov(X, "
          "rowvar=False, bias=True)); its eigenvalues are what the whitening divides by.",
          _pca_mutant("unbiased_cov"))
_register("prep_pca_ascending_order", "fit_pca_whitening",
          "Your eigenvalues are in ascending order, as np.linalg.eigh returns them. PCA sorts "
          "the principal axes by decreasing variance: reverse both, vals[::-1] and "
          "vecs[:, ::-1], so that the first row of W (and the first n_components rows) belong "
          "to the largest eigenvalues.", _pca_mutant("ascending_order"))
_register("prep_pca_sign_not_fixed", "fit_pca_whitening",
          "Some of your eigenvectors have the opposite sign. An eigenvector is only defined up "
          "to its sign; the convention here is that the entry of largest magnitude of every "
          "column of U is positive: flip column k when vecs[np.argmax(np.abs(vecs[:, k])), k] "
          "< 0.", _pca_mutant("sign_not_fixed"))
_register("prep_pca_eigvecs_as_rows", "fit_pca_whitening",
          "Your matrix uses the rows of U where it needs its columns: np.linalg.eigh returns "
          "the eigenvectors as the columns vecs[:, k]. Row k of W_PCA is u_k / sqrt(lambda_k + "
          "eps), i.e. W = U[:, :K].T / np.sqrt(vals[:K] + eps)[:, None].",
          _pca_mutant("eigvecs_as_rows"))

_register("prep_zca_unbiased_cov", "fit_zca_whitening",
          "Your covariance divides by N - 1 (np.cov's default). Use the population covariance "
          "of the training data, Sigma = Xc.T @ Xc / N with Xc = X - mean (or np.cov(X, "
          "rowvar=False, bias=True)).", _zca_mutant("unbiased_cov"))
_register("prep_zca_uncentered_cov", "fit_zca_whitening",
          "Your covariance is computed from X without subtracting the mean, X.T @ X / N. That "
          "is the second moment E[x x^T] = Sigma + mu mu^T. Center first: Xc = X - mean, "
          "Sigma = Xc.T @ Xc / N.", _zca_mutant("uncentered_cov"))
_register("prep_zca_not_rotated_back", "fit_zca_whitening",
          "Your ZCA matrix is the PCA matrix (Lambda + eps I)^{-1/2} U^T: it leaves the data "
          "in the eigenvector basis. ZCA rotates back to the input axes, W = U (Lambda + "
          "eps I)^{-1/2} U^T, which is symmetric.", _zca_mutant("not_rotated_back"))
_register("prep_zca_eps_outside_sqrt", "fit_zca_whitening",
          "You add eps after the square root, 1 / (sqrt(lambda) + eps). It belongs inside: "
          "1 / sqrt(lambda + eps), so that W = U (Lambda + eps I)^{-1/2} U^T.",
          _zca_mutant("eps_outside_sqrt"))


# ----------------------------------------------------------------------------- condition number


def _condition_number_mutant(flaw: str) -> Callable:
    def condition_number(X, *, centered=False):
        Xw = X if flaw == "float32" else X.astype(np.float64)
        if centered or flaw == "always_centered":
            Xw = Xw - Xw.mean(axis=0)
        if flaw == "singular_values":
            s = np.linalg.svd(Xw, compute_uv=False)
            return float(s[0] / s[-1])
        second = Xw.T @ Xw / Xw.shape[0]
        if flaw == "variance_ratio":
            diag = np.diag(second)
            return float(diag.max() / diag.min())
        vals = np.linalg.eigvalsh(second)
        return float(vals[-1] / vals[0])

    return condition_number


_register("prep_cond_singular_values", "condition_number",
          "You return the ratio of the largest to the smallest singular value of X. The "
          "eigenvalues of X.T @ X / N are the squared singular values over N, so kappa is that "
          "ratio squared: use the eigenvalues of the matrix (np.linalg.eigvalsh), or square "
          "the ratio.", _condition_number_mutant("singular_values"))
_register("prep_cond_always_centered", "condition_number",
          "You center X even with centered=False (np.cov always subtracts the mean). By "
          "default kappa is that of the raw second moment X.T @ X / N, the least-squares "
          "Hessian without a bias; subtract the mean only when centered=True.",
          _condition_number_mutant("always_centered"))
_register("prep_cond_variance_ratio", "condition_number",
          "You divide the largest diagonal entry (variance) by the smallest. The condition "
          "number is the ratio of the extreme eigenvalues of the matrix, which also accounts "
          "for correlations between the features: np.linalg.eigvalsh(M), then max / min.",
          _condition_number_mutant("variance_ratio"))
_register("prep_cond_float32", "condition_number",
          "You compute in float32 when X is float32: rounding in X.T @ X and in the "
          "eigenvalues shifts kappa noticeably when it is large. Convert first, "
          "X = X.astype(np.float64).", _condition_number_mutant("float32"))


# ------------------------------------------------------------------------ graded functions


def _spd(rng, d, spread=1.0):
    """A random symmetric positive definite matrix of size d with distinct eigenvalues."""
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    vals = np.geomspace(1.0, 10.0 ** -spread, d) * 3.0
    cov = (q * vals) @ q.T
    return 0.5 * (cov + cov.T)


def _data(rng, n, d, *, offset=2.0):
    """Correlated data with distinct scales and a nonzero mean."""
    mixing = rng.standard_normal((d, d)) * np.geomspace(3.0, 0.3, d)[:, None]
    return rng.standard_normal((n, d)) @ mixing + offset * rng.standard_normal(d)


def _channel_mean_cases():
    rng = np.random.default_rng(101)
    return [((np.arange(16.0).reshape(2, 2, 2, 2),), {}),
            ((rng.standard_normal((3, 3, 4, 3)) + 1.0,), {}),
            ((rng.standard_normal((4, 2, 5)).astype(np.float32),), {})]


def _subtract_mean_cases():
    rng = np.random.default_rng(102)
    train, test = rng.standard_normal((5, 3, 2, 3)) + 2.0, rng.standard_normal((2, 3, 2, 3))
    return [((test, train.mean(axis=(0, 2, 3))), {}),
            ((test, train.mean(axis=0)), {}),
            ((test.astype(np.float32), train.mean(axis=(0, 2, 3)).astype(np.float32)), {})]


def _standardize_cases():
    rng = np.random.default_rng(103)
    X = rng.standard_normal((6, 3)) * [1.0, 5.0, 0.2] + [1.0, -2.0, 3.0]
    return [((X,), {"eps": 0.1}), ((X[:2],), {}),
            ((X.astype(np.float32),), {"eps": 1e-3})]


def _whitening_matrix_cases():
    rng = np.random.default_rng(104)
    cov = _spd(rng, 4)
    return [((cov, "zca"), {"eps": 0.1}), ((cov, "cd"), {"eps": 0.1}),
            ((cov.astype(np.float32), "zca"), {"eps": 1e-3})]


def _fit_whitening_cases():
    rng = np.random.default_rng(105)
    X = _data(rng, 30, 4)
    return [((X,), {}), ((X,), {"eps": 0.1}), ((X.astype(np.float32),), {"eps": 1e-3})]


def _pca_cases():
    rng = np.random.default_rng(106)
    return _fit_whitening_cases() + [((_data(rng, 20, 5),), {"n_components": 2})]


def _condition_number_cases():
    rng = np.random.default_rng(107)
    X = _data(rng, 40, 3)
    Z = rng.standard_normal((50, 3))
    collinear = np.column_stack([Z[:, 0], Z[:, 1], Z[:, 0] + 0.01 * Z[:, 2]]) + [1.0, 2.0, 3.0]
    return [((X,), {}), ((X,), {"centered": True}),
            ((collinear.astype(np.float32),), {"centered": True})]


_graded("per_channel_mean", _ref.per_channel_mean, _channel_mean_mutant("none"),
        _channel_mean_cases, returns="mean")
_graded("subtract_mean", _ref.subtract_mean, _subtract_mean_mutant("none"),
        _subtract_mean_cases, returns="centered")
_graded("fit_standardize", _ref.fit_standardize, _standardize_mutant("none"),
        _standardize_cases, returns=(".mean", ".var", ".eps"))
_graded("whitening_matrix", _whitening.whitening_matrix, _whitening_matrix_mutant("none"),
        _whitening_matrix_cases, returns="W")
_graded("fit_pca_whitening", _ref.fit_pca_whitening, _pca_mutant("none"), _pca_cases,
        returns=(".mean", ".eigenvalues", ".eigenvectors", ".matrix", ".eps"))
_graded("fit_zca_whitening", _ref.fit_zca_whitening, _zca_mutant("none"),
        _fit_whitening_cases, returns=(".mean", ".eigenvalues", ".eigenvectors", ".matrix",
                                       ".eps"))
_graded("condition_number", _ref.condition_number, _condition_number_mutant("none"),
        _condition_number_cases, returns="kappa")
