r"""Data for the experiments, all offline: real images bundled with scikit-learn,
synthetic problems with a chosen geometry, and NumPy image augmentation.

Nothing here downloads anything. Randomness always comes in through an explicit
``rng`` (a :class:`numpy.random.Generator` or an int seed).

* Real data: the 1,797 handwritten digits (8x8 pixels) and the two sample photos
  (``china.jpg`` and ``flower.jpg``) that ship inside scikit-learn.
* Synthetic data: Gaussian regression inputs with a prescribed covariance spectrum (the
  Hessian of least squares is the input covariance, so its condition number is chosen
  directly), two-class toy problems, and all-positive inputs for the zig-zag demo.
* Augmentation on ``(C, H, W)`` float images in :math:`[0, 1]`: each function returns a new
  array and leaves its input untouched.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._checks import check_float_array, check_float_dtype, check_rng, check_scalar

__all__ = [
    "DigitsSplit",
    "load_digits_split",
    "load_sample_photos",
    "extract_patches",
    "ill_conditioned_regression",
    "two_class_toy",
    "positive_inputs",
    "resize_bilinear",
    "horizontal_flip",
    "random_crop_and_rescale",
    "color_jitter",
    "cutout",
    "gaussian_noise",
    "augment",
]

_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 weights, as in PIL's "L" mode and torchvision


def _check_dtype(func: str, dtype) -> np.dtype:
    return check_float_dtype(func, dtype)


# --------------------------------------------------------------------------- real data


@dataclass(frozen=True)
class DigitsSplit:
    """A fixed train / validation / test split of scikit-learn's digits.

    ``X_*`` are ``(n, 64)`` (flat) or ``(n, 1, 8, 8)`` (image) arrays or tensors, ``y_*``
    the integer labels 0-9, and ``*_idx`` the positions of the images in
    ``sklearn.datasets.load_digits()`` (always NumPy int64 arrays).
    """

    X_train: Any
    y_train: Any
    X_val: Any
    y_val: Any
    X_test: Any
    y_test: Any
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray

    @property
    def train(self):
        """``(X_train, y_train)``."""
        return self.X_train, self.y_train

    @property
    def val(self):
        """``(X_val, y_val)``."""
        return self.X_val, self.y_val

    @property
    def test(self):
        """``(X_test, y_test)``."""
        return self.X_test, self.y_test


def load_digits_split(
    *,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    flat: bool = True,
    as_torch: bool = False,
    dtype=np.float32,
    scale: bool = True,
) -> DigitsSplit:
    """Seeded, stratified train / val / test split of the 8x8 digits (1,797 images).

    Parameters
    ----------
    seed : int
        Seed of the split; the same seed always gives the same split.
    val_fraction, test_fraction : float
        Fractions of the 1,797 images in the validation and test sets (rounded to the
        nearest integer count). Each non-empty part has every class in the same proportion
        as the full set (up to rounding). A fraction of 0 gives an empty part.
    flat : bool
        ``True``: ``X`` has shape ``(n, 64)``; ``False``: ``(n, 1, 8, 8)``.
    as_torch : bool
        Return ``torch.Tensor`` (``X`` float, ``y`` int64) instead of NumPy arrays.
    dtype : float32 or float64
        Dtype of ``X``.
    scale : bool
        Divide pixel values (integers 0-16) by 16 so they lie in :math:`[0, 1]`.

    Returns
    -------
    DigitsSplit
        ``X_train, y_train, X_val, y_val, X_test, y_test`` (``y`` is int64) and the indices
        ``train_idx, val_idx, test_idx``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    func = "load_digits_split"
    check_scalar(func, "seed", seed, low=0, integer=True)
    check_scalar(func, "val_fraction", val_fraction, low=0.0, high=1.0, high_inclusive=False)
    check_scalar(func, "test_fraction", test_fraction, low=0.0, high=1.0, high_inclusive=False)
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"{func}: val_fraction + test_fraction must be < 1, "
            f"got {val_fraction} + {test_fraction} = {val_fraction + test_fraction}"
        )
    dt = _check_dtype(func, dtype)

    digits = load_digits()
    X = digits.data.astype(dt)
    y = digits.target.astype(np.int64)
    if scale:
        X /= 16.0
    N, num_classes = len(y), len(np.unique(y))
    n_test, n_val = round(test_fraction * N), round(val_fraction * N)
    for name, n in (("test", n_test), ("val", n_val)):
        if 0 < n < num_classes:
            raise ValueError(
                f"{func}: a stratified {name} set needs 0 or at least {num_classes} images, "
                f"got {n}"
            )
    if N - n_test - n_val < num_classes:
        raise ValueError(f"{func}: the training set would have {N - n_test - n_val} images")

    def split(idx, n, random_state):
        if n == 0:
            return idx, idx[:0]
        return train_test_split(idx, test_size=n, stratify=y[idx], random_state=random_state)

    idx = np.arange(N)
    rest, test_idx = split(idx, n_test, seed)
    train_idx, val_idx = split(rest, n_val, seed + 1)

    parts = []
    for part in (train_idx, val_idx, test_idx):
        Xp = X[part] if flat else X[part].reshape(-1, 1, 8, 8)
        yp = y[part]
        if as_torch:
            import torch

            Xp, yp = torch.from_numpy(np.ascontiguousarray(Xp)), torch.from_numpy(yp)
        parts += [Xp, yp]
    return DigitsSplit(*parts, train_idx, val_idx, test_idx)


