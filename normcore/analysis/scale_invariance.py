r"""Scale invariance of normalized layers and the dynamics it implies.

A linear layer followed by batch (or layer) normalization computes the same output for
``W`` and ``a W``; its weight gradient scales by ``1/a`` and is orthogonal to the weight,
so plain SGD can only grow the weight norm and the step size on the sphere shrinks like
``lr / ||w||^2``. Weight decay balances that growth at an equilibrium whose angular update
is ``arccos(1 - lr * weight_decay)``, about ``sqrt(2 lr weight_decay)``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .._checks import check_float_array, check_rng, check_scalar
from ._common import LazyTorch, _check_choice, _check_int

if TYPE_CHECKING:
    import torch
else:
    torch = LazyTorch(globals())

__all__ = [
    "scale_invariance_report",
    "effective_learning_rate",
    "equilibrium_norm",
    "equilibrium_angular_update",
    "simulate_norm_growth",
]


_NORMALIZATIONS = ("batch", "layer", "none")


def _normalized_layer(x: torch.Tensor, W: torch.Tensor, normalization: str, eps: float):
    """``x @ W.T`` standardized per output unit over the batch ("batch", what
    ``F.batch_norm`` computes in training mode without affine parameters), per sample over
    the units ("layer"), or not at all. Written out because ``F.batch_norm`` rejects
    ``eps=0`` in training mode."""
    h = x @ W.T
    if normalization == "none":
        return h
    dim = 0 if normalization == "batch" else 1
    centered = h - h.mean(dim=dim, keepdim=True)
    return centered / torch.sqrt((centered**2).mean(dim=dim, keepdim=True) + eps)


def scale_invariance_report(
    x, W, a, *, normalization="batch", loss_fn=None, lr=0.1, eps=0.0, seed=0
) -> dict:
    r"""Measure the scale-invariance identities of ``Linear -> normalization``.

    With :math:`h = x W^T` and :math:`\mathrm{BN}` using the batch statistics (training
    mode, no affine parameters), every row :math:`w` of ``W`` satisfies, for :math:`a > 0`,

    .. math::

        \mathrm{BN}(x; aW) = \mathrm{BN}(x; W), \qquad
        \frac{\partial L}{\partial (aW)} = \frac{1}{a}\frac{\partial L}{\partial W}, \qquad
        \Big\langle w, \frac{\partial L}{\partial w} \Big\rangle = 0,

    the last one by differentiating :math:`L(a w) = L(w)` at :math:`a = 1`. One SGD step
    :math:`w' = w - \eta g` therefore grows the norm by exactly the squared step,

    .. math::

        \|w'\|^2 = \|w\|^2 - 2\eta \langle w, g\rangle + \eta^2 \|g\|^2
                 = \|w\|^2 + \eta^2 \|g\|^2 .

    For layer normalization (statistics over the outputs of one sample) the invariant
    group is the whole matrix ``W`` rather than each row; with ``normalization="none"``
    (a plain linear layer) none of the identities holds, which shows that the check can
    fail.

    Parameters
    ----------
    x : ndarray, shape (N, d_in), float32 or float64
        Layer input. Computed in torch with the array's dtype; use float64.
    W : ndarray, shape (d_out, d_in), same dtype as ``x``
        Weight.
    a : float, > 0
        Scale factor.
    normalization : {"batch", "layer", "none"}
        What follows the linear layer.
    loss_fn : callable, optional
        ``loss_fn(out) -> scalar tensor`` for the normalized output ``out`` of shape
        ``(N, d_out)``. Default: :math:`\tfrac{1}{2N}\sum_{n}\|\mathrm{out}_n - t_n\|^2` with
        a random target :math:`t` drawn from ``seed``.
    lr : float, > 0
        Step size of the SGD step used for the norm-growth identity.
    eps : float, >= 0
        Added to the variance. The identities are exact only for ``eps=0``; with
        ``eps > 0`` the output changes by a relative amount of order
        :math:`\epsilon / \sigma^2` (PyTorch's default ``eps=1e-5`` breaks them slightly).
    seed : int
        Seed of the default target.

    Returns
    -------
    report : dict
        ``output_rel_diff``: :math:`\max|f(aW) - f(W)| / \max|f(W)|`;
        ``loss_rel_diff``: the same for the loss;
        ``grad_rel_diff``: :math:`\max|a\,\nabla_{aW} L - \nabla_W L| / \max|\nabla_W L|`;
        ``inner_products``: :math:`\langle w, \partial L/\partial w\rangle` per invariant
        group (one per row, or one for layer normalization);
        ``max_abs_cosine``: the largest :math:`|\cos(w, \partial L/\partial w)|`;
        ``norm_growth_rel_diff``: largest relative gap between :math:`\|w'\|^2` and
        :math:`\|w\|^2 + \eta^2\|g\|^2` after one SGD step.

    Notes
    -----
    The tutorial calls the scale factor :math:`\lambda` and writes the update as
    :math:`w_{t+1} = w_t + \eta\, \partial f/\partial w`; descent uses the minus sign, and
    the norm identity holds for either sign because the cross term vanishes.
    """
    func = "scale_invariance_report"
    check_float_array(func, "x", x, ndim=2)
    check_float_array(func, "W", W, ndim=2)
    if W.dtype != x.dtype:
        raise TypeError(f"{func}: x and W must share one dtype, got x={x.dtype}, W={W.dtype}")
    if W.shape[1] != x.shape[1]:
        raise ValueError(
            f"{func}: W must have shape (d_out, {x.shape[1]}) to match x, got {W.shape}"
        )
    if x.shape[0] < 2:
        raise ValueError(f"{func}: x needs at least 2 samples for batch statistics, got {x.shape}")
    check_scalar(func, "a", a, low=0, low_inclusive=False)
    _check_choice(func, "normalization", normalization, _NORMALIZATIONS)
    check_scalar(func, "lr", lr, low=0, low_inclusive=False)
    check_scalar(func, "eps", eps, low=0)
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"{func}: loss_fn must be callable, got {type(loss_fn).__name__}")

    xt = torch.tensor(x)
    if loss_fn is None:
        gen = torch.Generator().manual_seed(int(seed))
        target = torch.randn(x.shape[0], W.shape[0], generator=gen, dtype=xt.dtype)

        def loss_fn(out):
            return 0.5 * ((out - target) ** 2).sum(dim=1).mean()

    def evaluate(weight):
        weight = weight.detach().clone().requires_grad_(True)
        out = _normalized_layer(xt, weight, normalization, eps)
        loss = loss_fn(out)
        (grad,) = torch.autograd.grad(loss, weight)
        return out.detach(), loss.detach(), grad

    W1 = torch.tensor(W)
    out1, loss1, g1 = evaluate(W1)
    out_a, loss_a, g_a = evaluate(a * W1)

    def rel(u, v):
        return float((u - v).abs().max() / v.abs().max().clamp_min(1e-300))

    # invariant groups: rows of W, or the whole matrix for layer normalization
    rows = W1.reshape(1, -1) if normalization == "layer" else W1
    grads = g1.reshape(1, -1) if normalization == "layer" else g1
    inner = (rows * grads).sum(dim=1)
    cosine = inner / (rows.norm(dim=1) * grads.norm(dim=1)).clamp_min(1e-300)
    stepped = rows - lr * grads
    predicted = (rows**2).sum(dim=1) + lr**2 * (grads**2).sum(dim=1)
    measured = (stepped**2).sum(dim=1)
    return {
        "output_rel_diff": rel(out_a, out1),
        "loss_rel_diff": float((loss_a - loss1).abs() / loss1.abs().clamp_min(1e-300)),
        "grad_rel_diff": rel(a * g_a, g1),
        "inner_products": inner.numpy(),
        "max_abs_cosine": float(cosine.abs().max()),
        "norm_growth_rel_diff": float(((measured - predicted).abs() / measured).max()),
    }


def effective_learning_rate(lr, w_norm):
    r"""Step size seen by the direction of a scale-invariant weight, :math:`\eta / \|w\|^2`.

    Since :math:`\nabla L(w) = \nabla L(\hat w) / \|w\|` with :math:`\hat w = w/\|w\|`, the
    update of the unit direction is :math:`\eta \nabla L(\hat w) / \|w\|^2` to first order.

    Parameters
    ----------
    lr : float, > 0
    w_norm : float or ndarray, > 0
        Weight norm(s).

    Returns
    -------
    float or ndarray, like ``w_norm``
    """
    func = "effective_learning_rate"
    check_scalar(func, "lr", lr, low=0, low_inclusive=False)
    norms = np.asarray(w_norm, dtype=np.float64)
    if not np.all(np.isfinite(norms)) or np.any(norms <= 0):
        raise ValueError(f"{func}: w_norm must be positive and finite, got {w_norm!r}")
    out = lr / norms**2
    return float(out) if out.ndim == 0 else out


def _check_lr_wd(func: str, lr, weight_decay, *, positive_wd: bool) -> None:
    check_scalar(func, "lr", lr, low=0, low_inclusive=False)
    check_scalar(func, "weight_decay", weight_decay, low=0, low_inclusive=not positive_wd)
    if lr * weight_decay >= 1:
        raise ValueError(
            f"{func}: lr * weight_decay must be < 1 (the decay factor 1 - lr * weight_decay "
            f"must stay positive), got {lr * weight_decay!r}"
        )


def equilibrium_norm(lr, weight_decay, unit_grad_norm=1.0) -> float:
    r"""Weight norm at which SGD with weight decay stops changing a scale-invariant weight.

    With PyTorch's SGD weight decay, :math:`w_{t+1} = (1 - \eta\lambda) w_t - \eta g_t`.
    For a scale-invariant loss :math:`\langle w_t, g_t\rangle = 0` and
    :math:`\|g_t\| = G / \|w_t\|`, where :math:`G` is the gradient norm at the unit sphere
    (``unit_grad_norm``). Writing :math:`x_t = \|w_t\|^2`,

    .. math::

        x_{t+1} = (1 - \eta\lambda)^2 x_t + \frac{\eta^2 G^2}{x_t}.

    Growth from the gradient balances shrinkage from the decay at the fixed point

    .. math::

        x^{*2} = \frac{\eta^2 G^2}{1 - (1-\eta\lambda)^2}
               = \frac{\eta G^2}{\lambda (2 - \eta\lambda)}
        \quad\Longrightarrow\quad
        \|w^*\|^2 \approx G \sqrt{\frac{\eta}{2\lambda}},

    and the function returns :math:`\|w^*\| = x^{*1/2}` (exact for the recursion above).
    The continuous-time version :math:`\frac{d}{dt} x^2 = -4\eta\lambda\, x^2 +
    2\eta^2 G^2` reaches it with time constant :math:`1/(4\eta\lambda)` steps.

    Parameters
    ----------
    lr : float, > 0
    weight_decay : float, > 0
        With ``lr * weight_decay < 1``.
    unit_grad_norm : float, > 0
        :math:`G = \|w\|\,\|\nabla L(w)\|`, or its root-mean-square when it fluctuates.

    Returns
    -------
    float
    """
    func = "equilibrium_norm"
    _check_lr_wd(func, lr, weight_decay, positive_wd=True)
    check_scalar(func, "unit_grad_norm", unit_grad_norm, low=0, low_inclusive=False)
    x_star = math.sqrt(lr * unit_grad_norm**2 / (weight_decay * (2 - lr * weight_decay)))
    return math.sqrt(x_star)


def equilibrium_angular_update(lr, weight_decay) -> float:
    r"""Angle (radians) between consecutive weights at the norm equilibrium.

    At the equilibrium of :func:`equilibrium_norm`, :math:`\|w_{t+1}\| = \|w_t\|` and
    :math:`\langle w_t, g_t\rangle = 0`, so

    .. math::

        \cos\theta = \frac{\langle w_t, (1-\eta\lambda) w_t - \eta g_t\rangle}
                          {\|w_t\|\,\|w_{t+1}\|} = 1 - \eta\lambda,
        \qquad
        \theta^* = \arccos(1 - \eta\lambda) \approx \sqrt{2\eta\lambda}.

    It depends on neither the gradient nor the initialization: weight decay fixes how fast
    the direction of a normalized weight moves. The corresponding effective learning rate
    is :math:`\eta/\|w^*\|^2 = \sqrt{\eta\lambda(2-\eta\lambda)}/G \approx
    \sqrt{2\eta\lambda}/G`.

    Parameters
    ----------
    lr : float, > 0
    weight_decay : float, >= 0
        With ``lr * weight_decay < 1``.

    Returns
    -------
    float

    Notes
    -----
    With heavy-ball momentum :math:`\mu` the same argument gives
    :math:`\sqrt{2\eta\lambda/(1+\mu)}` (spherical motion dynamics); this module simulates
    plain SGD only.
    """
    _check_lr_wd("equilibrium_angular_update", lr, weight_decay, positive_wd=False)
    return math.acos(1.0 - lr * weight_decay)


def _bn_unit_gradient(xb: np.ndarray, yb: np.ndarray, w: np.ndarray):
    """Loss and gradient of ``0.5 * mean((BN(xb @ w) - yb)^2)`` with eps=0, w of shape (d,)."""
    h = xb @ w
    hc = h - h.mean()
    inv_std = 1.0 / np.sqrt(np.mean(hc**2))
    hhat = hc * inv_std
    dhhat = (hhat - yb) / h.shape[0]
    dh = inv_std * (dhhat - dhhat.mean() - hhat * np.mean(dhhat * hhat))
    return xb.T @ dh


def simulate_norm_growth(
    steps,
    lr,
    weight_decay=0.0,
    *,
    model="tangent",
    dim=32,
    unit_grad_norm=1.0,
    init_norm=1.0,
    num_data=512,
    batch_size=32,
    rng=None,
) -> dict:
    r"""Run SGD (with optional weight decay) on a scale-invariant weight and record its norm.

    The update is PyTorch's SGD without momentum,
    :math:`w_{t+1} = (1 - \eta\lambda) w_t - \eta g_t`. Two gradient models:

    ``"tangent"``
        The idealized scale-invariant gradient: :math:`g_t = (G/\|w_t\|)\, u_t` with
        :math:`u_t` a uniformly random unit vector orthogonal to :math:`w_t`. The norm then
        follows the recursion of :func:`equilibrium_norm` exactly.
    ``"bn"``
        A real one: a single linear unit followed by batch normalization (``eps=0``) fitted
        to random targets by minibatch SGD, :math:`L = \tfrac{1}{2B}\sum_b
        (\mathrm{BN}(X_B w)_b - y_b)^2`. Its unit-sphere gradient norm fluctuates; the
        prediction uses its root-mean-square over the run.

    Parameters
    ----------
    steps : int, >= 1
    lr : float, > 0
    weight_decay : float, >= 0
        With ``lr * weight_decay < 1``.
    model : {"tangent", "bn"}
    dim : int, >= 2
        Dimension of ``w``.
    unit_grad_norm : float, > 0
        :math:`G` of the ``"tangent"`` model (ignored by ``"bn"``).
    init_norm : float, > 0
        :math:`\|w_0\|` (random direction).
    num_data, batch_size : int
        Data-set size and minibatch size of the ``"bn"`` model.
    rng : numpy.random.Generator or int or None

    Returns
    -------
    dict of
        ``weight_norm`` (steps + 1,), ``grad_norm`` (steps,), ``unit_grad_norm`` (steps,)
        :math:`= \|g_t\|\|w_t\|`, ``effective_lr`` (steps,) :math:`= \eta/\|w_t\|^2`,
        ``angular_update`` (steps,) angle between :math:`w_t` and :math:`w_{t+1}`,
        ``predicted_norm`` (steps + 1,) from the recursion
        :math:`x_{t+1} = (1-\eta\lambda)^2 x_t + \eta^2 \bar G^2/x_t` with the root-mean-square
        :math:`\bar G` of ``unit_grad_norm``, and the floats ``equilibrium_norm``,
        ``equilibrium_angular_update`` and ``equilibrium_effective_lr`` (``inf``, ``0`` and
        ``0`` without weight decay).
    """
    func = "simulate_norm_growth"
    _check_int(func, "steps", steps, low=1)
    _check_lr_wd(func, lr, weight_decay, positive_wd=False)
    _check_choice(func, "model", model, ("tangent", "bn"))
    _check_int(func, "dim", dim, low=2)
    check_scalar(func, "unit_grad_norm", unit_grad_norm, low=0, low_inclusive=False)
    check_scalar(func, "init_norm", init_norm, low=0, low_inclusive=False)
    _check_int(func, "batch_size", batch_size, low=2)
    _check_int(func, "num_data", num_data, low=batch_size)
    gen = check_rng(func, rng)

    w = gen.standard_normal(dim)
    w *= init_norm / np.linalg.norm(w)
    if model == "bn":
        data = gen.standard_normal((num_data, dim))
        targets = gen.standard_normal(num_data)

    norms = np.empty(steps + 1)
    grad_norms = np.empty(steps)
    angles = np.empty(steps)
    norms[0] = np.linalg.norm(w)
    decay = 1.0 - lr * weight_decay
    for t in range(steps):
        w_norm = norms[t]
        if model == "tangent":
            u = gen.standard_normal(dim)
            u -= (u @ w) / w_norm**2 * w
            g = (unit_grad_norm / w_norm) * (u / np.linalg.norm(u))
        else:
            start = (t * batch_size) % (num_data - num_data % batch_size)
            if start == 0:  # a new epoch: reshuffle
                order = gen.permutation(num_data)
            idx = order[start : start + batch_size]
            g = _bn_unit_gradient(data[idx], targets[idx], w)
        w_next = decay * w - lr * g
        norms[t + 1] = np.linalg.norm(w_next)
        grad_norms[t] = np.linalg.norm(g)
        cos = (w @ w_next) / (w_norm * norms[t + 1])
        angles[t] = math.acos(min(1.0, max(-1.0, cos)))
        w = w_next

    unit = grad_norms * norms[:-1]
    g_rms = float(np.sqrt(np.mean(unit**2)))
    predicted = np.empty(steps + 1)
    x = norms[0] ** 2
    predicted[0] = norms[0]
    for t in range(steps):
        x = decay**2 * x + (lr * g_rms) ** 2 / x
        predicted[t + 1] = math.sqrt(x)

    if weight_decay > 0:
        w_star = equilibrium_norm(lr, weight_decay, g_rms)
        eq_lr = lr / w_star**2
    else:
        w_star, eq_lr = math.inf, 0.0
    return {
        "weight_norm": norms,
        "grad_norm": grad_norms,
        "unit_grad_norm": unit,
        "effective_lr": lr / norms[:-1] ** 2,
        "angular_update": angles,
        "predicted_norm": predicted,
        "equilibrium_norm": w_star,
        "equilibrium_angular_update": equilibrium_angular_update(lr, weight_decay),
        "equilibrium_effective_lr": eq_lr,
    }
