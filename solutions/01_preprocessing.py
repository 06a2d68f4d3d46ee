# %% [markdown]
# # Assignment 1: Data preprocessing
#
# You will implement the preprocessing steps of the lecture with NumPy: the per-channel mean
# of a set of images and its subtraction, standardization, the ZCA and Cholesky whitening
# matrices of a covariance, PCA and ZCA whitening fitted on a data set, and the condition
# number that measures what each step does to gradient descent. Every transform is **fitted
# once on the training data** and then **applied unchanged** to any other data.
#
# **Total: 30 points** (26 graded automatically, 4 for the written question at the end).
#
# How this notebook is graded:
#
# * Write your code in the cells that say `YOUR CODE HERE`, replacing
#   `raise NotImplementedError()`. Keep the function names and signatures: they are those of
#   the course library `normcore`, and your functions are compared with it.
# * Each test cell is worth the points written in its first line, all or nothing. The tests
#   you see check shapes and a small example worked out by hand. When the assignment is
#   graded, more tests run in the same cells: random shapes, float32 inputs, edge cases
#   (constant features, singular covariances, large `eps`) and comparison with a reference
#   implementation. A failing test says what is wrong.
# * Use NumPy only. A function that calls `normcore`'s implementation of the same step, or
#   scikit-learn's `preprocessing` / `decomposition`, scores zero on that test. The result
#   classes `Standardization` and `Whitening` (imported in the setup cell) are yours to use:
#   the fitting functions return them.
# * Arrays are `float32` or `float64`. The image functions and `whitening_matrix` return the
#   dtype of their input; fitted statistics are `float64` whatever the input (convert with
#   `X.astype(np.float64)` first). Never modify the arrays you are given.
# * Before submitting, restart the kernel and run all cells (*Kernel → Restart & Run All*).
#   Test cells you edit or delete are restored from the original when grading.

# %% nbgrader="readonly" grade_id="setup"
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("normcore") is None:  # outside the course environment (Colab)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet",
                           "normcore @ git+https://github.com/normcore-course/normalization-course"])

import numpy as np

from normcore import grading
from normcore.preprocessing import Standardization, Whitening

np.set_printoptions(precision=4, suppress=True)

# %% [markdown]
# ## 1. Centering images (5 points)
#
# Images are stored **channels first**, as in PyTorch: a set of $N$ images has shape
# `(N, C, H, W)`, or more generally `(N, C, *spatial)`. (The lecture writes a CIFAR-10 image
# as `[32, 32, 3]`, channels last; here it would be `(3, 32, 32)`.) The lecture gives two
# ways of centering images:
#
# * subtract the **mean image** (AlexNet), one value per channel and pixel,
#   $\mu_{chw} = \frac{1}{N}\sum_n x_{nchw}$, an array of shape `(C, H, W)`: that is simply
#   `images.mean(axis=0)`;
# * subtract the **per-channel mean** (VGG), one value per channel, averaged over all images
#   and all pixels:
#
# $$
# \mu_c = \frac{1}{N H W} \sum_{n, h, w} x_{nchw}, \qquad \text{shape } (C,).
# $$
#
# Write `per_channel_mean` (any number of spatial axes; return the dtype of `images`).

# %% nbgrader="answer" grade_id="per_channel_mean"
def per_channel_mean(images):
    """Mean of each channel over all images and pixels.

    Parameters
    ----------
    images : ndarray, shape (N, C, *spatial), e.g. (N, C, H, W)

    Returns
    -------
    mean : ndarray, shape (C,), dtype of images
    """
    ### BEGIN SOLUTION
    axes = (0,) + tuple(range(2, images.ndim))
    return images.mean(axis=axes, dtype=np.float64).astype(images.dtype)
    ### END SOLUTION


# %% [markdown]
# By hand: `images = np.arange(16.0).reshape(2, 2, 2, 2)` holds two images of two channels of
# $2 \times 2$ pixels. Channel 0 holds the values 0, 1, 2, 3 (first image) and 8, 9, 10, 11
# (second image), whose mean is 5.5; channel 1 holds 4 to 7 and 12 to 15, mean 9.5.

# %% nbgrader="tests" grade_id="test_per_channel_mean" points=2
# 2 points: per-channel mean.
images = np.arange(16.0).reshape(2, 2, 2, 2)
grading.check_example(per_channel_mean, (images,), name="per_channel_mean", returns="mean",
                      expected={"mean": [5.5, 9.5]})
# float32 images give a float32 mean:
grading.check_example(per_channel_mean, (images.astype(np.float32),), name="per_channel_mean",
                      returns="mean", expected={"mean": np.array([5.5, 9.5], dtype=np.float32)})
# Any number of spatial axes, e.g. (N, C, L):
grading.check_example(per_channel_mean, (images.reshape(2, 2, 4),), name="per_channel_mean",
                      returns="mean", expected={"mean": [5.5, 9.5]})
### BEGIN HIDDEN TESTS
from normcore import preprocessing as _ref

_rng = np.random.default_rng(1011)
for _shape, _dtype in [((5, 3, 4, 4), np.float64), ((4, 2, 7), np.float64),
                       ((2, 3, 2, 3, 4), np.float64), ((3, 3, 4, 3), np.float64),
                       ((1, 4, 2, 2), np.float64), ((8, 3, 6, 6), np.float32)]:
    _images = (20 * _rng.standard_normal(_shape) + 120).astype(_dtype)
    grading.check_against_reference(per_channel_mean, _ref.per_channel_mean, (_images,),
                                     name="per_channel_mean", returns="mean")
