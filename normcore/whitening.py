r"""Batch whitening: PCA, ZCA and Cholesky (CD) whitening of a mini-batch, and its group-wise
version.

Batch normalization standardizes each channel; batch whitening also decorrelates the channels.
For a mini-batch :math:`X \in \mathbb R^{N \times d}` with mean :math:`\mu` and centered
:math:`X_c = X - \mathbf 1 \mu^\top`,

.. math::

    \Sigma = \frac{1}{N} X_c^\top X_c + \epsilon I,
    \qquad \text{out} = X_c W^\top, \qquad W \Sigma W^\top = I,

where the whitening matrix :math:`W` acts on column vectors (:math:`\text{out}_n = W x_{c,n}`).
With :math:`\Sigma = U \Lambda U^\top` (eigendecomposition) and :math:`\Sigma = L L^\top`
(Cholesky), the three methods are

.. math::

    W_{\text{PCA}} = \Lambda^{-1/2} U^\top, \qquad
    W_{\text{ZCA}} = U \Lambda^{-1/2} U^\top, \qquad
    W_{\text{CD}} = L^{-1}.

Every whitening matrix is :math:`Q W_{\text{ZCA}}` for an orthogonal :math:`Q`: PCA rotates
into the eigenbasis, CD is lower triangular, and ZCA is the one whose output stays closest to
:math:`X_c`. Whitening more channels together decorrelates more but makes the output depend
more on which samples share the batch; group whitening (whitening ``num_groups`` blocks of
consecutive channels separately) trades the two, and with one channel per group it is batch
normalization without the affine transform.

Conventions
-----------
* The covariance uses :math:`1/N` (the biased estimate, as batch norm does for its batch
  variance); ``eps`` is added to its diagonal before whitening.
* PCA's eigenvectors are defined up to sign; normcore flips each one so that its entry of
  largest magnitude is positive, which makes the output and its gradient deterministic.
* Running statistics follow ``torch.nn.BatchNorm1d``: ``running = (1 - momentum) * running +
  momentum * batch``, with the *unbiased* (:math:`1/(N-1)`) batch covariance, so with one
  channel per group ``running_cov`` equals BatchNorm's ``running_var``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from ._checks import check_finite, check_float_array, check_same_dtype, check_scalar, check_shape

__all__ = [
    "WHITENING_METHODS",
    "whitening_matrix",
    "batch_whitening_forward",
    "batch_whitening_backward",
    "group_whitening_forward",
    "group_whitening_backward",
]

WHITENING_METHODS = ("pca", "zca", "cd")


def _check_method(func: str, method) -> str:
    if not isinstance(method, str) or method not in WHITENING_METHODS:
        valid = ", ".join(repr(m) for m in WHITENING_METHODS)
        raise ValueError(f"{func}: method must be one of {valid}, got {method!r}")
    return method


def _matrix(func: str, sigma: np.ndarray, method: str):
    """Whitening matrices of a stack ``sigma`` of shape (G, c, c); returns ``(W, aux)``.

    ``aux`` is ``(eigenvalues, eigenvectors)`` for PCA/ZCA and the Cholesky factor for CD.
    """
    if method == "cd":
        try:
            chol = np.linalg.cholesky(sigma)
        except np.linalg.LinAlgError:
            raise ValueError(
                f"{func}: covariance + eps*I must be positive definite for Cholesky whitening, "
                "got a singular or indefinite matrix (increase eps or the batch size)"
            ) from None
        eye = np.broadcast_to(np.eye(sigma.shape[-1], dtype=sigma.dtype), sigma.shape)
        whiten = scipy.linalg.solve_triangular(chol, eye, lower=True).astype(sigma.dtype)
        return whiten, chol
    lam, vecs = np.linalg.eigh(sigma)
    if np.any(lam <= 0):
        raise ValueError(
            f"{func}: covariance + eps*I must be positive definite, got smallest eigenvalue "
            f"{lam.min():.3g} (increase eps or the batch size)"
        )
    # Sign convention: the largest-magnitude entry of every eigenvector is positive.
    idx = np.argmax(np.abs(vecs), axis=-2)[..., None, :]
    vecs = vecs * np.sign(np.take_along_axis(vecs, idx, axis=-2))
    inv_sqrt = 1.0 / np.sqrt(lam)
    pca = np.swapaxes(vecs * inv_sqrt[..., None, :], -1, -2)  # Lambda^{-1/2} U^T
    whiten = pca if method == "pca" else vecs @ pca
    return whiten, (lam, vecs)


def whitening_matrix(cov, method, eps=1e-5):
    r"""Whitening matrix :math:`W` with :math:`W (\Sigma + \epsilon I) W^\top = I`.

    Parameters
    ----------
    cov : ndarray, shape (d, d) or (G, c, c)
        A symmetric covariance matrix, or a stack of them (one per group).
    method : {"pca", "zca", "cd"}
        :math:`\Lambda^{-1/2} U^\top`, :math:`U \Lambda^{-1/2} U^\top` or :math:`L^{-1}` for
        :math:`\Sigma + \epsilon I = U \Lambda U^\top = L L^\top`.
    eps : float, default 1e-5
        Added to the diagonal before whitening.

    Returns
    -------
    W : ndarray, same shape and dtype as ``cov``
        Applied to column vectors; a batch of rows is whitened as ``X_c @ W.T``. For ``"cd"`` it
        is lower triangular, for ``"zca"`` symmetric.

    Raises
    ------
    ValueError
        If ``cov`` is not square, not symmetric, not finite, or ``cov + eps*I`` is not positive
        definite.

    Examples
    --------
    >>> import numpy as np
    >>> whitening_matrix(np.diag([4.0, 0.25]), "zca", eps=0.0)
    array([[0.5, 0. ],
           [0. , 2. ]])
    """
    func = "whitening_matrix"
    check_float_array(func, "cov", cov, ndim=(2, 3))
    if cov.shape[-1] != cov.shape[-2] or cov.shape[-1] == 0:
        raise ValueError(f"{func}: cov must be square and non-empty, got shape {cov.shape}")
    check_finite(func, "cov", cov)
    method = _check_method(func, method)
    check_scalar(func, "eps", eps, low=0.0)
    asym = np.max(np.abs(cov - np.swapaxes(cov, -1, -2)), initial=0.0)
    if asym > np.sqrt(np.finfo(cov.dtype).eps) * np.max(np.abs(cov), initial=0.0):
        raise ValueError(f"{func}: cov must be symmetric, got max |cov - cov.T| = {asym:.3g}")
    stack = cov.reshape((-1,) + cov.shape[-2:])
    eye = np.eye(cov.shape[-1], dtype=cov.dtype)
    whiten, _ = _matrix(func, stack + eps * eye, method)
    return whiten.reshape(cov.shape)


def _check_running(func, x, num_groups, running_mean, running_cov, training, cov_shape):
    if (running_mean is None) != (running_cov is None):
        raise ValueError(
            f"{func}: pass both running_mean and running_cov or neither, got only "
            f"{'running_mean' if running_cov is None else 'running_cov'}"
        )
    if running_mean is None:
        if not training:
            raise ValueError(
                f"{func}: training=False whitens with running statistics, "
                "got running_mean=None and running_cov=None"
            )
        return
    check_float_array(func, "running_mean", running_mean)
    check_float_array(func, "running_cov", running_cov)
    check_same_dtype(func, x=x, running_mean=running_mean, running_cov=running_cov)
    check_shape(func, "running_mean", running_mean, (x.shape[1],))
    check_shape(func, "running_cov", running_cov, cov_shape)
    check_finite(func, "running_mean", running_mean)
    check_finite(func, "running_cov", running_cov)


def _forward(func, x, num_groups, method, eps, running_mean, running_cov, training, momentum,
             cov_shape):
    """Shared forward of batch and group whitening; groups are whitened as one (G, ., .) stack."""
    check_float_array(func, "x", x, ndim=2)
    check_finite(func, "x", x)
    method = _check_method(func, method)
    check_scalar(func, "eps", eps, low=0.0)
    check_scalar(func, "momentum", momentum, low=0.0, high=1.0)
    if not isinstance(training, bool | np.bool_):
        raise TypeError(f"{func}: training must be a bool, got {training!r}")
    n, d = x.shape
    if n == 0 or d == 0:
        raise ValueError(f"{func}: x must be non-empty, got shape {x.shape}")
    c = d // num_groups
    _check_running(func, x, num_groups, running_mean, running_cov, training, cov_shape)
    eye = np.eye(c, dtype=x.dtype)
    xg = np.swapaxes(x.reshape(n, num_groups, c), 0, 1)  # (G, N, c)

    if not training:
        mean = running_mean.reshape(num_groups, 1, c)
        sigma = running_cov.reshape(num_groups, c, c) + eps * eye
        whiten, _ = _matrix(func, sigma, method)
        xc = xg - mean
        out = xc @ np.swapaxes(whiten, -1, -2)
        cache = {"training": False, "whiten": whiten, "shape": x.shape}
        return np.swapaxes(out, 0, 1).reshape(n, d), cache

    if n < 2:
        raise ValueError(f"{func}: training needs a batch of at least 2 samples, got N={n}")
    if eps == 0 and n <= c:
        raise ValueError(
            f"{func}: with eps=0 the batch covariance of {c} channels is singular unless "
            f"N > {c}, got N={n} (use eps > 0 or a larger batch)"
        )
    mean = xg.mean(axis=1, keepdims=True)
    xc = xg - mean
    cov = xc.swapaxes(-1, -2) @ xc / n
    cov = 0.5 * (cov + cov.swapaxes(-1, -2))
    whiten, aux = _matrix(func, cov + eps * eye, method)
    out = xc @ np.swapaxes(whiten, -1, -2)
    if running_mean is not None:
        running_mean *= 1 - momentum
        running_mean += momentum * mean.reshape(d)
        running_cov *= 1 - momentum
        running_cov += (momentum * n / (n - 1)) * cov.reshape(running_cov.shape)
    cache = {
        "training": True,
        "method": method,
        "xc": xc,
        "whiten": whiten,
        "aux": aux,
        "shape": x.shape,
    }
    return np.swapaxes(out, 0, 1).reshape(n, d), cache


def _sigma_grad(func, method, dwhiten, whiten, aux):
    """Gradient w.r.t. Sigma (up to its antisymmetric part) given the gradient w.r.t. W."""
    swap = np.swapaxes
    if method == "cd":
        # W = L^{-1}, Sigma = L L^T:  dSigma = -W^T Phi(dW W^T) W, Phi = lower part, half diag.
        inner = np.tril(dwhiten @ swap(whiten, -1, -2))
        diag = np.arange(inner.shape[-1])
        inner[..., diag, diag] *= 0.5
        return -swap(whiten, -1, -2) @ inner @ whiten
    lam, vecs = aux
    root = np.sqrt(lam)
    if method == "zca":
        # W = f(Sigma), f(l) = l^{-1/2}: Daleckii-Krein divided differences
        # (f(l_i) - f(l_j)) / (l_i - l_j) = -1 / (s_i s_j (s_i + s_j)), s = sqrt(l).
        diff = -1.0 / (root[..., :, None] * root[..., None, :]
                       * (root[..., :, None] + root[..., None, :]))
        return vecs @ (diff * (swap(vecs, -1, -2) @ dwhiten @ vecs)) @ swap(vecs, -1, -2)
    # PCA: W = Lambda^{-1/2} U^T, a function of the eigenvalues and of each eigenvector.
    dlam = -0.5 * np.einsum("...kj,...jk->...k", dwhiten, vecs) / (lam * root)
    dvecs = swap(dwhiten, -1, -2) / root[..., None, :]
    gap = lam[..., None, :] - lam[..., :, None]  # gap[i, k] = l_k - l_i
    off = ~np.eye(lam.shape[-1], dtype=bool)
    if np.any(gap[..., off] == 0):
        raise ValueError(
            f"{func}: PCA whitening is not differentiable at repeated "
            "eigenvalues of the covariance, got two equal eigenvalues"
        )
    inv_gap = np.zeros_like(gap)
    inv_gap[..., off] = 1.0 / gap[..., off]
    core = inv_gap * (swap(vecs, -1, -2) @ dvecs)
    core += dlam[..., None, :] * np.eye(lam.shape[-1])
    return vecs @ core @ swap(vecs, -1, -2)


def _backward(func, dout, cache):
    check_float_array(func, "dout", dout, ndim=2)
    check_shape(func, "dout", dout, cache["shape"])
    n, d = dout.shape
    whiten = cache["whiten"]
    num_groups, c = whiten.shape[0], whiten.shape[-1]
    dg = np.swapaxes(dout.reshape(n, num_groups, c), 0, 1)  # (G, N, c)
    dxc = dg @ whiten
    if cache["training"]:
        xc = cache["xc"]
        dwhiten = np.swapaxes(dg, -1, -2) @ xc  # out = Xc W^T  =>  dW = dout^T Xc
        dsigma = _sigma_grad(func, cache["method"], dwhiten, whiten, cache["aux"])
        dxc = dxc + xc @ (dsigma + np.swapaxes(dsigma, -1, -2)) / n
        dxc = dxc - dxc.mean(axis=1, keepdims=True)
    return np.swapaxes(dxc, 0, 1).reshape(n, d)


def batch_whitening_forward(
    x,
    method,
    *,
    eps=1e-5,
    running_mean=None,
    running_cov=None,
    training=True,
    momentum=0.1,
):
    r"""Whiten a mini-batch: zero mean and identity covariance across all ``d`` channels.

    .. math::

        \mu = \frac1N \sum_n x_n,\quad X_c = X - \mathbf 1\mu^\top,\quad
        \Sigma = \frac1N X_c^\top X_c + \epsilon I,\quad
        \text{out} = X_c W^\top,\ W = \texttt{whitening\_matrix}(\Sigma)

    Parameters
    ----------
    x : ndarray, shape (N, d)
        Mini-batch, float32 or float64.
    method : {"pca", "zca", "cd"}
        PCA: :math:`X_c U \Lambda^{-1/2}`; ZCA: :math:`X_c U \Lambda^{-1/2} U^\top`;
        CD: :math:`X_c L^{-\top}` with :math:`\Sigma = L L^\top`.
    eps : float, default 1e-5
        Added to the diagonal of the covariance.
    running_mean : ndarray, shape (d,), optional
        Updated in place in training mode; used for the mean in eval mode.
    running_cov : ndarray, shape (d, d), optional
        Updated in place in training mode with the unbiased batch covariance (no ``eps``);
        in eval mode the whitening matrix is that of ``running_cov + eps * I``.
    training : bool, default True
        Batch statistics (True) or running statistics (False, both arrays required).
    momentum : float, default 0.1
        PyTorch convention: ``running = (1 - momentum) * running + momentum * batch``.

    Returns
    -------
    out : ndarray, shape (N, d)
        In training mode ``out.T @ out / N = I - eps * W @ W.T``.
    cache : dict
        What :func:`batch_whitening_backward` needs.

    Raises
    ------
    ValueError
        Unknown method; ``x`` not 2-D or not finite; in training mode ``N < 2``, or ``N <= d``
        with ``eps == 0`` (the covariance of ``N`` centered samples has rank at most
        ``N - 1``); a covariance that is not positive definite; bad running statistics.
    TypeError
        ``x`` not a float32/float64 ndarray.

    Notes
    -----
    The lecture's running averages, :math:`\hat\mu \leftarrow (1-\lambda)\hat\mu +
    \lambda\mu_B`, are this ``momentum`` with :math:`\lambda` = ``momentum``. Running statistics
    average the covariance rather than the whitening matrix, so eval mode whitens exactly with
    the population estimate. PyTorch has no batch-whitening layer; the tests build the same
    computation from ``torch.linalg.eigh`` and ``torch.linalg.cholesky``.
    """
    check_float_array("batch_whitening_forward", "x", x, ndim=2)
    d = x.shape[1]
    return _forward("batch_whitening_forward", x, 1, method, eps, running_mean, running_cov,
                    training, momentum, (d, d))


def batch_whitening_backward(dout, cache):
    r"""Backward pass of :func:`batch_whitening_forward`.

    With :math:`G = \partial L / \partial W = \text{dout}^\top X_c` and
    :math:`\bar\Sigma` the gradient with respect to :math:`\Sigma` (through the whitening
    matrix),

    .. math::

        \frac{\partial L}{\partial X_c} = \text{dout}\, W
        + \frac1N X_c \left(\bar\Sigma + \bar\Sigma^\top\right),
        \qquad
        \frac{\partial L}{\partial x_n} = \frac{\partial L}{\partial x_{c,n}}
        - \frac1N \sum_m \frac{\partial L}{\partial x_{c,m}},

    where :math:`\bar\Sigma` is

    * ZCA: :math:`U \left(F \circ U^\top G U\right) U^\top`,
      :math:`F_{ij} = -1 / \left(\sqrt{\lambda_i}\sqrt{\lambda_j}(\sqrt{\lambda_i} +
      \sqrt{\lambda_j})\right)` (divided differences of :math:`\lambda^{-1/2}`; no eigenvalue
      gap needed);
    * PCA: the eigendecomposition adjoint :math:`U\left(\operatorname{diag}(\bar\lambda) +
      K \circ U^\top \bar U\right) U^\top` with :math:`K_{ik} = 1/(\lambda_k - \lambda_i)`,
      :math:`\bar U = G^\top \Lambda^{-1/2}`, :math:`\bar\lambda_k = -\tfrac12
      \lambda_k^{-3/2} (G U)_{kk}`; it needs distinct eigenvalues;
    * CD: :math:`-W^\top \Phi(G W^\top) W`, :math:`\Phi` = lower triangle with half diagonal.

    In eval mode the statistics are constants and :math:`\partial L/\partial x = \text{dout}\,W`.

    Parameters
    ----------
    dout : ndarray, shape (N, d)
    cache : dict
        From :func:`batch_whitening_forward`.

    Returns
    -------
    dx : ndarray, shape (N, d)
    """
    return _backward("batch_whitening_backward", dout, cache)


def group_whitening_forward(
    x,
    num_groups,
    method,
    *,
    eps=1e-5,
    running_mean=None,
    running_cov=None,
    training=True,
    momentum=0.1,
):
    r"""Whiten ``num_groups`` blocks of consecutive channels separately.

    Channels ``[k c, (k+1) c)``, :math:`c = d / G`, form group ``k``; each group is whitened
    with :func:`batch_whitening_forward`'s formula, all groups at once as a stack of
    :math:`G` covariance matrices of size :math:`c \times c`.

    ``num_groups=1`` is full batch whitening; ``num_groups=d`` is per-channel standardization,
    :math:`(x - \mu) / \sqrt{\sigma^2_B + \epsilon}` with the biased batch variance, i.e. batch
    normalization without the affine transform (for every method).

    Parameters
    ----------
    x : ndarray, shape (N, d)
    num_groups : int
        Must divide ``d``.
    method : {"pca", "zca", "cd"}
    eps : float, default 1e-5
    running_mean : ndarray, shape (d,), optional
    running_cov : ndarray, shape (num_groups, d // num_groups, d // num_groups), optional
        One running covariance per group, updated as in :func:`batch_whitening_forward`.
    training : bool, default True
    momentum : float, default 0.1

    Returns
    -------
    out : ndarray, shape (N, d)
    cache : dict

    Notes
    -----
    Smaller groups decorrelate fewer channel pairs but estimate fewer statistics from the
    batch, so the output depends less on the other samples in it (less stochastic
    normalization disturbance). In training mode ``eps == 0`` needs ``N > d / num_groups``.
    """
    func = "group_whitening_forward"
    check_float_array(func, "x", x, ndim=2)
    check_scalar(func, "num_groups", num_groups, low=1, integer=True)
    d = x.shape[1]
    if d % num_groups != 0:
        raise ValueError(f"{func}: num_groups={num_groups} does not divide d={d}")
    c = d // num_groups
    return _forward(func, x, int(num_groups), method, eps, running_mean, running_cov, training,
                    momentum, (num_groups, c, c))


def group_whitening_backward(dout, cache):
    """Backward pass of :func:`group_whitening_forward`: :func:`batch_whitening_backward`'s
    formulas applied to every group at once.

    Parameters
    ----------
    dout : ndarray, shape (N, d)
    cache : dict
        From :func:`group_whitening_forward`.

    Returns
    -------
    dx : ndarray, shape (N, d)
    """
    return _backward("group_whitening_backward", dout, cache)