def load_sample_photos(dtype=np.float32) -> list[np.ndarray]:
    """The two photos bundled with scikit-learn (``china.jpg``, ``flower.jpg``).

    Parameters
    ----------
    dtype : float32 or float64

    Returns
    -------
    photos : list of ndarray, each shape (3, H, W)
        RGB channels first, values in :math:`[0, 1]` (8-bit values divided by 255).
        Both photos are 427 x 640.

    Notes
    -----
    The files live inside the scikit-learn package; reading them needs Pillow.
    """
    from sklearn.datasets import load_sample_images

    dt = _check_dtype("load_sample_photos", dtype)
    images = load_sample_images().images
    return [np.ascontiguousarray(img.transpose(2, 0, 1), dtype=dt) / dt.type(255)
            for img in images]


def extract_patches(
    images,
    patch_size: int = 8,
    num_patches: int = 10000,
    *,
    rng,
    grayscale: bool = False,
) -> np.ndarray:
    """Random square patches from a list of images, flattened (for PCA / ZCA filters).

    Every valid patch position of every image is equally likely (so larger images give
    proportionally more patches); positions are drawn with replacement.

    Parameters
    ----------
    images : ndarray, shape (C, H, W), or sequence of such arrays
        Float images with the same number of channels and dtype.
    patch_size : int
        Side ``p`` of each patch.
    num_patches : int
    rng : numpy.random.Generator or int
    grayscale : bool
        Convert RGB to one luminance channel first,
        :math:`0.299 R + 0.587 G + 0.114 B`.

    Returns
    -------
    patches : ndarray, shape (num_patches, C * p * p)
        Each row is a ``(C, p, p)`` patch flattened in C order; ``C`` is 1 with
        ``grayscale``.
    """
    func = "extract_patches"
    if isinstance(images, np.ndarray):
        images = [images]
    if not isinstance(images, Sequence) or len(images) == 0:
        raise TypeError(f"{func}: images must be an array or a non-empty list of arrays, "
                        f"got {type(images).__name__}")
    for i, img in enumerate(images):
        check_float_array(func, f"images[{i}]", img, ndim=3)
    if len({img.dtype for img in images}) > 1 or len({img.shape[0] for img in images}) > 1:
        raise ValueError(f"{func}: images must share dtype and channel count, got "
                         f"{[(img.dtype.name, img.shape) for img in images]}")
    check_scalar(func, "patch_size", patch_size, low=1, integer=True)
    check_scalar(func, "num_patches", num_patches, low=1, integer=True)
    rng = check_rng(func, rng)
    if grayscale:
        if images[0].shape[0] != 3:
            raise ValueError(f"{func}: grayscale needs 3 channels, got {images[0].shape[0]}")
        luma = np.asarray(_LUMA, dtype=images[0].dtype)
        images = [np.tensordot(luma, img, axes=1)[None] for img in images]
    p = patch_size
    counts = np.array([(img.shape[1] - p + 1) * (img.shape[2] - p + 1) for img in images])
    if np.any(counts <= 0):
        raise ValueError(f"{func}: patch_size={p} is larger than an image, got shapes "
                         f"{[img.shape for img in images]}")
    per_image = rng.multinomial(num_patches, counts / counts.sum())
    out = []
    for img, n in zip(images, per_image):
        windows = np.lib.stride_tricks.sliding_window_view(img, (p, p), axis=(1, 2))
        rows = rng.integers(0, windows.shape[1], size=n)
        cols = rng.integers(0, windows.shape[2], size=n)
        out.append(windows[:, rows, cols].transpose(1, 0, 2, 3).reshape(n, -1))
    patches = np.concatenate(out, axis=0)
    return patches[rng.permutation(num_patches)]