### END HIDDEN TESTS

# %% [markdown]
# Centering subtracts a mean **computed on the training images** from every image of every
# split (training, validation, test, a single image at deployment): the statistics of the
# images being centered are never used. Write `subtract_mean`, which accepts either kind of
# mean:
#
# * a per-channel mean of shape `(C,)` is subtracted from every pixel of its channel. NumPy
#   broadcasting aligns the **trailing** axes, so `images - mean` would subtract it along the
#   last (width) axis instead: reshape it to `(C, 1, 1, ...)` first;
# * a mean image of shape `(C, *spatial)` is subtracted from every image.
#
# Return a new array of the shape and dtype of `images`.

# %% nbgrader="answer" grade_id="subtract_mean"
def subtract_mean(images, mean):
    """Subtract a per-channel (C,) or per-pixel (C, *spatial) mean from images.

    Parameters
    ----------
    images : ndarray, shape (N, C, *spatial)
    mean : ndarray, shape (C,) or (C, *spatial), dtype of images

    Returns
    -------
    centered : ndarray, shape and dtype of images (a new array)
    """
    ### BEGIN SOLUTION
    C = images.shape[1]
    if mean.shape == (C,):
        mean = mean.reshape((C,) + (1,) * (images.ndim - 2))
    return images - mean
    ### END SOLUTION


# %% [markdown]
# By hand, with the two images above as training set: a new image
# `np.arange(8.0).reshape(1, 2, 2, 2)` has channels $\begin{pmatrix} 0 & 1 \\ 2 & 3
# \end{pmatrix}$ and $\begin{pmatrix} 4 & 5 \\ 6 & 7 \end{pmatrix}$. Subtracting the training
# per-channel mean $(5.5, 9.5)$ gives $\begin{pmatrix} -5.5 & -4.5 \\ -3.5 & -2.5
# \end{pmatrix}$ in both channels. The training mean image is the average of the values
# $0, \dots, 7$ and $8, \dots, 15$ position by position, i.e. $4, 5, \dots, 11$, so subtracting
# it leaves $-4$ everywhere.

# %% nbgrader="tests" grade_id="test_subtract_mean" points=3
# 3 points: subtracting a training mean from new images.
train_images = np.arange(16.0).reshape(2, 2, 2, 2)
new_image = np.arange(8.0).reshape(1, 2, 2, 2)
channel_mean = np.array([5.5, 9.5])  # per_channel_mean(train_images)
block = [[-5.5, -4.5], [-3.5, -2.5]]
grading.check_example(subtract_mean, (new_image, channel_mean), name="subtract_mean",
                      returns="centered",
                      expected={"centered": [[block, block]], "images": new_image})
mean_image = train_images.mean(axis=0)  # shape (2, 2, 2): 4, 5, ..., 11
grading.check_example(subtract_mean, (new_image, mean_image), name="subtract_mean",
                      returns="centered", expected={"centered": np.full((1, 2, 2, 2), -4.0)})
grading.check_example(subtract_mean, (new_image.astype(np.float32),
                                      channel_mean.astype(np.float32)),
                      name="subtract_mean", returns="centered",
                      expected={"centered": np.array([[block, block]], dtype=np.float32)})
### BEGIN HIDDEN TESTS
from normcore import preprocessing as _ref

_rng = np.random.default_rng(1012)
for _shape, _dtype in [((6, 3, 4, 4), np.float64), ((4, 2, 5), np.float64),
                       ((3, 3, 2, 3), np.float64), ((2, 3, 2, 2, 3), np.float64),
                       ((5, 3, 4, 4), np.float32)]:
    _train = (20 * _rng.standard_normal((8,) + _shape[1:]) + 120).astype(_dtype)
    _test = (20 * _rng.standard_normal(_shape) + 110).astype(_dtype)
    for _mean in (_ref.per_channel_mean(_train), _ref.per_pixel_mean(_train)):
        grading.check_against_reference(subtract_mean, _ref.subtract_mean, (_test, _mean),
                                         name="subtract_mean", returns="centered")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Standardization (4 points)
#
# For a data matrix $X$ of shape `(N, D)`, one example per row, standardization centers
# every feature and scales it to unit variance, with the **training** statistics:
#
# $$
# \mu_j = \frac{1}{N}\sum_{n} x_{nj}, \qquad
# \sigma_j^2 = \frac{1}{N}\sum_{n} (x_{nj} - \mu_j)^2, \qquad
# \hat{x}_j = \frac{x_j - \mu_j}{\sqrt{\sigma_j^2 + \epsilon}} .
# $$
#
# Note the **population variance** (divide by $N$, NumPy's default `ddof=0`) and $\epsilon$
# inside the square root: a constant feature ($\sigma_j^2 = 0$) is mapped to 0 instead of
# NaN.
#
# `fit_standardize` only *fits*: it returns the statistics in a `Standardization` object,
# `Standardization(mean=..., var=..., eps=...)`, with `mean` and `var` float64 arrays of shape
# `(D,)` (the plain variance, without $\epsilon$) and `eps` the float you were given. The
# object applies them: `standardization.transform(X_new)` computes
# $(x - \mu) / \sqrt{\sigma^2 + \epsilon}$ for any new data with the statistics of the
# training set.

