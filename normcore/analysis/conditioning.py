r"""Condition numbers: of a spectrum (also over its top 50 % / 80 %), of the layer-wise
input and output-gradient covariances of a torch model, and of linear regression, whose
Hessian is the input second-moment matrix. The learning-rate thresholds follow from its
spectrum, and the number of gradient-descent iterations grows with its condition number.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .._checks import check_float_array, check_scalar
from ._common import LazyTorch, _check_choice, _check_int

if TYPE_CHECKING:
    import torch
else:
    torch = LazyTorch(globals())

__all__ = [
    "condition_number",
    "layerwise_condition_numbers",
    "linear_regression_hessian",
    "optimal_learning_rate",
    "divergent_learning_rate",
    "gradient_descent_errors",
    "gd_iterations_to_tolerance",
]


def condition_number(a, *, top_fraction=None) -> float:
    r"""Condition number of a symmetric positive semi-definite matrix or of its spectrum.

    With the eigenvalues sorted descending, :math:`\lambda_1 \ge \dots \ge \lambda_d`,

    .. math::

        \kappa = \frac{\lambda_1}{\lambda_d}, \qquad
        \kappa_{p} = \frac{\lambda_1}{\lambda_{\lceil p d \rceil}} .

    :math:`\kappa_p` (``top_fraction=p``) is the condition number of the top :math:`p`
    fraction of the spectrum: the tutorial's :math:`\kappa_{50\%}` and :math:`\kappa_{80\%}`
    compare the largest eigenvalue with the one at the 50 % / 80 % position. It stays
    finite for the singular covariances of real layers, where the full :math:`\kappa` is
    infinite. ``top_fraction=1`` gives :math:`\kappa`.

    Parameters
    ----------
    a : ndarray, shape (d, d) or (d,)
        A symmetric matrix (only its lower triangle is read) or its eigenvalues.
    top_fraction : float in (0, 1], optional

    Returns
    -------
    float
        ``inf`` if the selected eigenvalue is <= 0, ``nan`` if the largest one is.
    """
    func = "condition_number"
    check_float_array(func, "a", a, ndim=(1, 2))
    if a.size == 0:
        raise ValueError(f"{func}: a must be non-empty, got shape {a.shape}")
    if a.ndim == 2 and a.shape[0] != a.shape[1]:
        raise ValueError(f"{func}: a must be a square matrix or a 1-d spectrum, got {a.shape}")
    p = 1.0 if top_fraction is None else top_fraction
    check_scalar(func, "top_fraction", p, low=0, low_inclusive=False, high=1)
    evals = np.linalg.eigvalsh(a) if a.ndim == 2 else a
    evals = np.sort(evals.astype(np.float64))[::-1]
    j = max(1, math.ceil(p * evals.size - 1e-9))
    top, sel = evals[0], evals[j - 1]
    if not top > 0:
        return math.nan
    return math.inf if sel <= 0 else float(top / sel)


def layerwise_condition_numbers(model, X, y, loss_fn, *, centered=False) -> list[dict]:
    r"""Condition numbers of each ``nn.Linear`` layer's input and output-gradient covariances.

    For every :class:`torch.nn.Linear` layer :math:`h = W x + b` (in ``named_modules``
    order), one forward and backward pass on the batch gives

    .. math::

        \Sigma_x = \frac{1}{N}\sum_n x_n x_n^T, \qquad
        \Sigma_{\nabla h} = \frac{1}{N}\sum_n
            \frac{\partial \ell}{\partial h_n}\frac{\partial \ell}{\partial h_n}^T,

    the matrices of the lecture's criterion 2 (uncentered second moments, as in the lecture;
    ``centered=True`` subtracts the batch mean first). Their condition numbers are
    reported in full and over the top 50 % / 80 % of the spectrum (see
    :func:`condition_number`). The gradients are taken with respect to the layer outputs
    with :func:`torch.autograd.grad`: the parameters' ``.grad`` fields are not touched,
    and buffers such as BN running statistics are restored after the forward pass.

    Parameters
    ----------
    model : torch.nn.Module
        Used in its current mode (``train()`` or ``eval()``).
    X : torch.Tensor, shape (N, ...)
    y : torch.Tensor
    loss_fn : callable
        ``loss_fn(model(X), y) -> scalar tensor``. A mean-reduced loss scales every output
        gradient by :math:`1/N`, which leaves the condition numbers unchanged.
    centered : bool

    Returns
    -------
    list of dict
        One per linear layer with keys ``layer`` (qualified name), ``in_features``,
        ``out_features``, ``input_cov_kappa``, ``input_cov_kappa_top50``,
        ``input_cov_kappa_top80``, ``grad_cov_kappa``, ``grad_cov_kappa_top50``,
        ``grad_cov_kappa_top80``, ``input_cov_eigenvalues`` and ``grad_cov_eigenvalues``
        (descending float64 arrays).
    """
    func = "layerwise_condition_numbers"
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{func}: model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(
            f"{func}: X and y must be torch tensors, got {type(X).__name__} and "
            f"{type(y).__name__}"
        )
    if not callable(loss_fn):
        raise TypeError(f"{func}: loss_fn must be callable, got {type(loss_fn).__name__}")
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if not linears:
        raise ValueError(f"{func}: model must contain at least one torch.nn.Linear, got none")

    records: dict[str, tuple] = {}

    def make_hook(name):
        def hook(module, inputs, output):
            records[name] = (inputs[0].detach(), output)

        return hook

    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
    handles = [m.register_forward_hook(make_hook(n)) for n, m in linears]
    try:
        with torch.enable_grad():
            loss = loss_fn(model(X), y)
            names = [n for n, _ in linears if n in records]
            outputs = [records[n][1] for n in names]
            if not all(o.requires_grad for o in outputs):
                raise ValueError(
                    f"{func}: every Linear output must require grad, got a layer without "
                    "trainable parameters on the path"
                )
            grads = torch.autograd.grad(loss, outputs, allow_unused=True)
    finally:
        for h in handles:
            h.remove()
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(buffers[n])

    def moments(z: torch.Tensor) -> np.ndarray:
        z = z.detach().to(torch.float64).reshape(-1, z.shape[-1]).numpy()
        if centered:
            z = z - z.mean(axis=0)
        return np.sort(np.linalg.eigvalsh(z.T @ z / z.shape[0]))[::-1]

    results = []
    for name, grad in zip(names, grads, strict=True):
        inp, out = records[name]
        g = torch.zeros_like(out) if grad is None else grad
        ex, eg = moments(inp), moments(g)
        row = {"layer": name, "in_features": ex.size, "out_features": eg.size}
        for key, ev in (("input_cov", ex), ("grad_cov", eg)):
            row[f"{key}_kappa"] = condition_number(ev)
            row[f"{key}_kappa_top50"] = condition_number(ev, top_fraction=0.5)
            row[f"{key}_kappa_top80"] = condition_number(ev, top_fraction=0.8)
        row["input_cov_eigenvalues"], row["grad_cov_eigenvalues"] = ex, eg
        results.append(row)
    return results


# ===================================================================== linear regression

def linear_regression_hessian(X) -> np.ndarray:
    r"""Hessian of :math:`L(w) = \frac{1}{2N}\|Xw - y\|^2`, which is :math:`X^T X / N`.

    .. math::

        \nabla L = \frac{1}{N} X^T (Xw - y), \qquad
        H = \frac{1}{N} X^T X = \frac{1}{N}\sum_n x_n x_n^T ,

    the second-moment (covariance, for centered inputs) matrix of the input. It does not
    depend on ``y`` or ``w``, so the input alone fixes the curvature.

    Parameters
    ----------
    X : ndarray, shape (N, d)

    Returns
    -------
    H : ndarray, shape (d, d), dtype of ``X``

    Notes
    -----
    The lecture writes :math:`C = \frac{1}{N}\sum_i x^T x` for column vectors :math:`x`;
    the matrix meant is the outer product :math:`x x^T`. For :math:`k` outputs the Hessian
    with respect to the flattened weight is :math:`\mathbb{E}[x x^T] \otimes I_k`.
    """
    check_float_array("linear_regression_hessian", "X", X, ndim=2)
    if X.shape[0] == 0:
        raise ValueError(f"linear_regression_hessian: X needs at least one row, got {X.shape}")
    return X.T @ X / X.shape[0]


def _spectrum(func: str, H) -> np.ndarray:
    check_float_array(func, "H", H, ndim=2)
    if H.shape[0] != H.shape[1] or H.shape[0] == 0:
        raise ValueError(f"{func}: H must be a non-empty square matrix, got shape {H.shape}")
    if not np.allclose(H, H.T, rtol=1e-6, atol=1e-12 * max(1.0, float(np.abs(H).max()))):
        raise ValueError(f"{func}: H must be symmetric, got an asymmetric matrix")
    evals = np.linalg.eigvalsh(H.astype(np.float64))
    if evals[-1] <= 0:
        raise ValueError(f"{func}: H must have a positive eigenvalue, got max {evals[-1]!r}")
    return evals


def optimal_learning_rate(H, *, rule="lecture") -> float:
    r"""Learning rate for gradient descent on a quadratic with Hessian ``H``.

    Gradient descent multiplies the error along eigenvector :math:`i` by
    :math:`1 - \eta\lambda_i` per step. Two choices are called optimal:

    ``rule="lecture"``: :math:`\eta = 1/\lambda_{\max}`
        The lecture's (LeCun et al., 1998) choice: the stiffest direction is solved in one
        step and every factor lies in :math:`[0, 1)`, so the descent never oscillates. The
        slowest direction contracts by :math:`1 - 1/\kappa`.
    ``rule="minimax"``: :math:`\eta = 2/(\lambda_{\max} + \lambda_{\min})`
        The learning rate that minimizes the worst factor
        :math:`\max_i |1 - \eta\lambda_i| = (\kappa - 1)/(\kappa + 1)`: the optimum of
        constant-step gradient descent on a quadratic. It needs :math:`\lambda_{\min} > 0`.

    Either way the iteration count grows linearly with :math:`\kappa`.

    Parameters
    ----------
    H : ndarray, shape (d, d), symmetric
    rule : {"lecture", "minimax"}

    Returns
    -------
    float
    """
    func = "optimal_learning_rate"
    _check_choice(func, "rule", rule, ("lecture", "minimax"))
    evals = _spectrum(func, H)
    if rule == "lecture":
        return float(1.0 / evals[-1])
    if evals[0] <= 0:
        raise ValueError(
            f"{func}: rule='minimax' needs a positive definite H, got lambda_min={evals[0]!r}"
        )
    return float(2.0 / (evals[-1] + evals[0]))


def divergent_learning_rate(H) -> float:
    r"""The learning rate :math:`2/\lambda_{\max}` above which gradient descent diverges.

    For :math:`\eta > 2/\lambda_{\max}` the factor :math:`|1 - \eta\lambda_{\max}|` exceeds
    1 and the error along the top eigenvector grows geometrically (with alternating sign);
    below it every factor is smaller than 1 in magnitude (for positive definite ``H``).

    Parameters
    ----------
    H : ndarray, shape (d, d), symmetric

    Returns
    -------
    float

    Notes
    -----
    The lecture slide states divergence for :math:`\eta > 1/\lambda_{\min}`; the threshold
    that follows from the factors above (and from LeCun et al., 1998) is
    :math:`2/\lambda_{\max} = 2\eta_{\text{lecture}}`.
    """
    return float(2.0 / _spectrum("divergent_learning_rate", H)[-1])


def _gd_setup(func: str, X, y, lr, w0):
    check_float_array(func, "X", X, ndim=2)
    check_float_array(func, "y", y, ndim=1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"{func}: y must have shape ({X.shape[0]},) to match X, got {y.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{func}: X needs at least one row, got {X.shape}")
    X64, y64 = X.astype(np.float64), y.astype(np.float64)
    H = X64.T @ X64 / X64.shape[0]
    b = X64.T @ y64 / X64.shape[0]
    if lr is None:
        lr = optimal_learning_rate(H, rule="lecture")
    check_scalar(func, "lr", lr, low=0, low_inclusive=False)
    if w0 is None:
        w = np.zeros(X.shape[1])
    else:
        check_float_array(func, "w0", w0, ndim=1)
        if w0.shape[0] != X.shape[1]:
            raise ValueError(f"{func}: w0 must have shape ({X.shape[1]},), got {w0.shape}")
        w = w0.astype(np.float64)  # a copy: the caller's array is never modified
    w_star = np.linalg.lstsq(X64, y64, rcond=None)[0]
    return H, b, float(lr), w, w_star


def gradient_descent_errors(X, y, *, lr=None, num_iters=100, w0=None) -> np.ndarray:
    r"""Relative distance to the least-squares solution along full-batch gradient descent.

    Runs :math:`w_{t+1} = w_t - \eta \frac{1}{N} X^T (X w_t - y)` on
    :math:`L(w) = \frac{1}{2N}\|Xw - y\|^2` and records
    :math:`\|w_t - w^*\| / \|w^*\|` for :math:`t = 0, \dots,` ``num_iters``, where
    :math:`w^*` is the minimum-norm least-squares solution.

    Parameters
    ----------
    X : ndarray, shape (N, d)
    y : ndarray, shape (N,)
    lr : float, optional
        Default :func:`optimal_learning_rate` with ``rule="lecture"`` (:math:`1/\lambda_{\max}`).
    num_iters : int, >= 0
    w0 : ndarray, shape (d,), optional
        Start; default zeros.

    Returns
    -------
    errors : ndarray, shape (num_iters + 1,), float64
        Once the error exceeds :math:`10^{150}` the rest is filled with ``inf``
        (divergence).
    """
    func = "gradient_descent_errors"
    _check_int(func, "num_iters", num_iters, low=0)
    H, b, lr, w, w_star = _gd_setup(func, X, y, lr, w0)
    scale = max(np.linalg.norm(w_star), np.finfo(np.float64).tiny)
    errors = np.full(num_iters + 1, np.inf)
    for t in range(num_iters + 1):
        err = np.linalg.norm(w - w_star) / scale
        if not err <= 1e150:
            break
        errors[t] = err
        w = w - lr * (H @ w - b)
    return errors


def gd_iterations_to_tolerance(X, y, *, lr=None, tol=1e-6, max_iters=100_000, w0=None):
    r"""Number of gradient-descent steps until :math:`\|w_t - w^*\| \le` ``tol`` :math:`\|w^*\|`.

    Same iteration as :func:`gradient_descent_errors`. Along eigenvector :math:`i` of
    :math:`H = X^TX/N` the error shrinks by :math:`|1 - \eta\lambda_i|` per step, so with
    the default :math:`\eta = 1/\lambda_{\max}` about :math:`\kappa \ln(1/\mathrm{tol})`
    steps are needed.

    Parameters
    ----------
    X : ndarray, shape (N, d)
    y : ndarray, shape (N,)
    lr : float, optional
        Default :math:`1/\lambda_{\max}` (the lecture's rule, see
        :func:`optimal_learning_rate`).
    tol : float, > 0
    max_iters : int, >= 0
    w0 : ndarray, shape (d,), optional

    Returns
    -------
    int or None
        The first :math:`t` that meets the tolerance, or ``None`` if it is not met within
        ``max_iters`` steps (too slow, or diverging).
    """
    func = "gd_iterations_to_tolerance"
    check_scalar(func, "tol", tol, low=0, low_inclusive=False)
    _check_int(func, "max_iters", max_iters, low=0)
    H, b, lr, w, w_star = _gd_setup(func, X, y, lr, w0)
    target = tol * np.linalg.norm(w_star)
    for t in range(max_iters + 1):
        err = np.linalg.norm(w - w_star)
        if err <= target:
            return t
        if not err <= 1e150 * max(1.0, np.linalg.norm(w_star)):
            return None
        w = w - lr * (H @ w - b)
    return None
