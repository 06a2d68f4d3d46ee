r"""Why normalization helps: numerical tools for the analysis chapter.

Five topics, each a few plain functions:

* **Scale invariance.** A linear layer followed by batch (or layer) normalization computes
  the same output for ``W`` and ``a W``; its weight gradient scales by ``1/a`` and is
  orthogonal to the weight, so plain SGD can only grow the weight norm and the step size
  on the sphere shrinks like ``lr / ||w||^2``. Weight decay balances that growth at an
  equilibrium whose angular update is ``arccos(1 - lr * weight_decay)``, about
  ``sqrt(2 lr weight_decay)``. (:func:`scale_invariance_report`,
  :func:`simulate_norm_growth`, :func:`effective_learning_rate`, :func:`equilibrium_norm`,
  :func:`equilibrium_angular_update`.)
* **Conditioning.** Exact Hessians of small torch models, Hessian-vector products, the
  top of the spectrum by Lanczos or power iteration, condition numbers (also over the top
  50 % / 80 % of the spectrum) and the layer-wise condition numbers of the input and
  output-gradient covariances. (:func:`hessian`, :func:`hessian_vector_product`,
  :func:`top_hessian_eigenvalues`, :func:`condition_number`,
  :func:`layerwise_condition_numbers`, :func:`flat_loss_function`.)
* **Linear regression.** The Hessian is the input second-moment matrix, the learning-rate
  thresholds follow from its spectrum, and the number of gradient-descent iterations grows
  with its condition number. (:func:`linear_regression_hessian`,
  :func:`optimal_learning_rate`, :func:`divergent_learning_rate`,
  :func:`gradient_descent_errors`, :func:`gd_iterations_to_tolerance`.)
* **Stochasticity.** The stochastic normalization disturbance (SND) of batch
  standardization and of PCA, ZCA and Cholesky batch whitening.
  (:func:`stochastic_normalization_disturbance`.)
* **Constraints.** How many equations a normalization imposes on its output.
  (:func:`constraint_count`, :func:`constraint_ratio`.)

The torch-based functions compute in the dtype of the tensors they are given; use float64
for the identities that are checked to rounding error.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ._checks import check_float_array, check_rng, check_scalar

if TYPE_CHECKING:
    import torch
else:

    class _LazyTorch:
        """Stands in for ``torch`` until first used: the NumPy tools do not pay its import."""

        def __getattr__(self, attr):
            module = importlib.import_module("torch")
            globals()["torch"] = module
            return getattr(module, attr)

    torch = _LazyTorch()

__all__ = [
    # scale invariance
    "scale_invariance_report",
    "effective_learning_rate",
    "equilibrium_norm",
    "equilibrium_angular_update",
    "simulate_norm_growth",
    # conditioning
    "flat_loss_function",
    "hessian",
    "hessian_vector_product",
    "top_hessian_eigenvalues",
    "condition_number",
    "layerwise_condition_numbers",
    # linear regression
    "linear_regression_hessian",
    "optimal_learning_rate",
    "divergent_learning_rate",
    "gradient_descent_errors",
    "gd_iterations_to_tolerance",
    # stochasticity
    "stochastic_normalization_disturbance",
    # constraints
    "constraint_count",
    "constraint_ratio",
]


def _check_choice(func: str, name: str, value, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        want = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{func}: {name} must be one of {want}, got {value!r}")
    return value


def _check_int(func: str, name: str, value, *, low: int) -> int:
    return check_scalar(func, name, value, low=low, integer=True)


# ====================================================================== scale invariance

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


# ========================================================================== conditioning


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


# ========================================================================= stochasticity

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
    if num_samples is None:
        num_samples = min(32, n)
    _check_int(func, "num_samples", num_samples, low=1)
    if num_samples > n:
        raise ValueError(f"{func}: num_samples must be <= n={n}, got {num_samples}")
    _check_int(func, "num_batches", num_batches, low=2)
    _check_int(func, "num_groups", num_groups, low=1)
    if d % num_groups:
        raise ValueError(f"{func}: num_groups={num_groups} does not divide d={d}")
    check_scalar(func, "eps", eps, low=0)
    if not isinstance(include_sample, bool):
        raise TypeError(f"{func}: include_sample must be a bool, got {include_sample!r}")
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
        keys = gen.random((rows.size, n))
        keys[np.arange(rows.size), rows] = 2.0  # never draw x itself as "another" sample
        idx = np.argpartition(keys, others - 1, axis=1)[:, :others]
        if include_sample:
            idx = np.concatenate([rows[:, None], idx], axis=1)
        batches = X[idx].reshape(rows.size, batch_size, num_groups, c)
        queries = X[rows].reshape(rows.size, 1, num_groups, c)
        out = _whiten_queries(batches, queries, method, eps).reshape(
            chunk.size, num_batches, d
        )
        dev = out - out.mean(axis=1, keepdims=True)
        snd[start : start + chunk.size] = np.linalg.norm(dev, axis=2).mean(axis=1)
    return snd if return_per_sample else float(snd.mean())


# =========================================================================== constraints

_CONSTRAINT_METHODS = ("bn", "bw", "gn", "gw", "ln", "in")


def _constraints(func, method, batch_size, num_channels, num_groups, height, width):
    _check_choice(func, "method", method, _CONSTRAINT_METHODS)
    m = _check_int(func, "batch_size", batch_size, low=1)
    d = _check_int(func, "num_channels", num_channels, low=1)
    _check_int(func, "height", height, low=1)
    _check_int(func, "width", width, low=1)
    if method in ("gn", "gw"):
        if num_groups is None:
            raise ValueError(f"{func}: method={method!r} needs num_groups, got None")
        g = _check_int(func, "num_groups", num_groups, low=1)
        if d % g:
            raise ValueError(f"{func}: num_groups={g} does not divide num_channels={d}")
    elif num_groups is not None:
        raise ValueError(
            f"{func}: num_groups applies only to 'gn' and 'gw', got num_groups={num_groups!r} "
            f"with method={method!r}"
        )
    else:
        g = {"ln": 1, "in": d}.get(method)
    if method in ("ln", "in"):
        method = "gn"
    if method == "bn":
        zeta = 2 * d
    elif method == "bw":
        zeta = d * (d + 3) // 2
    elif method == "gn":
        zeta = 2 * g * m
    else:
        zeta = m * g * (g + 3) // 2
    return zeta, m * d * height * width


def constraint_count(
    method,
    *,
    batch_size,
    num_channels,
    num_groups=None,
    height=1,
    width=1,
    dataset_size=None,
):
    r"""Number of equations :math:`\zeta` a normalization imposes on its output.

    Batch normalization of a mini-batch :math:`X \in \mathbb{R}^{d \times m}` makes every
    row of the output :math:`\hat X` satisfy
    :math:`\sum_{j} \hat X_{ij} = 0` and :math:`\sum_j \hat X_{ij}^2 = m`: two equations
    per neuron. Whitening adds one equation per off-diagonal covariance entry. Counting
    (tutorial, after Huang et al.):

    ======  ======================  ===============================  ============================
    method  :math:`\zeta(\phi; X)`  :math:`\zeta(\phi; \mathbb{D})`  valid range
    ======  ======================  ===============================  ============================
    BN      :math:`2d`              :math:`2Nd/m`                    :math:`m\ge 2`
    BW      :math:`d(d+3)/2`        :math:`Nd(d+3)/(2m)`             :math:`m\ge (d+3)/2`
    GN      :math:`2gm`             :math:`2gN`                      :math:`g\le d/2`
    GW      :math:`mg(g+3)/2`       :math:`Ng(g+3)/2`                :math:`g\le(\sqrt{8d+9}-3)/2`
    ======  ======================  ===============================  ============================

    Here :math:`d` = ``num_channels``, :math:`m` = ``batch_size``, :math:`g` =
    ``num_groups`` and :math:`N` = ``dataset_size``. BW: :math:`d` means and
    :math:`d(d+1)/2` covariance entries. GN: :math:`g` groups per sample, two equations
    each. GW whitens, per sample, the :math:`g` groups against each other (each group's
    :math:`d/g` values are the observations), giving :math:`g(g+3)/2` per sample. The
    data-set count is the batch count times the :math:`N/m` batches of an epoch. The
    valid range is where :math:`\zeta(\phi; X)` does not exceed the :math:`md` entries of
    the output (see :func:`constraint_ratio`); beyond it the output is (over)determined by
    the constraints alone. ``"ln"`` and ``"in"`` are GN with :math:`g = 1` and
    :math:`g = d`.

    For a convolutional feature map each channel holds ``height * width`` values per
    sample; the equations are the same (statistics are shared over positions), so
    :math:`\zeta` is unchanged while the number of entries grows to :math:`mdHW`.

    Parameters
    ----------
    method : {"bn", "bw", "gn", "gw", "ln", "in"}
    batch_size : int, >= 1
    num_channels : int, >= 1
    num_groups : int, optional
        Required for ``"gn"``/``"gw"`` (must divide ``num_channels``); not allowed otherwise.
    height, width : int, >= 1
    dataset_size : int, optional
        If given, return :math:`\zeta(\phi; \mathbb{D}) = \zeta(\phi; X)\, N / m`.

    Returns
    -------
    int, or float when ``dataset_size`` is not a multiple of ``batch_size``
    """
    func = "constraint_count"
    zeta, _ = _constraints(func, method, batch_size, num_channels, num_groups, height, width)
    if dataset_size is None:
        return zeta
    N = _check_int(func, "dataset_size", dataset_size, low=1)
    total = zeta * N
    return total // batch_size if total % batch_size == 0 else total / batch_size


def constraint_ratio(method, *, batch_size, num_channels, num_groups=None, height=1, width=1):
    r"""Constraints per output entry, :math:`\zeta(\phi; X) / (m\,d\,H\,W)`.

    The tutorial's valid ranges (:math:`m \ge 2` for BN, :math:`m \ge (d+3)/2` for BW,
    :math:`g \le d/2` for GN, :math:`g(g+3) \le 2d` for GW, with :math:`H = W = 1`) are
    exactly the settings where this ratio is at most 1. The closer to 1, the less freedom
    the normalized representation keeps (the small-batch problem of BN/BW, the
    large-group problem of GN/GW).

    Parameters
    ----------
    Same as :func:`constraint_count` (without ``dataset_size``).

    Returns
    -------
    float
    """
    zeta, entries = _constraints(
        "constraint_ratio", method, batch_size, num_channels, num_groups, height, width
    )
    return zeta / entries