# %% nbgrader="answer" grade_id="fit_standardize"
def fit_standardize(X, eps=1e-5):
    """Fit per-feature standardization on training data.

    Parameters
    ----------
    X : ndarray, shape (N, D), float32 or float64, N >= 2
    eps : float, >= 0

    Returns
    -------
    Standardization
        mean, var : ndarray, shape (D,), float64 (population variance, without eps)
        eps : float
    """
    ### BEGIN SOLUTION
    X64 = X.astype(np.float64)
    return Standardization(mean=X64.mean(axis=0), var=X64.var(axis=0), eps=float(eps))
    ### END SOLUTION


# %% [markdown]
# By hand: the training set `X_train = [[1, 10], [3, 10], [1, 30], [3, 30]]` has means
# $\mu = (2, 20)$ and variances $\sigma^2 = (1, 100)$ (the unbiased estimates would be
# $4/3$ and $400/3$). With $\epsilon = 0$, the new examples `[[2, 20], [5, 0]]` are
# standardized to `[[0, 0], [3, -2]]`.

# %% nbgrader="tests" grade_id="test_fit_standardize" points=4
# 4 points: fitting standardization, and applying it to new data.
X_train = np.array([[1.0, 10.0], [3.0, 10.0], [1.0, 30.0], [3.0, 30.0]])
returns = (".mean", ".var", ".eps")


def worked_example(X, eps=1e-5):  # the statistics computed by hand above
    return Standardization(mean=np.array([2.0, 20.0]), var=np.array([1.0, 100.0]), eps=eps)


grading.check_against_reference(fit_standardize, worked_example, (X_train,), {"eps": 0.0},
                                 name="fit_standardize", returns=returns)
# eps is stored apart from the variance (transform adds it under the square root):
grading.check_against_reference(fit_standardize, worked_example, (X_train,), {"eps": 0.5},
                                 name="fit_standardize", returns=returns)
# Statistics are float64, also for float32 data:
grading.check_against_reference(fit_standardize, worked_example,
                                 (X_train.astype(np.float32),), {"eps": 0.0},
                                 name="fit_standardize", returns=returns)
# Fitted on the training set, applied unchanged to new data:
standardization = fit_standardize(X_train, eps=0.0)
X_new = np.array([[2.0, 20.0], [5.0, 0.0]])
grading.assert_close("fit_standardize(X_train, eps=0.0).transform(X_new)",
                     standardization.transform(X_new), np.array([[0.0, 0.0], [3.0, -2.0]]))
### BEGIN HIDDEN TESTS
from normcore import preprocessing as _ref

_rng = np.random.default_rng(1013)
for _n, _d, _dtype, _eps in [(50, 4, np.float64, 1e-5), (20, 3, np.float64, 0.1),
                             (2, 5, np.float64, 1e-5), (40, 6, np.float32, 1e-5),
                             (30, 3, np.float32, 0.01)]:
    _X = (_rng.standard_normal((_n, _d)) * _rng.uniform(0.1, 10, _d)
          + _rng.uniform(-5, 5, _d)).astype(_dtype)
    grading.check_against_reference(fit_standardize, _ref.fit_standardize, (_X,), {"eps": _eps},
                                     name="fit_standardize", returns=returns)
_X = _rng.standard_normal((10, 3))
_X[:, 1] = 7.0  # a constant feature: variance 0
grading.check_against_reference(fit_standardize, _ref.fit_standardize, (_X,), {"eps": 1e-3},
                                 name="fit_standardize", returns=returns)
_X_train = 3 * _rng.standard_normal((40, 4)) + 1
_X_test = 3 * _rng.standard_normal((7, 4)) + 2
grading.assert_close("fit_standardize(X_train).transform(X_test)",
                     fit_standardize(_X_train).transform(_X_test),
                     _ref.fit_standardize(_X_train).transform(_X_test))
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Whitening matrices (5 points)
#
# Standardization rescales each feature; **whitening** also removes the correlations between
# them. A whitening matrix $W$ of a covariance $\Sigma$ (regularized by $\epsilon$) satisfies
#
# $$
# W\, (\Sigma + \epsilon I)\, W^\top = I ,
# $$
#
# so that $z = W(x - \mu)$ has identity covariance (up to $\epsilon$). $W$ acts on column
# vectors; a batch of centered rows $X_c$ is whitened as `Xc @ W.T`. Whitening matrices are not
# unique ($QW$ whitens too, for any orthogonal $Q$). Two of them have closed forms.
#
# **ZCA** ("zero-phase") whitening uses the eigen-decomposition $\Sigma = U \Lambda U^\top$
# (`vals, U = np.linalg.eigh(cov)`; the eigenvectors are the **columns** `U[:, k]`):
#
# $$
# W_\text{ZCA} = U (\Lambda + \epsilon I)^{-1/2} U^\top ,
# $$
#
# a symmetric matrix: rotate into the eigenbasis, scale each direction by
# $1/\sqrt{\lambda_k + \epsilon}$, rotate back. Of all whitening matrices it changes the data
# the least.
#
# **CD** (Cholesky decomposition) whitening factors $\Sigma + \epsilon I = L L^\top$ with $L$
# lower triangular (`np.linalg.cholesky`) and takes $W_\text{CD} = L^{-1}$, also lower
# triangular.
#
# Write `whitening_matrix` for `method="zca"` and `method="cd"` and a single covariance of
# shape `(d, d)`, returning the dtype of `cov`. (normcore also accepts `method="pca"`,
# $(\Lambda + \epsilon I)^{-1/2} U^\top$, and stacks of covariances; neither is tested here.
# Section 4 treats PCA whitening.)

