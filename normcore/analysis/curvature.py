r"""Exact Hessians of small torch models, Hessian-vector products, and the top of the
spectrum by Lanczos or power iteration.

The functions compute in the dtype of the tensors they are given; use float64 for the
identities that are checked to rounding error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .._checks import check_float_array, check_rng, check_scalar
from ._common import LazyTorch, _check_choice

if TYPE_CHECKING:
    import torch
else:
    torch = LazyTorch(globals())

__all__ = [
    "flat_loss_function",
    "hessian",
    "hessian_vector_product",
    "top_hessian_eigenvalues",
]


def flat_loss_function(model: torch.nn.Module, X, y, loss_fn) -> tuple[Callable, torch.Tensor]:
    r"""Turn ``loss_fn(model(X), y)`` into a function of one flat parameter vector.

    Parameters
    ----------
    model : torch.nn.Module
        Its parameters are not modified; buffers (e.g. BN running statistics) are read
        through :func:`torch.func.functional_call` and may be updated by a training-mode
        forward as usual.
    X, y : torch.Tensor
        One batch.
    loss_fn : callable
        ``loss_fn(output, y) -> scalar tensor``.

    Returns
    -------
    f : callable
        ``f(theta) -> scalar tensor`` for ``theta`` of shape ``(P,)``.
    theta : torch.Tensor, shape (P,)
        The model's current parameters, flattened in ``named_parameters`` order (detached).
    """
    func = "flat_loss_function"
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{func}: model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"{func}: loss_fn must be callable, got {type(loss_fn).__name__}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError(f"{func}: model must have trainable parameters, got none")
    names = [n for n, _ in named]
    shapes = [p.shape for _, p in named]
    sizes = [p.numel() for _, p in named]
    theta = torch.cat([p.detach().reshape(-1) for _, p in named]).clone()

    def f(flat):
        params = {
            n: t.reshape(s)
            for n, t, s in zip(names, torch.split(flat, sizes), shapes, strict=True)
        }
        return loss_fn(torch.func.functional_call(model, params, (X,)), y)

    return f, theta


def _check_params(func: str, params) -> torch.Tensor:
    if isinstance(params, np.ndarray):
        check_float_array(func, "params", params, ndim=1)
        params = torch.from_numpy(params.copy())
    if not isinstance(params, torch.Tensor) or not params.is_floating_point():
        raise TypeError(
            f"{func}: params must be a 1-d floating torch.Tensor or ndarray, "
            f"got {type(params).__name__}"
        )
    if params.ndim != 1 or params.numel() == 0:
        raise ValueError(f"{func}: params must be a non-empty 1-d vector, got shape "
                         f"{tuple(params.shape)}")
    return params.detach()


def _scalar_loss(func: str, loss_fn, theta: torch.Tensor) -> torch.Tensor:
    if not callable(loss_fn):
        raise TypeError(f"{func}: loss_fn must be callable, got {type(loss_fn).__name__}")
    loss = loss_fn(theta)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(f"{func}: loss_fn must return a scalar tensor, got {loss!r}")
    return loss.reshape(())


def _hvp_operator(func: str, loss_fn, params) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """Return ``v -> H v`` (NumPy float64 in and out), reusing one gradient graph."""
    params = _check_params(func, params)
    theta = params.clone().requires_grad_(True)
    loss = _scalar_loss(func, loss_fn, theta)
    (grad,) = torch.autograd.grad(loss, theta, create_graph=True)

    def apply(v: np.ndarray) -> np.ndarray:
        if not grad.requires_grad:  # the loss is linear in theta
            return np.zeros(theta.numel())
        vt = torch.from_numpy(np.ascontiguousarray(v)).to(theta.dtype)
        (hv,) = torch.autograd.grad(grad, theta, grad_outputs=vt, retain_graph=True,
                                    allow_unused=True)
        if hv is None:
            return np.zeros(theta.numel())
        return hv.detach().to(torch.float64).numpy()

    return apply, theta.numel()


def hessian(loss_fn, params) -> np.ndarray:
    r"""Exact Hessian :math:`H_{ij} = \partial^2 L / \partial\theta_i \partial\theta_j`.

    Computed by :func:`torch.autograd.functional.hessian` on the flat vector; meant for
    models with at most a few thousand parameters (use :func:`flat_loss_function` to
    obtain ``loss_fn`` and ``params`` from a model).

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(theta) -> scalar tensor`` for ``theta`` of shape ``(P,)``.
    params : torch.Tensor or ndarray, shape (P,)
        The point; computation runs in its dtype.

    Returns
    -------
    H : ndarray, shape (P, P)
        In the dtype of ``params``.
    """
    func = "hessian"
    theta = _check_params(func, params)
    _scalar_loss(func, loss_fn, theta.clone())
    H = torch.autograd.functional.hessian(lambda t: loss_fn(t).reshape(()), theta.clone())
    return H.detach().numpy()


def hessian_vector_product(loss_fn, params, v) -> np.ndarray:
    r"""Hessian-vector product :math:`H v = \nabla_\theta \langle \nabla_\theta L, v\rangle`.

    Uses double back-propagation (Pearlmutter's trick): the cost is about two gradient
    evaluations and the Hessian is never formed.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(theta) -> scalar tensor``.
    params : torch.Tensor or ndarray, shape (P,)
    v : ndarray, shape (P,), float32 or float64

    Returns
    -------
    Hv : ndarray, shape (P,), float64
    """
    func = "hessian_vector_product"
    apply, P = _hvp_operator(func, loss_fn, params)
    check_float_array(func, "v", v, ndim=1)
    if v.shape[0] != P:
        raise ValueError(f"{func}: v must have shape ({P},) like params, got {v.shape}")
    return apply(v.astype(np.float64))


def _lanczos(apply, P: int, k: int, iters: int, gen: np.random.Generator):
    """Lanczos with full reorthogonalization; restarts in the orthogonal complement on breakdown."""
    Q = np.zeros((iters, P))
    alpha = np.zeros(iters)
    beta = np.zeros(iters)  # beta[j] couples q_j and q_{j+1}
    q = gen.standard_normal(P)
    q /= np.linalg.norm(q)
    m = 0
    for j in range(iters):
        Q[j] = q
        m = j + 1
        w = apply(q)
        alpha[j] = q @ w
        for _ in range(2):  # twice is enough (Kahan-Parlett)
            w -= Q[:m].T @ (Q[:m] @ w)
        b = np.linalg.norm(w)
        if m == iters:
            break
        scale = max(abs(alpha[j]), beta[j - 1] if j else 0.0, 1.0)
        if b <= 1e-10 * scale:  # invariant subspace found: continue with a fresh direction
            b = 0.0
            w = gen.standard_normal(P)
            for _ in range(2):
                w -= Q[:m].T @ (Q[:m] @ w)
            w_norm = np.linalg.norm(w)
            if w_norm <= 1e-12:
                break
            q = w / w_norm
        else:
            q = w / b
        beta[j] = b
    T = np.diag(alpha[:m]) + np.diag(beta[: m - 1], 1) + np.diag(beta[: m - 1], -1)
    evals, evecs = np.linalg.eigh(T)
    order = np.argsort(evals)[::-1][:k]
    return evals[order], (evecs[:, order].T @ Q[:m])


def _power(apply, P: int, k: int, iters: int, tol: float, gen: np.random.Generator):
    """Power iteration with deflation against the eigenvectors already found."""
    vals, vecs = [], []
    for _ in range(k):
        V = np.array(vecs).reshape(len(vecs), P)
        v = gen.standard_normal(P)
        v -= V.T @ (V @ v)
        v /= np.linalg.norm(v)
        lam = 0.0
        for it in range(iters):
            w = apply(v)
            w -= V.T @ (V @ w)
            lam_new = v @ w
            w_norm = np.linalg.norm(w)
            if w_norm == 0.0:
                lam = 0.0
                break
            v = w / w_norm
            if it > 0 and abs(lam_new - lam) <= tol * abs(lam_new):
                lam = lam_new
                break
            lam = lam_new
        vals.append(lam)
        vecs.append(v)
    return np.array(vals), np.array(vecs)


def top_hessian_eigenvalues(
    loss_fn,
    params,
    k=1,
    *,
    method="lanczos",
    iters=None,
    tol=1e-10,
    seed=0,
    return_eigenvectors=False,
):
    r"""Leading Hessian eigenvalues from Hessian-vector products only.

    ``"lanczos"``
        Builds an orthonormal basis :math:`Q_m` of the Krylov space
        :math:`\{q, Hq, \dots, H^{m-1}q\}`: each :math:`Hq_j` is orthogonalized against
        all previous basis vectors (Gram-Schmidt, twice), which in exact arithmetic is the
        three-term recurrence :math:`\beta_j q_{j+1} = Hq_j - \alpha_j q_j -
        \beta_{j-1} q_{j-1}` without its loss of orthogonality in floating point. Returns
        the ``k`` largest eigenvalues (algebraically) of the tridiagonal
        :math:`T_m = Q_m^T H Q_m` (``numpy.linalg.eigh``). Extreme Ritz values converge
        first; with ``iters = P`` the result is the exact spectrum. If the Krylov space
        closes early (repeated eigenvalues), the basis continues from a fresh random vector
        orthogonal to it.
    ``"power"``
        :math:`v \leftarrow Hv/\|Hv\|` until the Rayleigh quotient changes by less than
        ``tol`` (relative), then deflates by projecting out the eigenvectors found. Converges
        to the eigenvalues of **largest magnitude**, at a rate
        :math:`|\lambda_{i+1}/\lambda_i|` per iteration.

    Parameters
    ----------
    loss_fn : callable
        ``loss_fn(theta) -> scalar tensor``.
    params : torch.Tensor or ndarray, shape (P,)
    k : int, 1 <= k <= P
    method : {"lanczos", "power"}
    iters : int, optional
        Lanczos steps (default ``min(P, max(4k, 40))``) or power iterations per eigenvalue
        (default 1000).
    tol : float
        Relative stopping tolerance of power iteration.
    seed : int
        Seed of the random starting vectors.
    return_eigenvectors : bool
        Also return the unit eigenvector estimates, shape ``(k, P)``.

    Returns
    -------
    eigenvalues : ndarray, shape (k,), float64
        Descending (``"lanczos"``) or in order of decreasing magnitude (``"power"``).
    eigenvectors : ndarray, shape (k, P)
        Only with ``return_eigenvectors=True``.
    """
    func = "top_hessian_eigenvalues"
    _check_choice(func, "method", method, ("lanczos", "power"))
    apply, P = _hvp_operator(func, loss_fn, params)
    check_scalar(func, "k", k, low=1, high=P, integer=True)
    if iters is None:
        iters = min(P, max(4 * k, 40)) if method == "lanczos" else 1000
    check_scalar(func, "iters", iters, low=1, integer=True)
    check_scalar(func, "tol", tol, low=0, low_inclusive=False)
    gen = check_rng(func, seed)
    if method == "lanczos":
        if iters < k:
            raise ValueError(f"{func}: Lanczos needs iters >= k={k}, got iters={iters}")
        vals, vecs = _lanczos(apply, P, k, min(iters, P), gen)
    else:
        vals, vecs = _power(apply, P, k, iters, tol, gen)
    return (vals, vecs) if return_eigenvectors else vals