# --------------------------------------------------------------------------- synthetic


def _random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed orthogonal matrix (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def ill_conditioned_regression(
    num_samples: int,
    dim: int | None = None,
    *,
    eigenvalues=None,
    condition_number: float | None = None,
    noise: float = 0.0,
    rotate: bool = True,
    rng,
    dtype=np.float64,
):
    r"""Linear regression data whose input covariance has a chosen spectrum.

    .. math::

        \Sigma = Q \,\mathrm{diag}(\lambda)\, Q^\top, \qquad
        x \sim \mathcal{N}(0, \Sigma), \qquad
        y = x^\top w^\star + \sigma \varepsilon,\ \varepsilon \sim \mathcal{N}(0, 1)

    The Hessian of the mean squared error :math:`\tfrac12 \mathbb{E}(x^\top w - y)^2` is
    :math:`\Sigma`, so its condition number is :math:`\lambda_{\max} / \lambda_{\min}` and
    the largest stable gradient-descent step is :math:`2 / \lambda_{\max}`.

    Parameters
    ----------
    num_samples : int
    dim : int, optional
        Input dimension; required with ``condition_number``, implied by ``eigenvalues``.
    eigenvalues : array_like, shape (dim,), optional
        The spectrum :math:`\lambda` (all > 0). Give either this or ``condition_number``.
    condition_number : float, optional
        :math:`\kappa \ge 1`: eigenvalues spaced geometrically from 1 down to
        :math:`1 / \kappa`.
    noise : float
        Standard deviation :math:`\sigma` of the label noise.
    rotate : bool
        ``True``: :math:`Q` is a random rotation; ``False``: :math:`Q = I`
        (axis-aligned ellipses, the ones with no zig-zag for per-coordinate methods).
    rng : numpy.random.Generator or int
    dtype : float32 or float64

    Returns
    -------
    X : ndarray, shape (num_samples, dim)
    y : ndarray, shape (num_samples,)
    w_true : ndarray, shape (dim,)
        Standard normal entries.
    cov : ndarray, shape (dim, dim)
        The exact population covariance :math:`\Sigma`.
    """
    func = "ill_conditioned_regression"
    check_scalar(func, "num_samples", num_samples, low=1, integer=True)
    check_scalar(func, "noise", noise, low=0.0)
    dt = _check_dtype(func, dtype)
    rng = check_rng(func, rng)
    if (eigenvalues is None) == (condition_number is None):
        raise ValueError(f"{func}: give exactly one of eigenvalues and condition_number, got "
                         f"eigenvalues={eigenvalues!r}, condition_number={condition_number!r}")
    if eigenvalues is not None:
        lam = np.asarray(eigenvalues, dtype=np.float64)
        if lam.ndim != 1 or lam.size == 0 or not np.all(np.isfinite(lam)) or np.any(lam <= 0):
            raise ValueError(f"{func}: eigenvalues must be a non-empty 1-D array of positive "
                             f"finite numbers, got {eigenvalues!r}")
        if dim is not None and dim != lam.size:
            raise ValueError(f"{func}: dim={dim} does not match len(eigenvalues)={lam.size}")
        dim = lam.size
    else:
        check_scalar(func, "condition_number", condition_number, low=1.0)
        if dim is None:
            raise ValueError(f"{func}: dim is required with condition_number, got None")
        check_scalar(func, "dim", dim, low=1, integer=True)
        lam = np.geomspace(1.0, 1.0 / condition_number, dim)
    Q = _random_rotation(dim, rng) if rotate else np.eye(dim)
    cov = (Q * lam) @ Q.T
    cov = (cov + cov.T) / 2
    X = (rng.standard_normal((num_samples, dim)) * np.sqrt(lam)) @ Q.T
    w_true = rng.standard_normal(dim)
    y = X @ w_true + noise * rng.standard_normal(num_samples)
    return X.astype(dt), y.astype(dt), w_true.astype(dt), cov.astype(dt)


def two_class_toy(
    num_samples: int, *, kind: str = "blobs", rng, noise: float = 0.1, dtype=np.float64
):
    """Two-class 2-D toy problems: ``'blobs'``, ``'moons'`` or ``'circles'``.

    Parameters
    ----------
    num_samples : int
        Total points; class 0 gets ``num_samples // 2``, class 1 the rest.
    kind : {'blobs', 'moons', 'circles'}
        ``blobs``: Gaussians of std ``noise + 0.5`` at (-1, -1) and (1, 1).
        ``moons``: two interleaved half circles of radius 1.
        ``circles``: concentric circles of radii 1 and 0.5.
    rng : numpy.random.Generator or int
    noise : float
        Std of the Gaussian noise added to every point (``moons``, ``circles``) or added to
        the base spread 0.5 (``blobs``).
    dtype : float32 or float64

    Returns
    -------
    X : ndarray, shape (num_samples, 2)
    y : ndarray of int64, shape (num_samples,)
        Shuffled.
    """
    func = "two_class_toy"
    check_scalar(func, "num_samples", num_samples, low=2, integer=True)
    check_scalar(func, "noise", noise, low=0.0)
    dt = _check_dtype(func, dtype)
    rng = check_rng(func, rng)
    n0 = num_samples // 2
    y = np.repeat(np.array([0, 1], dtype=np.int64), [n0, num_samples - n0])
    if kind == "blobs":
        centers = np.array([[-1.0, -1.0], [1.0, 1.0]])
        X = centers[y] + (0.5 + noise) * rng.standard_normal((num_samples, 2))
    elif kind in ("moons", "circles"):
        if kind == "moons":
            t = np.pi * rng.uniform(size=num_samples)
            X = np.where(y[:, None] == 0,
                         np.stack([np.cos(t), np.sin(t)], 1),
                         np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
        else:
            t = 2 * np.pi * rng.uniform(size=num_samples)
            radius = np.where(y == 0, 1.0, 0.5)[:, None]
            X = radius * np.stack([np.cos(t), np.sin(t)], 1)
        X = X + noise * rng.standard_normal((num_samples, 2))
    else:
        raise ValueError(f"{func}: kind must be one of 'blobs', 'moons', 'circles', "
                         f"got {kind!r}")
    perm = rng.permutation(num_samples)
    return X[perm].astype(dt), y[perm]


def positive_inputs(
    num_samples: int,
    dim: int,
    *,
    rng,
    low: float = 0.0,
    high: float = 1.0,
    noise: float = 0.0,
    dtype=np.float64,
):
    r"""All-positive inputs and a linear target whose weights have mixed signs.

    With :math:`x_i > 0`, the gradient of a loss with respect to the weights of one
    unit, :math:`\partial L / \partial w_i = \delta\, x_i`, has the same sign in every
    coordinate, so gradient descent can only move all weights up or all down in one step
    and zig-zags towards a :math:`w^\star` with mixed signs. Centering ``X`` (subtracting its
    mean) removes the effect.

    Parameters
    ----------
    num_samples, dim : int
    rng : numpy.random.Generator or int
    low, high : float
        ``X`` is uniform on :math:`[\mathrm{low}, \mathrm{high})`, ``0 <= low < high``.
    noise : float
        Std of the label noise.
    dtype : float32 or float64

    Returns
    -------
    X : ndarray, shape (num_samples, dim)
    y : ndarray, shape (num_samples,)
        :math:`y = X w^\star + \sigma \varepsilon`.
    w_true : ndarray, shape (dim,)
        Alternating signs :math:`+1, -1, +1, \dots`.
    """
    func = "positive_inputs"
    check_scalar(func, "num_samples", num_samples, low=1, integer=True)
    check_scalar(func, "dim", dim, low=1, integer=True)
    check_scalar(func, "low", low, low=0.0)
    check_scalar(func, "high", high, low=low, low_inclusive=False)
    check_scalar(func, "noise", noise, low=0.0)
    dt = _check_dtype(func, dtype)
    rng = check_rng(func, rng)
    X = rng.uniform(low, high, size=(num_samples, dim))
    w_true = np.where(np.arange(dim) % 2 == 0, 1.0, -1.0)
    y = X @ w_true + noise * rng.standard_normal(num_samples)
    return X.astype(dt), y.astype(dt), w_true.astype(dt)


# --------------------------------------------------------------------------- augmentation


def _check_image(func: str, img) -> np.ndarray:
    return check_float_array(func, "img", img, ndim=3)


def _check_rng_required(func: str, rng) -> np.random.Generator:
    if rng is None:
        raise ValueError(f"{func}: rng must be a numpy.random.Generator or an int seed, got None")
    return check_rng(func, rng)


def _size_pair(func: str, name: str, size) -> tuple[int, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, tuple | list) or len(size) != 2
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
                       for s in size)):
        raise ValueError(f"{func}: {name} must be a positive int or a pair of positive ints, "
                         f"got {size!r}")
    return int(size[0]), int(size[1])