# %% nbgrader="answer" grade_id="whitening_matrix"
def whitening_matrix(cov, method, eps=1e-5):
    """Whitening matrix W with W (cov + eps I) W^T = I.

    Parameters
    ----------
    cov : ndarray, shape (d, d)
        A symmetric positive semi-definite covariance matrix.
    method : {"zca", "cd"}
        U (Lambda + eps I)^(-1/2) U^T, or L^(-1) for cov + eps I = L L^T.
    eps : float, >= 0
        Added to the diagonal (to the eigenvalues).

    Returns
    -------
    W : ndarray, shape (d, d), dtype of cov
    """
    ### BEGIN SOLUTION
    eye = np.eye(cov.shape[0], dtype=cov.dtype)
    if method == "cd":
        return np.linalg.inv(np.linalg.cholesky(cov + eps * eye)).astype(cov.dtype)
    vals, vecs = np.linalg.eigh(cov)
    inv_root = 1 / np.sqrt(vals + eps)
    if method == "pca":
        return (vecs * inv_root).T.astype(cov.dtype)
    return ((vecs * inv_root) @ vecs.T).astype(cov.dtype)
    ### END SOLUTION


# %% [markdown]
# By hand: $\Sigma = \begin{pmatrix} 1.04 & 0.72 \\ 0.72 & 1.46 \end{pmatrix}$ has the
# eigenvalues 2 and 0.5, with eigenvectors $u_1 = (0.6, 0.8)$ and $u_2 = (0.8, -0.6)$. With
# $\epsilon = 0$,
#
# $$
# W_\text{ZCA} = \frac{1}{\sqrt{2}}\, u_1 u_1^\top + \frac{1}{\sqrt{0.5}}\, u_2 u_2^\top
# = \frac{1}{\sqrt 2}\begin{pmatrix} 1.64 & -0.48 \\ -0.48 & 1.36 \end{pmatrix}.
# $$
#
# For a diagonal covariance ZCA divides every feature by its standard deviation: with
# $\Sigma = \operatorname{diag}(3, 8)$ and $\epsilon = 1$, $W = \operatorname{diag}(1/2, 1/3)$.

# %% nbgrader="tests" grade_id="test_whitening_matrix_zca" points=3
# 3 points: ZCA whitening matrix.
cov = np.array([[1.04, 0.72], [0.72, 1.46]])
grading.check_example(whitening_matrix, (cov, "zca"), {"eps": 0.0}, name="whitening_matrix",
                      returns="W",
                      expected={"W": np.array([[1.64, -0.48], [-0.48, 1.36]]) / np.sqrt(2)})
grading.check_example(whitening_matrix, (np.diag([3.0, 8.0]), "zca"), {"eps": 1.0},
                      name="whitening_matrix", returns="W",
                      expected={"W": np.diag([1 / 2, 1 / 3])})
# W whitens, and float32 in gives float32 out:
cov32 = cov.astype(np.float32)
W = whitening_matrix(cov32, "zca", eps=0.0)
grading.assert_close("W @ cov32 @ W.T for W = whitening_matrix(cov32, 'zca', eps=0.0)",
                     W @ cov32 @ W.T, np.eye(2, dtype=np.float32))
### BEGIN HIDDEN TESTS
from normcore import whitening as _ref_whitening

_rng = np.random.default_rng(1014)
for _d, _eps, _dtype in [(4, 1e-5, np.float64), (6, 0.1, np.float64), (5, 0.0, np.float64),
                         (3, 1e-3, np.float32)]:
    _A = _rng.standard_normal((3 * _d, _d)) * np.geomspace(2, 0.2, _d)
    _cov = (_A.T @ _A / (3 * _d)).astype(_dtype)
    grading.check_against_reference(whitening_matrix, _ref_whitening.whitening_matrix,
                                     (_cov, "zca"), {"eps": _eps}, name="whitening_matrix",
                                     returns="W")
# A singular covariance (3 centered samples in 5 dimensions): eps keeps W finite.
_A = _rng.standard_normal((3, 5))
_A -= _A.mean(axis=0)
grading.check_against_reference(whitening_matrix, _ref_whitening.whitening_matrix,
                                 (_A.T @ _A / 3, "zca"), {"eps": 0.01}, name="whitening_matrix",
                                 returns="W")
### END HIDDEN TESTS

# %% [markdown]
# By hand: $\Sigma = \begin{pmatrix} 4 & 2 \\ 2 & 2 \end{pmatrix} = L L^\top$ with
# $L = \begin{pmatrix} 2 & 0 \\ 1 & 1 \end{pmatrix}$, so with $\epsilon = 0$,
# $W_\text{CD} = L^{-1} = \begin{pmatrix} 0.5 & 0 \\ -0.5 & 1 \end{pmatrix}$. With
# $\epsilon = 1$, $\Sigma = \begin{pmatrix} 3 & 2 \\ 2 & 4 \end{pmatrix}$ becomes
# $\begin{pmatrix} 4 & 2 \\ 2 & 5 \end{pmatrix}$, $L = \begin{pmatrix} 2 & 0 \\ 1 & 2
# \end{pmatrix}$ and $W = L^{-1} = \begin{pmatrix} 1/2 & 0 \\ -1/4 & 1/2 \end{pmatrix}$.

# %% nbgrader="tests" grade_id="test_whitening_matrix_cd" points=2
# 2 points: Cholesky whitening matrix.
grading.check_example(whitening_matrix, (np.array([[4.0, 2.0], [2.0, 2.0]]), "cd"),
                      {"eps": 0.0}, name="whitening_matrix", returns="W",
                      expected={"W": [[0.5, 0.0], [-0.5, 1.0]]})
