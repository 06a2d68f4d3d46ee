r"""Learning-rate schedules as pure functions of the step index.

Each schedule is a function ``fn(t, *, lr, ...) -> float`` giving the learning rate used
at epoch (or iteration) ``t = 0, 1, 2, ...`` when training starts from the base rate
``lr``. Where PyTorch has a scheduler for it, the value equals
``optimizer.param_groups[0]["lr"]`` after ``t`` calls of ``scheduler.step()`` (PyTorch
updates the rate recursively, so the two agree up to rounding). ``schedule_values``
tabulates a schedule for plotting.

The lecture's three decays, with base rate :math:`\alpha_0`:

- step decay, e.g. halve the rate every few epochs: :func:`step_lr`;
- exponential decay :math:`\alpha = \alpha_0 e^{-kt}`: :func:`exponential_lr` with
  ``gamma`` :math:`= e^{-k}`;
- :math:`1/t` decay :math:`\alpha = \alpha_0 / (1 + kt)`: :func:`inverse_time_lr`.

Cosine annealing with warm restarts (SGDR) is the cyclic schedule behind snapshot
ensembles; linear warm-up is the usual companion of large learning rates.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from normcore._checks import check_scalar

__all__ = [
    "step_lr",
    "exponential_lr",
    "inverse_time_lr",
    "cosine_annealing_lr",
    "cosine_annealing_warm_restarts_lr",
    "linear_warmup_lr",
    "warmup_cosine_lr",
    "schedule_values",
]


def _check_t(func, t):
    if isinstance(t, bool) or not isinstance(t, numbers.Integral):
        raise TypeError(f"{func}: t must be a non-negative integer step index, got {t!r}")
    if t < 0:
        raise ValueError(f"{func}: t must be a non-negative integer step index, got {t!r}")
    return int(t)


def _check_lr(func, lr):
    return float(check_scalar(func, "lr", lr, low=0.0))


def _check_count(func, name, value, low=1):
    return int(check_scalar(func, name, value, low=low, integer=True))


def _cosine(lr, eta_min, t_cur, t_max):
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t_cur / t_max)) / 2


def step_lr(t, *, lr, step_size, gamma=0.1):
    r"""Step decay: multiply the rate by ``gamma`` every ``step_size`` epochs.

    .. math::

        \eta_t = \eta_0\, \gamma^{\lfloor t / s \rfloor}

    Parameters
    ----------
    t : int
        Epoch index, ``t >= 0``.
    lr : float
        Base learning rate :math:`\eta_0 \ge 0`.
    step_size : int
        Period :math:`s \ge 1` of the decay, in epochs.
    gamma : float, default 0.1
        Multiplicative factor :math:`\gamma \ge 0` (the lecture's example halves the
        rate: ``gamma=0.5``).

    Returns
    -------
    float
        The learning rate at ``t``; equals ``torch.optim.lr_scheduler.StepLR``.
    """
    func = "step_lr"
    t = _check_t(func, t)
    lr = _check_lr(func, lr)
    step_size = _check_count(func, "step_size", step_size)
    gamma = float(check_scalar(func, "gamma", gamma, low=0.0))
    return lr * gamma ** (t // step_size)


def exponential_lr(t, *, lr, gamma):
    r"""Exponential decay: multiply the rate by ``gamma`` every epoch.

    .. math::

        \eta_t = \eta_0\, \gamma^{t} = \eta_0\, e^{-k t}, \qquad k = -\ln \gamma

    Parameters
    ----------
    t : int
        Epoch index, ``t >= 0``.
    lr : float
        Base learning rate :math:`\eta_0 \ge 0`.
    gamma : float
        Factor per epoch, :math:`\gamma \ge 0`. The lecture writes the decay as
        :math:`\alpha_0 e^{-kt}`; pass ``gamma=math.exp(-k)``.

    Returns
    -------
    float
        The learning rate at ``t``; equals ``torch.optim.lr_scheduler.ExponentialLR``.
    """
    func = "exponential_lr"
    t = _check_t(func, t)
    lr = _check_lr(func, lr)
    gamma = float(check_scalar(func, "gamma", gamma, low=0.0))
    return lr * gamma**t


def inverse_time_lr(t, *, lr, decay_rate, decay_steps=1):
    r"""The lecture's :math:`1/t` decay.

    .. math::

        \eta_t = \frac{\eta_0}{1 + k\, t / s}

    Parameters
    ----------
    t : int
        Epoch or iteration index, ``t >= 0``.
    lr : float
        Base learning rate :math:`\eta_0 \ge 0`.
    decay_rate : float
        :math:`k \ge 0`; the rate has halved after :math:`s / k` steps.
    decay_steps : int, default 1
        Time unit :math:`s \ge 1` in steps (``decay_steps=100`` with iterations as ``t``
        decays per hundred iterations).

    Returns
    -------
    float
        The learning rate at ``t``.

    Notes
    -----
    PyTorch has no dedicated scheduler for this decay; it is
    ``LambdaLR(optimizer, lambda t: 1 / (1 + decay_rate * t / decay_steps))``.
    """
    func = "inverse_time_lr"
    t = _check_t(func, t)
    lr = _check_lr(func, lr)
    decay_rate = float(check_scalar(func, "decay_rate", decay_rate, low=0.0))
    decay_steps = _check_count(func, "decay_steps", decay_steps)
    return lr / (1 + decay_rate * t / decay_steps)


def cosine_annealing_lr(t, *, lr, T_max, eta_min=0.0):
    r"""Cosine annealing from ``lr`` down to ``eta_min`` over ``T_max`` steps.

    .. math::

        \eta_t = \eta_{\min} + \tfrac12 (\eta_0 - \eta_{\min})
            \left(1 + \cos\frac{\pi t}{T_{\max}}\right)

    Parameters
    ----------
    t : int
        Epoch index, ``t >= 0``.
    lr : float
        Base (maximum) learning rate :math:`\eta_0 \ge 0`.
    T_max : int
        Half-period :math:`T_{\max} \ge 1`: the rate reaches ``eta_min`` at ``t = T_max``.
    eta_min : float, default 0.0
        Minimum learning rate :math:`\eta_{\min} \ge 0`.

    Returns
    -------
    float
        The learning rate at ``t``.

    Notes
    -----
    Equal to ``torch.optim.lr_scheduler.CosineAnnealingLR`` for ``t <= T_max``. PyTorch
    computes the rate recursively from the previous one, and past ``T_max`` its recursion
    does not stop at ``eta_min``: it follows the same cosine back up, reaching ``lr``
    again at ``t = 2 T_max`` (a period of :math:`2 T_{\max}`, with no restart jump). This
    function uses the same formula for every ``t`` and so reproduces that behaviour too.
    For annealing with restarts use :func:`cosine_annealing_warm_restarts_lr`; to hold
    the rate at ``eta_min`` after ``T_max``, pass ``min(t, T_max)``.
    """
    func = "cosine_annealing_lr"
    t = _check_t(func, t)
    lr = _check_lr(func, lr)
    T_max = _check_count(func, "T_max", T_max)
    eta_min = float(check_scalar(func, "eta_min", eta_min, low=0.0))
    return _cosine(lr, eta_min, t, T_max)


def cosine_annealing_warm_restarts_lr(t, *, lr, T_0, T_mult=1, eta_min=0.0):
    r"""Cosine annealing with warm restarts (SGDR, Loshchilov and Hutter 2016).

    .. math::

        \eta_t = \eta_{\min} + \tfrac12 (\eta_0 - \eta_{\min})
            \left(1 + \cos\frac{\pi T_{cur}}{T_i}\right)

    where :math:`T_i = T_0 T_{mult}^{\,i}` is the length of the current cycle :math:`i`
    and :math:`T_{cur}` the number of steps since its start. The rate jumps back to
    :math:`\eta_0` at the start of each cycle, at ``t = 0``, :math:`T_0`,
    :math:`T_0 (1 + T_{mult})`, ...; snapshot ensembles save a model at the end of each.

    Parameters
    ----------
    t : int
        Epoch index, ``t >= 0``.
    lr : float
        Base (maximum) learning rate :math:`\eta_0 \ge 0`.
    T_0 : int
        Length :math:`T_0 \ge 1` of the first cycle.
    T_mult : int, default 1
        Growth factor :math:`T_{mult} \ge 1` of the cycle length after each restart.
    eta_min : float, default 0.0
        Minimum learning rate :math:`\eta_{\min} \ge 0`.

    Returns
    -------
    float
        The learning rate at ``t``; equals
        ``torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`` stepped once per
        epoch with ``scheduler.step()``.
    """
    func = "cosine_annealing_warm_restarts_lr"
    t = _check_t(func, t)
    lr = _check_lr(func, lr)
    T_0 = _check_count(func, "T_0", T_0)
    T_mult = _check_count(func, "T_mult", T_mult)
    eta_min = float(check_scalar(func, "eta_min", eta_min, low=0.0))
    # Walk over whole cycles in integer arithmetic; cycles grow geometrically when
    # T_mult > 1, and for T_mult == 1 the remainder gives the position directly.
    if T_mult == 1:
        t_cur, t_i = t % T_0, T_0
    else:
        t_cur, t_i = t, T_0
        while t_cur >= t_i:
            t_cur -= t_i
            t_i *= T_mult
    return _cosine(lr, eta_min, t_cur, t_i)


def linear_warmup_lr(t, *, lr, warmup_steps, start_factor=1.0 / 3):
    r"""Linear warm-up from ``start_factor * lr`` to ``lr`` over ``warmup_steps`` steps.

    .. math::

        \eta_t = \eta_0 \left(f_0 + (1 - f_0)\, \frac{\min(t, T_w)}{T_w}\right)

    Parameters
    ----------
    t : int
        Step index, ``t >= 0``.
    lr : float
        Target learning rate :math:`\eta_0 \ge 0`, reached at ``t = warmup_steps`` and
        kept afterwards.
    warmup_steps : int
        Length :math:`T_w \ge 1` of the warm-up.
    start_factor : float, default 1/3
        Fraction :math:`f_0 \in (0, 1]` of ``lr`` used at ``t = 0`` (PyTorch's default).

    Returns
    -------
    float
        The learning rate at ``t``; equals ``torch.optim.lr_scheduler.LinearLR`` with
        ``start_factor``, ``end_factor=1.0`` and ``total_iters=warmup_steps``.
    """
    func = "linear_warmup_lr"
    t = _check_t(func, t)
    lr = _check_lr(func, lr)
    warmup_steps = _check_count(func, "warmup_steps", warmup_steps)
    start_factor = float(
        check_scalar(func, "start_factor", start_factor, low=0.0, low_inclusive=False, high=1.0)
    )
    return lr * (start_factor + (1.0 - start_factor) * min(t, warmup_steps) / warmup_steps)


def warmup_cosine_lr(t, *, lr, warmup_steps, total_steps, start_factor=1.0 / 3, eta_min=0.0):
    r"""Linear warm-up for ``warmup_steps`` steps, then cosine annealing to ``total_steps``.

    .. math::

        \eta_t = \begin{cases}
            \eta_0 \left(f_0 + (1 - f_0)\, t / T_w\right) & t < T_w \\
            \eta_{\min} + \tfrac12 (\eta_0 - \eta_{\min})
                \left(1 + \cos\frac{\pi (t - T_w)}{T - T_w}\right) & t \ge T_w
        \end{cases}

    Parameters
    ----------
    t : int
        Step index, ``t >= 0``.
    lr : float
        Peak learning rate :math:`\eta_0 \ge 0`, reached at ``t = warmup_steps``.
    warmup_steps : int
        Length :math:`T_w \ge 1` of the warm-up.
    total_steps : int
        :math:`T > T_w`: the rate reaches ``eta_min`` at ``t = total_steps``.
    start_factor : float, default 1/3
        Fraction :math:`f_0 \in (0, 1]` of ``lr`` used at ``t = 0``.
    eta_min : float, default 0.0
        Final learning rate :math:`\eta_{\min} \ge 0`.

    Returns
    -------
    float
        The learning rate at ``t``; equals ``SequentialLR`` of
        ``LinearLR(start_factor=start_factor, total_iters=warmup_steps)`` and
        ``CosineAnnealingLR(T_max=total_steps - warmup_steps, eta_min=eta_min)`` with
        ``milestones=[warmup_steps]``, for ``t <= total_steps`` (beyond, see
        :func:`cosine_annealing_lr`).
    """
    func = "warmup_cosine_lr"
    t = _check_t(func, t)
    lr = _check_lr(func, lr)
    warmup_steps = _check_count(func, "warmup_steps", warmup_steps)
    total_steps = _check_count(func, "total_steps", total_steps)
    if total_steps <= warmup_steps:
        raise ValueError(
            f"{func}: total_steps must be greater than warmup_steps={warmup_steps}, "
            f"got {total_steps}"
        )
    start_factor = float(
        check_scalar(func, "start_factor", start_factor, low=0.0, low_inclusive=False, high=1.0)
    )
    eta_min = float(check_scalar(func, "eta_min", eta_min, low=0.0))
    if t < warmup_steps:
        return lr * (start_factor + (1.0 - start_factor) * t / warmup_steps)
    return _cosine(lr, eta_min, t - warmup_steps, total_steps - warmup_steps)


def schedule_values(fn, num_steps, **kwargs):
    """Tabulate a schedule: ``[fn(t, **kwargs) for t in range(num_steps)]``.

    Parameters
    ----------
    fn : callable
        A schedule of this module (or any ``fn(t, **kwargs) -> float``).
    num_steps : int
        Number of steps ``>= 0`` to evaluate, ``t = 0, ..., num_steps - 1``.
    **kwargs
        Keyword arguments of ``fn``, e.g. ``lr=0.1, step_size=30``.

    Returns
    -------
    ndarray, shape (num_steps,)
        The learning rates, float64.

    Examples
    --------
    >>> schedule_values(step_lr, 6, lr=1.0, step_size=2, gamma=0.5)
    array([1.  , 1.  , 0.5 , 0.5 , 0.25, 0.25])
    """
    func = "schedule_values"
    if not callable(fn):
        raise TypeError(f"{func}: fn must be callable, got {type(fn).__name__}")
    num_steps = _check_count(func, "num_steps", num_steps, low=0)
    return np.array([fn(t, **kwargs) for t in range(num_steps)], dtype=np.float64)