def _bilinear_axis(n_in: int, n_out: int, dtype):
    """Source indices and weights along one axis (half-pixel centres, edge clamped)."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0).astype(dtype)


def resize_bilinear(img: np.ndarray, output_size) -> np.ndarray:
    r"""Resize a ``(C, H, W)`` image with bilinear interpolation.

    Output pixel :math:`i` samples the input at :math:`s = (i + \tfrac12) H / H' - \tfrac12`
    (clamped to :math:`[0, H - 1]`) along each axis and interpolates linearly between the
    two neighbouring input pixels. Resizing to the same size returns an exact copy.

    Parameters
    ----------
    img : ndarray, shape (C, H, W)
    output_size : int or (int, int)
        ``(H', W')``; an int gives a square.

    Returns
    -------
    out : ndarray, shape (C, H', W'), same dtype

    Notes
    -----
    This is ``torch.nn.functional.interpolate(x, size, mode='bilinear',
    align_corners=False)`` (no antialiasing), which is also what OpenCV's ``INTER_LINEAR``
    does.
    """
    func = "resize_bilinear"
    _check_image(func, img)
    out_h, out_w = _size_pair(func, "output_size", output_size)
    _, H, W = img.shape
    r0, r1, wr = _bilinear_axis(H, out_h, img.dtype)
    c0, c1, wc = _bilinear_axis(W, out_w, img.dtype)
    wr, wc = wr[:, None], wc[None, :]
    top = img[:, r0[:, None], c0[None, :]] * (1 - wc) + img[:, r0[:, None], c1[None, :]] * wc
    bottom = img[:, r1[:, None], c0[None, :]] * (1 - wc) + img[:, r1[:, None], c1[None, :]] * wc
    return top * (1 - wr) + bottom * wr


def horizontal_flip(img: np.ndarray, *, rng=None, p: float = 0.5) -> np.ndarray:
    """Mirror the image left-right with probability ``p``.

    Parameters
    ----------
    img : ndarray, shape (C, H, W)
    rng : numpy.random.Generator or int, optional
        Needed unless ``p`` is 0 or 1 (then the result is deterministic).
    p : float in [0, 1]

    Returns
    -------
    out : ndarray, shape (C, H, W)
        A new array (a copy even when not flipped).
    """
    func = "horizontal_flip"
    _check_image(func, img)
    check_scalar(func, "p", p, low=0.0, high=1.0)
    if p in (0, 1):
        flip = p == 1
    else:
        flip = _check_rng_required(func, rng).uniform() < p
    return img[:, :, ::-1].copy() if flip else img.copy()


def random_crop_and_rescale(
    img: np.ndarray, *, rng, scale=(0.5, 1.0), output_size=None
) -> np.ndarray:
    """Crop a random region and resize it (bilinear) back to a fixed size.

    The crop keeps the image's aspect ratio and covers a fraction ``s ~ U(scale)`` of its
    area: its sides are ``round(sqrt(s) * H)`` and ``round(sqrt(s) * W)`` (at least 1); its
    position is uniform.

    Parameters
    ----------
    img : ndarray, shape (C, H, W)
    rng : numpy.random.Generator or int
    scale : (float, float)
        Range of the area fraction, ``0 < low <= high <= 1``. ``(1, 1)`` returns the image.
    output_size : int or (int, int), optional
        Default: the input's ``(H, W)``.

    Returns
    -------
    out : ndarray, shape (C, H', W')
    """
    func = "random_crop_and_rescale"
    _check_image(func, img)
    rng = _check_rng_required(func, rng)
    if (not isinstance(scale, tuple | list) or len(scale) != 2
            or not all(isinstance(s, numbers.Real) for s in scale)
            or not 0 < scale[0] <= scale[1] <= 1):
        raise ValueError(f"{func}: scale must be a pair (low, high) with 0 < low <= high <= 1, "
                         f"got {scale!r}")
    _, H, W = img.shape
    out_size = (H, W) if output_size is None else _size_pair(func, "output_size", output_size)
    side = np.sqrt(rng.uniform(scale[0], scale[1]))
    h, w = max(1, min(H, round(side * H))), max(1, min(W, round(side * W)))
    top, left = rng.integers(0, H - h + 1), rng.integers(0, W - w + 1)
    return resize_bilinear(img[:, top:top + h, left:left + w], out_size)


def color_jitter(
    img: np.ndarray, *, rng, brightness: float = 0.4, contrast: float = 0.4
) -> np.ndarray:
    r"""Random brightness, then random contrast; the result is clipped to :math:`[0, 1]`.

    .. math::

        x' = b\,x, \qquad x'' = c\,x' + (1 - c)\,\overline{\mathrm{gray}(x')}

    with :math:`b \sim U[\max(0, 1 - \text{brightness}), 1 + \text{brightness}]` and
    :math:`c` likewise from ``contrast``; :math:`\overline{\mathrm{gray}}` is the mean
    luminance :math:`0.299R + 0.587G + 0.114B` (or the mean for one channel).

    Parameters
    ----------
    img : ndarray, shape (C, H, W), values in [0, 1]
    rng : numpy.random.Generator or int
    brightness, contrast : float >= 0
        0 leaves that property unchanged.

    Returns
    -------
    out : ndarray, shape (C, H, W), values in [0, 1]

    Notes
    -----
    Same factors as torchvision's ``ColorJitter(brightness, contrast)``, applied in a fixed
    order (torchvision shuffles the order).
    """
    func = "color_jitter"
    _check_image(func, img)
    rng = _check_rng_required(func, rng)
    check_scalar(func, "brightness", brightness, low=0.0)
    check_scalar(func, "contrast", contrast, low=0.0)
    b = rng.uniform(max(0.0, 1 - brightness), 1 + brightness)
    c = rng.uniform(max(0.0, 1 - contrast), 1 + contrast)
    out = np.clip(img * img.dtype.type(b), 0, 1)
    if out.shape[0] == 3:
        gray_mean = np.tensordot(np.asarray(_LUMA, dtype=img.dtype), out, axes=1).mean()
    else:
        gray_mean = out.mean()
    out = c * out + (1 - c) * gray_mean
    return np.clip(out, 0, 1).astype(img.dtype, copy=False)


def cutout(img: np.ndarray, *, rng, size: int, fill: float = 0.0) -> np.ndarray:
    """Fill a ``size x size`` square at a uniformly random centre with ``fill``.

    The square may stick out of the image (then less than ``size**2`` pixels change), as
    in DeVries & Taylor (2017); all channels are filled.

    Parameters
    ----------
    img : ndarray, shape (C, H, W)
    rng : numpy.random.Generator or int
    size : int >= 1
    fill : float

    Returns
    -------
    out : ndarray, shape (C, H, W)
    """
    func = "cutout"
    _check_image(func, img)
    rng = _check_rng_required(func, rng)
    check_scalar(func, "size", size, low=1, integer=True)
    check_scalar(func, "fill", fill)
    _, H, W = img.shape
    cy, cx = rng.integers(0, H), rng.integers(0, W)
    top, left = max(0, cy - size // 2), max(0, cx - size // 2)
    bottom, right = min(H, cy - size // 2 + size), min(W, cx - size // 2 + size)
    out = img.copy()
    out[:, top:bottom, left:right] = fill
    return out


def gaussian_noise(img: np.ndarray, *, rng, std: float, clip: bool = True) -> np.ndarray:
    r"""Add i.i.d. :math:`\mathcal{N}(0, \mathrm{std}^2)` noise to every pixel.

    Parameters
    ----------
    img : ndarray, shape (C, H, W)
    rng : numpy.random.Generator or int
    std : float >= 0
    clip : bool
        Clip the result to :math:`[0, 1]`.

    Returns
    -------
    out : ndarray, shape (C, H, W), same dtype
    """
    func = "gaussian_noise"
    _check_image(func, img)
    rng = _check_rng_required(func, rng)
    check_scalar(func, "std", std, low=0.0)
    out = img + (std * rng.standard_normal(img.shape)).astype(img.dtype)
    return np.clip(out, 0, 1) if clip else out


_AUGMENTATIONS: dict[str, Callable] = {
    "horizontal_flip": horizontal_flip,
    "random_crop_and_rescale": random_crop_and_rescale,
    "color_jitter": color_jitter,
    "cutout": cutout,
    "gaussian_noise": gaussian_noise,
}


def augment(
    img: np.ndarray,
    *,
    rng,
    ops=("horizontal_flip", "random_crop_and_rescale", "color_jitter"),
) -> np.ndarray:
    """Apply a sequence of augmentations in order, all drawing from one ``rng``.

    Parameters
    ----------
    img : ndarray, shape (C, H, W)
    rng : numpy.random.Generator or int
    ops : sequence
        Each item is a name (``'horizontal_flip'``, ``'random_crop_and_rescale'``,
        ``'color_jitter'``, ``'cutout'``, ``'gaussian_noise'``) used with its defaults, a
        pair ``(name, kwargs)``, e.g. ``('cutout', {'size': 3})``, or a callable
        ``f(img, *, rng) -> img``.

    Returns
    -------
    out : ndarray
        A new array; ``img`` is not modified.
    """
    func = "augment"
    _check_image(func, img)
    rng = _check_rng_required(func, rng)
    if isinstance(ops, str) or not isinstance(ops, Sequence):
        raise TypeError(f"{func}: ops must be a list of names, (name, kwargs) pairs or "
                        f"callables, got {ops!r}")
    out = img.copy()
    for op in ops:
        kwargs = {}
        if isinstance(op, tuple) and len(op) == 2 and isinstance(op[1], dict):
            op, kwargs = op
        if isinstance(op, str):
            if op not in _AUGMENTATIONS:
                raise ValueError(f"{func}: unknown augmentation {op!r}; valid: "
                                 f"{sorted(_AUGMENTATIONS)}")
            op = _AUGMENTATIONS[op]
        if not callable(op):
            raise TypeError(f"{func}: each op must be a name, a (name, kwargs) pair or a "
                            f"callable, got {op!r}")
        out = op(out, rng=rng, **kwargs)
    return out