grading.check_example(whitening_matrix, (np.array([[3.0, 2.0], [2.0, 4.0]]), "cd"),
                      {"eps": 1.0}, name="whitening_matrix", returns="W",
                      expected={"W": [[0.5, 0.0], [-0.25, 0.5]]})
### BEGIN HIDDEN TESTS
from normcore import whitening as _ref_whitening

_rng = np.random.default_rng(1015)
for _d, _eps, _dtype in [(4, 1e-5, np.float64), (6, 0.1, np.float64), (3, 1e-3, np.float32)]:
    _A = _rng.standard_normal((3 * _d, _d)) * np.geomspace(2, 0.2, _d)
    _cov = (_A.T @ _A / (3 * _d)).astype(_dtype)
    grading.check_against_reference(whitening_matrix, _ref_whitening.whitening_matrix,
                                     (_cov, "cd"), {"eps": _eps}, name="whitening_matrix",
                                     returns="W")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. PCA and ZCA whitening of a data set (9 points)
#
# Now fit whitening on training data $X$ of shape `(N, D)`. With the training mean $\mu$ and
# the **population** covariance
#
# $$
# \Sigma = \frac{1}{N}\sum_{n} (x_n - \mu)(x_n - \mu)^\top = \frac{1}{N} X_c^\top X_c
# = U \Lambda U^\top, \qquad X_c = X - \mu,
# $$
#
# the two whitening transforms of the lecture are $z = W(x - \mu)$ with
#
# $$
# W_\text{PCA} = (\Lambda_K + \epsilon I)^{-1/2}\, U_K^\top \quad \text{(shape } (K, D)),
# \qquad
# W_\text{ZCA} = U (\Lambda + \epsilon I)^{-1/2}\, U^\top \quad \text{(shape } (D, D)),
# $$
#
# where $U_K, \Lambda_K$ are the first $K$ = `n_components` eigenvectors and eigenvalues (PCA
# can reduce the dimension; by default $K = D$). PCA whitening expresses the data in the
# eigenvector basis; ZCA rotates it back to the input axes. Because PCA's output depends on
# the order and the signs of the eigenvectors, fix them by normcore's conventions:
#
# * **order**: eigenvalues in **decreasing** order, $\lambda_1 \ge \dots \ge \lambda_D$
#   (`np.linalg.eigh` returns them increasing: reverse the values and the columns);
# * **sign**: an eigenvector is defined up to its sign; flip each column $u_k$ so that its
#   entry of **largest magnitude is positive**;
# * eigenvalues are $\ge 0$, but rounding can make a zero one slightly negative: clip them with
#   `np.maximum(vals, 0)`.
#
# Return `Whitening(method=..., mean=..., eigenvalues=..., eigenvectors=..., eps=...,
# matrix=...)` with `method` `"pca"` or `"zca"`, `mean` of shape `(D,)`, **all** $D$
# eigenvalues (decreasing) and eigenvectors (the columns of a `(D, D)` array, signs fixed),
# `eps` the float you were given and `matrix` $W$; arrays in float64. The object whitens new
# data with `whitening.transform(X_new)`, which computes `(X_new - mean) @ matrix.T`. You may
# call your `whitening_matrix` where it helps.

# %% nbgrader="answer" grade_id="fit_pca_whitening"
def fit_pca_whitening(X, eps=1e-5, n_components=None):
    """Fit PCA whitening on training data.

    Parameters
    ----------
    X : ndarray, shape (N, D), float32 or float64, N >= 2
    eps : float, >= 0
        Added to the eigenvalues.
    n_components : int in [1, D], optional
        Number K of principal components kept (rows of the matrix). Default: D.

    Returns
    -------
    Whitening
        method "pca"; mean (D,); eigenvalues (D,), decreasing; eigenvectors (D, D), columns,
        largest-magnitude entry positive; eps; matrix (K, D). Arrays in float64.
    """
    ### BEGIN SOLUTION
    X64 = X.astype(np.float64)
    N, D = X64.shape
    K = D if n_components is None else n_components
    mean = X64.mean(axis=0)
    Xc = X64 - mean
    vals, vecs = np.linalg.eigh(Xc.T @ Xc / N)
    vals, vecs = np.maximum(vals[::-1], 0.0), vecs[:, ::-1]
    largest = vecs[np.argmax(np.abs(vecs), axis=0), np.arange(D)]
    vecs = vecs * np.where(largest < 0, -1.0, 1.0)
    matrix = vecs[:, :K].T / np.sqrt(vals[:K] + eps)[:, None]
    return Whitening(method="pca", mean=mean, eigenvalues=vals, eigenvectors=vecs,
                     eps=float(eps), matrix=matrix)
    ### END SOLUTION


# %% [markdown]
# By hand: the four training points `X = [[2.2, 3.6], [-0.2, 0.4], [1.8, 1.4], [0.2, 2.6]]`
# have the mean $\mu = (1, 2)$; centered they are $\pm 2 u_1$ and $\pm u_2$ with
# $u_1 = (0.6, 0.8)$, $u_2 = (0.8, -0.6)$, so
# $\Sigma = \frac{1}{4}(2 \cdot 4\, u_1 u_1^\top + 2 \cdot 1\, u_2 u_2^\top) = 2\, u_1 u_1^\top
# + 0.5\, u_2 u_2^\top$, the covariance of section 3. Its eigenvalues are $(2, 0.5)$ and
# $U = \begin{pmatrix} 0.6 & 0.8 \\ 0.8 & -0.6 \end{pmatrix}$ (columns $u_1, u_2$; the largest
# entry of each, 0.8, is positive). With $\epsilon = 0$,
#
# $$
# W_\text{PCA} = \begin{pmatrix} 1/\sqrt{2} & 0 \\ 0 & 1/\sqrt{0.5} \end{pmatrix} U^\top
# = \frac{1}{\sqrt 2}\begin{pmatrix} 0.6 & 0.8 \\ 1.6 & -1.2 \end{pmatrix},
# $$
#
# and with `n_components=1` only its first row. The first training point is whitened to
# $W_\text{PCA}(2 u_1) = (\sqrt 2, 0)$.

# %% nbgrader="tests" grade_id="test_fit_pca_whitening" points=5
# 5 points: PCA whitening.
X = np.array([[2.2, 3.6], [-0.2, 0.4], [1.8, 1.4], [0.2, 2.6]])
returns = (".mean", ".eigenvalues", ".eigenvectors", ".matrix", ".eps")


def worked_example(X, eps=1e-5, n_components=None):  # the values computed by hand above
    W = np.array([[0.6, 0.8], [1.6, -1.2]]) / np.sqrt(2)
    return Whitening(method="pca", mean=np.array([1.0, 2.0]), eigenvalues=np.array([2.0, 0.5]),
                     eigenvectors=np.array([[0.6, 0.8], [0.8, -0.6]]), eps=eps,
                     matrix=W[:n_components])


grading.check_against_reference(fit_pca_whitening, worked_example, (X,), {"eps": 0.0},
                                 name="fit_pca_whitening", returns=returns)
grading.check_against_reference(fit_pca_whitening, worked_example, (X,),
                                 {"eps": 0.0, "n_components": 1}, name="fit_pca_whitening",
                                 returns=returns)
grading.check_against_reference(fit_pca_whitening, worked_example, (X.astype(np.float32),),
                                 {"eps": 0.0}, name="fit_pca_whitening", returns=returns)
### BEGIN HIDDEN TESTS
from normcore import preprocessing as _ref

_rng = np.random.default_rng(1016)
for _n, _d, _eps, _k, _dtype in [(40, 4, 1e-5, None, np.float64), (25, 5, 0.1, None, np.float64),
                                 (30, 6, 1e-5, 3, np.float64), (10, 3, 1e-5, 1, np.float64),
                                 (50, 3, 1e-3, None, np.float32)]:
    _mixing = _rng.standard_normal((_d, _d)) * np.geomspace(3, 0.3, _d)[:, None]
    _X = (_rng.standard_normal((_n, _d)) @ _mixing + 2 * _rng.standard_normal(_d)).astype(_dtype)
    grading.check_against_reference(fit_pca_whitening, _ref.fit_pca_whitening, (_X,),
                                     {"eps": _eps, "n_components": _k},
                                     name="fit_pca_whitening", returns=returns)
_X = _rng.standard_normal((20, 4)) @ _rng.standard_normal((4, 4))
_X[:, 2] = 0.5  # a constant feature: a zero eigenvalue, kept finite by eps
grading.check_against_reference(fit_pca_whitening, _ref.fit_pca_whitening, (_X,), {"eps": 1e-3},
                                 name="fit_pca_whitening", returns=returns)
### END HIDDEN TESTS

# %% [markdown]
# ZCA whitening uses the same eigen-decomposition (same conventions, so that `eigenvalues` and
# `eigenvectors` are those of PCA) and the matrix $W_\text{ZCA} = U (\Lambda + \epsilon
# I)^{-1/2} U^\top$. By hand, for the data above and $\epsilon = 0$, $W_\text{ZCA}$ is the
# matrix of section 3. A new point $x = \mu + u_1 = (1.6, 2.8)$ lies one unit along the
# direction of variance 2, and is whitened to $W_\text{ZCA} u_1 = u_1 / \sqrt{2}$: ZCA shrinks
# it along $u_1$ without rotating it.

# %% nbgrader="answer" grade_id="fit_zca_whitening"
def fit_zca_whitening(X, eps=1e-5):
    """Fit ZCA whitening on training data.

    Parameters
    ----------
    X : ndarray, shape (N, D), float32 or float64, N >= 2
    eps : float, >= 0

    Returns
    -------
    Whitening
        method "zca"; mean, eigenvalues, eigenvectors and eps as for PCA;
        matrix (D, D) = U (Lambda + eps I)^(-1/2) U^T. Arrays in float64.
    """
    ### BEGIN SOLUTION
    pca = fit_pca_whitening(X, eps)
    return Whitening(method="zca", mean=pca.mean, eigenvalues=pca.eigenvalues,
                     eigenvectors=pca.eigenvectors, eps=pca.eps,
                     matrix=pca.eigenvectors @ pca.matrix)
    ### END SOLUTION


# %% nbgrader="tests" grade_id="test_fit_zca_whitening" points=4
# 4 points: ZCA whitening, fitted on training data and applied to new data.
X = np.array([[2.2, 3.6], [-0.2, 0.4], [1.8, 1.4], [0.2, 2.6]])
returns = (".mean", ".eigenvalues", ".eigenvectors", ".matrix", ".eps")


def worked_example(X, eps=1e-5):  # the values computed by hand above, for any eps
    u1, u2 = np.array([0.6, 0.8]), np.array([0.8, -0.6])
    W = np.outer(u1, u1) / np.sqrt(2 + eps) + np.outer(u2, u2) / np.sqrt(0.5 + eps)
    return Whitening(method="zca", mean=np.array([1.0, 2.0]), eigenvalues=np.array([2.0, 0.5]),
                     eigenvectors=np.array([[0.6, 0.8], [0.8, -0.6]]), eps=eps, matrix=W)


grading.check_against_reference(fit_zca_whitening, worked_example, (X,), {"eps": 0.0},
                                 name="fit_zca_whitening", returns=returns)
# eps inside the square root: W = u1 u1^T / sqrt(2 + eps) + u2 u2^T / sqrt(0.5 + eps).
grading.check_against_reference(fit_zca_whitening, worked_example, (X,), {"eps": 0.5},
                                 name="fit_zca_whitening", returns=returns)
# Fitted on X, applied unchanged to a new point:
zca = fit_zca_whitening(X, eps=0.0)
grading.assert_close("fit_zca_whitening(X, eps=0.0).transform([[1.6, 2.8]])",
                     zca.transform(np.array([[1.6, 2.8]])), np.array([[0.6, 0.8]]) / np.sqrt(2))
### BEGIN HIDDEN TESTS
from normcore import preprocessing as _ref

_rng = np.random.default_rng(1017)
for _n, _d, _eps, _dtype in [(40, 4, 1e-5, np.float64), (25, 5, 0.1, np.float64),
                             (8, 6, 1e-5, np.float64), (50, 3, 1e-3, np.float32)]:
    _mixing = _rng.standard_normal((_d, _d)) * np.geomspace(3, 0.3, _d)[:, None]
    _X = (_rng.standard_normal((_n, _d)) @ _mixing + 2 * _rng.standard_normal(_d)).astype(_dtype)
    grading.check_against_reference(fit_zca_whitening, _ref.fit_zca_whitening, (_X,),
                                     {"eps": _eps}, name="fit_zca_whitening", returns=returns)
_X = _rng.standard_normal((20, 4)) @ _rng.standard_normal((4, 4))
_X[:, 0] = -1.5  # a constant feature
grading.check_against_reference(fit_zca_whitening, _ref.fit_zca_whitening, (_X,), {"eps": 1e-3},
                                 name="fit_zca_whitening", returns=returns)
_X_train = _rng.standard_normal((60, 3)) @ _rng.standard_normal((3, 3)) + 4
_X_test = _rng.standard_normal((9, 3)) @ _rng.standard_normal((3, 3)) + 3
grading.assert_close("fit_zca_whitening(X_train, eps=1e-3).transform(X_test)",
                     fit_zca_whitening(_X_train, eps=1e-3).transform(_X_test),
                     _ref.fit_zca_whitening(_X_train, eps=1e-3).transform(_X_test))
### END HIDDEN TESTS

# %% [markdown]
# ## 5. The condition number (3 points)
#
# For least squares without a bias, $\mathcal{L}(w) = \frac{1}{2N}\lVert Xw - y\rVert^2$, the
# Hessian is the second-moment matrix of the input,
#
# $$
# H = \frac{1}{N} X^\top X = \frac{1}{N}\sum_n x_n x_n^\top ,
# $$
#
# and gradient descent with the step $1/\lambda_\max$ needs about
# $\kappa \ln(1/\varepsilon)$ iterations to reach a relative error $\varepsilon$, where
# $\kappa = \lambda_\max / \lambda_\min$ is the **condition number** of $H$. Write
# `condition_number`, the ratio of the largest to the smallest eigenvalue of
# $\frac{1}{N}X^\top X$, or, with `centered=True`, of the covariance
# $\frac{1}{N}X_c^\top X_c$. Compute in float64 and return a Python `float`; you may assume
# $\lambda_\min > 0$. (normcore returns `inf` for a singular matrix.)

# %% nbgrader="answer" grade_id="condition_number"
def condition_number(X, *, centered=False):
    """Condition number lambda_max / lambda_min of X^T X / N (of the covariance if centered).

    Parameters
    ----------
    X : ndarray, shape (N, D), float32 or float64, N >= 2
    centered : bool
        Subtract the mean of X first.

    Returns
    -------
    kappa : float
    """
    ### BEGIN SOLUTION
    X64 = X.astype(np.float64)
    if centered:
        X64 = X64 - X64.mean(axis=0)
    vals = np.linalg.eigvalsh(X64.T @ X64 / X64.shape[0])
    return float(vals[-1] / vals[0])
    ### END SOLUTION


# %% [markdown]
# By hand: the points `[[3, 0], [1, 0], [2, 1], [2, -1]]` have the mean $(2, 0)$ and the
# covariance $\operatorname{diag}(0.5, 0.5)$, so $\kappa = 1$ with `centered=True`. Their second
# moment is the covariance plus $\mu\mu^\top$, $\operatorname{diag}(4.5, 0.5)$: $\kappa = 9$.
# The data of section 4 has the covariance eigenvalues 2 and 0.5: $\kappa = 4$.

# %% nbgrader="tests" grade_id="test_condition_number" points=3
# 3 points: condition number.
X_offset = np.array([[3.0, 0.0], [1.0, 0.0], [2.0, 1.0], [2.0, -1.0]])
grading.check_example(condition_number, (X_offset,), name="condition_number", returns="kappa",
                      expected={"kappa": 9.0})
grading.check_example(condition_number, (X_offset,), {"centered": True},
                      name="condition_number", returns="kappa", expected={"kappa": 1.0})
X = np.array([[2.2, 3.6], [-0.2, 0.4], [1.8, 1.4], [0.2, 2.6]])
grading.check_example(condition_number, (X,), {"centered": True}, name="condition_number",
                      returns="kappa", expected={"kappa": 4.0})
### BEGIN HIDDEN TESTS
from normcore import preprocessing as _ref

_rng = np.random.default_rng(1018)
for _n, _d in [(40, 3), (30, 5), (6, 2)]:
    _mixing = _rng.standard_normal((_d, _d)) * np.geomspace(3, 0.3, _d)[:, None]
    _X = _rng.standard_normal((_n, _d)) @ _mixing + 2 * _rng.standard_normal(_d)
    for _centered in (False, True):
        grading.check_against_reference(condition_number, _ref.condition_number, (_X,),
                                         {"centered": _centered}, name="condition_number",
                                         returns="kappa")
# float32 data with two nearly collinear features (kappa in the tens of thousands):
_Z = _rng.standard_normal((50, 3))
_X = np.column_stack([_Z[:, 0], _Z[:, 1], _Z[:, 0] + 0.01 * _Z[:, 2]]) + [1.0, 2.0, 3.0]
grading.check_against_reference(condition_number, _ref.condition_number,
                                 (_X.astype(np.float32),), {"centered": True},
                                 name="condition_number", returns="kappa")
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Written question (4 points)
#
# The cell below (not graded; it uses your functions) builds a training and a test set of three
# features: a feature of standard deviation 2, a second one strongly correlated with it on
# a smaller scale, and an independent third one, all with large positive means. It prints the
# condition number of the training inputs raw, centered, standardized and ZCA-whitened, and
# of the test inputs whitened with the training statistics.
#
# (a) Explain why each step lowers $\kappa$ on these inputs: what does centering remove, what
# does standardization equalize, and what is left for whitening? Does centering lower $\kappa$
# for every data set? (Try two features with covariance $\Sigma = \operatorname{diag}(1, 0.01)$
# and mean $\mu = (0, 1)$.) What do the printed numbers mean for the number of
# gradient-descent iterations of a linear least-squares model on these inputs?
#
# (b) The whitened test inputs do not have $\kappa = 1$, and the whitened training inputs not
# exactly either. Why? Would it be better to fit the whitening on the test set, so that its
# $\kappa$ becomes 1? Answer in a few sentences in the cell below.

# %%
rng = np.random.default_rng(0)
a, b, c = rng.standard_normal((700, 3)).T
features = np.column_stack([2.0 * a, 0.5 * a + 0.2 * b, 0.3 * c]) + [20.0, 8.0, 3.0]
X_train, X_test = features[:500], features[500:]
standardization = fit_standardize(X_train)
zca = fit_zca_whitening(X_train)
inputs = {
    "raw": X_train,
    "centered": X_train - standardization.mean,
    "standardized": standardization.transform(X_train),
    "ZCA-whitened": zca.transform(X_train),
    "test set, ZCA-whitened": zca.transform(X_test),
}
for name, Z in inputs.items():
    print(f"{name:<24} kappa = {condition_number(Z):10.5g}")

# %% [markdown] nbgrader="manual" grade_id="written_answer" points=4
# (a) The raw features have large positive means, so $\frac1N X^\top X = \Sigma + \mu\mu^\top$
# has one huge eigenvalue along the mean direction ($\kappa \approx 8000$). Centering removes
# $\mu\mu^\top$, leaving the covariance ($\kappa \approx 120$), whose spread comes from the
# different scales (standard deviations 2, about 0.5 and 0.3) and from the correlation of the
# first two features. Standardization equalizes the variances ($\kappa \approx 30$), but the
# correlation (about 0.93) remains: the correlation matrix has eigenvalues $1 \pm 0.93$ in that
# plane. Whitening removes the correlation too and gives $\kappa \approx 1$. Centering lowers
# $\kappa$ here because the large mean adds a huge eigenvalue along $\mu$ while the other
# directions keep their small variances; it does not lower $\kappa$ in general. With
# $\Sigma = \operatorname{diag}(1, 0.01)$ and $\mu = (0, 1)$, $H = \Sigma + \mu\mu^\top =
# \operatorname{diag}(1, 1.01)$ has $\kappa \approx 1.01$, while the centered $H = \Sigma$ has
# $\kappa = 100$: the mean had filled the direction of small variance. Only whitening makes the
# training covariance (close to) the identity whatever the data. Gradient descent
# on least squares needs about $\kappa \ln(1/\varepsilon)$ iterations: tens of thousands on the
# raw inputs, about a thousand centered, a few hundred standardized, and one step for
# whitened inputs (with $\eta = 1$ and $H = I$ the first step lands on the minimum).
#
# (b) On the training set the covariance of the whitened data is
# $U\operatorname{diag}(\lambda_k / (\lambda_k + \epsilon))U^\top$, so $\epsilon$ leaves
# $\kappa$ slightly above 1. The test set is another finite sample: its mean and covariance
# differ from the training estimates, so the training whitening matrix does not whiten it
# exactly ($\kappa \approx 1.2$). Fitting on the test set would be wrong: the transform is part
# of the model, fixed after training. Re-estimating it lets the test data influence the
# model (a leak), makes a prediction depend on which examples are evaluated together, and is
# impossible for a single example at deployment. The small mismatch is the honest price of
# using statistics estimated from training data.
